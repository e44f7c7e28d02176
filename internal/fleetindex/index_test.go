package fleetindex_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/collect"
	"github.com/supportstack/supportstack/internal/fleetindex"
	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/harness/stored"
	"github.com/supportstack/supportstack/internal/ingest"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"
)

const bucketName = "supportstack"

// The test fleet's devices.
const (
	devA = "0000-aaaa-alpha"   // ubuntu, many samples, the newest at 90 % memory: pressure
	devB = "0000-bbbb-bravo"   // windows, newest sample at 89.9 % memory: ok
	devC = "0000-cccc-charlie" // enrolled 10 days ago, nothing since: stale
	devD = "0000-dddd-delta"   // enrolled 2 hours ago, no sample: no data
)

// Question IDs: their order is the reverse of the order in which they are stored, and of the PCs' clocks, so
// that an inbox ordered by ID or by the PC's clock fails the tests.
const (
	qA1 = "q-3333-printer" // stored first
	qB1 = "q-2222-printer" // stored second
	qA2 = "q-1111-outlook" // stored third, answered before the first scan
	qB2 = "q-4444-vpn"     // answered before it is stored
)

// bucket is a tenant's bucket in a real MinIO, written the way ingest and the dashboard lay it out.
type bucket struct {
	t    *testing.T
	mc   *minio.Client
	pool *storagepool.Pool
}

func newBucket(t *testing.T) *bucket {
	t.Helper()
	srv := miniotest.Start(t, miniotest.Options{AccessKey: "fleetindex", SecretKey: "fleetindex-secret-key"})
	ep := objectstore.Endpoint{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	mc, err := objectstore.NewClient(ep)
	require.NoError(t, err)
	_, err = objectstore.EnsureBucket(context.Background(), mc, bucketName, 7)
	require.NoError(t, err)
	pool, err := storagepool.New(storagepool.Options{Endpoints: []storagepool.Endpoint{ep}, Bucket: bucketName})
	require.NoError(t, err)
	return &bucket{t: t, mc: mc, pool: pool}
}

// put stores an object and returns its LastModified as a listing reports it (what the index sees).
func (b *bucket) put(key string, data []byte) time.Time {
	b.t.Helper()
	_, err := b.mc.PutObject(context.Background(), bucketName, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	require.NoError(b.t, err)
	return b.modified(key)
}

// putAfter stores an object whose LastModified is strictly after prev (it waits for the clock to pass prev
// first), so that orderings by storage time are determined.
func (b *bucket) putAfter(prev time.Time, key string, data []byte) time.Time {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if !time.Now().After(prev.Add(time.Millisecond)) {
			time.Sleep(time.Millisecond)
			continue
		}
		if m := b.put(key, data); m.After(prev) {
			return m
		}
	}
	b.t.Fatalf("%s was never stored later than %s", key, prev)
	return time.Time{}
}

func (b *bucket) putJSON(key string, v any) time.Time {
	b.t.Helper()
	data, err := json.Marshal(v)
	require.NoError(b.t, err)
	return b.put(key, data)
}

// modified is the object's LastModified in a listing.
func (b *bucket) modified(key string) time.Time {
	b.t.Helper()
	for o := range b.mc.ListObjectsIter(context.Background(), bucketName, minio.ListObjectsOptions{Prefix: key}) {
		require.NoError(b.t, o.Err)
		if o.Key == key {
			return o.LastModified.UTC()
		}
	}
	b.t.Fatalf("%s is not listed", key)
	return time.Time{}
}

// putDevice stores an enrollment record as ingest writes it.
func (b *bucket) putDevice(id, hostname, os string, enrolled, lastEnrolled time.Time) {
	b.t.Helper()
	b.putJSON(protocol.DeviceKey(id), ingest.Device{DeviceID: id, Hostname: hostname, OS: os, AgentVersion: "1.3.0",
		EnrolledAt: enrolled, LastEnrolledAt: lastEnrolled})
}

// putInventory stores an inventory record as ingest writes it (the record as JSON, at its InventoryKey).
func (b *bucket) putInventory(id string, seq uint64, at time.Time, inv collect.Inventory) {
	b.t.Helper()
	b.putJSON(protocol.InventoryKey(id, at, seq), record(b.t, seq, protocol.KindInventory, at, inv))
}

// batch encodes records as ingest stores a batch: gzip NDJSON of protocol.Record, keyed by the first record.
func batch(t *testing.T, deviceID string, recs []protocol.Record) (string, []byte) {
	t.Helper()
	key, data, err := stored.Batch(deviceID, recs)
	require.NoError(t, err)
	return key, data
}

// putQuestion stores a question as ingest does (the record as JSON at its QuestionKey), after prev.
func (b *bucket) putQuestion(prev time.Time, deviceID, qid, text string, asked time.Time) time.Time {
	b.t.Helper()
	rec := record(b.t, 7, protocol.KindQuestion, asked, protocol.Question{ID: qid, Text: text})
	data, err := json.Marshal(rec)
	require.NoError(b.t, err)
	return b.putAfter(prev, protocol.QuestionKey(deviceID, qid), data)
}

// putAnswer stores an answer as the dashboard does.
func (b *bucket) putAnswer(deviceID string, a protocol.Answer) {
	b.t.Helper()
	b.putJSON(protocol.AnswerKey(deviceID, a.QuestionID, a.ID), a)
}

func record(t *testing.T, seq uint64, kind protocol.Kind, at time.Time, data any) protocol.Record {
	t.Helper()
	raw, err := json.Marshal(data)
	require.NoError(t, err)
	return protocol.Record{Seq: seq, Kind: kind, Time: at.UTC(), Data: raw}
}

// sample is a performance sample as the agent collects it; mem < 0 leaves memory out, disks are mount fills.
type sample struct {
	at        time.Time
	cpu, mem  float64
	disks     []float64
	uptimeSec uint64
}

func (s sample) data() collect.Perf {
	p := collect.Perf{IntervalSeconds: 60, CPUPercent: &s.cpu, UptimeSeconds: s.uptimeSec}
	if s.mem >= 0 {
		p.MemUsedPercent = &s.mem
	}
	for i, d := range s.disks {
		p.Disks = append(p.Disks, collect.DiskUsage{Mount: []string{"/", "/data", "/home"}[i], UsedPercent: d})
	}
	return p
}

// timeline numbers records by their time, as the agent's seqs go.
type timeline struct {
	t    *testing.T
	seq  uint64
	recs []protocol.Record
}

func (l *timeline) add(kind protocol.Kind, at time.Time, data any) {
	l.recs = append(l.recs, record(l.t, 0, kind, at, data))
}

func (l *timeline) records() []protocol.Record {
	slices.SortStableFunc(l.recs, func(a, b protocol.Record) int { return a.Time.Compare(b.Time) })
	for i := range l.recs {
		l.seq++
		l.recs[i].Seq = l.seq
	}
	out := l.recs
	l.recs = nil
	return out
}

// readLog is the bucket as the index reads it, noting which objects it fetched.
type readLog struct {
	fleetindex.Store
	mu   sync.Mutex
	keys []string
}

func (r *readLog) Get(ctx context.Context, key string, limit int64) ([]byte, error) {
	r.mu.Lock()
	r.keys = append(r.keys, key)
	r.mu.Unlock()
	return r.Store.Get(ctx, key, limit)
}

// take returns the keys fetched since the last take, sorted.
func (r *readLog) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.keys
	r.keys = nil
	sort.Strings(out)
	return out
}

// clock is the index's time: the real time shifted by an offset the test sets.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time           { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(by time.Duration) { c.offset.Add(int64(by)) }

// fleet is a bucket filled with four devices' records, questions, answers and a staff account, and an index of
// it after its first scan.
type fleet struct {
	b     *bucket
	reads *readLog
	clock *clock
	x     *fleetindex.Index
	// base is the time of device A's newest sample: A has one a minute from base-119m to base.
	base time.Time
	// now is when the fleet was written.
	now time.Time
	// keys of what was stored.
	batchA, batchAOld, batchB string
	// modified of what was stored.
	modA, modAOld, modB      time.Time
	storedQA1, storedQB1     time.Time
	storedQA2, lastQuestions time.Time
	firstReads               []string
	firstScan                fleetindex.ScanStats
}

func newFleet(t *testing.T) *fleet {
	b := newBucket(t)
	now := time.Now().UTC()
	base := now.Truncate(time.Minute)
	f := &fleet{b: b, base: base, now: now, reads: &readLog{Store: b.pool}, clock: &clock{}}

	// A: an older and a newer inventory; a batch dated before the window; a batch of the last two hours.
	b.putDevice(devA, "Alpha-PC", "linux", now.AddDate(0, 0, -30), now.AddDate(0, 0, -30))
	old := collect.Inventory{Hostname: "Alpha-PC", OS: "linux", Platform: "ubuntu", PlatformVersion: "22.04"}
	b.putInventory(devA, 1, now.Add(-48*time.Hour), old)
	inv := collect.Inventory{Hostname: "Alpha-PC", OS: "linux", Arch: "amd64", Platform: "ubuntu", PlatformVersion: "24.04",
		KernelVersion: "6.8.0", CPU: collect.CPUInfo{Model: "11th Gen Intel(R) Core(TM) i7-1165G7", LogicalCores: 8},
		MemoryBytes: 16 << 30, AgentVersion: "1.4.0"}
	b.putInventory(devA, 50, now.Add(-24*time.Hour), inv)
	tlA := &timeline{t: t}
	tlA.add(protocol.KindEvent, now.AddDate(0, 0, -10), collect.BootEvent{Type: "boot", BootTime: now.AddDate(0, 0, -10)})
	tlA.add(protocol.KindPerf, now.AddDate(0, 0, -10).Add(time.Minute), sample{cpu: 99, mem: 99, disks: []float64{99}}.data())
	var data []byte
	f.batchAOld, data = batch(t, devA, tlA.records())
	f.modAOld = b.put(f.batchAOld, data)
	for k := 119; k >= 0; k-- {
		s := sample{at: base.Add(-time.Duration(k) * time.Minute), cpu: float64(k), mem: 50, disks: []float64{45, 40}}
		switch k {
		case 0:
			s.mem = 90 // the newest sample: memory at the pressure threshold
		case 33:
			s.disks = []float64{40, 97} // a short spike on the second disk
		case 45:
			s.mem = -1 // a sample without memory
		}
		tlA.add(protocol.KindPerf, s.at, s.data())
	}
	for _, at := range []time.Duration{90 * time.Minute, 30 * time.Minute} {
		tlA.add(protocol.KindEvent, base.Add(-at).Add(10*time.Second), collect.BootEvent{Type: "boot", BootTime: base.Add(-at)})
	}
	for _, g := range []struct {
		ago  time.Duration
		from uint64
	}{{100 * time.Minute, 5}, {20 * time.Minute, 9}} {
		tlA.add(protocol.KindGap, base.Add(-g.ago), protocol.Gap{Class: "telemetry", FromSeq: g.from, ToSeq: g.from + 2, Count: 3, Reason: "evicted"})
	}
	f.batchA, data = batch(t, devA, tlA.records())
	f.modA = b.putAfter(f.modAOld, f.batchA, data)

	// B: one inventory, a batch stored after A's, the newest sample just below the threshold.
	b.putDevice(devB, "bravo", "windows", now.AddDate(0, 0, -20), now.AddDate(0, 0, -20))
	b.putInventory(devB, 3, now.Add(-time.Hour), collect.Inventory{Hostname: "bravo", OS: "windows", Platform: "Microsoft Windows 11 Pro",
		PlatformVersion: "10.0.26100", CPU: collect.CPUInfo{Model: "AMD Ryzen 7 PRO 7840U"}, MemoryBytes: 32 << 30})
	tlB := &timeline{t: t}
	for k := 3; k >= 0; k-- {
		tlB.add(protocol.KindPerf, base.Add(-time.Duration(k)*time.Minute), sample{cpu: 10, mem: 40, disks: []float64{55}}.data())
	}
	tlB.recs[len(tlB.recs)-1] = record(t, 0, protocol.KindPerf, base, sample{cpu: 10, mem: 89.9, disks: []float64{55}}.data())
	f.batchB, data = batch(t, devB, tlB.records())
	f.modB = b.putAfter(f.modA, f.batchB, data)

	// C and D: enrolled only.
	b.putDevice(devC, "charlie", "windows", now.AddDate(0, 0, -10), now.AddDate(0, 0, -10))
	b.putDevice(devD, "Delta", "linux", now.Add(-2*time.Hour), now.Add(-2*time.Hour))

	// Questions, stored one after another; the PCs' clocks say otherwise.
	f.storedQA1 = b.putQuestion(time.Time{}, devA, qA1, "My printer is offline again", base.Add(-time.Minute))
	f.storedQB1 = b.putQuestion(f.storedQA1, devB, qB1, "Printer offline after the update", base.Add(-2*time.Hour))
	f.storedQA2 = b.putQuestion(f.storedQB1, devA, qA2, "Why is Outlook so slow?", base.Add(-3*time.Hour))
	f.lastQuestions = f.storedQA2
	b.putAnswer(devA, protocol.Answer{ID: "ans-0001", QuestionID: qA2, Text: "Restart it.", Author: "admin", Time: now})
	// The answer to qB2 replicated ahead of its question.
	b.putAnswer(devB, protocol.Answer{ID: "ans-0002", QuestionID: qB2, Text: "Reconnect the VPN.", Author: "sam", Time: now})

	b.putJSON(fleetindex.StaffKey("sam"), fleetindex.StaffAccount{Name: "sam", Hash: "$2a$10$x", CreatedBy: "admin", CreatedAt: now})

	f.x = fleetindex.New(f.reads, fleetindex.Options{Now: f.clock.now})
	built, _ := f.x.Built()
	require.False(t, built, "no scan yet")
	require.NoError(t, f.x.Scan(context.Background()))
	built, f.firstScan = f.x.Built()
	require.True(t, built)
	f.firstReads = f.reads.take()
	return f
}

func device(t *testing.T, x *fleetindex.Index, id string) fleetindex.DeviceDetail {
	t.Helper()
	d, ok := x.Device(id)
	require.True(t, ok, "the index does not know %s", id)
	return d
}

func inboxIDs(items []fleetindex.InboxItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// A scan builds the devices from their enrollment, newest inventory and batches, the questions with their
// answers (also an answer stored before its question) and the staff; later scans read only what is new, and
// batches dated before the window are never read.
func TestScanBuildsTheIndexAndReadsOnlyWhatIsNew(t *testing.T) {
	f := newFleet(t)
	x, b := f.x, f.b

	// What the first scan read: each enrollment, the newest inventory only, the batches within the window, every
	// question, answer and staff account; not the older inventory, not the batch dated 10 days ago.
	want := []string{protocol.DeviceKey(devA), protocol.DeviceKey(devB), protocol.DeviceKey(devC), protocol.DeviceKey(devD),
		protocol.InventoryKey(devA, f.now.Add(-24*time.Hour), 50), protocol.InventoryKey(devB, f.now.Add(-time.Hour), 3),
		f.batchA, f.batchB, protocol.QuestionKey(devA, qA1), protocol.QuestionKey(devB, qB1), protocol.QuestionKey(devA, qA2),
		protocol.AnswerKey(devA, qA2, "ans-0001"), protocol.AnswerKey(devB, qB2, "ans-0002"), fleetindex.StaffKey("sam")}
	sort.Strings(want)
	require.Equal(t, want, f.firstReads)
	require.NotContains(t, f.firstReads, f.batchAOld, "a batch dated before the window is not read")
	require.Equal(t, len(want), f.firstScan.Read)
	require.Equal(t, len(want)+2, f.firstScan.Keys, "every key was listed, the older inventory and the old batch too")
	require.Empty(t, f.firstScan.Err)

	// Device A: hostname from its enrollment, OS name from its newest inventory's platform, last seen when the
	// storage took its newest batch, the newest sample, under pressure at 90 % memory.
	a := device(t, x, devA)
	require.Equal(t, "Alpha-PC", a.Hostname)
	require.Equal(t, "ubuntu 24.04", a.OSName(), "the newest inventory's platform, not the enrollment's OS nor the older inventory")
	require.Equal(t, "1.4.0", a.AgentVersion, "the inventory's agent version")
	require.NotNil(t, a.Inventory)
	require.Equal(t, "11th Gen Intel(R) Core(TM) i7-1165G7", a.Inventory.CPU.Model)
	require.True(t, a.LastSeen.Equal(latest(f.modA, f.modAOld)), "last seen %s, want the newest batch's LastModified %s", a.LastSeen, latest(f.modA, f.modAOld))
	require.NotNil(t, a.Latest)
	require.True(t, a.Latest.Time.Equal(f.base), "the newest sample is at %s, not %s", f.base, a.Latest.Time)
	require.Equal(t, 90.0, a.Latest.Mem)
	require.Equal(t, 0.0, a.Latest.CPU)
	require.Equal(t, 45.0, a.Latest.Disk, "the fullest disk")
	require.Equal(t, fleetindex.HealthPressure, a.Health)
	require.Equal(t, []fleetindex.Boot{{Time: f.base.Add(-30 * time.Minute)}, {Time: f.base.Add(-90 * time.Minute)}}, a.Boots,
		"the window's boots, newest first; not the one 10 days ago")
	require.Len(t, a.Gaps, 2)
	require.True(t, a.Gaps[0].At.Equal(f.base.Add(-20*time.Minute)))
	require.Equal(t, protocol.Gap{Class: "telemetry", FromSeq: 9, ToSeq: 11, Count: 3, Reason: "evicted"}, a.Gaps[0].Gap)

	bd := device(t, x, devB)
	require.Equal(t, "Microsoft Windows 11 Pro 10.0.26100", bd.OSName())
	require.True(t, bd.LastSeen.Equal(f.modB))
	require.Equal(t, 89.9, bd.Latest.Mem)
	require.Equal(t, fleetindex.HealthOK, bd.Health, "89.9 % is below the threshold")

	c := device(t, x, devC)
	require.Equal(t, "windows", c.OSName(), "without an inventory, the enrollment's OS")
	require.Nil(t, c.Inventory)
	require.Nil(t, c.Latest)
	require.True(t, c.LastSeen.Equal(f.now.AddDate(0, 0, -10)), "last seen at its enrollment")
	require.Equal(t, fleetindex.HealthStale, c.Health)
	require.Equal(t, fleetindex.HealthNoData, device(t, x, devD).Health)

	// Questions: the answered one carries its answer; a question not stored yet is unknown even though its
	// answer is; the inbox has the unanswered first, the longest waiting on top.
	q, ok := x.Question(devA, qA2)
	require.True(t, ok)
	require.Equal(t, "Why is Outlook so slow?", q.Text)
	require.True(t, q.StoredAt.Equal(f.storedQA2))
	require.Len(t, q.Answers, 1)
	require.Equal(t, "Restart it.", q.Answers[0].Text)
	_, ok = x.Question(devB, qB2)
	require.False(t, ok, "an answer alone makes no question")
	items, unanswered := x.Inbox(false, 0)
	require.Equal(t, 2, unanswered)
	require.Equal(t, []string{qA1, qB1, qA2}, inboxIDs(items), "unanswered first, oldest stored first; then the answered")
	require.Equal(t, "Alpha-PC", items[0].DeviceName)
	items, _ = x.Inbox(true, 0)
	require.Equal(t, []string{qA1, qB1}, inboxIDs(items))
	items, _ = x.Inbox(false, 1)
	require.Equal(t, []string{qA1}, inboxIDs(items), "the limit")
	require.Equal(t, 2, a.Device.Questions)
	require.Equal(t, 1, a.Unanswered)
	require.Equal(t, []string{qA1, qA2}, questionIDs(a.Questions), "the device page's questions, unanswered first")
	require.Equal(t, fleetindex.Summary{Devices: 4, Stale: 1, Pressure: 1, Questions: 3, Unanswered: 2}, x.Summary())

	acct, etag, ok := x.StaffAccount("sam")
	require.True(t, ok)
	require.Equal(t, "admin", acct.CreatedBy)
	require.NotEmpty(t, etag)

	// Nothing new: the next scan reads nothing.
	require.NoError(t, x.Scan(context.Background()))
	_, st := x.Built()
	require.Zero(t, st.Read)
	require.Empty(t, f.reads.take())

	// New: qB2's question (after its answer), a batch of B's, D's rewritten enrollment: exactly those are read.
	storedQB2 := b.putQuestion(f.lastQuestions, devB, qB2, "The VPN drops every hour", f.base.Add(-5*time.Hour))
	tl := &timeline{t: t, seq: 100}
	tl.add(protocol.KindPerf, f.base.Add(30*time.Second), sample{cpu: 20, mem: 95, disks: []float64{55}}.data())
	newBatch, data := batch(t, devB, tl.records())
	modB2 := b.putAfter(f.modB, newBatch, data)
	b.putDevice(devD, "Delta-2", "linux", f.now.Add(-2*time.Hour), f.now.Add(-time.Hour))
	require.NoError(t, x.Scan(context.Background()))
	_, st = x.Built()
	wantNew := []string{protocol.DeviceKey(devD), newBatch, protocol.QuestionKey(devB, qB2)}
	sort.Strings(wantNew)
	require.Equal(t, wantNew, f.reads.take())
	require.Equal(t, 3, st.Read)

	q, ok = x.Question(devB, qB2)
	require.True(t, ok, "the question arrived after its answer")
	require.Equal(t, "The VPN drops every hour", q.Text)
	require.Len(t, q.Answers, 1, "the answer read before is attached")
	require.Equal(t, "Reconnect the VPN.", q.Answers[0].Text)
	items, unanswered = x.Inbox(false, 0)
	require.Equal(t, 2, unanswered)
	require.Equal(t, []string{qA1, qB1, qB2, qA2}, inboxIDs(items), "answered ones most recently stored first")
	require.True(t, items[2].StoredAt.Equal(storedQB2))
	bd = device(t, x, devB)
	require.Equal(t, 95.0, bd.Latest.Mem, "the new batch's sample is the newest")
	require.True(t, bd.LastSeen.Equal(modB2))
	require.Equal(t, fleetindex.HealthPressure, bd.Health)
	require.Equal(t, 2, bd.Device.Questions)
	require.Equal(t, 1, bd.Unanswered)
	d := device(t, x, devD)
	require.Equal(t, "Delta-2", d.Hostname, "a rewritten enrollment is read again")
	require.True(t, d.LastSeen.Equal(f.now.Add(-time.Hour)))

	require.NoError(t, x.Scan(context.Background()))
	_, st = x.Built()
	require.Zero(t, st.Read, "and then nothing again")

	// Nine days later nothing of A's is within the window any more: no newest sample, no boots; it is stale.
	f.clock.advance(9 * 24 * time.Hour)
	require.NoError(t, x.Scan(context.Background()))
	require.Empty(t, f.reads.take())
	a = device(t, x, devA)
	require.Nil(t, a.Latest)
	require.Empty(t, a.Boots)
	require.Empty(t, a.Gaps)
	require.Equal(t, fleetindex.HealthStale, a.Health)
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func questionIDs(qs []fleetindex.Question) []string {
	var out []string
	for _, q := range qs {
		out = append(out, q.ID)
	}
	return out
}

// Series returns the samples of a period, averaged into at most the points asked for with each point's disk
// the fullest of its samples, and the period's boots and gaps; a longer period reads batches the index's window
// does not hold.
func TestSeries(t *testing.T) {
	f := newFleet(t)
	ctx := context.Background()
	from, to := f.base.Add(-time.Hour), f.base

	s, err := f.x.Series(ctx, devA, from, to, 6)
	require.NoError(t, err)
	require.Equal(t, 61, s.Samples, "the samples from base-60m to base, both included")
	require.Len(t, s.Points, 6, "at most the points asked for")
	// Ten-minute buckets from base-60m; the sample at base itself closes the last one. CPU is the sample's age
	// in minutes, so each bucket's average is known.
	wantCPU := []float64{55.5, 45.5, 35.5, 25.5, 15.5, 5}
	wantDisk := []float64{45, 45, 97, 45, 45, 45}
	for i, p := range s.Points {
		require.InDelta(t, wantCPU[i], p.CPU, 1e-9, "point %d's CPU", i)
		require.Equal(t, wantDisk[i], p.Disk, "point %d's disk is its bucket's fullest", i)
	}
	require.Equal(t, 50.0, s.Points[1].Mem, "a sample without memory does not count as 0")
	require.InDelta(t, (10*50.0+90)/11, s.Points[5].Mem, 1e-9)
	require.True(t, s.Points[0].Time.Equal(f.base.Add(-51*time.Minute)), "a point is at its bucket's last sample")
	require.True(t, s.Points[5].Time.Equal(f.base))
	require.Equal(t, []fleetindex.Boot{{Time: f.base.Add(-30 * time.Minute)}}, s.Boots, "only the period's boot")
	require.Len(t, s.Gaps, 1, "only the period's gap")
	require.True(t, s.Gaps[0].At.Equal(f.base.Add(-20*time.Minute)))

	// Asked for more points than there are samples: the samples themselves, in time order.
	s, err = f.x.Series(ctx, devA, from, to, 1000)
	require.NoError(t, err)
	require.Len(t, s.Points, 61)
	for i, p := range s.Points {
		require.True(t, p.Time.Equal(from.Add(time.Duration(i)*time.Minute)))
		require.Equal(t, float64(60-i), p.CPU)
	}
	require.True(t, math.IsNaN(s.Points[15].Mem), "the sample without memory")

	// Thirty days: the batch dated before the index's window is read for the chart.
	s, err = f.x.Series(ctx, devA, f.base.AddDate(0, 0, -30), f.base, 400)
	require.NoError(t, err)
	require.Equal(t, 121, s.Samples)
	require.Len(t, s.Boots, 3)
	require.LessOrEqual(t, len(s.Points), 400)

	// Another device's samples are its own; an unknown device has none.
	s, err = f.x.Series(ctx, devB, from, to, 400)
	require.NoError(t, err)
	require.Equal(t, 4, s.Samples)
	s, err = f.x.Series(ctx, "0000-nobody", from, to, 400)
	require.NoError(t, err)
	require.Zero(t, s.Samples)
}

func rowNames(res fleetindex.Result) []string {
	var out []string
	for _, r := range res.Rows {
		out = append(out, r.Name())
	}
	return out
}

// The device list: search on hostname, ID, OS and CPU model, case-insensitively; OS, health and last-seen
// filters; sorts by name, last seen and memory (devices without a sample last either way); paging.
func TestDevicesQuery(t *testing.T) {
	f := newFleet(t)
	x := f.x
	list := func(q fleetindex.Query) []string { return rowNames(x.Devices(q)) }

	all := x.Devices(fleetindex.Query{})
	require.Equal(t, []string{"Alpha-PC", "bravo", "charlie", "Delta"}, rowNames(all), "by name, ignoring case")
	require.Equal(t, 4, all.Total)
	require.Equal(t, 4, all.Fleet)
	require.Equal(t, []string{"Microsoft Windows 11 Pro 10.0.26100", "linux", "ubuntu 24.04", "windows"}, all.OSes)
	require.Equal(t, []string{fleetindex.HealthPressure, fleetindex.HealthOK, fleetindex.HealthStale, fleetindex.HealthNoData},
		[]string{all.Rows[0].Health, all.Rows[1].Health, all.Rows[2].Health, all.Rows[3].Health})

	for search, want := range map[string][]string{
		"ALPHA":         {"Alpha-PC"},         // hostname
		"bBbB":          {"bravo"},            // ID
		"Ubuntu":        {"Alpha-PC"},         // OS name from the inventory
		"ryzen":         {"bravo"},            // CPU model
		"i7-1165g7":     {"Alpha-PC"},         // CPU model
		"  charlie  ":   {"charlie"},          // trimmed
		"windows":       {"bravo", "charlie"}, // inventory platform, enrollment OS
		"0000-":         {"Alpha-PC", "bravo", "charlie", "Delta"},
		"nothing-there": nil,
	} {
		res := x.Devices(fleetindex.Query{Search: search})
		require.Equal(t, want, rowNames(res), "search %q", search)
		require.Equal(t, len(want), res.Total, "search %q", search)
		require.Equal(t, 4, res.Fleet)
	}

	require.Equal(t, []string{"Alpha-PC"}, list(fleetindex.Query{OS: "ubuntu 24.04"}))
	require.Equal(t, []string{"Delta"}, list(fleetindex.Query{OS: "linux"}), "A enrolled as linux but its inventory names it")
	require.Equal(t, []string{"Alpha-PC"}, list(fleetindex.Query{Health: fleetindex.HealthPressure}))
	require.Equal(t, []string{"bravo"}, list(fleetindex.Query{Health: fleetindex.HealthOK}))
	require.Equal(t, []string{"charlie"}, list(fleetindex.Query{Health: fleetindex.HealthStale}))
	require.Equal(t, []string{"Delta"}, list(fleetindex.Query{Health: fleetindex.HealthNoData}))
	require.Equal(t, []string{"Alpha-PC", "bravo"}, list(fleetindex.Query{SeenWithin: time.Hour}))
	require.Equal(t, []string{"Alpha-PC", "bravo", "Delta"}, list(fleetindex.Query{SeenWithin: 24 * time.Hour}))
	require.Equal(t, []string{"charlie"}, list(fleetindex.Query{NotSeenFor: 7 * 24 * time.Hour}))
	require.Equal(t, []string{"Delta", "charlie"}, list(fleetindex.Query{NotSeenFor: time.Hour, Sort: "seen", Desc: true}))
	require.Equal(t, []string{"bravo"}, list(fleetindex.Query{Search: "0000", OS: "Microsoft Windows 11 Pro 10.0.26100", SeenWithin: time.Hour}),
		"filters combine")

	require.Equal(t, []string{"Delta", "charlie", "bravo", "Alpha-PC"}, list(fleetindex.Query{Sort: "name", Desc: true}))
	require.Equal(t, []string{"charlie", "Delta", "Alpha-PC", "bravo"}, list(fleetindex.Query{Sort: "seen"}), "longest unseen first")
	require.Equal(t, []string{"bravo", "Alpha-PC", "Delta", "charlie"}, list(fleetindex.Query{Sort: "seen", Desc: true}))
	require.Equal(t, []string{"Alpha-PC", "bravo", "charlie", "Delta"}, list(fleetindex.Query{Sort: "memory", Desc: true}),
		"fullest memory first, devices without a sample last")
	require.Equal(t, []string{"bravo", "Alpha-PC", "charlie", "Delta"}, list(fleetindex.Query{Sort: "memory"}),
		"devices without a sample last also ascending")

	page := x.Devices(fleetindex.Query{Offset: 1, Limit: 2})
	require.Equal(t, []string{"bravo", "charlie"}, rowNames(page))
	require.Equal(t, 4, page.Total, "Total counts every match, not the page")
	require.Equal(t, []string{"Delta"}, list(fleetindex.Query{Offset: 3, Limit: 2}))
	page = x.Devices(fleetindex.Query{Offset: 10, Limit: 2})
	require.Empty(t, page.Rows)
	require.Equal(t, 4, page.Total)
	page = x.Devices(fleetindex.Query{Search: "windows", Offset: 1, Limit: 1})
	require.Equal(t, []string{"charlie"}, rowNames(page))
	require.Equal(t, 2, page.Total)
}

// Objects that cannot be decoded are skipped and not read again on every scan; once rewritten they are read.
func TestUndecodableObjectsAreReadOnce(t *testing.T) {
	b := newBucket(t)
	ctx := context.Background()
	b.put(protocol.DeviceKey("dev-bad"), []byte("{not json"))
	b.put(protocol.QuestionKey("dev-bad", "q-broken-1"), []byte("[]"))
	b.put(fleetindex.StaffKey("eve"), []byte(`{"name":"mallory"}`))
	log := &readLog{Store: b.pool}
	x := fleetindex.New(log, fleetindex.Options{})
	require.NoError(t, x.Scan(ctx))
	require.Len(t, log.take(), 3, "the first scan reads each object once")
	require.NoError(t, x.Scan(ctx))
	require.Empty(t, log.take(), "undecodable objects are not read again while unchanged")
	_, ok := x.Question("dev-bad", "q-broken-1")
	require.False(t, ok)
	_, _, ok = x.StaffAccount("mallory")
	require.False(t, ok, "a staff record is taken only under its own name")

	// The enrollment record is rewritten (a re-enrollment): its new ETag gets it read.
	b.putJSON(protocol.DeviceKey("dev-bad"), map[string]any{"deviceId": "dev-bad", "hostname": "fixed"})
	require.NoError(t, x.Scan(ctx))
	require.Equal(t, []string{protocol.DeviceKey("dev-bad")}, log.take())
	d, ok := x.Device("dev-bad")
	require.True(t, ok)
	require.Equal(t, "fixed", d.Hostname)
}
