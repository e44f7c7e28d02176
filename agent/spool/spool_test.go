package spool

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	o := opts(dir)
	s, rec := openT(t, o)
	assert.Equal(t, Recovery{}, rec)

	appendT(t, s, 1) // 1
	appendT(t, s, 2) // 2
	appendT(t, s, 3) // 3
	appendQ(t, s, 4) // 4
	appendT(t, s, 5) // 5
	appendQ(t, s, 6) // 6

	st := s.Stats()
	assert.Equal(t, map[Class]int{Questions: 2, Telemetry: 4}, st.PendingRecords)
	assert.EqualValues(t, 7, st.NextSeq)
	assert.Equal(t, t0.Add(time.Second), st.OldestUnsent, "time of seq 1")
	assert.Positive(t, st.PendingBytes[Questions])
	assert.Positive(t, st.PendingBytes[Telemetry])

	// Questions travel first, the batch comes back sorted by seq.
	batch, err := s.Next(3, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 4, 6}, seqsOf(batch))
	assert.Equal(t, protocol.KindPerf, batch[0].Kind)
	assert.JSONEq(t, string(perf(1)), string(batch[0].Data))
	assert.JSONEq(t, string(question(4)), string(batch[1].Data))
	assert.Equal(t, t0.Add(4*time.Second), batch[1].Time)

	// In flight records are still pending until acknowledged.
	assert.Equal(t, 6, s.Stats().PendingRecords[Questions]+s.Stats().PendingRecords[Telemetry])

	require.NoError(t, s.Ack(6))
	st = s.Stats()
	assert.Equal(t, map[Class]int{Questions: 0, Telemetry: 3}, st.PendingRecords)
	assert.Zero(t, st.PendingBytes[Questions])
	assert.EqualValues(t, 6, st.LastAckedSeq)
	assert.False(t, st.LastAck.IsZero())
	assert.Equal(t, t0.Add(2*time.Second), st.OldestUnsent, "time of seq 2")

	// maxBytes: two records of telemetry fit, the third does not.
	cost := len(perf(2)) + recordOverhead
	batch, err = s.Next(10, 2*cost)
	require.NoError(t, err)
	assert.Equal(t, []uint64{2, 3}, seqsOf(batch))
	require.NoError(t, s.Ack(3))

	batch, err = s.Next(10, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, []uint64{5}, seqsOf(batch))
	require.NoError(t, s.Ack(5))

	batch, err = s.Next(10, 1<<20)
	require.NoError(t, err)
	assert.NotNil(t, batch)
	assert.Empty(t, batch)
	st = s.Stats()
	assert.Equal(t, map[Class]int{Questions: 0, Telemetry: 0}, st.PendingRecords)
	assert.True(t, st.OldestUnsent.IsZero())
	assert.Empty(t, segFiles(t, dir, Questions), "fully acknowledged segments are deleted")
	assert.Empty(t, segFiles(t, dir, Telemetry))
}

func TestNextLimits(t *testing.T) {
	tests := map[string]struct {
		maxRecords, maxBytes int
		want                 []uint64
	}{
		"one record":                    {1, 1 << 20, []uint64{3}},
		"questions fill the batch":      {2, 1 << 20, []uint64{3, 4}},
		"telemetry after questions":     {3, 1 << 20, []uint64{1, 3, 4}},
		"everything":                    {100, 1 << 20, []uint64{1, 2, 3, 4}},
		"a record above maxBytes alone": {100, 1, []uint64{3}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, _ := openT(t, opts(t.TempDir()))
			appendT(t, s, 1)
			appendT(t, s, 2)
			appendQ(t, s, 3)
			appendQ(t, s, 4)
			batch, err := s.Next(tc.maxRecords, tc.maxBytes)
			require.NoError(t, err)
			assert.Equal(t, tc.want, seqsOf(batch))
		})
	}
	s, _ := openT(t, opts(t.TempDir()))
	_, err := s.Next(0, 100)
	assert.Error(t, err)
}

func TestNextStableAndShrink(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, opts(dir))
	for i := range 10 {
		appendT(t, s, i)
	}
	first, err := s.Next(8, 1<<20)
	require.NoError(t, err)
	require.Equal(t, seqRangeOf(1, 8), seqsOf(first))

	// Same batch, whatever the limits and whatever was appended meanwhile.
	appendQ(t, s, 100)
	again, err := s.Next(1, 1)
	require.NoError(t, err)
	assert.Equal(t, first, again)

	// Same batch after a restart.
	require.NoError(t, s.Close())
	s, rec := openT(t, opts(dir))
	assert.Empty(t, rec.InFlightReset)
	again, err = s.Next(100, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, first, again)

	// Shrink keeps the lower half, persistently.
	require.NoError(t, s.Shrink())
	half, err := s.Next(100, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, seqRangeOf(1, 4), seqsOf(half))
	require.NoError(t, s.Close())
	s, rec = openT(t, opts(dir))
	assert.Empty(t, rec.InFlightReset)
	half, err = s.Next(100, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, seqRangeOf(1, 4), seqsOf(half))

	for _, want := range [][]uint64{{1, 2}, {1}, {1}} {
		require.NoError(t, s.Shrink())
		b, err := s.Next(100, 1<<20)
		require.NoError(t, err)
		assert.Equal(t, want, seqsOf(b))
	}
	require.NoError(t, s.Ack(1))

	// The next batch is composed afresh: the question first, then the oldest telemetry.
	b, err := s.Next(3, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, []uint64{2, 3, 11}, seqsOf(b))
}

func TestShrinkMixedKeepsClassPrefixes(t *testing.T) {
	s, _ := openT(t, opts(t.TempDir()))
	for i := range 4 {
		appendT(t, s, i) // 1-4
	}
	appendQ(t, s, 5) // 5
	appendQ(t, s, 6) // 6
	b, err := s.Next(5, 1<<20)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3, 5, 6}, seqsOf(b))
	require.NoError(t, s.Shrink())
	b, err = s.Next(5, 1<<20)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2}, seqsOf(b))
	require.NoError(t, s.Ack(2))
	b, err = s.Next(10, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, []uint64{3, 4, 5, 6}, seqsOf(b))
}

func TestPartialAck(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, opts(dir))
	for i := range 6 {
		appendT(t, s, i)
	}
	b, err := s.Next(6, 1<<20)
	require.NoError(t, err)
	require.Len(t, b, 6)
	require.NoError(t, s.Ack(3))
	assert.Equal(t, 3, s.Stats().PendingRecords[Telemetry])
	require.NoError(t, s.Ack(100), "an Ack without a batch in flight does nothing")
	assert.Equal(t, 3, s.Stats().PendingRecords[Telemetry])

	require.NoError(t, s.Close())
	s, _ = openT(t, opts(dir))
	b, err = s.Next(10, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, []uint64{4, 5, 6}, seqsOf(b))
}

func TestSeqNeverGoesBackwards(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, opts(dir))
	for i := range 5 {
		appendQ(t, s, i)
		appendT(t, s, i)
	}
	b, err := s.Next(100, 1<<20)
	require.NoError(t, err)
	require.Len(t, b, 10)
	require.NoError(t, s.Ack(10))
	assert.Empty(t, segFiles(t, dir, Questions))
	assert.Empty(t, segFiles(t, dir, Telemetry))
	require.NoError(t, s.Close())

	for round := range 3 {
		s, rec := openT(t, opts(dir))
		assert.Equal(t, Recovery{}, rec)
		assert.EqualValues(t, 11+round, s.Stats().NextSeq)
		assert.EqualValues(t, 11+round, appendT(t, s, round))
		b, err := s.Next(10, 1<<20)
		require.NoError(t, err)
		require.NoError(t, s.Ack(b[len(b)-1].Seq))
		require.NoError(t, s.Close())
	}

	// Seqs that were appended but never acknowledged or sent still count after a restart.
	s, _ = openT(t, opts(dir))
	assert.EqualValues(t, 14, appendT(t, s, 0))
	require.NoError(t, s.Close())
	s, _ = openT(t, opts(dir))
	assert.EqualValues(t, 15, appendT(t, s, 0))
}

func TestAppendValidation(t *testing.T) {
	big := `{"x":"` + strings.Repeat("a", protocol.DefaultLimits.MaxRecordBytes) + `"}`
	tests := map[string]struct {
		class Class
		kind  protocol.Kind
		data  string
	}{
		"unknown class":       {"other", protocol.KindPerf, `{}`},
		"unknown kind":        {Telemetry, "bogus", `{}`},
		"data not an object":  {Telemetry, protocol.KindPerf, `[1,2]`},
		"data not JSON":       {Telemetry, protocol.KindPerf, `{"a":`},
		"data empty":          {Telemetry, protocol.KindPerf, ``},
		"data too large":      {Telemetry, protocol.KindPerf, big},
		"question without id": {Questions, protocol.KindQuestion, `{"text":"hello"}`},
		"question empty text": {Questions, protocol.KindQuestion, `{"id":"abcdefgh-1","text":""}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, _ := openT(t, opts(t.TempDir()))
			_, err := s.Append(tc.class, tc.kind, t0, json.RawMessage(tc.data))
			require.ErrorIs(t, err, ErrInvalidRecord)
			assert.EqualValues(t, 1, s.Stats().NextSeq, "a refused record takes no seq")
		})
	}

	s, _ := openT(t, opts(t.TempDir()))
	seq, err := s.Append(Telemetry, protocol.KindEvent, time.Time{}, json.RawMessage(" {\n \"boot\" : true }"))
	require.NoError(t, err)
	b, err := s.Next(1, 1<<20)
	require.NoError(t, err)
	require.Len(t, b, 1)
	assert.Equal(t, seq, b[0].Seq)
	assert.Equal(t, `{"boot":true}`, string(b[0].Data), "data is stored compacted")
	assert.Equal(t, t0.Add(time.Second), b[0].Time, "a zero time is now")
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, opts(dir))
	_, _, err := Open(opts(dir))
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, s.Close())
	s2, _ := openT(t, opts(dir))
	require.NoError(t, s2.Close())
}

func TestClosed(t *testing.T) {
	s, _ := openT(t, opts(t.TempDir()))
	require.NoError(t, s.Close())
	_, err := s.Append(Telemetry, protocol.KindPerf, t0, perf(1))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = s.Next(1, 1)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, s.Ack(1), ErrClosed)
	assert.ErrorIs(t, s.Shrink(), ErrClosed)
	assert.ErrorIs(t, s.Close(), ErrClosed)
}

func TestTelemetryGroupCommit(t *testing.T) {
	o := opts(t.TempDir())
	o.TelemetrySyncInterval = 10 * time.Millisecond
	s, _ := openT(t, o)
	appendT(t, s, 1)
	dirty := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.classes[Telemetry].dirty
	}
	assert.True(t, dirty(), "telemetry waits for the group commit")
	require.Eventually(t, func() bool { return !dirty() }, 5*time.Second, 5*time.Millisecond)

	// Next makes what it sends durable first, whatever the timer does.
	appendT(t, s, 2)
	_, err := s.Next(10, 1<<20)
	require.NoError(t, err)
	assert.False(t, dirty())

	// Questions never wait.
	appendQ(t, s, 3)
	s.mu.Lock()
	assert.False(t, s.classes[Questions].dirty)
	s.mu.Unlock()
}

func TestSegmentsRollAndGo(t *testing.T) {
	dir := t.TempDir()
	o := opts(dir)
	frame, err := encodeFrame(protocol.Record{Seq: 1, Kind: protocol.KindPerf, Time: t0, Data: perf(1)})
	require.NoError(t, err)
	o.SegmentBytes = int64(3 * len(frame))
	s, _ := openT(t, o)
	for i := range 9 {
		appendT(t, s, i)
	}
	assert.Len(t, segFiles(t, dir, Telemetry), 3)
	b, err := s.Next(4, 1<<20)
	require.NoError(t, err)
	require.NoError(t, s.Ack(b[len(b)-1].Seq))
	assert.Equal(t, []string{segName(4), segName(7)}, segFiles(t, dir, Telemetry), "only the fully acknowledged segment goes")

	require.NoError(t, s.Close())
	s, _ = openT(t, o)
	assert.Equal(t, seqRangeOf(5, 9), seqsOf(pending(t, s, Telemetry)))
}

func TestConcurrentUse(t *testing.T) {
	o := opts(t.TempDir())
	o.TelemetrySyncInterval = time.Millisecond
	s, _ := openT(t, o)
	const writers, each = 4, 40
	done := make(chan []uint64, writers)
	for w := range writers {
		go func() {
			var seqs []uint64
			for i := range each {
				var seq uint64
				var err error
				if i%4 == 0 {
					seq, err = s.Append(Questions, protocol.KindQuestion, time.Time{}, question(w*1000+i))
				} else {
					seq, err = s.Append(Telemetry, protocol.KindPerf, time.Time{}, perf(i))
				}
				if err != nil {
					t.Error(err)
				}
				seqs = append(seqs, seq)
			}
			done <- seqs
		}()
	}
	sent := map[uint64]bool{}
	finished := 0
	var all []uint64
	for finished < writers || s.Stats().PendingRecords[Questions]+s.Stats().PendingRecords[Telemetry] > 0 {
		select {
		case seqs := <-done:
			finished++
			all = append(all, seqs...)
		default:
		}
		b, err := s.Next(7, 1<<20)
		require.NoError(t, err)
		for i, r := range b {
			require.False(t, sent[r.Seq], "seq %d sent after its ack", r.Seq)
			if i > 0 {
				require.Greater(t, r.Seq, b[i-1].Seq)
			}
		}
		if len(b) > 0 {
			for _, r := range b {
				sent[r.Seq] = true
			}
			require.NoError(t, s.Ack(b[len(b)-1].Seq))
		}
	}
	require.Len(t, all, writers*each)
	for _, seq := range all {
		assert.True(t, sent[seq], "seq %d never sent", seq)
	}
	assert.Len(t, sent, writers*each, "every seq is unique")
}
