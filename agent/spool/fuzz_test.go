package spool

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

// seedSegment is a valid segment of n records of mixed kinds.
func seedSegment(tb testing.TB, n int) []byte {
	tb.Helper()
	var b []byte
	for i := 1; i <= n; i++ {
		r := protocol.Record{Seq: uint64(i), Kind: protocol.KindPerf, Time: t0.Add(time.Duration(i) * time.Second), Data: perf(i)}
		if i%2 == 0 {
			r.Kind, r.Data = protocol.KindQuestion, question(i)
		}
		frame, err := encodeFrame(r)
		require.NoError(tb, err)
		b = append(b, frame...)
	}
	return b
}

// seedSegments are valid and damaged segments: the checked-in corpus of FuzzSegmentReader and seeds of FuzzOpen.
func seedSegments(tb testing.TB) map[string][]byte {
	valid := seedSegment(tb, 3)
	first := int(binary.LittleEndian.Uint32(valid)) + frameHeaderSize
	flipped := append([]byte{}, valid...)
	flipped[first+20] ^= 0x20
	insane := append([]byte{}, valid...)
	binary.LittleEndian.PutUint32(insane[first:], 0xfffffff0)
	garbage := append(append(append([]byte{}, valid[:first]...), "garbage!"...), valid[first:]...)
	return map[string][]byte{
		"valid":          valid,
		"empty":          {},
		"torn":           valid[:len(valid)-5],
		"header only":    valid[:first+4],
		"middle flipped": flipped,
		"insane length":  insane,
		"garbage insert": garbage,
		"zero tail":      append(append([]byte{}, valid...), make([]byte, 64)...),
	}
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzSegmentReader. Run it with SPOOL_WRITE_FUZZ_SEEDS=1 after a
// change of the frame format.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("SPOOL_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set SPOOL_WRITE_FUZZ_SEEDS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzSegmentReader")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, b := range seedSegments(t) {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		file := filepath.Join(dir, "seed-"+strings.ReplaceAll(name, " ", "-"))
		require.NoError(t, os.WriteFile(file, []byte(content), 0o644))
	}
}

// FuzzSegmentReader: reading arbitrary bytes as a segment never panics or hangs, returns only frames whose CRC
// verifies, in increasing seq order, and accounts for every byte as a record, a damaged region or the tail.
func FuzzSegmentReader(f *testing.F) {
	for _, b := range seedSegments(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sc := scanSegment(b)
		type span struct{ off, end int64 }
		var spans []span
		var prevSeq uint64
		for _, r := range sc.records {
			end := r.off + int64(r.size)
			require.True(t, r.off >= 0 && end <= int64(len(b)) && r.size > frameHeaderSize, "record %d out of bounds", r.rec.Seq)
			frame := b[r.off:end]
			require.EqualValues(t, r.size-frameHeaderSize, binary.LittleEndian.Uint32(frame))
			require.Equal(t, binary.LittleEndian.Uint32(frame[4:]), crc32.Checksum(frame[frameHeaderSize:], castagnoli), "record %d: CRC", r.rec.Seq)
			var rec protocol.Record
			require.NoError(t, json.Unmarshal(frame[frameHeaderSize:], &rec))
			require.Equal(t, r.rec.Seq, rec.Seq)
			require.Greater(t, r.rec.Seq, prevSeq)
			require.True(t, r.rec.Kind.Valid())
			prevSeq = r.rec.Seq
			spans = append(spans, span{r.off, end})
		}
		for _, d := range sc.damaged {
			require.True(t, d.off < d.end && d.end <= int64(len(b)))
			require.Less(t, d.prevSeq, d.nextSeq)
			spans = append(spans, span{d.off, d.end})
		}
		if sc.tail >= 0 {
			require.Less(t, sc.tail, int64(len(b)))
			spans = append(spans, span{sc.tail, int64(len(b))})
		}
		// The spans tile the input exactly.
		var covered int64
		for covered < int64(len(b)) {
			found := false
			for _, s := range spans {
				if s.off == covered {
					covered, found = s.end, true
					break
				}
			}
			require.True(t, found, "byte %d of %d is not accounted for", covered, len(b))
		}
		frameChain(b)
	})
}

// FuzzOpen: whatever a segment, the cursor and the in-flight file hold, Open succeeds, the spool works, and a
// second Open finds nothing left to repair.
func FuzzOpen(f *testing.F) {
	seeds := seedSegments(f)
	dir := f.TempDir()
	require.NoError(f, writeState(dir, cursorFile, cursorState{Acked: map[Class]uint64{Telemetry: 1}, HighWater: 3}))
	require.NoError(f, writeState(dir, inflightFile, inflightState{Seqs: []uint64{2, 3}, HighWater: 3}))
	cursor, err := os.ReadFile(filepath.Join(dir, cursorFile))
	require.NoError(f, err)
	inflight, err := os.ReadFile(filepath.Join(dir, inflightFile))
	require.NoError(f, err)
	for _, seg := range seeds {
		f.Add(seg, cursor, inflight)
		f.Add(seg, []byte{}, []byte{})
	}
	f.Add(seeds["middle flipped"], []byte("{"), inflight)

	f.Fuzz(func(t *testing.T, seg, cursor, inflight []byte) {
		dir := t.TempDir()
		for _, cl := range classes {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, string(cl)), 0o700))
		}
		// The same bytes as a questions and a telemetry segment: seqs overlap across classes, as damage might.
		require.NoError(t, os.WriteFile(filepath.Join(dir, string(Questions), segName(1)), seg, 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, string(Telemetry), segName(1)), seg, 0o600))
		if len(cursor) > 0 {
			require.NoError(t, os.WriteFile(filepath.Join(dir, cursorFile), cursor, 0o600))
		}
		if len(inflight) > 0 {
			require.NoError(t, os.WriteFile(filepath.Join(dir, inflightFile), inflight, 0o600))
		}
		o := Options{Dir: dir, Now: func() time.Time { return t0 }}
		s, _, err := Open(o)
		require.NoError(t, err)
		b, err := s.Next(1000, 1<<30)
		require.NoError(t, err)
		for i, r := range b {
			require.True(t, r.Kind.Valid())
			if i > 0 {
				require.Greater(t, r.Seq, b[i-1].Seq)
			}
		}
		seq, err := s.Append(Questions, protocol.KindQuestion, t0, question(1))
		require.NoError(t, err)
		if len(b) > 0 {
			require.Greater(t, seq, b[len(b)-1].Seq)
			require.NoError(t, s.Ack(b[len(b)-1].Seq))
		}
		require.NoError(t, s.Close())

		s, rec, err := Open(o)
		require.NoError(t, err)
		require.Equal(t, Recovery{}, rec)
		require.Greater(t, s.Stats().NextSeq, seq)
		require.NoError(t, s.Close())
	})
}
