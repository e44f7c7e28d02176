package spool

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

// checkEvictions asserts that the telemetry appended (want) is exactly what is pending plus what the evicted
// gap records name, with correct ranges and counts, and that no gap overlaps another.
func checkEvictions(t *testing.T, s *Spool, want []uint64) (evicted int) {
	t.Helper()
	left := map[uint64]bool{}
	for _, seq := range seqsOf(pending(t, s, Telemetry)) {
		left[seq] = true
	}
	covered := map[uint64]bool{}
	for _, g := range gaps(t, s) {
		if g.Reason != "evicted" {
			continue
		}
		assert.Equal(t, "telemetry", g.Class)
		var n uint64
		for _, seq := range want {
			if seq >= g.FromSeq && seq <= g.ToSeq {
				assert.False(t, left[seq], "gap %d-%d names pending seq %d", g.FromSeq, g.ToSeq, seq)
				assert.False(t, covered[seq], "seq %d in two gaps", seq)
				covered[seq] = true
				n++
			}
		}
		assert.Equal(t, g.Count, n, "count of gap %d-%d", g.FromSeq, g.ToSeq)
		evicted += int(n)
	}
	for _, seq := range want {
		assert.True(t, left[seq] || covered[seq], "seq %d neither pending nor in a gap", seq)
	}
	return evicted
}

func TestEviction(t *testing.T) {
	dir := t.TempDir()
	o := opts(dir)
	o.MaxTelemetryBytes = 2000
	o.SegmentBytes = 512
	s, _ := openT(t, o)

	var qs, ts []uint64
	for i := range 3 {
		qs = append(qs, appendQ(t, s, i))
	}
	for i := range 100 {
		ts = append(ts, appendT(t, s, i))
		assert.LessOrEqual(t, s.Stats().PendingBytes[Telemetry], o.MaxTelemetryBytes)
	}
	evicted := checkEvictions(t, s, ts)
	assert.Positive(t, evicted)
	assert.EqualValues(t, evicted, s.Stats().Dropped)
	// The oldest went: what is left is the newest, contiguous.
	left := seqsOf(pending(t, s, Telemetry))
	assert.Equal(t, ts[len(ts)-len(left):], left)
	// Hysteresis: far fewer gaps than evicted records.
	g := gaps(t, s)
	assert.Less(t, len(g), evicted/2)

	// Questions are never evicted.
	var gotQ []uint64
	for _, r := range pending(t, s, Questions) {
		if r.Kind == protocol.KindQuestion {
			gotQ = append(gotQ, r.Seq)
		}
	}
	assert.Equal(t, qs, gotQ)

	// Segments holding only evicted records are gone.
	assert.LessOrEqual(t, len(segFiles(t, dir, Telemetry)), int(o.MaxTelemetryBytes/o.SegmentBytes)+2)

	// After a restart nothing evicted comes back and no gap is repeated.
	require.NoError(t, s.Close())
	s, rec := openT(t, o)
	assert.Equal(t, Recovery{}, rec)
	assert.Equal(t, left, seqsOf(pending(t, s, Telemetry)))
	assert.Len(t, gaps(t, s), len(g))
}

func TestEvictionSparesInFlight(t *testing.T) {
	dir := t.TempDir()
	o := opts(dir)
	o.MaxTelemetryBytes = 2000
	s, _ := openT(t, o)

	var ts []uint64
	for i := range 10 {
		ts = append(ts, appendT(t, s, i))
	}
	batch, err := s.Next(5, 1<<20)
	require.NoError(t, err)
	require.Equal(t, ts[:5], seqsOf(batch))

	for i := range 60 {
		ts = append(ts, appendT(t, s, 10+i))
	}
	// The batch in flight is untouched, the records after it went.
	again, err := s.Next(5, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, batch, again)
	left := seqsOf(pending(t, s, Telemetry))
	assert.Equal(t, ts[:5], left[:5])
	assert.Greater(t, left[5], ts[5])
	checkEvictions(t, s, ts)

	// Shrink unpins the upper half; the next eviction may take it, and still everything is accounted for.
	require.NoError(t, s.Shrink())
	for i := range 30 {
		ts = append(ts, appendT(t, s, 70+i))
	}
	checkEvictions(t, s, ts)

	// Restart with the batch still in flight: it survives, the evicted records stay evicted.
	before := seqsOf(pending(t, s, Telemetry))
	require.NoError(t, s.Close())
	s, rec := openT(t, o)
	assert.Empty(t, rec.InFlightReset)
	assert.Equal(t, before, seqsOf(pending(t, s, Telemetry)))
	again, err = s.Next(5, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, batch[:2], again)

	// Once the batch is acknowledged, the evicted ranges fold into the ack cursor.
	require.NoError(t, s.Ack(again[len(again)-1].Seq))
	s.mu.Lock()
	assert.Empty(t, s.cur.Evicted)
	s.mu.Unlock()
	require.NoError(t, s.Close())
	s, _ = openT(t, o)
	assert.Equal(t, before[2:], seqsOf(pending(t, s, Telemetry)))
}

func TestQuestionsFull(t *testing.T) {
	o := opts(t.TempDir())
	o.MaxQuestionBytes = 1000
	o.MaxTelemetryBytes = 1000
	s, _ := openT(t, o)
	n := 0
	for ; ; n++ {
		_, err := s.Append(Questions, protocol.KindQuestion, t0, question(n))
		if err != nil {
			require.ErrorIs(t, err, ErrFull)
			break
		}
		require.Less(t, n, 100)
	}
	require.Positive(t, n)
	assert.Equal(t, n, s.Stats().PendingRecords[Questions], "no question was evicted")
	assert.LessOrEqual(t, s.Stats().PendingBytes[Questions], o.MaxQuestionBytes)

	// Telemetry has its own budget and evicts within it; the gap records may exceed the questions budget.
	for i := range 50 {
		appendT(t, s, i)
	}
	assert.Positive(t, s.Stats().Dropped)
	assert.NotEmpty(t, gaps(t, s))

	// Acknowledging questions makes room again.
	b, err := s.Next(100, 1<<20)
	require.NoError(t, err)
	require.NoError(t, s.Ack(b[len(b)-1].Seq))
	appendQ(t, s, 1000)
}
