package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"
)

func ack(t *testing.T, r response) uint64 {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var a protocol.Ack
	require.NoError(t, json.Unmarshal(r.body, &a))
	return a.AckedThroughSeq
}

// decodeBatchObject reads a stored batch: gzip NDJSON, one record per line.
func decodeBatchObject(t *testing.T, data []byte) []protocol.Record {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	var out []protocol.Record
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r protocol.Record
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&r), "line %q", sc.Text())
		out = append(out, r)
	}
	require.NoError(t, sc.Err())
	return out
}

func requireSameRecord(t *testing.T, want, got protocol.Record) {
	t.Helper()
	require.Equal(t, want.Seq, got.Seq)
	require.Equal(t, want.Kind, got.Kind)
	require.True(t, want.Time.Equal(got.Time), "time %s != %s", want.Time, got.Time)
	require.JSONEq(t, string(want.Data), string(got.Data))
}

func TestGoodBatchIsStoredAtDeterministicKeys(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1"})
	id := dev.DeviceID

	records := telemetry(1, 10)
	records[1] = protocol.Record{Seq: 2, Kind: protocol.KindInventory, Time: baseTime.Add(2 * time.Second), Data: json.RawMessage(`{"cpu":"old"}`)}
	records[3] = question(4, "q-11111111", "why is my PC slow?")
	records[4].Kind, records[4].Data = protocol.KindEvent, json.RawMessage(`{"type":"boot"}`)
	records[6] = protocol.Record{Seq: 7, Kind: protocol.KindInventory, Time: baseTime.Add(7 * time.Second), Data: json.RawMessage(`{"cpu":"new", "ram": 16}`)}
	records[7].Kind, records[7].Data = protocol.KindGap, mustJSON(t, protocol.Gap{Class: "telemetry", FromSeq: 100, ToSeq: 120, Count: 21, Reason: "evicted"})
	records[8] = question(9, "q-22222222", "the printer is offline")
	records[9].Seq = 15 // seqs need not be contiguous
	b := protocol.Batch{DeviceID: id, Records: records}

	require.Equal(t, uint64(15), ack(t, h.postBatch(dev.Credential, b)))

	// The batch, dated by its first record (23:59:59 on the 24th, though later records fall on the 25th).
	batchKey := protocol.BatchKey(id, records[0].Time, 1, 15)
	require.Contains(t, batchKey, "/records/2026/11/24/")
	batchData := mustRead(t, site, batchKey)
	stored := decodeBatchObject(t, batchData)
	require.Len(t, stored, len(records))
	for i := range records {
		requireSameRecord(t, records[i], stored[i])
	}

	// Each question on its own, the newest inventory as the latest.
	for _, q := range []struct {
		rec protocol.Record
		id  string
	}{{records[3], "q-11111111"}, {records[8], "q-22222222"}} {
		data, ok := read(t, site, protocol.QuestionKey(id, q.id))
		require.True(t, ok, "question %s", q.id)
		var got protocol.Record
		require.NoError(t, json.Unmarshal(data, &got))
		requireSameRecord(t, q.rec, got)
		parsed, err := protocol.ParseQuestion(got.Data)
		require.NoError(t, err)
		require.Equal(t, q.id, parsed.ID)
	}
	invKey := protocol.InventoryKey(id, records[6].Time, 7)
	invData := mustRead(t, site, invKey)
	var inv protocol.Record
	require.NoError(t, json.Unmarshal(invData, &inv))
	requireSameRecord(t, records[6], inv)

	want := []string{protocol.DeviceKey(id), batchKey, invKey, protocol.LedgerKey(id),
		protocol.QuestionKey(id, "q-11111111"), protocol.QuestionKey(id, "q-22222222")}
	require.ElementsMatch(t, want, keys(t, site))

	// A retried identical batch (its ack was lost) is acknowledged again and finds its objects stored: no new
	// keys, no new versions of the write-once ones.
	require.Equal(t, uint64(15), ack(t, h.do(http.MethodPost, protocol.PathBatches, dev.Credential, mustJSON(t, b), nil)))
	require.ElementsMatch(t, want, keys(t, site))
	require.Equal(t, batchData, mustRead(t, site, batchKey))
	require.Equal(t, invData, mustRead(t, site, invKey))
	require.Equal(t, 1, objects(t, site)[batchKey], "the retry wrote the batch again")
	require.Equal(t, 1, objects(t, site)[invKey], "the retry wrote the inventory again")
	require.Equal(t, 1, objects(t, site)[protocol.QuestionKey(id, "q-11111111")], "the retry wrote a question again")

	// The next batch, uncompressed, lands under its own key. Its inventory record is dated before the stored
	// one (a late record, or one another site took): it is kept, and the newest inventory is still the newest.
	next := telemetry(16, 2)
	next[1] = protocol.Record{Seq: 17, Kind: protocol.KindInventory, Time: baseTime.Add(time.Second), Data: json.RawMessage(`{"cpu":"older"}`)}
	require.Equal(t, uint64(17), ack(t, h.do(http.MethodPost, protocol.PathBatches, dev.Credential,
		mustJSON(t, protocol.Batch{DeviceID: id, Records: next}), nil)))
	require.Len(t, keys(t, site), len(want)+2)
	var inventories []string
	for _, k := range keys(t, site) {
		if strings.HasPrefix(k, protocol.InventoryPrefix(id)) {
			inventories = append(inventories, k)
		}
	}
	slices.Sort(inventories)
	require.Equal(t, []string{protocol.InventoryKey(id, next[1].Time, 17), invKey}, inventories,
		"the newest inventory is the last key, whatever order the records came in")

	require.Equal(t, 22.0, h.metric("supportstack_ingest_records_acked_total", nil))
	require.Equal(t, 3.0, h.metric("supportstack_ingest_requests_total", map[string]string{"route": "batches", "code": "200"}))
	require.Positive(t, h.metric("supportstack_ingest_stored_bytes_total", map[string]string{"object": "batch"}))
	require.Equal(t, 3.0, h.metric("supportstack_ingest_storage_write_seconds", map[string]string{"object": "batch", "result": "ok"}))
	require.Empty(t, containsAny(h.logs.String(), dev.Credential, "why is my PC slow", "printer", `"cpu"`), "the log shows a secret or a payload")
}

func mustRead(t *testing.T, s *miniotest.Server, key string) []byte {
	t.Helper()
	b, ok := read(t, s, key)
	require.True(t, ok, "no object at %s", key)
	return b
}

func TestStorageOutage(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1"})
	b := protocol.Batch{DeviceID: dev.DeviceID, Records: append(telemetry(1, 4), question(5, "q-33333333", "is it down?"))}

	site.Stop()
	r := h.postBatch(dev.Credential, b)
	require.Equal(t, http.StatusServiceUnavailable, r.status, "body: %s", r.body)
	require.Equal(t, "storage_unavailable", r.errorCode(t))
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", r.header.Get("Retry-After"))
	require.GreaterOrEqual(t, secs, 1)
	require.NotContains(t, string(r.body), "ackedThroughSeq")

	// No credential is handed out when its device record cannot be written.
	r = h.do(http.MethodPost, protocol.PathEnroll, testEnrollmentToken, mustJSON(t, protocol.EnrollRequest{Hostname: "pc-2"}), nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Equal(t, "storage_unavailable", r.errorCode(t))
	require.NotEmpty(t, r.header.Get("Retry-After"))

	require.Eventually(t, func() bool {
		return h.do(http.MethodGet, "/readyz", "", nil, nil).status == http.StatusServiceUnavailable
	}, 10*time.Second, 50*time.Millisecond, "readyz stays ready without storage")
	require.Equal(t, 1.0, h.metric("supportstack_storage_breaker_state", map[string]string{"endpoint": site.URL, "state": "open"}))

	require.NoError(t, site.Restart())
	require.Equal(t, []string{protocol.DeviceKey(dev.DeviceID)}, keys(t, site), "nothing of the refused batch was stored")
	require.Eventually(t, func() bool {
		r := h.postBatch(dev.Credential, b)
		require.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, r.status, "body: %s", r.body)
		return r.status == http.StatusOK && ack(t, r) == 5
	}, 15*time.Second, 100*time.Millisecond)
	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/readyz", "", nil, nil).status)
	mustRead(t, site, protocol.QuestionKey(dev.DeviceID, "q-33333333"))
	mustRead(t, site, protocol.BatchKey(dev.DeviceID, b.Records[0].Time, 1, 5))
	require.Equal(t, 5.0, h.metric("supportstack_ingest_records_acked_total", nil), "acked once, after the outage")
}

// With two sites, a failure of the first costs the agents nothing: every batch is acknowledged, stored on the
// second, and once the first is back new batches go to it again.
func TestFallbackToPeerStorage(t *testing.T) {
	first, second := startSite(t), startSite(t)
	h := newHarness(t, testConfig(first, second))
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1"})
	seq := uint64(1)
	send := func() string {
		t.Helper()
		recs := telemetry(seq, 5)
		require.Equal(t, seq+4, ack(t, h.postBatch(dev.Credential, protocol.Batch{DeviceID: dev.DeviceID, Records: recs})))
		seq += 5
		return protocol.BatchKey(dev.DeviceID, recs[0].Time, recs[0].Seq, recs[4].Seq)
	}

	k := send()
	mustRead(t, first, k)
	_, onSecond := read(t, second, k)
	require.False(t, onSecond)

	first.Stop()
	k = send() // the very first batch of the outage is acknowledged, stored on the second site
	mustRead(t, second, k)
	require.Eventually(t, func() bool { return h.server.Pool().State()[0].State == storagepool.Open }, 5*time.Second, 20*time.Millisecond)
	for range 5 {
		mustRead(t, second, send())
	}
	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/readyz", "", nil, nil).status, "the peer's storage keeps ingest ready")

	require.NoError(t, first.Restart())
	require.Eventually(t, func() bool {
		k := send()
		_, ok := read(t, first, k)
		return ok
	}, 10*time.Second, 100*time.Millisecond, "writes never returned to the first site")
	mustRead(t, first, send())
	require.Zero(t, h.metric("supportstack_ingest_requests_total", map[string]string{"route": "batches", "code": "503"}))
}

func TestRateLimit(t *testing.T) {
	site := startSite(t)
	// The limiter runs on a clock that only the test moves: on a loaded machine the requests below can be
	// seconds apart in real time, which would refill the bucket and let the limited batch through.
	clock := &manualClock{now: time.Now()}
	cfg := testConfig(site)
	cfg.MaxRecordsPerSecond, cfg.RecordsBurst = 5, 10
	cfg.Limits = protocol.Limits{MaxRecords: 10}
	cfg.Now = clock.Now
	h := newHarness(t, cfg)
	a := h.enroll(protocol.EnrollRequest{Hostname: "pc-a"})
	b := h.enroll(protocol.EnrollRequest{Hostname: "pc-b"})

	require.Equal(t, uint64(10), ack(t, h.postBatch(a.Credential, protocol.Batch{DeviceID: a.DeviceID, Records: telemetry(1, 10)})))
	limited := protocol.Batch{DeviceID: a.DeviceID, Records: telemetry(11, 10)}
	retryAfter := func(r response) int {
		t.Helper()
		require.Equal(t, http.StatusTooManyRequests, r.status, "body: %s", r.body)
		require.Equal(t, "rate_limited", r.errorCode(t))
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		require.NoError(t, err, "Retry-After %q", r.header.Get("Retry-After"))
		return secs
	}
	secs := retryAfter(h.postBatch(a.Credential, limited))
	require.Equal(t, 2, secs, "10 records at 5/s")
	limitedKey := protocol.BatchKey(a.DeviceID, limited.Records[0].Time, 11, 20)
	_, stored := read(t, site, limitedKey)
	require.False(t, stored, "a refused batch is not stored")

	// Each device has its own budget.
	require.Equal(t, uint64(10), ack(t, h.postBatch(b.Credential, protocol.Batch{DeviceID: b.DeviceID, Records: telemetry(1, 10)})))

	// Before Retry-After has passed the batch is still refused (and the refusal took no tokens) ...
	clock.Advance(time.Duration(secs-1) * time.Second)
	require.Equal(t, 1, retryAfter(h.postBatch(a.Credential, limited)))
	_, stored = read(t, site, limitedKey)
	require.False(t, stored, "a refused batch is not stored")

	// ... and after Retry-After it goes through.
	clock.Advance(time.Second)
	require.Equal(t, uint64(20), ack(t, h.postBatch(a.Credential, limited)))
	mustRead(t, site, limitedKey)
	require.True(t, strings.Contains(h.logs.String(), `"code":"rate_limited"`))
}

// manualClock stands still until the test advances it. It is safe for concurrent use.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fullDisk is a proxy in front of a MinIO server that, once full is set, answers every write as a full disk does
// (507 XMinioStorageFull) while reads get through.
func fullDisk(t *testing.T, target string, full *atomic.Bool) string {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if full.Load() && (r.Method == http.MethodPut || r.Method == http.MethodPost) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusInsufficientStorage)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>XMinioStorageFull</Code><Message>Storage backend has reached its minimum free drive threshold.</Message></Error>`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A storage endpoint that serves reads but refuses writes (a full disk) costs no acknowledgement. The ledger's
// conditional write goes only to the endpoint its ETag came from, and the claim moves to the peer's ledger when
// that endpoint fails; the breaker opens on failed writes however many reads succeed between them; every batch
// is stored on the peer's storage.
func TestFullDiskMovesWritesToThePeer(t *testing.T) {
	first, second := startSite(t), startSite(t)
	cfg := testConfig(first, second)
	var full atomic.Bool
	cfg.Endpoints[0] = fullDisk(t, first.URL, &full)
	h := newHarness(t, cfg)
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1"})
	post := func(seq uint64) {
		t.Helper()
		require.Equal(t, seq+4, ack(t, h.postBatch(dev.Credential, protocol.Batch{DeviceID: dev.DeviceID, Records: telemetry(seq, 5)})))
	}
	post(1)
	post(6)
	// The peer's storage has a ledger of its own for the device (its ingest took batches 1-10 in a failover),
	// with another ETag than this site's.
	_, err := siteClient(t, second).PutObject(context.Background(), testBucket, protocol.LedgerKey(dev.DeviceID),
		strings.NewReader(`{"deviceId":"`+dev.DeviceID+`","acked":[[1,10]]}`), -1, minio.PutObjectOptions{})
	require.NoError(t, err)

	full.Store(true)
	for i := range 10 {
		post(uint64(11 + 5*i))
	}
	require.Equal(t, storagepool.Open, h.server.Pool().State()[0].State, "failed writes open the breaker")
	require.Zero(t, h.metric("supportstack_ingest_requests_total", map[string]string{"route": "batches", "code": "503"}))
	got := 0
	for _, k := range keys(t, second) {
		if _, _, ok := protocol.ParseBatchKey(dev.DeviceID, k); ok {
			got++
		}
	}
	require.Equal(t, 10, got, "the batches of the full-disk period are on the peer's storage")
}

// The storage honours conditional writes, and ingest says so in its metrics.
func TestConditionalWritesAreChecked(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	require.Equal(t, -1.0, h.metric("supportstack_ingest_conditional_writes_supported", nil))
	h.server.checkConditionalWrites(context.Background())
	require.Equal(t, 1.0, h.metric("supportstack_ingest_conditional_writes_supported", nil))
}
