package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock advances one second per call, so record times are distinct and predictable.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// opts are test options: fsync every append, a fake clock.
func opts(dir string) Options {
	return Options{Dir: dir, Now: newClock().Now}
}

// openT opens a spool and closes it when the test ends.
func openT(t testing.TB, o Options) (*Spool, Recovery) {
	t.Helper()
	s, rec, err := Open(o)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return s, rec
}

func question(i int) json.RawMessage {
	b, _ := json.Marshal(protocol.Question{ID: fmt.Sprintf("question-%04d", i), Text: fmt.Sprintf("why is PC %d slow?", i)})
	return b
}

func perf(i int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"cpu":%d,"pad":"%04d"}`, i%100, i))
}

func appendQ(t testing.TB, s *Spool, i int) uint64 {
	t.Helper()
	seq, err := s.Append(Questions, protocol.KindQuestion, time.Time{}, question(i))
	require.NoError(t, err)
	return seq
}

func appendT(t testing.TB, s *Spool, i int) uint64 {
	t.Helper()
	seq, err := s.Append(Telemetry, protocol.KindPerf, time.Time{}, perf(i))
	require.NoError(t, err)
	return seq
}

// pending reads every pending record of a class back from disk, in seq order.
func pending(t testing.TB, s *Spool, cl Class) []protocol.Record {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []protocol.Record
	for _, e := range s.classes[cl].live {
		r, err := e.seg.readRecord(e.off, int(e.size), e.seq)
		require.NoError(t, err)
		out = append(out, r)
	}
	return out
}

func seqsOf(rs []protocol.Record) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

func seqRangeOf(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// gaps returns the data of the pending gap records.
func gaps(t testing.TB, s *Spool) []protocol.Gap {
	t.Helper()
	var out []protocol.Gap
	for _, r := range pending(t, s, Questions) {
		if r.Kind != protocol.KindGap {
			continue
		}
		var g protocol.Gap
		require.NoError(t, json.Unmarshal(r.Data, &g))
		out = append(out, g)
	}
	return out
}

// segFiles lists the segment files of a class.
func segFiles(t testing.TB, dir string, cl Class) []string {
	t.Helper()
	names, err := listSegments(filepath.Join(dir, string(cl)))
	require.NoError(t, err)
	return names
}

// filesWithSuffix lists the files of a class directory ending in suffix.
func filesWithSuffix(t testing.TB, dir string, cl Class, suffix string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, string(cl)))
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// copyDir copies a spool directory (without its lock) to a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		if rel == "lock" {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, in)
		return err
	})
	require.NoError(t, err)
	return dst
}

// frameOffsets returns the offsets and sizes of the frames of a clean segment file.
func frameOffsets(t testing.TB, path string) (offs []int64, sizes []int) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	sc := scanSegment(b)
	require.Empty(t, sc.damaged)
	require.EqualValues(t, -1, sc.tail)
	for _, r := range sc.records {
		offs = append(offs, r.off)
		sizes = append(sizes, r.size)
	}
	return offs, sizes
}
