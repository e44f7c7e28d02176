package spool

import (
	"cmp"
	"slices"

	"github.com/supportstack/supportstack/internal/protocol"
)

// evictTelemetry drops the oldest pending telemetry when telemetry is over its budget. It never drops records of
// the in-flight batch (Next promises the same batch until Ack or Shrink) nor the newest record (the one just
// appended). It drops down to 7/8 of the budget, not just below it: every eviction costs a gap record in the
// questions class, which is never evicted, so evicting one record per append during a long outage would fill
// the questions budget with gaps.
func (s *Spool) evictTelemetry() error {
	for {
		more, err := s.evictRun()
		if !more || err != nil {
			return err
		}
	}
}

// evictRun drops one run of the oldest evictable telemetry, with one gap record, and reports whether it dropped
// anything. A run stops where a range evicted earlier lies between two pending records (Shrink can leave records
// below one), so that gaps never overlap: each names exactly the records it counts.
func (s *Spool) evictRun() (bool, error) {
	c := s.classes[Telemetry]
	budget := s.opts.MaxTelemetryBytes
	if c.liveBytes <= budget {
		return false, nil
	}
	target := budget - budget/8
	i, j, remaining := c.inflight, c.inflight, c.liveBytes
	for j < len(c.live)-1 && remaining > target {
		if j > i && s.cur.evictedBetween(c.live[j-1].seq, c.live[j].seq) {
			break
		}
		remaining -= int64(c.live[j].size)
		j++
	}
	if j == i {
		return false, nil
	}
	from, to, n := c.live[i].seq, c.live[j-1].seq, j-i
	// The gap goes to disk before the records leave: a crash in between repeats the eviction and its gap at the
	// next Open, it never drops records without a gap.
	if err := s.appendGap(Telemetry, from, to, uint64(n), "evicted"); err != nil {
		return false, err
	}
	next := s.cur.clone()
	k, _ := slices.BinarySearchFunc(next.Evicted, from, func(r seqRange, seq uint64) int { return cmp.Compare(r.From, seq) })
	next.Evicted = slices.Insert(next.Evicted, k, seqRange{From: from, To: to})
	rest := append(slices.Clone(c.live[:i]), c.live[j:]...)
	foldEvicted(&next, rest)
	if err := s.saveCursor(next); err != nil {
		return false, err
	}
	c.removeLive(i, j)
	s.dropped += uint64(n)
	s.removeDoneSegments()
	return true, nil
}

// appendGap stores a gap record in the questions class, outside its budget: a gap reports a loss and must not be
// lost itself.
func (s *Spool) appendGap(class Class, from, to, count uint64, reason string) error {
	// The gap names the dropped records as the server would have known them.
	data := gapData(protocol.Gap{Class: string(class), FromSeq: from + s.cur.Offset, ToSeq: to + s.cur.Offset, Count: count, Reason: reason})
	_, err := s.appendLocked(s.classes[Questions], protocol.KindGap, s.opts.Now(), data, false)
	return err
}
