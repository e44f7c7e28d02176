package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/supportstack/supportstack/internal/protocol"
)

const (
	segSuffix     = ".seg"
	salvageSuffix = ".salvage"
	corruptSuffix = ".corrupt"
)

// segment is one append-only file of a class.
type segment struct {
	path string
	// first is the seq in the file's name: the seq of the first record written to it, a lower bound for all.
	first uint64
	// f is open while this is the class's active segment, the one appends go to.
	f    *os.File
	size int64
	// live counts the records of this file that are still pending; at zero the file can go.
	live int
}

func segName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, segSuffix) }

// parseSegName returns the seq a segment's name starts with.
func parseSegName(name string) (uint64, bool) {
	if !strings.HasSuffix(name, segSuffix) || len(name) < 20+len(segSuffix) {
		return 0, false
	}
	seq, err := strconv.ParseUint(name[:20], 10, 64)
	return seq, err == nil
}

// listSegments returns the names of a class directory's segments in seq order.
func listSegments(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), segSuffix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // 20-digit zero-padded names sort by seq
	return names, nil
}

// createSegment starts a new segment whose first record will be seq. The directory is synced so that the file
// itself survives a crash, not only its contents.
func createSegment(dir string, seq uint64) (*segment, error) {
	path := filepath.Join(dir, segName(seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return &segment{path: path, first: seq, f: f}, nil
}

// errDamaged means a frame that verified when the spool was opened no longer does.
var errDamaged = errors.New("frame no longer verifies")

// readRecord reads back the record whose frame is at off, verifying its CRC again: the disk may have changed
// since Open scanned it.
func (g *segment) readRecord(off int64, size int, seq uint64) (protocol.Record, error) {
	buf := make([]byte, size)
	var err error
	if g.f != nil {
		_, err = g.f.ReadAt(buf, off)
	} else {
		var f *os.File
		if f, err = os.Open(g.path); err == nil {
			_, err = f.ReadAt(buf, off)
			f.Close()
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return protocol.Record{}, fmt.Errorf("read record %d: %w", seq, err)
	}
	r, n, ok := decodeFrame(buf)
	if !ok || n != size || r.Seq != seq {
		return protocol.Record{}, fmt.Errorf("read record %d from %s at offset %d: %w", seq, filepath.Base(g.path), off, errDamaged)
	}
	return r, nil
}

func (g *segment) close() error {
	if g.f == nil {
		return nil
	}
	err := g.f.Close()
	g.f = nil
	return err
}

// scannedRecord is a verified frame found in a segment.
type scannedRecord struct {
	rec  protocol.Record
	off  int64
	size int
}

// damagedRegion is a run of bytes that holds no valid frame, followed by a valid frame.
type damagedRegion struct {
	off, end int64
	// prevSeq and nextSeq are the seqs of the valid records around the region; prevSeq is 0 at the start of
	// the file.
	prevSeq, nextSeq uint64
	// frames is how many records the region held when its length fields still chain up exactly, else 0.
	frames int
}

// segmentScan is what a segment's bytes hold.
type segmentScan struct {
	records []scannedRecord
	damaged []damagedRegion
	// tail is where bytes that hold no valid frame run up to the end of the file, -1 when the file ends cleanly.
	tail int64
}

// scanSegment reads every valid frame of b. After damage it looks for the next offset where a valid frame
// starts, so records after a bad frame survive too. A frame only counts when its seq is above the one before,
// so a stray old frame cannot make the segment go backwards. It never panics and is linear in len(b) apart
// from the CRCs of candidate frames while resynchronising.
func scanSegment(b []byte) segmentScan {
	sc := segmentScan{tail: -1}
	var prev uint64
	off := 0
	for off < len(b) {
		if r, n, ok := decodeFrame(b[off:]); ok && r.Seq > prev {
			sc.records = append(sc.records, scannedRecord{rec: r, off: int64(off), size: n})
			prev = r.Seq
			off += n
			continue
		}
		next, nextSeq := resync(b, off+1, prev)
		if next < 0 {
			sc.tail = int64(off)
			break
		}
		frames, _ := frameChain(b[off:next])
		sc.damaged = append(sc.damaged, damagedRegion{off: int64(off), end: int64(next), prevSeq: prev, nextSeq: nextSeq, frames: frames})
		off = next
	}
	return sc
}

// resync returns the first offset at or after from where a valid frame with a seq above prev starts, or -1.
func resync(b []byte, from int, prev uint64) (int, uint64) {
	for p := from; p+frameHeaderSize < len(b); p++ {
		// A valid length is below 16 MiB, so its high byte is zero; skip the rest without decoding.
		if b[p+3] != 0 || b[p+frameHeaderSize] != '{' {
			continue
		}
		if r, _, ok := decodeFrame(b[p:]); ok && r.Seq > prev {
			return p, r.Seq
		}
	}
	return -1, 0
}
