package storagepool

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
)

// healthProxy forwards everything to a MinIO server but answers its health endpoint as told: the way a loaded
// server's health answers can be late while its S3 requests get through.
type healthProxy struct {
	*httptest.Server
	failNext atomic.Int64 // answer this many health checks with 503
	slow     atomic.Bool  // hold every health check for a second
	checks   atomic.Int64
}

func newHealthProxy(t *testing.T, target string) *healthProxy {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	hp := &healthProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	hp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/minio/health/cluster" {
			hp.checks.Add(1)
			if hp.slow.Load() {
				select {
				case <-time.After(time.Second):
				case <-r.Context().Done():
					return
				}
			}
			if hp.failNext.Add(-1) >= 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			hp.failNext.Store(0)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hp.Close)
	return hp
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// A health check that fails or times out while requests to the endpoint succeed is no evidence of an outage: it
// must not refuse a single good request. Consistent evidence (failed checks in a row with nothing getting
// through) still opens the breaker, and every transition is logged and counted with its cause.
func TestFailedHealthChecksAloneRefuseNothing(t *testing.T) {
	site := miniotest.Start(t, miniotest.Options{AccessKey: "pooltest", SecretKey: "pooltest-secret-key"})
	createBucket(t, site)
	proxy := newHealthProxy(t, site.URL)
	logs := &logBuffer{}
	p, reg := newPool(t, Options{
		Endpoints:      []Endpoint{{URL: proxy.URL, AccessKey: site.AccessKey, SecretKey: site.SecretKey}},
		HealthInterval: 50 * time.Millisecond,
		HealthTimeout:  200 * time.Millisecond,
		Logger:         slog.New(slog.NewJSONHandler(logs, nil)),
	}, true)
	require.Eventually(t, p.Ready, 10*time.Second, 20*time.Millisecond)
	ctx := context.Background()
	write := func(i int) {
		t.Helper()
		_, err := p.Put(ctx, fmt.Sprintf("k%d.json", i), []byte(`{}`), "application/json")
		require.NoError(t, err, "write %d refused; breaker %+v", i, p.State()[0])
	}

	// Two failed checks in a row, writes going on: nothing changes.
	proxy.failNext.Store(2)
	for i := 0; proxy.failNext.Load() > 0; i++ {
		write(i)
		time.Sleep(10 * time.Millisecond)
	}
	// Checks that time out on a busy server while its writes succeed: nothing changes either.
	proxy.slow.Store(true)
	start := proxy.checks.Load()
	for i := 0; proxy.checks.Load() < start+6; i++ {
		write(1000 + i)
		time.Sleep(10 * time.Millisecond)
	}
	require.Equal(t, Closed, p.State()[0].State)
	require.Zero(t, metricValue(t, reg, "supportstack_storage_breaker_transitions_total",
		map[string]string{"endpoint": proxy.URL, "from": "closed", "to": "open", "cause": "health-check-failed"}))
	require.Positive(t, metricValue(t, reg, "supportstack_storage_stale_health_failures_total", map[string]string{"endpoint": proxy.URL}))

	// With no request getting through, checks failing in a row are evidence: the breaker opens, once.
	require.Eventually(t, func() bool { return p.State()[0].State == Open }, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, 1.0, metricValue(t, reg, "supportstack_storage_breaker_transitions_total",
		map[string]string{"endpoint": proxy.URL, "from": "closed", "to": "open", "cause": "health-check-failed"}))
	require.Contains(t, logs.String(), `"msg":"Storage endpoint breaker changed","endpoint":"`+proxy.URL+`","from":"closed","to":"open","cause":"health-check-failed"`)

	// A passed check closes it again, and says why.
	proxy.slow.Store(false)
	require.Eventually(t, func() bool { return p.State()[0].State == Closed }, 5*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		return metricValue(t, reg, "supportstack_storage_breaker_transitions_total",
			map[string]string{"endpoint": proxy.URL, "from": "open", "to": "closed", "cause": "health-check-passed"})+
			metricValue(t, reg, "supportstack_storage_breaker_transitions_total",
				map[string]string{"endpoint": proxy.URL, "from": "half-open", "to": "closed", "cause": "request-succeeded"}) >= 1
	}, 5*time.Second, 20*time.Millisecond)
	write(9999)
}
