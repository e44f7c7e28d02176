// Package fleetindex is the dashboard's index of a tenant's bucket: its devices with their newest inventory and
// sample, their questions and answers, and the staff accounts. Pages read the index, never list the bucket.
//
// The bucket stays the only source of truth: the index is derived from it alone and rebuilt from it at start,
// so replication and failover cover everything the dashboard shows, and any replica in either cluster builds
// the same index from either copy. A scan pages through the bucket's keys and reads only objects it has not read
// yet (objects are write-once, or compared by ETag where they are rewritten); batches are read only when dated
// within the index's window, and only once. Nothing is dropped because one scan did not list it: after a
// failover the index reads the other copy, which may lag behind by what replication had not carried yet.
package fleetindex

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/supportstack/supportstack/internal/enrolltoken"
	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// Store is the bucket as the index reads it (a *storagepool.Pool).
type Store interface {
	ListInfo(ctx context.Context, o storagepool.ListOptions) ([]storagepool.ObjectInfo, error)
	Get(ctx context.Context, key string, limit int64) ([]byte, error)
}

// Options of an index.
type Options struct {
	// Window is how far back batches are read into the index (the insights' period): DefaultWindow.
	Window time.Duration
	// StaleAfter is when a device that stopped reporting counts as stale: DefaultStaleAfter.
	StaleAfter time.Duration
	// Interval between scans, which list the whole bucket: DefaultInterval.
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
	// SeriesCachePoints bounds the chart cache (DefaultSeriesCachePoints).
	SeriesCachePoints int
	// Snapshots, when set, stores the index's snapshot every SnapshotInterval (DefaultSnapshotInterval), and Run
	// loads the stored one before its first scan.
	Snapshots        Writer
	SnapshotInterval time.Duration
}

// Defaults of Options.
const (
	DefaultWindow            = 7 * 24 * time.Hour
	DefaultStaleAfter        = 24 * time.Hour
	DefaultInterval          = time.Minute
	DefaultSeriesCachePoints = 1_000_000
	DefaultSnapshotInterval  = 5 * time.Minute
)

// Bounds of what the index reads.
const (
	listPage         = 1000
	readConcurrency  = 8
	maxSmallObject   = 256 << 10
	maxGapsPerDevice = 200
	// maxStartupSeconds is the longest time from boot to the agent's first sample taken as a start-up.
	maxStartupSeconds = 30 * 60
)

// Device is what the index knows of a device.
type Device struct {
	ID           string
	Hostname     string
	OS           string
	AgentVersion string
	EnrolledAt   time.Time
	// LastSeen is when the storage took the device's newest batch (or its enrollment).
	LastSeen time.Time
	// Inventory is the newest inventory; nil until the device sent one.
	Inventory   *Inventory
	InventoryAt time.Time
	// Latest is the newest performance sample within the window; nil when there is none.
	Latest *Point
	// Questions and Unanswered count the device's questions.
	Questions, Unanswered int
}

// device is a device with what the index needs to keep it current. Its fields are exported for the snapshot
// (snapshot.go).
type device struct {
	Device
	EnrollETag   string
	InventoryKey string
	// Batches are the batch keys folded in, by the key's date.
	Batches map[string]time.Time
	// Memory sums the memory samples of each hour (Unix time / 3600), for the insights.
	Memory map[int64]Sum
	// Startups maps a boot (its minute) to the smallest uptime sampled after it: how long the PC took from
	// power-on to the agent's first sample.
	Startups map[int64]uint64
	Boots    []Boot
	Gaps     []Gap
}

// Sum is a sum of N values.
type Sum struct {
	Total float64
	N     int
}

// Question is a question with its answers.
type Question struct {
	DeviceID string
	ID       string
	Text     string
	// AskedAt is when the PC's user asked (the PC's clock); StoredAt when the storage took it.
	AskedAt, StoredAt time.Time
	Answers           []protocol.Answer
}

// StaffAccount is a staff member who signs in to the dashboard, stored at StaffKey. A removed account stays as a
// record with Removed set, so that the removal replicates like any other write.
type StaffAccount struct {
	Name      string    `json:"name"`
	Hash      string    `json:"hash"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
	Removed   bool      `json:"removed,omitempty"`
}

// Staff keys.
const StaffPrefix = "staff/"

// StaffKey is where a staff account is kept.
func StaffKey(name string) string { return StaffPrefix + name + ".json" }

// Index is the bucket's index. Its methods are safe for concurrent use.
type Index struct {
	store Store
	opts  Options
	log   *slog.Logger

	mu        sync.RWMutex
	devices   map[string]*device
	questions map[string]*Question // by device + "/" + question ID
	answers   map[string]bool      // answer keys read
	staff     map[string]staffEntry
	tokens    map[string]tokenEntry
	tokenUses map[string]int // by token ID, as the last scan counted them
	// bad are objects that could not be decoded, by key, with the ETag they had: not read again until changed.
	bad      map[string]string
	built    bool
	lastScan ScanStats

	// series caches charted batches with their samples, hourly with their hourly aggregates only.
	series, hourly *seriesCache
}

type tokenEntry struct {
	ETag   string
	Record enrolltoken.Record
}

type staffEntry struct {
	ETag    string
	Account StaffAccount
}

// ScanStats describe the last complete scan.
type ScanStats struct {
	At       time.Time
	Duration time.Duration
	Keys     int
	Read     int
	// Listing is the part of Duration spent listing keys; the rest read objects.
	Listing time.Duration
	Err     string
}

// New makes an empty index; Run or Scan fill it.
func New(store Store, o Options) *Index {
	o.Window = orDefault(o.Window, DefaultWindow)
	o.StaleAfter = orDefault(o.StaleAfter, DefaultStaleAfter)
	o.Interval = orDefault(o.Interval, DefaultInterval)
	o.SeriesCachePoints = orDefault(o.SeriesCachePoints, DefaultSeriesCachePoints)
	o.SnapshotInterval = orDefault(o.SnapshotInterval, DefaultSnapshotInterval)
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Index{store: store, opts: o, log: log, devices: map[string]*device{}, questions: map[string]*Question{},
		answers: map[string]bool{}, staff: map[string]staffEntry{}, bad: map[string]string{},
		tokens: map[string]tokenEntry{}, tokenUses: map[string]int{}, series: newSeriesCache(o.SeriesCachePoints),
		hourly: newSeriesCache(4 * o.SeriesCachePoints)}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Run scans at once and then every Interval until ctx ends. A failed scan (the storage is down) keeps what the
// index has: pages go on showing it. With Snapshots set, it first loads the stored snapshot and stores a new one
// every SnapshotInterval.
func (x *Index) Run(ctx context.Context) {
	if x.opts.Snapshots != nil {
		if _, err := x.LoadSnapshot(ctx); err != nil && ctx.Err() == nil {
			x.log.Info("Index snapshot not loaded; reading the whole bucket", "error", err)
		}
	}
	t := time.NewTicker(x.opts.Interval)
	defer t.Stop()
	var saved time.Time
	for {
		if err := x.Scan(ctx); err != nil && ctx.Err() == nil {
			x.log.Info("Index scan failed; the dashboard shows what it read before", "error", err)
		} else if x.opts.Snapshots != nil && x.opts.Now().Sub(saved) >= x.opts.SnapshotInterval {
			if err := x.SaveSnapshot(ctx, x.opts.Snapshots); err != nil && ctx.Err() == nil {
				x.log.Info("Index snapshot not stored", "error", err)
			} else {
				saved = x.opts.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Built reports whether a scan has completed, and the last scan's figures.
func (x *Index) Built() (bool, ScanStats) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.built, x.lastScan
}

// Scan brings the index up to date with the bucket.
func (x *Index) Scan(ctx context.Context) error {
	started := x.opts.Now()
	st := ScanStats{At: started}
	err := x.scan(ctx, &st)
	st.Duration = x.opts.Now().Sub(started)
	x.mu.Lock()
	defer x.mu.Unlock()
	if err != nil {
		st.Err = err.Error()
	} else if !x.built {
		x.built = true
		x.log.Info("Index built from the bucket", "keys", st.Keys, "objectsRead", st.Read, "seconds", st.Duration.Seconds(),
			"listingSeconds", st.Listing.Seconds(), "devices", len(x.devices))
	}
	x.lastScan = st
	return err
}

// read is an object a scan reads, and what it does with the object's content.
type read struct {
	key   string
	limit int64
	apply func(data []byte)
}

func (x *Index) scan(ctx context.Context, st *ScanStats) error {
	windowStart := x.windowStart()
	var reads []read
	// A listing shows every inventory of a device: only the newest is read. Token uses are counted afresh.
	seen := &listing{newest: map[string]storagepool.ObjectInfo{}, uses: map[string]int{}}
	for _, prefix := range scannedPrefixes {
		if err := x.each(ctx, prefix, st, func(o storagepool.ObjectInfo) {
			reads = append(reads, x.consider(o, windowStart, seen)...)
		}); err != nil {
			return err
		}
	}
	x.mu.Lock()
	for id, o := range seen.newest {
		if d := x.devices[id]; d != nil && o.Key > d.InventoryKey {
			reads = append(reads, x.inventoryRead(id, o.Key))
		}
	}
	x.mu.Unlock()

	st.Listing = x.opts.Now().Sub(st.At)
	if err := x.readAll(ctx, reads); err != nil {
		return err
	}
	st.Read = len(reads)
	x.mu.Lock()
	x.tokenUses = seen.uses
	x.pruneLocked(windowStart)
	x.countQuestionsLocked()
	x.mu.Unlock()
	return nil
}

// scannedPrefixes are the parts of the bucket the index reads.
var scannedPrefixes = []string{"devices/", "questions/", "answers/", StaffPrefix, "enrollment/"}

func (x *Index) windowStart() time.Time {
	return x.opts.Now().Add(-x.opts.Window).UTC().Truncate(24 * time.Hour)
}

// listing is what a scan gathers across a whole listing; nil for objects that come one by one (follow).
type listing struct {
	newest map[string]storagepool.ObjectInfo // the newest inventory of each device
	uses   map[string]int                    // uses by token ID
}

// consider notes a listed (or just written) object and returns the reads it needs: only objects the index has
// not read, or that changed since.
func (x *Index) consider(o storagepool.ObjectInfo, windowStart time.Time, seen *listing) []read {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.badLocked(o) {
		return nil
	}
	switch {
	case strings.HasPrefix(o.Key, "devices/"):
		return x.considerDeviceLocked(o, windowStart, seen)
	case strings.HasPrefix(o.Key, "questions/"):
		id, file, ok := strings.Cut(strings.TrimPrefix(o.Key, "questions/"), "/")
		qid, isJSON := strings.CutSuffix(file, ".json")
		if !ok || !isJSON || strings.Contains(qid, "/") {
			return nil
		}
		if q := x.questions[id+"/"+qid]; q != nil && q.Text != "" { // an answer may have come first
			return nil
		}
		stored := o.LastModified.UTC()
		return []read{{key: o.Key, limit: maxSmallObject, apply: func(data []byte) { x.applyQuestion(id, qid, stored, data) }}}
	case strings.HasPrefix(o.Key, "answers/"):
		if x.answers[o.Key] {
			return nil
		}
		key := o.Key
		return []read{{key: key, limit: maxSmallObject, apply: func(data []byte) { x.applyAnswer(key, data) }}}
	case strings.HasPrefix(o.Key, StaffPrefix):
		if x.staff[o.Key].ETag == o.ETag {
			return nil
		}
		key, etag := o.Key, o.ETag
		return []read{{key: key, limit: maxSmallObject, apply: func(data []byte) { x.applyStaff(key, etag, data) }}}
	case strings.HasPrefix(o.Key, enrolltoken.UsesPrefix):
		if id, _, ok := strings.Cut(strings.TrimPrefix(o.Key, enrolltoken.UsesPrefix), "/"); ok {
			if seen != nil {
				seen.uses[id]++
			} else {
				x.tokenUses[id]++
			}
		}
	case strings.HasPrefix(o.Key, enrolltoken.TokensPrefix):
		if x.tokens[o.Key].ETag == o.ETag {
			return nil
		}
		key, etag := o.Key, o.ETag
		return []read{{key: key, limit: maxSmallObject, apply: func(data []byte) { x.applyToken(key, etag, data) }}}
	}
	return nil
}

// considerDeviceLocked is consider for a device's objects; x.mu is held.
func (x *Index) considerDeviceLocked(o storagepool.ObjectInfo, windowStart time.Time, seen *listing) []read {
	id, rest, ok := strings.Cut(strings.TrimPrefix(o.Key, "devices/"), "/")
	if !ok || id == "" {
		return nil
	}
	d := x.deviceLocked(id)
	switch {
	case rest == "device.json":
		if o.ETag != d.EnrollETag {
			etag := o.ETag
			return []read{{key: o.Key, limit: maxSmallObject, apply: func(data []byte) { x.applyEnrollment(id, etag, data) }}}
		}
	case strings.HasPrefix(rest, "inventory/"):
		if seen != nil {
			if o.Key > seen.newest[id].Key {
				seen.newest[id] = o
			}
		} else if o.Key > d.InventoryKey {
			return []read{x.inventoryRead(id, o.Key)}
		}
	case strings.HasPrefix(rest, "records/"):
		if o.LastModified.After(d.LastSeen) {
			d.LastSeen = o.LastModified.UTC()
		}
		day, ok := keyDay(rest)
		if _, done := d.Batches[o.Key]; ok && !done && !day.Before(windowStart) {
			key := o.Key
			return []read{{key: key, limit: maxBatchBytes, apply: func(data []byte) { x.applyBatch(id, key, day, data) }}}
		}
	}
	return nil
}

func (x *Index) inventoryRead(id, key string) read {
	return read{key: key, limit: maxSmallObject, apply: func(data []byte) { x.applyInventory(id, key, data) }}
}

// each pages through the keys under prefix.
func (x *Index) each(ctx context.Context, prefix string, st *ScanStats, fn func(storagepool.ObjectInfo)) error {
	after := ""
	for {
		objs, err := x.store.ListInfo(ctx, storagepool.ListOptions{Prefix: prefix, StartAfter: after, Recursive: true, Limit: listPage})
		if err != nil {
			return err
		}
		for _, o := range objs {
			fn(o)
		}
		st.Keys += len(objs)
		if len(objs) < listPage {
			return nil
		}
		after = objs[len(objs)-1].Key
	}
}

// readAll reads the objects in parallel and applies each (concurrently). An object gone since the listing is skipped; a
// storage failure fails the whole read (what was applied stays).
func (x *Index) readAll(ctx context.Context, reads []read) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, readConcurrency)
	)
	for _, r := range reads {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			data, err := x.store.Get(ctx, r.key, r.limit)
			switch {
			case errors.Is(err, storagepool.ErrNotFound), errors.Is(err, storagepool.ErrTooLarge):
				return
			case err != nil:
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			r.apply(data)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d reads failed, the first: %w", len(errs), len(reads), errs[0])
	}
	return nil
}

// markBad notes an object that could not be decoded; etag is empty for a write-once object.
func (x *Index) markBad(key, etag string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.bad[key] = etag
}

// badLocked reports whether the listed object is one that could not be decoded as it is; x.mu is held.
func (x *Index) badLocked(o storagepool.ObjectInfo) bool {
	etag, ok := x.bad[o.Key]
	return ok && (etag == "" || etag == o.ETag)
}

// deviceLocked returns the device's entry, made when new; x.mu is held.
func (x *Index) deviceLocked(id string) *device {
	d := x.devices[id]
	if d == nil {
		d = &device{Device: Device{ID: id}, Batches: map[string]time.Time{}, Memory: map[int64]Sum{}, Startups: map[int64]uint64{}}
		x.devices[id] = d
	}
	return d
}

// enrollment is the part of ingest's enrollment record (internal/ingest.Device) the dashboard shows.
type enrollment struct {
	Hostname       string    `json:"hostname"`
	OS             string    `json:"os"`
	AgentVersion   string    `json:"agentVersion"`
	EnrolledAt     time.Time `json:"enrolledAt"`
	LastEnrolledAt time.Time `json:"lastEnrolledAt"`
}

func (x *Index) applyEnrollment(id, etag string, data []byte) {
	var e enrollment
	if json.Unmarshal(data, &e) != nil {
		x.log.Warn("Skipping an undecodable enrollment record", "device", id)
		x.markBad(protocol.DeviceKey(id), etag)
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	d := x.deviceLocked(id)
	d.EnrollETag, d.Hostname, d.OS, d.EnrolledAt = etag, e.Hostname, e.OS, e.EnrolledAt.UTC()
	// The newest inventory's agent version wins (applyInventory), whichever of the two a scan applies first.
	if d.Inventory == nil || d.Inventory.AgentVersion == "" {
		d.AgentVersion = e.AgentVersion
	}
	if e.LastEnrolledAt.After(d.LastSeen) {
		d.LastSeen = e.LastEnrolledAt.UTC()
	}
}

func (x *Index) applyInventory(id, key string, data []byte) {
	var rec protocol.Record
	inv := new(Inventory)
	if json.Unmarshal(data, &rec) != nil || json.Unmarshal(rec.Data, inv) != nil {
		x.log.Warn("Skipping an undecodable inventory record", "device", id, "key", key)
		x.markBad(key, "")
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	d := x.deviceLocked(id)
	if key <= d.InventoryKey {
		return // a newer one was read meanwhile
	}
	d.InventoryKey, d.Inventory, d.InventoryAt = key, inv, rec.Time.UTC()
	if inv.AgentVersion != "" {
		d.AgentVersion = inv.AgentVersion
	}
}

func (x *Index) applyBatch(id, key string, day time.Time, data []byte) {
	b, err := parseBatch(data)
	if err != nil {
		x.log.Warn("Skipping an unreadable batch", "device", id, "key", key, "error", err)
	}
	x.cache(key, b, false)
	x.mu.Lock()
	defer x.mu.Unlock()
	d := x.deviceLocked(id)
	d.Batches[key] = day
	for _, p := range b.points {
		d.fold(p)
	}
	d.Boots = append(d.Boots, b.boots...)
	d.Gaps = append(d.Gaps, b.gaps...)
	if len(d.Gaps) > maxGapsPerDevice {
		d.Gaps = d.Gaps[len(d.Gaps)-maxGapsPerDevice:]
	}
}

// fold adds a sample to the device's newest sample, its hours and its start-up times.
func (d *device) fold(p Point) {
	if d.Latest == nil || p.Time.After(d.Latest.Time) {
		latest := p
		d.Latest = &latest
	}
	if !isNaN(p.Mem) {
		h := p.Time.Unix() / 3600
		m := d.Memory[h]
		d.Memory[h] = Sum{Total: m.Total + p.Mem, N: m.N + 1}
	}
	// Only an agent that started with the PC measures its start-up: one installed or started hours after the
	// boot says nothing about it.
	if p.Uptime > 0 && p.Uptime <= maxStartupSeconds {
		boot := (p.Time.Unix() - int64(p.Uptime)) / 60
		// Neighbouring minutes are the same boot seen through rounding.
		for _, b := range []int64{boot - 1, boot + 1} {
			if _, ok := d.Startups[b]; ok {
				boot = b
				break
			}
		}
		if u, ok := d.Startups[boot]; !ok || p.Uptime < u {
			d.Startups[boot] = p.Uptime
		}
	}
}

func isNaN(f float64) bool { return f != f }

func (x *Index) applyQuestion(deviceID, qid string, stored time.Time, data []byte) {
	var rec protocol.Record
	if json.Unmarshal(data, &rec) != nil {
		x.log.Warn("Skipping an undecodable question", "device", deviceID, "question", qid)
		x.markBad(protocol.QuestionKey(deviceID, qid), "")
		return
	}
	q, err := protocol.ParseQuestion(rec.Data)
	if err != nil || q.ID != qid {
		x.log.Warn("Skipping a question whose content does not match its key", "device", deviceID, "question", qid)
		x.markBad(protocol.QuestionKey(deviceID, qid), "")
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	k := deviceID + "/" + qid
	prev := x.questions[k]
	nq := &Question{DeviceID: deviceID, ID: qid, Text: q.Text, AskedAt: rec.Time.UTC(), StoredAt: stored}
	if prev != nil {
		nq.Answers = prev.Answers
	}
	x.questions[k] = nq
}

func (x *Index) applyAnswer(key string, data []byte) {
	// answers/<device>/<question>/<answer>.json
	parts := strings.Split(strings.TrimPrefix(key, "answers/"), "/")
	var a protocol.Answer
	if len(parts) != 3 || json.Unmarshal(data, &a) != nil || a.QuestionID != parts[1] {
		x.log.Warn("Skipping an answer that does not match its key", "key", key)
		x.mu.Lock()
		x.answers[key] = true
		x.mu.Unlock()
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.answers[key] = true
	k := parts[0] + "/" + parts[1]
	q := x.questions[k]
	if q == nil {
		// The answer replicated before its question: keep it until the question arrives.
		q = &Question{DeviceID: parts[0], ID: parts[1]}
		x.questions[k] = q
	}
	q.Answers = appendAnswer(q.Answers, a)
}

// appendAnswer adds a to the answers, oldest first, once.
func appendAnswer(answers []protocol.Answer, a protocol.Answer) []protocol.Answer {
	for _, have := range answers {
		if have.ID == a.ID {
			return answers
		}
	}
	out := append(append([]protocol.Answer(nil), answers...), a)
	for i := len(out) - 1; i > 0 && out[i].Time.Before(out[i-1].Time); i-- {
		out[i], out[i-1] = out[i-1], out[i]
	}
	return out
}

func (x *Index) applyStaff(key, etag string, data []byte) {
	var a StaffAccount
	if json.Unmarshal(data, &a) != nil || StaffKey(a.Name) != key {
		x.log.Warn("Skipping a staff record that does not match its key", "key", key)
		x.markBad(key, etag)
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.staff[key] = staffEntry{ETag: etag, Account: a}
}

func (x *Index) applyToken(key, etag string, data []byte) {
	var r enrolltoken.Record
	if json.Unmarshal(data, &r) != nil || enrolltoken.Key(r.ID) != key {
		x.log.Warn("Skipping an enrollment token record that does not match its key", "key", key)
		x.markBad(key, etag)
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.tokens[key] = tokenEntry{ETag: etag, Record: r}
}

// NoteToken puts a token record this replica stored into the index at once.
func (x *Index) NoteToken(r enrolltoken.Record, etag string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.tokens[enrolltoken.Key(r.ID)] = tokenEntry{ETag: etag, Record: r}
}

// Token is an enrollment token with the devices it enrolled.
type Token struct {
	enrolltoken.Record
	Uses int
}

// Tokens returns the staff-made enrollment tokens, newest first.
func (x *Index) Tokens() []Token {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]Token, 0, len(x.tokens))
	for _, e := range x.tokens {
		out = append(out, Token{Record: e.Record, Uses: x.tokenUses[e.Record.ID]})
	}
	slices.SortFunc(out, func(a, b Token) int { return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.ID, b.ID)) })
	return out
}

// TokenByID returns one token and the ETag it was read with.
func (x *Index) TokenByID(id string) (Token, string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.tokens[enrolltoken.Key(id)]
	return Token{Record: e.Record, Uses: x.tokenUses[id]}, e.ETag, ok
}

// NoteAnswer puts an answer this replica stored into the index at once, so that the page it returns to shows it.
func (x *Index) NoteAnswer(deviceID string, a protocol.Answer) {
	data, _ := json.Marshal(a)
	x.applyAnswer(protocol.AnswerKey(deviceID, a.QuestionID, a.ID), data)
	x.mu.Lock()
	x.countQuestionsLocked()
	x.mu.Unlock()
}

// NoteStaff puts a staff account this replica stored into the index at once.
func (x *Index) NoteStaff(a StaffAccount, etag string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.staff[StaffKey(a.Name)] = staffEntry{ETag: etag, Account: a}
}

// pruneLocked drops what fell out of the window; x.mu is held.
func (x *Index) pruneLocked(windowStart time.Time) {
	for _, d := range x.devices {
		for k, day := range d.Batches {
			if day.Before(windowStart) {
				delete(d.Batches, k)
			}
		}
		for h := range d.Memory {
			if h*3600 < windowStart.Unix() {
				delete(d.Memory, h)
			}
		}
		for b := range d.Startups {
			if b*60 < windowStart.Unix() {
				delete(d.Startups, b)
			}
		}
		d.Boots = keepAfter(d.Boots, windowStart, func(b Boot) time.Time { return b.Time })
		d.Gaps = keepAfter(d.Gaps, windowStart, func(g Gap) time.Time { return g.At })
		if d.Latest != nil && d.Latest.Time.Before(windowStart) {
			d.Latest = nil
		}
	}
}

func keepAfter[T any](s []T, start time.Time, at func(T) time.Time) []T {
	out := s[:0]
	for _, v := range s {
		if !at(v).Before(start) {
			out = append(out, v)
		}
	}
	return out
}

func (x *Index) countQuestionsLocked() {
	for _, d := range x.devices {
		d.Questions, d.Unanswered = 0, 0
	}
	for _, q := range x.questions {
		if d := x.devices[q.DeviceID]; d != nil && q.Text != "" {
			d.Questions++
			if len(q.Answers) == 0 {
				d.Unanswered++
			}
		}
	}
}

// keyDay is the date of a batch key's "records/yyyy/mm/dd/..." rest.
func keyDay(rest string) (time.Time, bool) {
	parts := strings.Split(rest, "/")
	if len(parts) != 5 {
		return time.Time{}, false
	}
	t, err := time.Parse("2006/01/02", parts[1]+"/"+parts[2]+"/"+parts[3])
	return t, err == nil
}
