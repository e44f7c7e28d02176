package spool

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

// A spool whose device has seqs on the server it does not know of (wiped, restored from a backup) numbers its
// pending records, in flight or not, and every later one above the server's highest seq, keeps them in order,
// and remembers that across a restart.
func TestRebaseNumbersEverythingAboveTheServersSeqs(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, opts(dir))
	for i := range 5 {
		appendT(t, s, i) // seqs 1-5
	}
	appendQ(t, s, 1) // seq 6
	batch, err := s.Next(3, 1<<20)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 6}, seqsOf(batch), "questions travel ahead of telemetry")

	moved, err := s.Rebase(40)
	require.NoError(t, err)
	require.True(t, moved)
	again, err := s.Next(3, 1<<20)
	require.NoError(t, err)
	require.Equal(t, []uint64{41, 42, 46}, seqsOf(again), "the same batch, numbered above 40")
	for i := range batch {
		require.Equal(t, batch[i].Data, again[i].Data)
	}
	require.Equal(t, uint64(47), appendT(t, s, 9), "later records follow")

	// Asking again for what is already cleared changes nothing; a higher claim moves on.
	moved, err = s.Rebase(40)
	require.NoError(t, err)
	require.False(t, moved)

	require.NoError(t, s.Ack(46))
	require.Equal(t, uint64(46), s.Stats().LastAckedSeq)
	next, err := s.Next(10, 1<<20)
	require.NoError(t, err)
	require.Equal(t, []uint64{43, 44, 45, 47}, seqsOf(next))
	require.NoError(t, s.Close())

	// After a restart the numbering holds.
	s2, _ := openT(t, opts(dir))
	next, err = s2.Next(10, 1<<20)
	require.NoError(t, err)
	require.Equal(t, []uint64{43, 44, 45, 47}, seqsOf(next))
	require.Equal(t, uint64(48), s2.Stats().NextSeq)
	require.NoError(t, s2.Ack(47))
	require.Equal(t, uint64(48), appendT(t, s2, 10))

	// An empty spool moves its next seq.
	next, err = s2.Next(10, 1<<20)
	require.NoError(t, err)
	require.NoError(t, s2.Ack(next[len(next)-1].Seq))
	moved, err = s2.Rebase(1000)
	require.NoError(t, err)
	require.True(t, moved)
	require.Equal(t, uint64(1001), appendT(t, s2, 11))
}

// A gap record names the dropped records by the seqs the server would have seen.
func TestGapAfterRebaseNamesServerSeqs(t *testing.T) {
	o := opts(t.TempDir())
	o.MaxTelemetryBytes = 2048
	s, _ := openT(t, o)
	_, err := s.Rebase(500)
	require.NoError(t, err)
	for i := range 100 {
		appendT(t, s, i)
	}
	gaps := pending(t, s, Questions)
	require.NotEmpty(t, gaps)
	var g protocol.Gap
	require.NoError(t, json.Unmarshal(gaps[0].Data, &g))
	require.Greater(t, g.FromSeq, uint64(500))
}
