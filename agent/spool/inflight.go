package spool

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/supportstack/supportstack/internal/protocol"
)

const inflightFile = "inflight.json"

// recordOverhead approximates what a record adds to a batch beyond its data: seq, kind and time with their keys.
const recordOverhead = 100

// inflightState is what inflight.json holds: the batch's composition, so that a batch retried after a crash
// is the same batch and maps to the same object key on the server.
type inflightState struct {
	Seqs []uint64 `json:"seqs"`
	// HighWater is a second copy of the seq high-water mark, taken when the batch was composed.
	HighWater uint64 `json:"highWater"`
}

// Next returns the in-flight batch: the same records on every call until Ack or Shrink, also after a restart.
// A new batch takes pending questions first, oldest first, then telemetry, oldest first, up to maxRecords
// records and maxBytes bytes (data plus recordOverhead per record; a first record larger than maxBytes goes
// alone). Records are returned in increasing seq order. The result is empty when nothing is pending.
func (s *Spool) Next(maxRecords, maxBytes int) ([]protocol.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.batch != nil {
		return s.handOut(s.batch), nil
	}
	if maxRecords <= 0 || maxBytes <= 0 {
		return nil, fmt.Errorf("next batch: limits must be positive, got %d records and %d bytes", maxRecords, maxBytes)
	}
	// Each pass that finds damage drops at least one of the records pending now, so this many passes suffice
	// unless the disk damages the gap records too.
	passes := len(s.classes[Questions].live) + len(s.classes[Telemetry].live) + 1
	for range passes {
		take := s.compose(maxRecords, maxBytes)
		if take[Questions]+take[Telemetry] == 0 {
			return []protocol.Record{}, nil
		}
		// Only durable records go out. A record the server stored but a crash then took from the disk would
		// leave its seq free for reuse, and the server would take the new record for a duplicate.
		if err := s.syncDirty(); err != nil {
			return nil, err
		}
		recs, damaged, err := s.readPrefixes(take)
		if err != nil {
			return nil, err
		}
		if len(damaged) > 0 {
			// The disk changed under us. Drop what no longer verifies, with a gap, and compose again.
			if err := s.dropDamaged(damaged); err != nil {
				return nil, err
			}
			continue
		}
		st := inflightState{HighWater: s.nextSeq - 1}
		for _, r := range recs {
			st.Seqs = append(st.Seqs, r.Seq)
		}
		if err := writeState(s.opts.Dir, inflightFile, st); err != nil {
			return nil, err
		}
		for _, cl := range classes {
			s.classes[cl].inflight = take[cl]
		}
		s.batch = recs
		return s.handOut(recs), nil
	}
	return nil, errors.New("next batch: spooled records keep failing verification")
}

// handOut copies records for a caller, numbered as the server knows them (the spool's seq plus the offset).
func (s *Spool) handOut(recs []protocol.Record) []protocol.Record {
	out := cloneRecords(recs)
	for i := range out {
		out[i].Seq += s.cur.Offset
	}
	return out
}

// compose decides how many of each class's oldest pending records the next batch takes.
func (s *Spool) compose(maxRecords, maxBytes int) map[Class]int {
	take := map[Class]int{}
	count, size := 0, 0
	for _, cl := range classes {
		for _, e := range s.classes[cl].live {
			cost := int(e.dataLen) + recordOverhead
			if count == maxRecords || (count > 0 && size+cost > maxBytes) {
				// Stop at the first record that does not fit rather than skipping it: each class must stay a
				// prefix, and a smaller telemetry record must not overtake a question.
				return take
			}
			count++
			size += cost
			take[cl]++
		}
	}
	return take
}

// readPrefixes reads the first take[class] pending records of each class, sorted by seq. Records whose frames
// no longer verify are returned in damaged instead.
func (s *Spool) readPrefixes(take map[Class]int) (recs []protocol.Record, damaged map[Class][]uint64, err error) {
	for _, cl := range classes {
		for _, e := range s.classes[cl].live[:take[cl]] {
			r, err := e.seg.readRecord(e.off, int(e.size), e.seq)
			if errors.Is(err, errDamaged) {
				if damaged == nil {
					damaged = map[Class][]uint64{}
				}
				damaged[cl] = append(damaged[cl], e.seq)
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b protocol.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	return recs, damaged, nil
}

// dropDamaged removes records that can no longer be read from the pending set and reports each as a gap.
// Nothing is in flight when this runs.
func (s *Spool) dropDamaged(damaged map[Class][]uint64) error {
	for _, cl := range classes {
		c := s.classes[cl]
		for _, seq := range damaged[cl] {
			if err := s.appendGap(cl, seq, seq, 1, "corrupt"); err != nil {
				return err
			}
			i := slices.IndexFunc(c.live, func(e entry) bool { return e.seq == seq })
			if i < 0 {
				continue
			}
			c.removeLive(i, i+1)
		}
	}
	return nil
}

// Ack records that the server durably stored the in-flight batch through throughSeq (a seq as Next handed it
// out): those of its records are acknowledged (the cursor is persisted atomically first), the in-flight batch is
// cleared, and segments with nothing pending left are deleted. Records of the batch above throughSeq stay
// pending and go into a new batch. Ack without a batch in flight does nothing, so a repeated Ack is harmless.
func (s *Spool) Ack(throughSeq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.batch == nil || throughSeq <= s.cur.Offset {
		return nil
	}
	throughSeq -= s.cur.Offset
	next := s.cur.clone()
	acked := map[Class]int{}
	for _, cl := range classes {
		c := s.classes[cl]
		k := 0
		for k < c.inflight && c.live[k].seq <= throughSeq {
			k++
		}
		acked[cl] = k
		if k > 0 {
			last := c.live[k-1].seq
			next.Acked[cl] = max(next.Acked[cl], last)
			next.LastAckedSeq = max(next.LastAckedSeq, last+s.cur.Offset)
		}
	}
	if acked[Questions]+acked[Telemetry] > 0 {
		next.LastAck = s.opts.Now()
	}
	foldEvicted(&next, s.classes[Telemetry].live[acked[Telemetry]:])
	// The cursor goes first: a crash after it leaves acknowledged records on disk that are skipped at the
	// next Open, never pending records that are gone.
	if err := s.saveCursor(next); err != nil {
		return err
	}
	for _, cl := range classes {
		c := s.classes[cl]
		c.removeLive(0, acked[cl])
		c.inflight = 0
	}
	s.batch = nil
	err := removeState(s.opts.Dir, inflightFile)
	s.removeDoneSegments()
	return err
}

// Shrink keeps the first half (by seq) of the in-flight batch, at least one record, after the server refused
// the batch as too large. The new composition is persisted before it takes effect.
func (s *Spool) Shrink() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.batch) <= 1 {
		return nil
	}
	keep := s.batch[:len(s.batch)/2]
	st := inflightState{HighWater: s.nextSeq - 1}
	for _, r := range keep {
		st.Seqs = append(st.Seqs, r.Seq)
	}
	if err := writeState(s.opts.Dir, inflightFile, st); err != nil {
		return err
	}
	// The lowest seqs of two per-class prefixes are again per-class prefixes.
	last := keep[len(keep)-1].Seq
	for _, cl := range classes {
		c := s.classes[cl]
		n := 0
		for n < c.inflight && c.live[n].seq <= last {
			n++
		}
		c.inflight = n
	}
	s.batch = keep
	return nil
}

// loadInflight restores the in-flight batch persisted by a previous Next. A batch whose records are all gone
// was acknowledged just before a crash and is dropped quietly; one that no longer matches the pending records,
// or that cannot be read, is discarded and reported, and the next Next composes a new one.
func (s *Spool) loadInflight(rec *Recovery) {
	var st inflightState
	err := readState(s.opts.Dir, inflightFile, &st)
	if errors.Is(err, errStateMissing) {
		return
	}
	if err != nil {
		rec.InFlightReset = err.Error()
		setAsideState(s.opts.Dir, inflightFile)
		return
	}
	if st.HighWater >= s.nextSeq && st.HighWater <= maxSeq {
		s.nextSeq = st.HighWater + 1
	}
	discard := func(reason string) {
		rec.InFlightReset = reason
		_ = removeState(s.opts.Dir, inflightFile)
	}
	if len(st.Seqs) == 0 || !slices.IsSorted(st.Seqs) {
		discard("in-flight file lists no batch or an unsorted one")
		return
	}
	in := map[uint64]bool{}
	for _, seq := range st.Seqs {
		in[seq] = true
	}
	take := map[Class]int{}
	matched, anyLive := 0, false
	for _, cl := range classes {
		c := s.classes[cl]
		for take[cl] < len(c.live) && in[c.live[take[cl]].seq] {
			take[cl]++
		}
		matched += take[cl]
		for _, e := range c.live {
			if in[e.seq] {
				anyLive = true
				break
			}
		}
	}
	switch {
	case !anyLive:
		_ = removeState(s.opts.Dir, inflightFile)
		return
	case matched != len(st.Seqs):
		discard(fmt.Sprintf("in-flight batch of %d records no longer matches the pending records", len(st.Seqs)))
		return
	}
	recs, damaged, err := s.readPrefixes(take)
	if err != nil || len(damaged) > 0 {
		discard("in-flight records cannot be read back")
		return
	}
	for _, cl := range classes {
		s.classes[cl].inflight = take[cl]
	}
	s.batch = recs
}

// removeState deletes a state file; a missing one is fine.
func removeState(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// removeLive drops live[i:j] from the pending set.
func (c *classState) removeLive(i, j int) {
	for _, e := range c.live[i:j] {
		c.liveBytes -= int64(e.size)
		e.seg.live--
	}
	if i == 0 {
		// Acks remove from the front: reslice instead of copying the whole index.
		c.live = c.live[j:]
		return
	}
	c.live = slices.Delete(c.live, i, j)
}

// removeDoneSegments deletes the files of a class that hold nothing pending any more. The cursor that makes their
// records not pending is already on disk. A file that cannot be deleted now is tried again next time.
func (s *Spool) removeDoneSegments() {
	for _, cl := range classes {
		c := s.classes[cl]
		kept := c.segs[:0]
		for _, g := range c.segs {
			if g.live > 0 {
				kept = append(kept, g)
				continue
			}
			if g == c.active {
				_ = g.close()
				c.active = nil
				c.dirty = false
			}
			if err := os.Remove(g.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				kept = append(kept, g)
			}
		}
		c.segs = kept
	}
}

func cloneRecords(rs []protocol.Record) []protocol.Record {
	out := make([]protocol.Record, len(rs))
	for i, r := range rs {
		out[i] = r
		out[i].Data = slices.Clone(r.Data)
	}
	return out
}

// gapData encodes a gap record's data.
func gapData(g protocol.Gap) json.RawMessage {
	b, _ := json.Marshal(g) // a struct of strings and integers always encodes
	return b
}
