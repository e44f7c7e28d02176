package spool

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// SetAside describes a segment that recovery renamed to *.corrupt.
type SetAside struct {
	// File is the set-aside file, relative to Options.Dir.
	File string
	// Records is how many pending records were lost: exact when the damaged frames' lengths still chain up, an
	// upper bound (the size of the seq range) otherwise. Records that were already acknowledged are not counted.
	Records int
	// FromSeq and ToSeq bound the lost seqs (inclusive); both are 0 when nothing pending was lost.
	FromSeq, ToSeq uint64
	// Reason says what was wrong with the file.
	Reason string
	// Salvaged is how many pending records were copied from it into a new segment.
	Salvaged int
}

// Recovery is what Open found and repaired.
type Recovery struct {
	// TornTails counts segments whose torn tail (partial frame, or a last frame whose CRC does not match) was
	// truncated.
	TornTails int
	// SetAside lists corrupt segments; a gap record with reason "corrupt" was appended for each lost range.
	SetAside []SetAside
	// CursorReset is set when cursor.json was missing or could not be trusted (the reason). It was renamed to
	// cursor.json.corrupt; every record on disk counts as pending again (the server deduplicates the resent
	// ones), and seqs continue above anything the spool might have issued.
	CursorReset string
	// InFlightReset is set when the persisted in-flight batch was unreadable or no longer matched the pending
	// records (the reason); Next composes a new batch.
	InFlightReset string
}

// Open opens the spool in o.Dir, creating it if needed, and recovers from whatever a crash or a damaged disk
// left behind. Recovery never loses a record that was fsynced and is intact.
func Open(o Options) (*Spool, Recovery, error) {
	var rec Recovery
	o = o.withDefaults()
	if o.Dir == "" {
		return nil, rec, errors.New("open spool: no directory")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, rec, fmt.Errorf("open spool: %w", err)
	}
	lock, err := lockFile(filepath.Join(o.Dir, "lock"))
	if err != nil {
		return nil, rec, err
	}
	s := &Spool{opts: o, lock: lock, classes: map[Class]*classState{}, nextSeq: 1}
	if err := s.recover(&rec); err != nil {
		for _, cl := range classes {
			if c := s.classes[cl]; c != nil {
				_ = c.activeClose()
			}
		}
		_ = unlockFile(lock)
		return nil, rec, fmt.Errorf("open spool %s: %w", o.Dir, err)
	}
	return s, rec, nil
}

// lostRange is a range of seqs a damaged segment held.
type lostRange struct {
	from, to uint64
	count    int
}

// segmentPlan is what recovery does with one segment file.
type segmentPlan struct {
	class Class
	name  string
	first uint64
	data  []byte
	scan  segmentScan
	// truncate >= 0: a torn tail to cut off at that offset.
	truncate int64
	// corrupt: the file is set aside; its pending valid records go to a salvage segment.
	corrupt bool
	reason  string
	lost    []lostRange
}

// recover brings the directory into a consistent state and builds the index of pending records.
func (s *Spool) recover(rec *Recovery) error {
	used, err := s.prepareDirs()
	if err != nil {
		return err
	}
	s.loadCursor(rec, used)
	plans, maxSeen, err := s.planAll()
	if err != nil {
		return err
	}
	s.nextSeq = maxSeen + 1
	if rec.CursorReset != "" {
		// Segments that were acknowledged and deleted took their seqs with them, and the server would take a
		// reused seq for a duplicate and drop the record. The microseconds since 1970 are above any seq a
		// device can have issued (a million records a second for fifty years), so continue from there.
		if floor := s.opts.Now().UnixMicro(); floor > 0 && floor < maxSeq/2 && uint64(floor) > s.nextSeq {
			s.nextSeq = uint64(floor)
		}
	}

	for _, p := range plans {
		if err := s.applyPlan(p, rec); err != nil {
			return err
		}
	}
	s.dedupe()
	s.loadInflight(rec)

	// Gaps before set-asides: a crash in between finds the corrupt file again at the next Open and reports it
	// twice, never not at all.
	for _, p := range plans {
		if !p.corrupt {
			continue
		}
		for _, l := range p.lost {
			if err := s.appendGap(p.class, l.from, l.to, uint64(l.count), "corrupt"); err != nil {
				return err
			}
		}
	}
	for _, p := range plans {
		if p.corrupt {
			if err := s.setAside(p, rec); err != nil {
				return err
			}
		}
	}
	// The cursor is written on every Open: it records the high-water mark of what recovery found.
	if err := s.saveCursor(s.cur.clone()); err != nil {
		return err
	}
	s.removeDoneSegments()
	// Over budget (a smaller budget than last time): evict now. Like after an append, failing to make room is
	// not fatal and is tried again on the next append.
	_ = s.evictTelemetry()
	return nil
}

// prepareDirs creates the class directories, completes interrupted set-asides, and reports whether the spool
// held data before: a missing cursor is then a lost one, not a new spool.
func (s *Spool) prepareDirs() (used bool, err error) {
	for _, cl := range classes {
		dir := filepath.Join(s.opts.Dir, string(cl))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, err
		}
		s.classes[cl] = &classState{class: cl, dir: dir}
		if err := finishSalvage(dir); err != nil {
			return false, err
		}
		if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
			used = true
		}
	}
	if _, err := os.Stat(filepath.Join(s.opts.Dir, inflightFile)); err == nil {
		used = true
	}
	return used, nil
}

// loadCursor reads cursor.json. A cursor that cannot be trusted is set aside and replaced by an empty one:
// nothing counts as acknowledged beyond what the segments prove, and resending is safe because the server
// deduplicates by device and seq.
func (s *Spool) loadCursor(rec *Recovery, used bool) {
	cur := newCursor()
	err := readState(s.opts.Dir, cursorFile, &cur)
	if err == nil {
		if cur.Acked == nil {
			cur.Acked = map[Class]uint64{}
		}
		err = cur.validate()
	}
	switch {
	case err == nil:
	case errors.Is(err, errStateMissing) && !used:
		// A new spool.
		cur = newCursor()
	case errors.Is(err, errStateMissing):
		rec.CursorReset = "cursor.json is missing"
		cur = newCursor()
	default:
		rec.CursorReset = err.Error()
		setAsideState(s.opts.Dir, cursorFile)
		cur = newCursor()
	}
	s.cur = cur
}

// planAll scans every segment and returns the plans and the highest seq known anywhere.
func (s *Spool) planAll() ([]*segmentPlan, uint64, error) {
	var plans []*segmentPlan
	maxSeen := s.cur.HighWater
	for _, cl := range classes {
		ps, err := s.planClass(cl)
		if err != nil {
			return nil, 0, err
		}
		for _, p := range ps {
			for _, r := range p.scan.records {
				maxSeen = max(maxSeen, r.rec.Seq)
			}
			for _, l := range p.lost {
				maxSeen = max(maxSeen, l.to)
			}
		}
		plans = append(plans, ps...)
	}
	return plans, maxSeen, nil
}

// planClass scans a class's segments and decides what to do with each.
func (s *Spool) planClass(cl Class) ([]*segmentPlan, error) {
	dir := s.classes[cl].dir
	names, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	plans := make([]*segmentPlan, 0, len(names))
	for i, name := range names {
		p := &segmentPlan{class: cl, name: name, truncate: -1}
		p.first, _ = parseSegName(name)
		last := i == len(names)-1
		var nextFirst uint64 // first seq of the following segment, 0 if unknown
		if !last {
			nextFirst, _ = parseSegName(names[i+1])
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			p.corrupt = true
			p.reason = fmt.Sprintf("unreadable: %v", err)
			p.lost = s.clip(cl, p.lost, p.first, nextFirst-1, 0)
			plans = append(plans, p)
			continue
		}
		p.data = data
		p.scan = scanSegment(data)
		sc := p.scan
		switch {
		case len(sc.damaged) == 0 && sc.tail < 0:
		case len(sc.damaged) == 0 && last:
			// Only the newest segment of a class can be mid-write when the process dies: a torn tail.
			p.truncate = sc.tail
		default:
			p.corrupt = true
			for _, d := range sc.damaged {
				from := d.prevSeq + 1
				if d.prevSeq == 0 {
					from = max(p.first, 1)
				}
				p.lost = s.clip(cl, p.lost, from, d.nextSeq-1, d.frames)
				if p.reason == "" {
					p.reason = fmt.Sprintf("damaged frame at offset %d", d.off)
				}
			}
			if sc.tail >= 0 && !last {
				// A finished segment was synced before the next one started, so a bad tail here is damage.
				from := max(p.first, 1)
				if n := len(sc.records); n > 0 {
					from = sc.records[n-1].rec.Seq + 1
				}
				frames, _ := frameChain(data[sc.tail:])
				if nextFirst > 0 {
					p.lost = s.clip(cl, p.lost, from, nextFirst-1, frames)
				}
				if p.reason == "" {
					p.reason = fmt.Sprintf("damaged frames from offset %d to the end", sc.tail)
				}
			}
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// clip adds the lost range from..to, less what was acknowledged already. frames is the known record count or 0.
func (s *Spool) clip(cl Class, lost []lostRange, from, to uint64, frames int) []lostRange {
	from = max(from, s.cur.Acked[cl]+1)
	if to < from || to == ^uint64(0) {
		return lost
	}
	count := frames
	if span := to - from + 1; count <= 0 || uint64(count) > span {
		count = int(min(span, 1<<31))
	}
	return append(lost, lostRange{from: from, to: to, count: count})
}

// applyPlan truncates a torn tail or writes a salvage copy, and indexes the segment's pending records.
func (s *Spool) applyPlan(p *segmentPlan, rec *Recovery) error {
	c := s.classes[p.class]
	path := filepath.Join(c.dir, p.name)
	switch {
	case p.truncate >= 0:
		if err := truncateFile(path, p.truncate); err != nil {
			return err
		}
		rec.TornTails++
		p.data = p.data[:p.truncate]
	case p.corrupt:
		return s.writeSalvage(p)
	}
	if len(p.data) == 0 {
		// Created but never written, or torn before its first frame ended.
		return removeFileIfExists(path)
	}
	g := &segment{path: path, first: p.first, size: int64(len(p.data))}
	c.segs = append(c.segs, g)
	for _, r := range p.scan.records {
		if r.off+int64(r.size) > int64(len(p.data)) || s.cur.done(p.class, r.rec.Seq) {
			continue
		}
		c.addLive(g, r)
	}
	return nil
}

// addLive indexes a pending record of segment g.
func (c *classState) addLive(g *segment, r scannedRecord) {
	c.live = append(c.live, entry{seq: r.rec.Seq, seg: g, off: r.off, size: int32(r.size), dataLen: int32(len(r.rec.Data)), time: r.rec.Time})
	c.liveBytes += int64(r.size)
	g.live++
}

// dedupe sorts the pending records by seq and keeps one record per seq, the question where both classes have
// one. Seqs never repeat unless something outside the spool copied files around, but a batch with a repeated
// seq would be refused by the server forever.
func (s *Spool) dedupe() {
	questions := map[uint64]bool{}
	for _, cl := range classes {
		c := s.classes[cl]
		slices.SortStableFunc(c.live, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) })
		out := c.live[:0]
		for _, e := range c.live {
			if (len(out) > 0 && e.seq == out[len(out)-1].seq) || (cl == Telemetry && questions[e.seq]) {
				c.liveBytes -= int64(e.size)
				e.seg.live--
				continue
			}
			if cl == Questions {
				questions[e.seq] = true
			}
			out = append(out, e)
		}
		c.live = out
	}
}

func truncateFile(path string, size int64) error {
	if size == 0 {
		return removeFileIfExists(path)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("truncate torn tail: %w", err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("truncate torn tail: %w", err)
	}
	return nil
}

func removeFileIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
