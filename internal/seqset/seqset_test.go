package seqset

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAdd(t *testing.T) {
	tests := map[string]struct {
		set  Set
		add  []uint64
		want Set
	}{
		"empty":                  {nil, nil, Set{}},
		"first run":              {nil, []uint64{1, 2, 3}, Set{{1, 3}}},
		"appends":                {Set{{1, 3}}, []uint64{4, 5}, Set{{1, 5}}},
		"leaves a hole":          {Set{{1, 3}}, []uint64{5, 6}, Set{{1, 3}, {5, 6}}},
		"fills a hole":           {Set{{1, 3}, {5, 6}}, []uint64{4}, Set{{1, 6}}},
		"interleaved":            {Set{{1, 2}, {10, 12}}, []uint64{3, 4, 9, 13}, Set{{1, 4}, {9, 13}}},
		"unsorted input":         {nil, []uint64{7, 1, 2, 6}, Set{{1, 2}, {6, 7}}},
		"already there":          {Set{{1, 10}}, []uint64{3, 4}, Set{{1, 10}}},
		"zero is not a seq":      {nil, []uint64{0, 1}, Set{{1, 1}}},
		"below the first range":  {Set{{5, 6}}, []uint64{1, 2}, Set{{1, 2}, {5, 6}}},
		"bridges several ranges": {Set{{1, 1}, {3, 3}, {5, 5}}, []uint64{2, 4}, Set{{1, 5}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.set.Add(tc.add)
			require.Equal(t, tc.want, got)
			require.True(t, got.Valid())
		})
	}
}

func TestContainsAndCount(t *testing.T) {
	s := Set{{1, 3}, {7, 7}, {10, 20}}
	for q, want := range map[uint64]bool{0: false, 1: true, 3: true, 4: false, 6: false, 7: true, 8: false, 10: true, 20: true, 21: false} {
		require.Equal(t, want, s.Contains(q), "seq %d", q)
	}
	require.Equal(t, 3, s.Count([]uint64{2, 5, 7, 15}))
	require.Equal(t, uint64(20), s.Max())
	require.Equal(t, uint64(0), Set(nil).Max())
}

func TestBounded(t *testing.T) {
	s := Set{{1, 2}, {4, 5}, {8, 9}, {12, 12}}
	require.Equal(t, s, s.Bounded(4))
	require.Equal(t, Set{{1, 9}, {12, 12}}, s.Bounded(2))
	require.Equal(t, Set{{1, 12}}, s.Bounded(0))
}

func TestJSON(t *testing.T) {
	raw, err := json.Marshal(Set{{1, 3}, {5, 5}})
	require.NoError(t, err)
	require.JSONEq(t, `[[1,3],[5,5]]`, string(raw))
	var back Set
	require.NoError(t, json.Unmarshal(raw, &back))
	require.Equal(t, Set{{1, 3}, {5, 5}}, back)
	require.Error(t, json.Unmarshal([]byte(`[[3,1]]`), &back), "from above to")
	require.Error(t, json.Unmarshal([]byte(`[[0,1]]`), &back), "seq 0")
}

// TestAddMatchesAMap checks Add against the obvious set on random input.
func TestAddMatchesAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var s Set
		ref := map[uint64]bool{}
		for range 10 {
			var add []uint64
			for range r.IntN(8) {
				q := 1 + r.Uint64N(60)
				add = append(add, q)
				ref[q] = true
			}
			s = s.Add(add)
			require.True(t, s.Valid(), "%v", s)
		}
		for q := uint64(0); q <= 61; q++ {
			require.Equal(t, ref[q], s.Contains(q), "seq %d in %v", q, s)
		}
	}
}
