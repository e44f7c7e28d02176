package spool

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"time"
)

const (
	cursorFile   = "cursor.json"
	stateVersion = 1
)

// seqRange is an inclusive range of seqs.
type seqRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// cursorState is what cursor.json holds.
type cursorState struct {
	// Acked is per class the seq through which no record of the class is pending any more (acknowledged,
	// evicted or lost); records at or below it are skipped when the segments are read.
	Acked map[Class]uint64 `json:"acked"`
	// HighWater is the highest seq ever handed out or seen, so seqs never go backwards even when every segment
	// has been acknowledged and deleted.
	HighWater    uint64    `json:"highWater"`
	LastAck      time.Time `json:"lastAck,omitzero"`
	LastAckedSeq uint64    `json:"lastAckedSeq,omitempty"`
	// Evicted are telemetry ranges dropped beyond Acked: eviction skips the in-flight batch, so it can leave
	// pending records below a dropped range. A range folds into Acked once nothing pending lies below it.
	Evicted []seqRange `json:"evicted,omitempty"`
	// Offset is added to every seq the spool hands out (see Rebase). Everything else in the cursor, and every
	// seq on disk, is in the spool's own numbering, but LastAckedSeq, which is as the server acknowledged it.
	Offset uint64 `json:"offset,omitempty"`
}

func newCursor() cursorState { return cursorState{Acked: map[Class]uint64{}} }

func (c cursorState) clone() cursorState {
	n := c
	n.Acked = make(map[Class]uint64, len(c.Acked))
	for k, v := range c.Acked {
		n.Acked[k] = v
	}
	n.Evicted = slices.Clone(c.Evicted)
	return n
}

// done reports whether a record found on disk is no longer pending.
func (c cursorState) done(class Class, seq uint64) bool {
	if seq <= c.Acked[class] {
		return true
	}
	if class != Telemetry {
		return false
	}
	_, found := slices.BinarySearchFunc(c.Evicted, seq, func(r seqRange, seq uint64) int {
		switch {
		case r.To < seq:
			return -1
		case r.From > seq:
			return 1
		}
		return 0
	})
	return found
}

// evictedBetween reports whether an evicted range lies between seqs a and b (exclusive).
func (c cursorState) evictedBetween(a, b uint64) bool {
	i, _ := slices.BinarySearchFunc(c.Evicted, a+1, func(r seqRange, seq uint64) int { return cmp.Compare(r.From, seq) })
	return i < len(c.Evicted) && c.Evicted[i].From < b
}

// validate rejects a cursor that parses but cannot be right; trusting it could skip records.
func (c cursorState) validate() error {
	if c.HighWater > maxSeq || c.Offset > maxSeq-c.HighWater {
		return fmt.Errorf("high-water mark %d with offset %d is out of range", c.HighWater, c.Offset)
	}
	for cl, v := range c.Acked {
		if cl != Questions && cl != Telemetry {
			return fmt.Errorf("unknown class %q", cl)
		}
		if v > c.HighWater {
			return fmt.Errorf("%s acknowledged through %d, above the high-water mark %d", cl, v, c.HighWater)
		}
	}
	var prev uint64
	for _, r := range c.Evicted {
		if r.From > r.To || r.From <= prev || r.To > c.HighWater {
			return fmt.Errorf("evicted range %d-%d is out of order", r.From, r.To)
		}
		prev = r.To
	}
	return nil
}

// envelope wraps a state file's content with a CRC: a file that is valid JSON but damaged is still caught.
type envelope struct {
	Version int             `json:"version"`
	CRC     uint32          `json:"crc32c"`
	State   json.RawMessage `json:"state"`
}

// errStateMissing means the state file does not exist.
var errStateMissing = errors.New("missing")

// readState decodes a state file into v. It returns errStateMissing when there is no file and another error when
// the file cannot be trusted.
func readState(dir, name string, v any) error {
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return errStateMissing
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("decode %s: %w", name, err)
	}
	if env.Version != stateVersion {
		return fmt.Errorf("%s has version %d, want %d", name, env.Version, stateVersion)
	}
	if crc32.Checksum(env.State, castagnoli) != env.CRC {
		return fmt.Errorf("%s: checksum mismatch", name)
	}
	if err := json.Unmarshal(env.State, v); err != nil {
		return fmt.Errorf("decode %s state: %w", name, err)
	}
	return nil
}

// writeState replaces a state file atomically: write a temp file, fsync it, rename it over the old one, fsync
// the directory. A crash leaves either the old or the new file, never a mix.
func writeState(dir, name string, v any) error {
	state, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	raw, err := json.Marshal(envelope{Version: stateVersion, CRC: crc32.Checksum(state, castagnoli), State: state})
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(raw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(dir)
}

// setAsideState keeps an untrustworthy state file for inspection, out of the way of the next write.
func setAsideState(dir, name string) {
	_ = os.Rename(filepath.Join(dir, name), filepath.Join(dir, name+corruptSuffix))
}

// saveCursor persists c and makes it the spool's cursor.
func (s *Spool) saveCursor(c cursorState) error {
	if c.HighWater < s.nextSeq-1 {
		c.HighWater = s.nextSeq - 1
	}
	if err := writeState(s.opts.Dir, cursorFile, c); err != nil {
		return err
	}
	s.cur = c
	return nil
}

// foldEvicted merges evicted ranges that nothing pending separates and folds those below every pending
// telemetry record into the telemetry ack cursor, so the list stays short.
func foldEvicted(c *cursorState, live []entry) {
	firstLive := func(after uint64) (uint64, bool) {
		i, _ := slices.BinarySearchFunc(live, after+1, func(e entry, seq uint64) int {
			switch {
			case e.seq < seq:
				return -1
			case e.seq > seq:
				return 1
			}
			return 0
		})
		if i < len(live) {
			return live[i].seq, true
		}
		return 0, false
	}
	var out []seqRange
	for _, r := range c.Evicted {
		if n := len(out); n > 0 {
			if next, ok := firstLive(out[n-1].To); !ok || next > r.From {
				out[n-1].To = r.To
				continue
			}
		}
		out = append(out, r)
	}
	for len(out) > 0 {
		if len(live) > 0 && live[0].seq < out[0].From {
			break
		}
		c.Acked[Telemetry] = max(c.Acked[Telemetry], out[0].To)
		out = out[1:]
	}
	c.Evicted = out
}
