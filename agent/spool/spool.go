package spool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// Class decides how a record is kept when the spool runs full.
type Class string

const (
	// Questions are never evicted; gap records live here too.
	Questions Class = "questions"
	// Telemetry is inventory, perf samples and events; the oldest is evicted when over budget.
	Telemetry Class = "telemetry"
)

// classes in the order Next composes a batch: questions travel ahead of telemetry.
var classes = [...]Class{Questions, Telemetry}

// Defaults for Options.
const (
	DefaultMaxQuestionBytes  = 16 << 20
	DefaultMaxTelemetryBytes = 64 << 20
	DefaultSegmentBytes      = 4 << 20
	// DefaultTelemetrySyncInterval is the group-commit interval callers normally want for telemetry. It is not
	// applied to a zero Options.TelemetrySyncInterval, which means "fsync every append": see Options.
	DefaultTelemetrySyncInterval = time.Second
)

// Errors.
var (
	// ErrLocked means another Spool, in this process or another one, has the directory open.
	ErrLocked = errors.New("spool directory is locked by another process")
	// ErrFull means the questions class is at its byte budget; questions are never evicted to make room.
	ErrFull = errors.New("spool is full")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("spool is closed")
	// ErrInvalidRecord means Append was given a record the ingest service would refuse forever (unknown kind,
	// data that is not a JSON object or too large, a malformed question): spooling it would block the queue.
	ErrInvalidRecord = errors.New("invalid record")
)

// Options configure a Spool.
type Options struct {
	// Dir is created if missing; Open takes an exclusive lock on Dir/lock.
	Dir string
	// MaxQuestionBytes is the budget of pending questions (frame bytes on disk); beyond it Append(Questions)
	// fails with ErrFull. Gap records are exempt: they report lost data and must not be lost themselves.
	// Default DefaultMaxQuestionBytes.
	MaxQuestionBytes int64
	// MaxTelemetryBytes is the budget of pending telemetry (frame bytes on disk); beyond it the oldest telemetry
	// that is not in flight is dropped, down to 7/8 of the budget so that one gap record covers many records.
	// Default DefaultMaxTelemetryBytes.
	MaxTelemetryBytes int64
	// SegmentBytes is the size at which a segment file is closed and the next one started.
	// Default DefaultSegmentBytes.
	SegmentBytes int64
	// TelemetrySyncInterval is how long an appended telemetry record may stay unsynced (group commit). Zero,
	// the zero value, means fsync on every append: an unset field errs on the side of durability. Set
	// DefaultTelemetrySyncInterval for the usual policy. Questions are always fsynced before Append returns.
	TelemetrySyncInterval time.Duration
	// Now is the clock for record and ack times; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.MaxQuestionBytes <= 0 {
		o.MaxQuestionBytes = DefaultMaxQuestionBytes
	}
	if o.MaxTelemetryBytes <= 0 {
		o.MaxTelemetryBytes = DefaultMaxTelemetryBytes
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.TelemetrySyncInterval < 0 {
		o.TelemetrySyncInterval = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Stats describe what the spool holds.
type Stats struct {
	// PendingRecords and PendingBytes count records not yet acknowledged (in flight or not); bytes are the
	// frames on disk, what the budgets are measured in.
	PendingRecords map[Class]int
	PendingBytes   map[Class]int64
	// OldestUnsent is the time of the oldest pending record; zero when nothing is pending.
	OldestUnsent time.Time
	LastAck      time.Time
	LastAckedSeq uint64
	// NextSeq is the seq the next Append will get.
	NextSeq uint64
	// Offset is what Rebase added to the spool's own numbering.
	Offset uint64
	// Dropped counts telemetry records evicted since Open.
	Dropped uint64
}

// entry is the index of one pending record.
type entry struct {
	seq     uint64
	seg     *segment
	off     int64
	size    int32 // frame bytes
	dataLen int32
	time    time.Time
}

// classState is one class's files and pending records.
type classState struct {
	class  Class
	dir    string
	segs   []*segment // oldest first
	active *segment   // where appends go; nil until the first append after Open or a roll
	// live are the pending records in seq order. The in-flight batch always holds a prefix of them, live[:inflight]:
	// Next takes each class oldest first, Shrink keeps the lowest seqs, eviction skips the in-flight prefix.
	live      []entry
	liveBytes int64
	inflight  int
	// dirty means the active segment has writes not yet fsynced.
	dirty bool
}

// Spool is the agent's durable queue. Its methods are safe for concurrent use.
type Spool struct {
	opts Options
	lock *os.File

	mu      sync.Mutex
	closed  bool
	classes map[Class]*classState
	nextSeq uint64
	cur     cursorState
	// batch is the in-flight batch, nil when there is none.
	batch   []protocol.Record
	dropped uint64
	flush   *time.Timer
}

// Append stores a record and returns its seq. A zero t means now. For Questions the record is fsynced before
// Append returns; for Telemetry as Options.TelemetrySyncInterval says.
func (s *Spool) Append(class Class, kind protocol.Kind, t time.Time, data json.RawMessage) (uint64, error) {
	if class != Questions && class != Telemetry {
		return 0, fmt.Errorf("%w: unknown class %q", ErrInvalidRecord, class)
	}
	data, err := validRecordData(kind, data)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if t.IsZero() {
		t = s.opts.Now()
	}
	seq, err := s.appendLocked(s.classes[class], kind, t, data, true)
	if err != nil {
		return 0, err
	}
	if class == Telemetry {
		// The record is stored; failing to make room is not its failure. Eviction runs again on the next append.
		_ = s.evictTelemetry()
	}
	return seq + s.cur.Offset, nil
}

// Requeue appends a record that left the spool again, with its kind, time and data, under a new seq: the
// sender does this with a record it kept aside (refused once) when the server no longer takes its old seq.
func (s *Spool) Requeue(r protocol.Record) (uint64, error) {
	class := Telemetry
	if r.Kind == protocol.KindQuestion || r.Kind == protocol.KindGap {
		class = Questions
	}
	return s.Append(class, r.Kind, r.Time, r.Data)
}

// Rebase numbers every pending record, and every later one, above highest: the server holds seqs up to highest
// for this device that the spool does not know of (it was wiped, or restored from an old backup, while the
// device kept its identity), and refused a batch that reused one of them. The spool's own numbering does not
// change; an offset, persisted atomically with the cursor, is added to every seq it hands out, so seqs stay
// strictly increasing and the in-flight batch keeps its records under new seqs. It reports whether the offset
// grew; a server that claims less than what is pending already clears changes nothing.
func (s *Spool) Rebase(highest uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	lowest := s.nextSeq
	for _, cl := range classes {
		if c := s.classes[cl]; len(c.live) > 0 {
			lowest = min(lowest, c.live[0].seq)
		}
	}
	if lowest+s.cur.Offset > highest {
		return false, nil
	}
	offset := highest + 1 - lowest
	if highest >= maxSeq || s.nextSeq > maxSeq-offset {
		return false, fmt.Errorf("rebase above seq %d: seqs would pass %d", highest, uint64(maxSeq))
	}
	next := s.cur.clone()
	next.Offset = offset
	if err := s.saveCursor(next); err != nil {
		return false, err
	}
	return true, nil
}

// validRecordData refuses what the ingest service would refuse forever and returns the data compacted, the form
// it is stored and sent in.
func validRecordData(kind protocol.Kind, data json.RawMessage) (json.RawMessage, error) {
	if !kind.Valid() {
		return nil, fmt.Errorf("%w: unknown kind %q", ErrInvalidRecord, kind)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, fmt.Errorf("%w: data must be a JSON object", ErrInvalidRecord)
	}
	if buf.Len() > protocol.DefaultLimits.MaxRecordBytes {
		return nil, fmt.Errorf("%w: data is %d bytes, at most %d", ErrInvalidRecord, buf.Len(), protocol.DefaultLimits.MaxRecordBytes)
	}
	if kind == protocol.KindQuestion {
		if _, err := protocol.ParseQuestion(buf.Bytes()); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
		}
	}
	return buf.Bytes(), nil
}

// appendLocked writes one record to c's active segment. budget false skips the questions budget: gap records
// report a loss and must not be lost themselves.
func (s *Spool) appendLocked(c *classState, kind protocol.Kind, t time.Time, data json.RawMessage, budget bool) (uint64, error) {
	seq := s.nextSeq
	if seq > maxSeq {
		return 0, fmt.Errorf("append: seqs exhausted at %d", seq)
	}
	frame, err := encodeFrame(protocol.Record{Seq: seq, Kind: kind, Time: t, Data: data})
	if err != nil {
		return 0, err
	}
	if budget && c.class == Questions && c.liveBytes+int64(len(frame)) > s.opts.MaxQuestionBytes {
		return 0, ErrFull
	}
	if err := s.ensureActive(c, seq, len(frame)); err != nil {
		return 0, err
	}
	g := c.active
	// From here the seq may reach the disk, so it is never handed out again, whatever happens next.
	s.nextSeq++
	off := g.size
	if _, err := g.f.Write(frame); err != nil {
		s.abandonActive(c, off)
		return 0, fmt.Errorf("append record %d: %w", seq, err)
	}
	g.size += int64(len(frame))
	if c.class == Questions || s.opts.TelemetrySyncInterval == 0 {
		if err := g.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the pages; nothing more is written to this file.
			s.abandonActive(c, -1)
			return 0, fmt.Errorf("sync record %d: %w", seq, err)
		}
	} else {
		c.dirty = true
		s.armFlush()
	}
	c.live = append(c.live, entry{seq: seq, seg: g, off: off, size: int32(len(frame)), dataLen: int32(len(data)), time: t})
	c.liveBytes += int64(len(frame))
	g.live++
	return seq, nil
}

// ensureActive makes sure c has an active segment with room for a frame of n bytes.
func (s *Spool) ensureActive(c *classState, seq uint64, n int) error {
	if g := c.active; g != nil && g.size > 0 && g.size+int64(n) > s.opts.SegmentBytes {
		// Everything in the old file is made durable before the next one starts, so after a crash only the
		// newest segment of a class can end in a torn frame; damage anywhere else is corruption.
		if c.dirty {
			if err := g.f.Sync(); err != nil {
				return fmt.Errorf("sync segment before roll: %w", err)
			}
			c.dirty = false
		}
		if err := g.close(); err != nil {
			return fmt.Errorf("close segment: %w", err)
		}
		c.active = nil
	}
	if c.active == nil {
		g, err := createSegment(c.dir, seq)
		if err != nil {
			return err
		}
		c.segs = append(c.segs, g)
		c.active = g
	}
	return nil
}

// abandonActive stops appending to c's active segment after a failed write or sync. truncate >= 0 cuts a
// partial frame off first (best effort: recovery treats a leftover as damage). The next append starts a new
// file, so a possibly bad frame is never followed by good ones.
func (s *Spool) abandonActive(c *classState, truncate int64) {
	g := c.active
	if g == nil {
		return
	}
	if truncate >= 0 {
		_ = g.f.Truncate(truncate)
	}
	if c.dirty && g.f.Sync() == nil {
		c.dirty = false
	}
	_ = g.close()
	c.active = nil
}

// armFlush schedules the group commit of telemetry: data is at most TelemetrySyncInterval old when synced.
func (s *Spool) armFlush() {
	if s.flush == nil {
		s.flush = time.AfterFunc(s.opts.TelemetrySyncInterval, s.flushTick)
	}
}

func (s *Spool) flushTick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flush = nil
	if s.closed {
		return
	}
	if s.syncDirty() != nil {
		// Try again later; Next syncs before it sends anything and returns the error there.
		s.armFlush()
	}
}

// syncDirty fsyncs every active segment with unsynced writes.
func (s *Spool) syncDirty() error {
	for _, cl := range classes {
		c := s.classes[cl]
		if !c.dirty || c.active == nil {
			continue
		}
		if err := c.active.f.Sync(); err != nil {
			return fmt.Errorf("sync %s segment: %w", cl, err)
		}
		c.dirty = false
	}
	return nil
}

// Stats returns counters about the spool's contents.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		PendingRecords: map[Class]int{},
		PendingBytes:   map[Class]int64{},
		LastAck:        s.cur.LastAck,
		LastAckedSeq:   s.cur.LastAckedSeq,
		NextSeq:        s.nextSeq + s.cur.Offset,
		Offset:         s.cur.Offset,
		Dropped:        s.dropped,
	}
	for _, cl := range classes {
		c := s.classes[cl]
		st.PendingRecords[cl] = len(c.live)
		st.PendingBytes[cl] = c.liveBytes
		if len(c.live) > 0 && (st.OldestUnsent.IsZero() || c.live[0].time.Before(st.OldestUnsent)) {
			st.OldestUnsent = c.live[0].time
		}
	}
	return st
}

// Close syncs what is unsynced and releases the directory. Every later call returns ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	if s.flush != nil {
		s.flush.Stop()
		s.flush = nil
	}
	err := s.syncDirty()
	for _, cl := range classes {
		if cerr := s.classes[cl].activeClose(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if uerr := unlockFile(s.lock); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

func (c *classState) activeClose() error {
	if c.active == nil {
		return nil
	}
	err := c.active.close()
	c.active = nil
	return err
}
