package spool

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

// tornSetup writes 3 questions (one segment) and 2 telemetry records and returns the directory and the
// questions segment's path.
func tornSetup(t *testing.T) (dir, path string, qs []protocol.Record) {
	dir = t.TempDir()
	s, _ := openT(t, opts(dir))
	for i := range 3 {
		appendQ(t, s, i)
	}
	appendT(t, s, 3)
	appendT(t, s, 4)
	qs = pending(t, s, Questions)
	require.NoError(t, s.Close())
	return dir, filepath.Join(dir, string(Questions), segName(1)), qs
}

func TestTornTailEveryOffset(t *testing.T) {
	dir, path, qs := tornSetup(t)
	offs, sizes := frameOffsets(t, path)
	require.Len(t, offs, 3)
	lastOff, end := offs[2], offs[2]+int64(sizes[2])

	for cut := lastOff; cut < end; cut++ {
		d := copyDir(t, dir)
		p := filepath.Join(d, string(Questions), segName(1))
		require.NoError(t, os.Truncate(p, cut))
		o := opts(d)
		s, rec, err := Open(o)
		require.NoError(t, err, "cut at %d", cut)
		wantTorn := 1
		if cut == lastOff {
			wantTorn = 0 // a clean frame boundary is no tear
		}
		assert.Equal(t, wantTorn, rec.TornTails, "cut at %d", cut)
		assert.Empty(t, rec.SetAside, "cut at %d", cut)
		assert.Equal(t, qs[:2], pending(t, s, Questions), "cut at %d", cut)
		assert.Equal(t, []uint64{4, 5}, seqsOf(pending(t, s, Telemetry)), "cut at %d", cut)
		info, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, lastOff, info.Size(), "truncated to the last good frame")
		// The spool goes on appending, and the next Open finds nothing to repair.
		appendQ(t, s, 9)
		require.NoError(t, s.Close())
		s, rec, err = Open(o)
		require.NoError(t, err)
		assert.Equal(t, Recovery{}, rec)
		assert.Len(t, pending(t, s, Questions), 3)
		require.NoError(t, s.Close())
	}
}

func TestTornTailLastFrameDamaged(t *testing.T) {
	tests := map[string]func(b []byte, off int64){
		"payload byte flipped": func(b []byte, off int64) { b[off+20] ^= 0x01 },
		"crc flipped":          func(b []byte, off int64) { b[off+4] ^= 0x80 },
		"length past the end":  func(b []byte, off int64) { binary.LittleEndian.PutUint32(b[off:], uint32(len(b))) },
		"length insane":        func(b []byte, off int64) { binary.LittleEndian.PutUint32(b[off:], 0xffffffff) },
		"zeroed":               func(b []byte, off int64) { clear(b[off:]) },
	}
	for name, damage := range tests {
		t.Run(name, func(t *testing.T) {
			dir, path, qs := tornSetup(t)
			offs, _ := frameOffsets(t, path)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			damage(b, offs[2])
			require.NoError(t, os.WriteFile(path, b, 0o600))

			s, rec := openT(t, opts(dir))
			assert.Equal(t, 1, rec.TornTails)
			assert.Empty(t, rec.SetAside)
			assert.Equal(t, qs[:2], pending(t, s, Questions))
		})
	}
}

// corruptSetup writes 12 telemetry records, five to a segment, and returns the directory, the options and the
// first segment's path.
func corruptSetup(t *testing.T) (string, Options, string) {
	dir := t.TempDir()
	o := opts(dir)
	frame, err := encodeFrame(protocol.Record{Seq: 10, Kind: protocol.KindPerf, Time: t0.Add(10), Data: perf(10)})
	require.NoError(t, err)
	o.SegmentBytes = int64(5 * len(frame))
	s, _ := openT(t, o)
	for i := range 12 {
		appendT(t, s, 10+i) // equal-sized frames
	}
	require.Equal(t, []string{segName(1), segName(6), segName(11)}, segFiles(t, dir, Telemetry))
	require.NoError(t, s.Close())
	return dir, o, filepath.Join(dir, string(Telemetry), segName(1))
}

func without(all []uint64, drop ...uint64) []uint64 {
	var out []uint64
	for _, s := range all {
		keep := true
		for _, d := range drop {
			keep = keep && s != d
		}
		if keep {
			out = append(out, s)
		}
	}
	return out
}

func TestCorruptSegment(t *testing.T) {
	type frames struct {
		offs  []int64
		sizes []int
	}
	tests := map[string]struct {
		damage           func(b []byte, f frames) []byte
		from, to         uint64
		records, salvage int
	}{
		"payload byte flipped in the middle frame": {
			damage: func(b []byte, f frames) []byte { b[f.offs[2]+30] ^= 0x20; return b },
			from:   3, to: 3, records: 1, salvage: 4,
		},
		"crc flipped": {
			damage: func(b []byte, f frames) []byte { b[f.offs[2]+5] ^= 0x01; return b },
			from:   3, to: 3, records: 1, salvage: 4,
		},
		"length insane": {
			damage: func(b []byte, f frames) []byte {
				binary.LittleEndian.PutUint32(b[f.offs[2]:], 0x7fffffff)
				return b
			},
			from: 3, to: 3, records: 1, salvage: 4,
		},
		"length runs over the next frame": {
			damage: func(b []byte, f frames) []byte {
				binary.LittleEndian.PutUint32(b[f.offs[2]:], uint32(f.sizes[2]+10))
				return b
			},
			from: 3, to: 3, records: 1, salvage: 4,
		},
		"two frames damaged": {
			damage: func(b []byte, f frames) []byte {
				b[f.offs[2]+30] ^= 0x20
				b[f.offs[3]+30] ^= 0x20
				return b
			},
			from: 3, to: 4, records: 2, salvage: 3,
		},
		"first frame damaged": {
			damage: func(b []byte, f frames) []byte { b[f.offs[0]+30] ^= 0x20; return b },
			from:   1, to: 1, records: 1, salvage: 4,
		},
		"garbage inserted": {
			damage: func(b []byte, f frames) []byte {
				return append(b[:f.offs[2]:f.offs[2]], append([]byte("garbage!"), b[f.offs[2]+int64(f.sizes[2]):]...)...)
			},
			from: 3, to: 3, records: 1, salvage: 4,
		},
		"finished segment with a torn tail": {
			damage: func(b []byte, f frames) []byte { return b[:f.offs[4]+7] },
			from:   5, to: 5, records: 1, salvage: 4,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir, o, path := corruptSetup(t)
			offs, sizes := frameOffsets(t, path)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, tc.damage(b, frames{offs, sizes}), 0o600))

			s, rec := openT(t, o)
			assert.Zero(t, rec.TornTails)
			require.Len(t, rec.SetAside, 1)
			sa := rec.SetAside[0]
			assert.Equal(t, filepath.Join(string(Telemetry), segName(1)+".corrupt"), sa.File)
			assert.Equal(t, tc.from, sa.FromSeq)
			assert.Equal(t, tc.to, sa.ToSeq)
			assert.Equal(t, tc.records, sa.Records)
			assert.Equal(t, tc.salvage, sa.Salvaged)
			assert.NotEmpty(t, sa.Reason)
			assert.FileExists(t, filepath.Join(dir, sa.File))

			var lost []uint64
			for seq := tc.from; seq <= tc.to; seq++ {
				lost = append(lost, seq)
			}
			want := without(seqRangeOf(1, 12), lost...)
			assert.Equal(t, want, seqsOf(pending(t, s, Telemetry)), "records before and after the damage and in later segments survive")
			assert.Equal(t, []protocol.Gap{{Class: "telemetry", FromSeq: tc.from, ToSeq: tc.to, Count: uint64(tc.records), Reason: "corrupt"}}, gaps(t, s))

			// The next Open has nothing left to repair.
			require.NoError(t, s.Close())
			s, rec = openT(t, o)
			assert.Equal(t, Recovery{}, rec)
			assert.Equal(t, want, seqsOf(pending(t, s, Telemetry)))
			assert.Len(t, gaps(t, s), 1)
		})
	}
}

func TestCorruptAcknowledgedRecordsLoseNothing(t *testing.T) {
	_, o, path := corruptSetup(t)
	s, _ := openT(t, o)
	b, err := s.Next(2, 1<<20)
	require.NoError(t, err)
	require.NoError(t, s.Ack(b[1].Seq))
	require.NoError(t, s.Close())

	offs, _ := frameOffsets(t, path)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	raw[offs[0]+30] ^= 0x20 // seq 1, acknowledged
	raw[offs[3]+30] ^= 0x20 // seq 4, pending
	require.NoError(t, os.WriteFile(path, raw, 0o600))

	s, rec := openT(t, o)
	require.Len(t, rec.SetAside, 1)
	assert.Equal(t, 2, rec.SetAside[0].Salvaged, "only pending records are salvaged")
	assert.EqualValues(t, 4, rec.SetAside[0].FromSeq, "the damaged acknowledged record is no loss")
	assert.EqualValues(t, 4, rec.SetAside[0].ToSeq)
	assert.Equal(t, without(seqRangeOf(3, 12), 4), seqsOf(pending(t, s, Telemetry)))
	assert.Equal(t, []protocol.Gap{{Class: "telemetry", FromSeq: 4, ToSeq: 4, Count: 1, Reason: "corrupt"}}, gaps(t, s))
}

func TestInterruptedSalvage(t *testing.T) {
	t.Run("set aside, salvage not yet in place", func(t *testing.T) {
		_, o, path := corruptSetup(t)
		offs, _ := frameOffsets(t, path)
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		// What setAside leaves after its first rename: the corrupt file aside, the salvage copy complete.
		salvage := append([]byte{}, raw[:offs[2]]...)
		salvage = append(salvage, raw[offs[3]:]...)
		raw[offs[2]+30] ^= 0x20
		require.NoError(t, os.WriteFile(path+".corrupt", raw, 0o600))
		require.NoError(t, os.WriteFile(path+salvageSuffix, salvage, 0o600))
		require.NoError(t, os.Remove(path))

		s, rec := openT(t, o)
		assert.Equal(t, Recovery{}, rec)
		assert.Equal(t, without(seqRangeOf(1, 12), 3), seqsOf(pending(t, s, Telemetry)))
		assert.FileExists(t, path)
		assert.NoFileExists(t, path+salvageSuffix)
	})
	t.Run("salvage written, nothing renamed", func(t *testing.T) {
		_, o, path := corruptSetup(t)
		offs, _ := frameOffsets(t, path)
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		raw[offs[2]+30] ^= 0x20
		require.NoError(t, os.WriteFile(path, raw, 0o600))
		require.NoError(t, os.WriteFile(path+salvageSuffix, raw[:offs[1]+3], 0o600)) // incomplete

		s, rec := openT(t, o)
		require.Len(t, rec.SetAside, 1)
		assert.Equal(t, 4, rec.SetAside[0].Salvaged)
		assert.Equal(t, without(seqRangeOf(1, 12), 3), seqsOf(pending(t, s, Telemetry)))
		assert.NoFileExists(t, path+salvageSuffix)
	})
}

// stateSetup leaves a spool whose questions were acknowledged (their segment deleted) and whose telemetry
// segment holds one acknowledged and five pending records.
func stateSetup(t *testing.T) (string, Options) {
	dir := t.TempDir()
	o := opts(dir)
	s, _ := openT(t, o)
	for i := range 6 {
		appendT(t, s, i) // 1-6
	}
	appendQ(t, s, 7) // 7
	appendQ(t, s, 8) // 8
	b, err := s.Next(3, 1<<20)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 7, 8}, seqsOf(b))
	require.NoError(t, s.Ack(8))
	require.Empty(t, segFiles(t, dir, Questions))
	require.NoError(t, s.Close())
	return dir, o
}

func TestGarbageCursor(t *testing.T) {
	tests := map[string]func(t *testing.T, path string){
		"not JSON": func(t *testing.T, path string) {
			require.NoError(t, os.WriteFile(path, []byte("\x00\x01garbage"), 0o600))
		},
		"empty":   func(t *testing.T, path string) { require.NoError(t, os.WriteFile(path, nil, 0o600)) },
		"missing": func(t *testing.T, path string) { require.NoError(t, os.Remove(path)) },
		"checksum mismatch": func(t *testing.T, path string) {
			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			var env envelope
			require.NoError(t, json.Unmarshal(raw, &env))
			env.State = json.RawMessage(`{"acked":{"telemetry":6},"highWater":8}`)
			raw, _ = json.Marshal(env)
			require.NoError(t, os.WriteFile(path, raw, 0o600))
		},
		"wrong version": func(t *testing.T, path string) {
			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			var env envelope
			require.NoError(t, json.Unmarshal(raw, &env))
			env.Version = 99
			raw, _ = json.Marshal(env)
			require.NoError(t, os.WriteFile(path, raw, 0o600))
		},
		"inconsistent": func(t *testing.T, path string) {
			c := newCursor()
			c.Acked[Telemetry] = 100
			c.HighWater = 8
			require.NoError(t, writeState(filepath.Dir(path), cursorFile, c))
		},
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			dir, o := stateSetup(t)
			mutate(t, filepath.Join(dir, cursorFile))

			s, rec := openT(t, o)
			assert.NotEmpty(t, rec.CursorReset)
			if name != "missing" {
				assert.FileExists(t, filepath.Join(dir, cursorFile+".corrupt"))
			}
			// Nothing counts as acknowledged beyond what the segments prove: seq 1 is resent.
			assert.Equal(t, seqRangeOf(1, 6), seqsOf(pending(t, s, Telemetry)))
			// Seqs continue above anything the spool may have issued before.
			floor := uint64(t0.UnixMicro())
			assert.Greater(t, s.Stats().NextSeq, floor)
			seq := appendT(t, s, 9)
			assert.Greater(t, seq, floor)

			require.NoError(t, s.Close())
			s, rec = openT(t, o)
			assert.Equal(t, Recovery{}, rec)
			assert.Equal(t, seq+1, s.Stats().NextSeq)
		})
	}
}

func TestGarbageInflight(t *testing.T) {
	tests := map[string]struct {
		content func(t *testing.T, dir string)
		reset   bool
	}{
		"not JSON": {content: func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, inflightFile), []byte("{{{{"), 0o600))
		}, reset: true},
		"checksum mismatch": {content: func(t *testing.T, dir string) {
			raw, err := os.ReadFile(filepath.Join(dir, inflightFile))
			require.NoError(t, err)
			var env envelope
			require.NoError(t, json.Unmarshal(raw, &env))
			env.State = json.RawMessage(`{"seqs":[2,3],"highWater":6}`)
			raw, _ = json.Marshal(env)
			require.NoError(t, os.WriteFile(filepath.Join(dir, inflightFile), raw, 0o600))
		}, reset: true},
		"not a prefix of the pending records": {content: func(t *testing.T, dir string) {
			require.NoError(t, writeState(dir, inflightFile, inflightState{Seqs: []uint64{3, 5}, HighWater: 6}))
		}, reset: true},
		"unknown seqs": {content: func(t *testing.T, dir string) {
			require.NoError(t, writeState(dir, inflightFile, inflightState{Seqs: []uint64{2, 3, 99}, HighWater: 6}))
		}, reset: true},
		"unsorted": {content: func(t *testing.T, dir string) {
			require.NoError(t, writeState(dir, inflightFile, inflightState{Seqs: []uint64{3, 2}, HighWater: 6}))
		}, reset: true},
		"acknowledged already": {content: func(t *testing.T, dir string) {
			// A crash between the cursor and the removal of inflight.json: quietly dropped.
			require.NoError(t, writeState(dir, inflightFile, inflightState{Seqs: []uint64{1, 7, 8}, HighWater: 8}))
		}, reset: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir, o := stateSetup(t)
			s, _ := openT(t, o)
			b, err := s.Next(3, 1<<20)
			require.NoError(t, err)
			require.Equal(t, []uint64{2, 3, 4}, seqsOf(b))
			require.NoError(t, s.Close())
			tc.content(t, dir)

			s, rec := openT(t, o)
			assert.Equal(t, tc.reset, rec.InFlightReset != "", "reset reason %q", rec.InFlightReset)
			assert.Empty(t, rec.CursorReset)
			b, err = s.Next(2, 1<<20)
			require.NoError(t, err)
			assert.Equal(t, []uint64{2, 3}, seqsOf(b), "a new batch is composed")
			assert.EqualValues(t, 9, s.Stats().NextSeq)
		})
	}
}

func TestFreshSpoolStartsAtOne(t *testing.T) {
	dir := t.TempDir()
	s, rec := openT(t, opts(dir))
	assert.Equal(t, Recovery{}, rec)
	assert.EqualValues(t, 1, appendT(t, s, 1))
	require.NoError(t, s.Close())
	// A crash before the first ack leaves a cursor from Open: no reset, no jump.
	s, rec = openT(t, opts(dir))
	assert.Equal(t, Recovery{}, rec)
	assert.EqualValues(t, 2, appendT(t, s, 2))
	assert.FileExists(t, filepath.Join(dir, cursorFile))
}

func TestDamageAfterOpen(t *testing.T) {
	dir := t.TempDir()
	s, _ := openT(t, opts(dir))
	for i := range 3 {
		appendT(t, s, i) // 1-3
	}
	path := filepath.Join(dir, string(Telemetry), segName(1))
	offs, _ := frameOffsets(t, path)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("X"), offs[1]+30)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	b, err := s.Next(10, 1<<20)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 3, 4}, seqsOf(b), "the damaged record is replaced by a gap")
	var g protocol.Gap
	require.NoError(t, json.Unmarshal(b[2].Data, &g))
	assert.Equal(t, protocol.Gap{Class: "telemetry", FromSeq: 2, ToSeq: 2, Count: 1, Reason: "corrupt"}, g)
	require.NoError(t, s.Ack(4))
	assert.Zero(t, s.Stats().PendingRecords[Telemetry])
}
