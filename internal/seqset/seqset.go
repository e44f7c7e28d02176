// Package seqset is a set of record seqs kept as sorted, disjoint, inclusive ranges: the form in which the
// ingest service remembers which of a device's seqs it has acknowledged. A device that sends in order needs one
// range however many records it sent; holes stay only where records are still to come (a question that
// travelled ahead of older telemetry, a record the server once refused) or never will (telemetry the agent
// evicted).
package seqset

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Range is an inclusive range of seqs, From <= To.
type Range struct {
	From, To uint64
}

// MarshalJSON writes [from,to], compact for a file that is rewritten on every batch.
func (r Range) MarshalJSON() ([]byte, error) { return json.Marshal([2]uint64{r.From, r.To}) }

// UnmarshalJSON reads [from,to].
func (r *Range) UnmarshalJSON(b []byte) error {
	var a [2]uint64
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	if a[0] > a[1] || a[0] == 0 {
		return fmt.Errorf("range [%d,%d] is not 1 <= from <= to", a[0], a[1])
	}
	r.From, r.To = a[0], a[1]
	return nil
}

// Set is a set of seqs. The zero value is empty. Methods never modify their receiver.
type Set []Range

// Valid reports whether s is sorted, disjoint and not touching (adjacent ranges are merged), as Add keeps it.
func (s Set) Valid() bool {
	for i, r := range s {
		if r.From == 0 || r.From > r.To {
			return false
		}
		if i > 0 && s[i-1].To+1 >= r.From {
			return false
		}
	}
	return true
}

// Max is the highest seq in s, 0 when empty.
func (s Set) Max() uint64 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].To
}

// Contains reports whether seq is in s.
func (s Set) Contains(seq uint64) bool {
	i := s.search(seq)
	return i < len(s) && s[i].From <= seq
}

// search returns the index of the first range whose To is >= seq.
func (s Set) search(seq uint64) int {
	i, _ := slices.BinarySearchFunc(s, seq, func(r Range, seq uint64) int {
		if r.To < seq {
			return -1
		}
		return 1
	})
	return i
}

// Count returns how many of seqs are in s.
func (s Set) Count(seqs []uint64) int {
	n := 0
	for _, q := range seqs {
		if s.Contains(q) {
			n++
		}
	}
	return n
}

// Add returns s with seqs (in any order) added.
func (s Set) Add(seqs []uint64) Set {
	add := make(Set, 0, len(seqs))
	sorted := slices.Clone(seqs)
	slices.Sort(sorted)
	for _, q := range sorted {
		if q == 0 {
			continue
		}
		if n := len(add); n > 0 && add[n-1].To+1 >= q {
			add[n-1].To = max(add[n-1].To, q)
			continue
		}
		add = append(add, Range{q, q})
	}
	return s.Union(add)
}

// Union returns the seqs in s or t.
func (s Set) Union(t Set) Set {
	all := make(Set, 0, len(s)+len(t))
	all = append(append(all, s...), t...)
	slices.SortFunc(all, func(a, b Range) int {
		switch {
		case a.From < b.From:
			return -1
		case a.From > b.From:
			return 1
		}
		return 0
	})
	out := make(Set, 0, len(all))
	for _, r := range all {
		if n := len(out); n > 0 && out[n-1].To+1 >= r.From {
			out[n-1].To = max(out[n-1].To, r.To)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Bounded returns s with at most n ranges: the lowest holes are filled until it fits. Filling a hole claims seqs
// that were never acknowledged, which is safe: an agent whose record is refused as a reuse numbers it anew above
// Max and delivers it.
func (s Set) Bounded(n int) Set {
	if n < 1 {
		n = 1
	}
	if len(s) <= n {
		return s
	}
	k := len(s) - n // ranges to fold into the first one
	out := make(Set, 0, n)
	out = append(out, Range{s[0].From, s[k].To})
	return append(out, s[k+1:]...)
}
