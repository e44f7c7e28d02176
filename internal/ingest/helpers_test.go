package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/harness/promtest"
	"github.com/supportstack/supportstack/internal/harness/syncbuf"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/webserver"
)

const (
	testTenant = "acme"
	testBucket = "supportstack"
	// The operator generates these as base64url text; the server uses the text's bytes.
	testEnrollmentToken = "dGVzdC1lbnJvbGxtZW50LXRva2VuLW5vdC1hLXJlYWwtb25l"
	testSigningKey      = "c2lnbmluZy1rZXktZm9yLXRlc3RzLW9ubHktMzItYnl0ZXM"
	testAccessKey       = "ingesttest"
	testSecretKey       = "ingesttest-secret-key-0123"
)

// startSite starts a MinIO server with the bucket bootstrapped as the operator does it (versioned, retention).
func startSite(t testing.TB) *miniotest.Server {
	t.Helper()
	s := miniotest.Start(t, miniotest.Options{AccessKey: testAccessKey, SecretKey: testSecretKey})
	_, err := objectstore.EnsureBucket(context.Background(), siteClient(t, s), testBucket, 7)
	require.NoError(t, err)
	return s
}

func siteClient(t testing.TB, s *miniotest.Server) *minio.Client {
	t.Helper()
	c, err := objectstore.NewClient(objectstore.Endpoint{URL: s.URL, AccessKey: s.AccessKey, SecretKey: s.SecretKey})
	require.NoError(t, err)
	return c
}

// harness is an ingest server on a real listener in front of real MinIO servers.
type harness struct {
	t      testing.TB
	url    string
	server *Server
	reg    *prometheus.Registry
	cfg    Config
	client *http.Client
	logs   *syncbuf.Buffer
}

// testConfig is a valid configuration over the sites, rate limit off.
func testConfig(sites ...*miniotest.Server) Config {
	cfg := Config{
		StorageConfig: webserver.StorageConfig{Tenant: testTenant, Bucket: testBucket,
			AccessKey: testAccessKey, SecretKey: testSecretKey},
		EnrollmentToken:       testEnrollmentToken,
		SigningKey:            []byte(testSigningKey),
		IngestEndpoints:       []string{"https://acme-ingest.east.example.com", "https://acme-ingest.west.example.com"},
		DrainRecordsPerSecond: DefaultDrainRecordsPerSecond,
	}
	for _, s := range sites {
		cfg.Endpoints = append(cfg.Endpoints, s.URL)
	}
	return cfg
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	s, err := New(cfg, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Pool().Run(ctx) }()
	// The production server's deadlines, on a test listener.
	srv := httptest.NewUnstartedServer(s.Handler())
	srv.Config = webserver.NewServer("", s.Handler())
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
	})
	h := &harness{t: t, url: srv.URL, server: s, reg: reg, cfg: cfg, logs: logs,
		client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	require.Eventually(t, s.Pool().Ready, 10*time.Second, 20*time.Millisecond, "storage never became ready")
	return h
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errorCode decodes a protocol.Error body.
func (r response) errorCode(t testing.TB) string {
	t.Helper()
	require.Equal(t, "application/json", r.header.Get("Content-Type"), "error bodies are JSON: %s", r.body)
	var e protocol.Error
	require.NoError(t, json.Unmarshal(r.body, &e), "body: %s", r.body)
	require.NotEmpty(t, e.Message)
	return e.Code
}

func (h *harness) do(method, path, auth string, body []byte, header map[string]string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	require.NoError(h.t, err)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (h *harness) enroll(req protocol.EnrollRequest) protocol.EnrollResponse {
	h.t.Helper()
	r := h.do(http.MethodPost, protocol.PathEnroll, testEnrollmentToken, mustJSON(h.t, req), nil)
	require.Equal(h.t, http.StatusOK, r.status, "enroll: %s", r.body)
	var out protocol.EnrollResponse
	require.NoError(h.t, json.Unmarshal(r.body, &out))
	return out
}

// postBatch sends a batch gzip-compressed, as the agent does.
func (h *harness) postBatch(credential string, b protocol.Batch) response {
	h.t.Helper()
	return h.do(http.MethodPost, protocol.PathBatches, credential, gzipped(h.t, mustJSON(h.t, b)), map[string]string{"Content-Encoding": "gzip"})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

var baseTime = time.Date(2026, 11, 24, 23, 59, 58, 0, time.UTC)

// telemetry returns n perf records from seq on, one second apart.
func telemetry(seq uint64, n int) []protocol.Record {
	out := make([]protocol.Record, n)
	for i := range out {
		s := seq + uint64(i)
		out[i] = protocol.Record{Seq: s, Kind: protocol.KindPerf, Time: baseTime.Add(time.Duration(s) * time.Second),
			Data: json.RawMessage(fmt.Sprintf(`{"cpu":%d,"memFree":%d}`, s%100, 1000+s))}
	}
	return out
}

func question(seq uint64, id, text string) protocol.Record {
	return protocol.Record{Seq: seq, Kind: protocol.KindQuestion, Time: baseTime.Add(time.Duration(seq) * time.Second),
		Data: json.RawMessage(fmt.Sprintf(`{"id":%q,"text":%q}`, id, text))}
}

// objects lists every object version in a site's bucket: key -> number of versions.
func objects(t testing.TB, s *miniotest.Server) map[string]int {
	t.Helper()
	out := map[string]int{}
	for obj := range siteClient(t, s).ListObjects(context.Background(), testBucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		require.NoError(t, obj.Err)
		out[obj.Key]++
	}
	return out
}

// keys lists the current objects of a site's bucket.
func keys(t testing.TB, s *miniotest.Server) []string {
	t.Helper()
	var out []string
	for obj := range siteClient(t, s).ListObjects(context.Background(), testBucket, minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, obj.Err)
		out = append(out, obj.Key)
	}
	sort.Strings(out)
	return out
}

// read returns an object's content straight from a site, and whether it exists.
func read(t testing.TB, s *miniotest.Server, key string) ([]byte, bool) {
	t.Helper()
	obj, err := siteClient(t, s).GetObject(context.Background(), testBucket, key, minio.GetObjectOptions{})
	require.NoError(t, err)
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
		return nil, false
	}
	require.NoError(t, err)
	return b, true
}

// metric reads one series from the harness's registry; a missing series reads as 0.
func (h *harness) metric(name string, labels map[string]string) float64 {
	h.t.Helper()
	return promtest.Value(h.t, h.reg, name, labels)
}

func containsAny(s string, subs ...string) string {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return sub
		}
	}
	return ""
}

// enrollWithKey enrolls as the agent does: with the device's public key, answering a proof_required challenge
// with a signature. It returns the final answer.
func (h *harness) enrollWithKey(req protocol.EnrollRequest, key ed25519.PrivateKey) response {
	h.t.Helper()
	return h.enrollWithToken(testEnrollmentToken, req, key)
}

// enrollWithToken is enrollWithKey with another enrollment token.
func (h *harness) enrollWithToken(token string, req protocol.EnrollRequest, key ed25519.PrivateKey) response {
	h.t.Helper()
	req.PublicKey = protocol.EncodeKey(key.Public().(ed25519.PublicKey))
	r := h.do(http.MethodPost, protocol.PathEnroll, token, mustJSON(h.t, req), nil)
	if r.status != http.StatusUnauthorized {
		return r
	}
	var e protocol.Error
	require.NoError(h.t, json.Unmarshal(r.body, &e))
	if e.Code != "proof_required" {
		return r
	}
	require.NotEmpty(h.t, e.Challenge)
	req.Challenge, req.Signature = e.Challenge, protocol.SignProof(key, req.DeviceID, e.Challenge)
	return h.do(http.MethodPost, protocol.PathEnroll, token, mustJSON(h.t, req), nil)
}

func enrolled(t testing.TB, r response) protocol.EnrollResponse {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, "enroll: %s", r.body)
	var out protocol.EnrollResponse
	require.NoError(t, json.Unmarshal(r.body, &out))
	return out
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	k, err := protocol.NewDeviceKey()
	require.NoError(t, err)
	return k
}
