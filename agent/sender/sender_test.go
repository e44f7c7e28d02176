package sender_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/ingesttest"
	"github.com/supportstack/supportstack/agent/sender"
	"github.com/supportstack/supportstack/agent/spool"
	"github.com/supportstack/supportstack/internal/protocol"
)

const token = "enroll-token-for-tests"

// fakeClock advances only when the sender sleeps (or the test says so), and records every sleep.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sleeps)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, timeout, 5*time.Millisecond, "waiting for %s", what)
}

func openSpool(t *testing.T) *spool.Spool {
	t.Helper()
	sp, _, err := spool.Open(spool.Options{Dir: filepath.Join(t.TempDir(), "spool"), TelemetrySyncInterval: spool.DefaultTelemetrySyncInterval})
	if err != nil {
		t.Fatalf("open spool: %v", err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func enrolled(t *testing.T, srv *ingesttest.Server) enroll.State {
	t.Helper()
	st, err := enroll.Enroll(context.Background(), &client.Client{}, srv.URL, token, nil, "test", time.Now())
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	st.EndpointsRefreshedAt = time.Now() // tests that want a refresh clear it
	return st
}

type harness struct {
	t      *testing.T
	sp     *spool.Spool
	clock  *fakeClock
	snd    *sender.Sender
	saved  chan enroll.State
	mu     sync.Mutex
	acked  []protocol.Record
	reject []protocol.Record
	stop   func()
}

func start(t *testing.T, o sender.Options) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), saved: make(chan enroll.State, 16)}
	if o.Spool == nil {
		o.Spool = openSpool(t)
	}
	h.sp = o.Spool.(*spool.Spool)
	o.Clock = h.clock
	if o.Rand == nil {
		o.Rand = func() float64 { return 0.5 }
	}
	o.SaveState = func(s enroll.State) error {
		select {
		case h.saved <- s:
		default:
		}
		return nil
	}
	o.OnAck = func(recs []protocol.Record, _ time.Time) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.acked = append(h.acked, recs...)
	}
	o.OnReject = func(r protocol.Record, _ string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.reject = append(h.reject, r)
	}
	h.snd = sender.New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.snd.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run returned %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

// fill appends n records to sp before a sender runs, so that they form one backlog.
func fill(t *testing.T, sp *spool.Spool, class spool.Class, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := range n {
		kind, data := protocol.KindPerf, fmt.Sprintf(`{"i":%d}`, i)
		if class == spool.Questions {
			kind, data = protocol.KindQuestion, fmt.Sprintf(`{"id":"q-fill-%08d","text":"question %d"}`, i, i)
		}
		seq, err := sp.Append(class, kind, time.Now(), json.RawMessage(data))
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

func (h *harness) appendN(class spool.Class, n int, tag string) []uint64 {
	h.t.Helper()
	var seqs []uint64
	for i := range n {
		kind, data := protocol.KindPerf, fmt.Sprintf(`{"tag":%q,"i":%d}`, tag, i)
		if class == spool.Questions {
			kind, data = protocol.KindQuestion, fmt.Sprintf(`{"id":"q-%s-%08d","text":"question %d"}`, tag, i, i)
		}
		seq, err := h.sp.Append(class, kind, time.Now(), json.RawMessage(data))
		if err != nil {
			h.t.Fatalf("append: %v", err)
		}
		seqs = append(seqs, seq)
	}
	h.snd.Notify()
	return seqs
}

func (h *harness) ackedSeqs() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var s []uint64
	for _, r := range h.acked {
		s = append(s, r.Seq)
	}
	return s
}

func pending(sp *spool.Spool) int {
	st := sp.Stats()
	return st.PendingRecords[spool.Questions] + st.PendingRecords[spool.Telemetry]
}

// Every appended record reaches the server exactly once, batches are in seq order, questions travel ahead of
// telemetry, and the spool ends empty. Records are appended while the sender runs.
func TestDeliversEveryRecordExactlyOnceInOrder(t *testing.T) {
	srv := ingesttest.New(t, token)
	h := start(t, sender.Options{State: enrolled(t, srv)})

	var want []uint64
	want = append(want, h.appendN(spool.Telemetry, 1500, "a")...)
	want = append(want, h.appendN(spool.Questions, 3, "a")...)
	want = append(want, h.appendN(spool.Telemetry, 1200, "b")...)
	want = append(want, h.appendN(spool.Questions, 2, "b")...)
	waitFor(t, 30*time.Second, "all records accepted and acked", func() bool {
		return srv.Accepted() == len(want) && pending(h.sp) == 0 && len(h.ackedSeqs()) >= len(want)
	})

	st := srv.Stats()
	for _, seq := range want {
		if st.AcceptCount[seq] != 1 {
			t.Errorf("seq %d accepted %d times, want once", seq, st.AcceptCount[seq])
		}
	}
	if len(st.Order) != len(want) {
		t.Fatalf("server accepted %d distinct records, want %d", len(st.Order), len(want))
	}
	for _, n := range st.BatchSizes {
		if n > 1000 {
			t.Errorf("batch of %d records, want at most 1000", n)
		}
	}
	// Within each class, delivery follows seq order.
	var lastQ, lastT uint64
	for _, seq := range st.Order {
		r, _ := srv.Record(seq)
		last := &lastT
		if r.Kind == protocol.KindQuestion {
			last = &lastQ
		}
		if seq <= *last {
			t.Fatalf("seq %d (%s) delivered after %d", seq, r.Kind, *last)
		}
		*last = seq
	}
	acked := h.ackedSeqs()
	slices.Sort(acked)
	sorted := slices.Clone(want)
	slices.Sort(sorted)
	if !slices.Equal(acked, sorted) {
		t.Errorf("OnAck saw %d records, want exactly the %d appended", len(acked), len(sorted))
	}
	if s := h.sp.Stats(); s.LastAckedSeq != slices.Max(want) {
		t.Errorf("spool LastAckedSeq = %d, want %d", s.LastAckedSeq, slices.Max(want))
	}
	if sl := h.clock.Sleeps(); len(sl) != 0 {
		t.Errorf("sender waited %v without any failure", sl)
	}
}

// 503 with Retry-After: the sender waits at least that long (measured by the injected clock), then delivers.
func TestServiceUnavailableHonoursRetryAfter(t *testing.T) {
	srv := ingesttest.New(t, token)
	srv.SetBatchHook(func(n int, _ *protocol.Batch) *ingesttest.Reply {
		if n <= 2 {
			return &ingesttest.Reply{Status: http.StatusServiceUnavailable, Code: "storage_unavailable", RetryAfter: "7"}
		}
		return nil
	})
	h := start(t, sender.Options{State: enrolled(t, srv)})
	seqs := h.appendN(spool.Telemetry, 10, "x")
	waitFor(t, 10*time.Second, "records accepted", func() bool { return srv.Accepted() == len(seqs) && pending(h.sp) == 0 })

	// Retry-After plus Rand (0.5) times a quarter of it: 7s + 0.875s.
	if got, want := h.clock.Sleeps(), []time.Duration{7875 * time.Millisecond, 7875 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("sleeps = %v, want %v (Retry-After and its jitter)", got, want)
	}
	if st := srv.Stats(); st.BatchRequests != 2+len(st.BatchSizes) {
		t.Errorf("batch requests = %d for %d accepted batches, want 2 refused ones more", st.BatchRequests, len(st.BatchSizes))
	}
}

// Network errors and 5xx without Retry-After: full-jitter exponential backoff, forever (here, 6 failures).
func TestServerErrorsBackOffExponentially(t *testing.T) {
	srv := ingesttest.New(t, token)
	srv.SetBatchHook(func(n int, _ *protocol.Batch) *ingesttest.Reply {
		if n <= 6 {
			return &ingesttest.Reply{Status: http.StatusInternalServerError}
		}
		return nil
	})
	h := start(t, sender.Options{State: enrolled(t, srv)})
	h.appendN(spool.Telemetry, 5, "x")
	waitFor(t, 10*time.Second, "records accepted", func() bool { return srv.Accepted() == 5 && pending(h.sp) == 0 })
	// Rand is fixed at 0.5: half of 1s, 2s, 4s, ...
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}
	if got := h.clock.Sleeps(); !slices.Equal(got, want) {
		t.Errorf("sleeps = %v, want %v", got, want)
	}
	if st := h.snd.Status(); st.ConsecutiveFailures != 0 || st.LastError != "" || st.LastSuccess.IsZero() {
		t.Errorf("status after recovery = %+v", st)
	}
}

// 429 with Retry-After: wait, same endpoint.
func TestTooManyRequests(t *testing.T) {
	srv := ingesttest.New(t, token)
	srv.SetBatchHook(func(n int, _ *protocol.Batch) *ingesttest.Reply {
		if n == 1 {
			return &ingesttest.Reply{Status: http.StatusTooManyRequests, Code: "rate_limited", RetryAfter: "3"}
		}
		return nil
	})
	h := start(t, sender.Options{State: enrolled(t, srv)})
	h.appendN(spool.Telemetry, 5, "x")
	waitFor(t, 10*time.Second, "records accepted", func() bool { return srv.Accepted() == 5 && pending(h.sp) == 0 })
	if got := h.clock.Sleeps(); !slices.Equal(got, []time.Duration{3375 * time.Millisecond}) {
		t.Errorf("sleeps = %v, want [3.375s]: Retry-After and its jitter", got)
	}
}

// Repeated 429s: the sender waits what the server says each time, without growing it into a backoff.
func TestRepeatedTooManyRequestsWaitRetryAfter(t *testing.T) {
	srv := ingesttest.New(t, token)
	srv.SetBatchHook(func(n int, _ *protocol.Batch) *ingesttest.Reply {
		if n <= 4 {
			return &ingesttest.Reply{Status: http.StatusTooManyRequests, Code: "rate_limited", RetryAfter: "2"}
		}
		return nil
	})
	h := start(t, sender.Options{State: enrolled(t, srv)})
	h.appendN(spool.Telemetry, 5, "x")
	waitFor(t, 10*time.Second, "records accepted", func() bool { return srv.Accepted() == 5 && pending(h.sp) == 0 })
	want := []time.Duration{2250 * time.Millisecond, 2250 * time.Millisecond, 2250 * time.Millisecond, 2250 * time.Millisecond}
	if got := h.clock.Sleeps(); !slices.Equal(got, want) {
		t.Errorf("sleeps = %v, want %v", got, want)
	}
}

// An ingest service with no endpoints configured hands out none: the device keeps using where it enrolled, and
// a refresh keeps its list while taking the drain rate.
func TestEmptyEndpointListKeepsOwn(t *testing.T) {
	srv := ingesttest.New(t, token)
	srv.SetEndpoints([]string{}, 300)
	st := enrolled(t, srv)
	if !slices.Equal(st.Endpoints, []string{srv.URL}) {
		t.Fatalf("enrollment without advertised endpoints: %v, want the enrollment URL", st.Endpoints)
	}
	st.EndpointsRefreshedAt = time.Time{}
	h := start(t, sender.Options{State: st})
	h.appendN(spool.Telemetry, 3, "x")
	waitFor(t, 10*time.Second, "records accepted", func() bool { return srv.Accepted() == 3 && pending(h.sp) == 0 })
	select {
	case saved := <-h.saved:
		if !slices.Equal(saved.Endpoints, []string{srv.URL}) || saved.MaxRecordsPerSecond != 300 {
			t.Errorf("after refresh: endpoints %v rate %d", saved.Endpoints, saved.MaxRecordsPerSecond)
		}
	default:
		t.Error("refresh not saved")
	}
}

// 413: the sender shrinks the batch and retries at once until the server takes it; everything arrives.
func TestTooLargeShrinksUntilAccepted(t *testing.T) {
	srv := ingesttest.New(t, token)
	l := protocol.DefaultLimits
	l.MaxRecords = 100
	srv.SetLimits(l)
	sp := openSpool(t)
	seqs := fill(t, sp, spool.Telemetry, 1000)
	h := start(t, sender.Options{State: enrolled(t, srv), Spool: sp})
	waitFor(t, 30*time.Second, "records accepted", func() bool { return srv.Accepted() == len(seqs) && pending(h.sp) == 0 })

	st := srv.Stats()
	for _, n := range st.BatchSizes {
		if n > 100 {
			t.Errorf("server accepted a batch of %d records over its limit", n)
		}
	}
	for _, seq := range seqs {
		if st.AcceptCount[seq] != 1 {
			t.Fatalf("seq %d accepted %d times", seq, st.AcceptCount[seq])
		}
	}
	if sl := h.clock.Sleeps(); len(sl) != 0 {
		t.Errorf("sender waited %v after 413; want an immediate retry", sl)
	}
	if st.BatchRequests <= len(st.BatchSizes) {
		t.Errorf("no 413 happened: %d requests for %d batches", st.BatchRequests, len(st.BatchSizes))
	}
}

// 401: the sender enrolls again with the stored token and device ID, saves the new credential, and retries.
func TestUnauthorizedEnrollsAgain(t *testing.T) {
	srv := ingesttest.New(t, token)
	st := enrolled(t, srv)
	h := start(t, sender.Options{State: st})
	h.appendN(spool.Telemetry, 3, "before")
	waitFor(t, 10*time.Second, "first records", func() bool { return srv.Accepted() == 3 })

	srv.RotateKey() // every credential issued so far is now refused
	h.appendN(spool.Telemetry, 3, "after")
	waitFor(t, 10*time.Second, "records after re-enrollment", func() bool { return srv.Accepted() == 6 && pending(h.sp) == 0 })

	stats := srv.Stats()
	if stats.EnrollRequests != 2 {
		t.Errorf("enroll requests = %d, want 2 (initial and after the 401)", stats.EnrollRequests)
	}
	if stats.DeviceIDs[1] != st.DeviceID {
		t.Errorf("re-enrollment got device %s, want the same %s", stats.DeviceIDs[1], st.DeviceID)
	}
	last := stats.Credentials[len(stats.Credentials)-1]
	if last == st.Credential {
		t.Errorf("batch after 401 still used the old credential")
	}
	var saved enroll.State
	select {
	case saved = <-h.saved:
	default:
		t.Fatal("new enrollment state was not saved")
	}
	if saved.Credential != last || saved.Token != token || saved.DeviceID != st.DeviceID {
		t.Errorf("saved state does not hold the new credential, the token and the device ID")
	}
}

// A token the server no longer takes: the sender keeps the records, backs off, and recovers once it does.
func TestEnrollmentRefusedKeepsRecords(t *testing.T) {
	srv := ingesttest.New(t, token)
	st := enrolled(t, srv)
	srv.RotateKey()
	refuse := true
	var mu sync.Mutex
	srv.SetEnrollHook(func(int) *ingesttest.Reply {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return &ingesttest.Reply{Status: http.StatusUnauthorized, Code: "invalid_token"}
		}
		return nil
	})
	h := start(t, sender.Options{State: st})
	h.appendN(spool.Telemetry, 4, "x")
	waitFor(t, 10*time.Second, "a few refused enrollments", func() bool { return srv.Stats().EnrollRequests >= 4 })
	if pending(h.sp) != 4 {
		t.Fatalf("pending = %d, want the 4 records kept", pending(h.sp))
	}
	if e := h.snd.Status().LastError; !strings.Contains(e, "invalid_token") {
		t.Errorf("status LastError = %q, want the refusal", e)
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	waitFor(t, 10*time.Second, "records accepted", func() bool { return srv.Accepted() == 4 && pending(h.sp) == 0 })
	if len(h.clock.Sleeps()) < 3 {
		t.Errorf("sender did not back off between refused enrollments: %v", h.clock.Sleeps())
	}
}

// deadURL is an address that refuses connections.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

// The first endpoint refuses connections: the sender moves to the second at once.
func TestFailsOverToSecondEndpoint(t *testing.T) {
	srv := ingesttest.New(t, token)
	dead := deadURL(t)
	srv.SetEndpoints([]string{dead, srv.URL}, 0)
	st := enrolled(t, srv)
	if !slices.Equal(st.Endpoints, []string{dead, srv.URL}) {
		t.Fatalf("enrollment endpoints = %v", st.Endpoints)
	}
	h := start(t, sender.Options{State: st})
	h.appendN(spool.Telemetry, 20, "x")
	waitFor(t, 10*time.Second, "records accepted", func() bool { return srv.Accepted() == 20 && pending(h.sp) == 0 })
	if sl := h.clock.Sleeps(); len(sl) != 0 {
		t.Errorf("sender waited %v before trying the second endpoint", sl)
	}
	if ep := h.snd.Status().Endpoint; ep != srv.URL {
		t.Errorf("endpoint in use = %s, want %s", ep, srv.URL)
	}
}

// While on the second endpoint, the first is tried again after PrimaryRetryInterval and used once it works.
func TestReturnsToFirstEndpoint(t *testing.T) {
	primary := ingesttest.New(t, token)
	secondary := ingesttest.New(t, token)
	var mu sync.Mutex
	down := true
	primary.SetBatchHook(func(int, *protocol.Batch) *ingesttest.Reply {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return &ingesttest.Reply{Status: http.StatusBadGateway}
		}
		return nil
	})
	primary.SetEndpoints([]string{primary.URL, secondary.URL}, 0)
	st := enrolled(t, primary)
	// Both "clusters" verify the same credentials, as the protocol requires.
	h := start(t, sender.Options{State: st, PrimaryRetryInterval: 10 * time.Minute})
	h.appendN(spool.Telemetry, 5, "a")
	waitFor(t, 10*time.Second, "records on the secondary", func() bool { return secondary.Accepted() == 5 && pending(h.sp) == 0 })

	h.appendN(spool.Telemetry, 5, "b")
	waitFor(t, 10*time.Second, "more records on the secondary", func() bool { return secondary.Accepted() == 10 && pending(h.sp) == 0 })
	if n := primary.Stats().BatchRequests; n != 1 {
		t.Errorf("primary asked %d times before the retry interval, want once", n)
	}

	mu.Lock()
	down = false
	mu.Unlock()
	h.clock.Advance(10 * time.Minute)
	h.appendN(spool.Telemetry, 5, "c")
	waitFor(t, 10*time.Second, "records on the primary", func() bool { return primary.Accepted() == 5 && pending(h.sp) == 0 })
	if ep := h.snd.Status().Endpoint; ep != primary.URL {
		t.Errorf("endpoint in use = %s, want the primary", ep)
	}
}

// The endpoint list and drain rate are fetched when due and persisted; a backlog then drains no faster than the
// advertised rate.
func TestRefreshesEndpointsAndKeepsDrainRate(t *testing.T) {
	srv := ingesttest.New(t, token)
	other := deadURL(t)
	st := enrolled(t, srv)
	st.EndpointsRefreshedAt = time.Time{}
	srv.SetEndpoints([]string{srv.URL, other}, 100)
	sp := openSpool(t)
	fill(t, sp, spool.Telemetry, 2000) // a backlog from an outage, waiting before the sender starts
	h := start(t, sender.Options{State: st, Spool: sp})
	waitFor(t, 30*time.Second, "backlog delivered", func() bool { return srv.Accepted() == 2000 && pending(sp) == 0 })

	var saved enroll.State
	select {
	case saved = <-h.saved:
	default:
		t.Fatal("refreshed endpoints were not saved")
	}
	if !slices.Equal(saved.Endpoints, []string{srv.URL, other}) || saved.MaxRecordsPerSecond != 100 || saved.EndpointsRefreshedAt.IsZero() {
		t.Errorf("saved endpoints %v rate %d refreshed %v", saved.Endpoints, saved.MaxRecordsPerSecond, saved.EndpointsRefreshedAt)
	}
	var waited time.Duration
	for _, d := range h.clock.Sleeps() {
		waited += d
	}
	// 2000 records at 100/s with one second of burst: at least 19 s of waiting.
	if waited < 19*time.Second || waited > 21*time.Second {
		t.Errorf("waited %v for 2000 records at 100/s, want about 19s", waited)
	}
}

// A record the server refuses for good is narrowed down, kept aside in RejectedDir and acked locally; the records
// around it are delivered; it is retried later and delivered once the server takes it.
func TestRefusedRecordIsKeptAsideAndRetried(t *testing.T) {
	srv := ingesttest.New(t, token)
	var mu sync.Mutex
	refuse := true
	srv.SetBatchHook(func(_ int, b *protocol.Batch) *ingesttest.Reply {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range b.Records {
			if refuse && strings.Contains(string(r.Data), "poison") {
				return &ingesttest.Reply{Status: http.StatusBadRequest, Code: "invalid_question"}
			}
		}
		return nil
	})
	rejectedDir := filepath.Join(t.TempDir(), "rejected")
	h := start(t, sender.Options{State: enrolled(t, srv), RejectedDir: rejectedDir, RejectedRetryInterval: 10 * time.Minute})
	var poisonSeq uint64
	for i := range 40 {
		data := fmt.Sprintf(`{"id":"q-%08d","text":"fine"}`, i)
		if i == 23 {
			data = fmt.Sprintf(`{"id":"q-%08d","text":"poison"}`, i)
		}
		seq, err := h.sp.Append(spool.Questions, protocol.KindQuestion, time.Now(), json.RawMessage(data))
		if err != nil {
			t.Fatal(err)
		}
		if i == 23 {
			poisonSeq = seq
		}
	}
	h.snd.Notify()
	waitFor(t, 10*time.Second, "the good records delivered", func() bool { return srv.Accepted() == 39 && pending(h.sp) == 0 })

	if _, ok := srv.Record(poisonSeq); ok {
		t.Fatal("server has the refused record")
	}
	kept, err := sender.ReadRejected(rejectedDir)
	if err != nil || len(kept) != 1 || kept[0].Record.Seq != poisonSeq || kept[0].Code != "invalid_question" || kept[0].Status != 400 {
		t.Fatalf("rejected dir holds %+v (err %v), want seq %d with its code", kept, err, poisonSeq)
	}
	if info, err := os.Stat(filepath.Join(rejectedDir, fmt.Sprintf("%020d.json", poisonSeq))); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("rejected record file: %v, mode %v", err, info.Mode())
	}
	if st := h.snd.Status(); len(st.Rejected) != 1 || st.Rejected[0].Seq != poisonSeq {
		t.Errorf("status rejected = %+v", st.Rejected)
	}
	h.mu.Lock()
	if len(h.reject) != 1 || h.reject[0].Seq != poisonSeq {
		t.Errorf("OnReject saw %v", h.reject)
	}
	h.mu.Unlock()

	// Still refused at the next retry: kept, attempt counted.
	h.clock.Advance(10 * time.Minute)
	h.snd.Notify()
	waitFor(t, 10*time.Second, "a second attempt", func() bool {
		k, _ := sender.ReadRejected(rejectedDir)
		return len(k) == 1 && k[0].Attempts == 2
	})

	mu.Lock()
	refuse = false
	mu.Unlock()
	h.clock.Advance(10 * time.Minute)
	h.snd.Notify()
	waitFor(t, 10*time.Second, "the kept record delivered", func() bool { _, ok := srv.Record(poisonSeq); return ok })
	waitFor(t, 10*time.Second, "rejected dir empty", func() bool { k, _ := sender.ReadRejected(rejectedDir); return len(k) == 0 })
	waitFor(t, 10*time.Second, "OnAck for the kept record", func() bool { return slices.Contains(h.ackedSeqs(), poisonSeq) })
	waitFor(t, 10*time.Second, "status clear", func() bool { return len(h.snd.Status().Rejected) == 0 })
}

// A batch refused as a whole (a code about no single record) stays in the spool, shows in the status and is
// retried every RejectedRetryInterval; nothing is lost.
func TestBatchRefusedAsAWholeBlocksAndIsRetried(t *testing.T) {
	srv := ingesttest.New(t, token)
	var mu sync.Mutex
	refuse := true
	srv.SetBatchHook(func(int, *protocol.Batch) *ingesttest.Reply {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return &ingesttest.Reply{Status: http.StatusForbidden, Code: "device_suspended"}
		}
		return nil
	})
	sp := openSpool(t)
	fill(t, sp, spool.Questions, 2)
	fill(t, sp, spool.Telemetry, 10)
	h := start(t, sender.Options{State: enrolled(t, srv), Spool: sp, RejectedDir: filepath.Join(t.TempDir(), "rejected"), RejectedRetryInterval: 10 * time.Minute})
	waitFor(t, 10*time.Second, "blocked status", func() bool { return h.snd.Status().Blocked != nil })
	b := h.snd.Status().Blocked
	if b.Status != 403 || b.Code != "device_suspended" || b.Records != 12 {
		t.Errorf("blocked = %+v", b)
	}
	waitFor(t, 10*time.Second, "a slow retry", func() bool { return srv.Stats().BatchRequests >= 2 })
	for _, d := range h.clock.Sleeps() {
		if d != 10*time.Minute {
			t.Errorf("retry of a refused batch after %v, want 10m", d)
		}
	}
	if pending(h.sp) != 12 {
		t.Errorf("pending = %d, want all 12 records kept in the spool", pending(h.sp))
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	waitFor(t, 10*time.Second, "records accepted", func() bool { return srv.Accepted() == 12 && pending(h.sp) == 0 })
	waitFor(t, 10*time.Second, "status clear", func() bool { return h.snd.Status().Blocked == nil })
}

// Run returns promptly when its context is cancelled, even in a long backoff or while idle.
func TestRunStopsOnCancel(t *testing.T) {
	srv := ingesttest.New(t, token)
	snd := sender.New(sender.Options{Spool: openSpool(t), State: enrolled(t, srv), IdlePoll: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- snd.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}
