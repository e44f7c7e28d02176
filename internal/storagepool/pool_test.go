package storagepool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/harness/promtest"
	"github.com/supportstack/supportstack/internal/objectstore"
)

const bucket = "supportstack"

// twoSites starts two MinIO servers with the same credentials and the bucket on both, as replication keeps them.
func twoSites(t *testing.T) (first, second *miniotest.Server) {
	t.Helper()
	opts := miniotest.Options{AccessKey: "pooltest", SecretKey: "pooltest-secret-key"}
	first, second = miniotest.Start(t, opts), miniotest.Start(t, opts)
	for _, s := range []*miniotest.Server{first, second} {
		createBucket(t, s)
	}
	return first, second
}

func createBucket(t *testing.T, s *miniotest.Server) {
	t.Helper()
	_, err := objectstore.EnsureBucket(context.Background(), client(t, s), bucket, 7)
	require.NoError(t, err)
}

func client(t *testing.T, s *miniotest.Server) *minio.Client {
	t.Helper()
	c, err := objectstore.NewClient(objectstore.Endpoint{URL: s.URL, AccessKey: s.AccessKey, SecretKey: s.SecretKey})
	require.NoError(t, err)
	return c
}

func endpointOf(s *miniotest.Server) Endpoint {
	return Endpoint{URL: s.URL, AccessKey: s.AccessKey, SecretKey: s.SecretKey}
}

// newPool builds a pool over the servers and runs its health loop until the test ends.
func newPool(t *testing.T, o Options, run bool) (*Pool, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Bucket, o.Registerer = bucket, reg
	p, err := New(o)
	require.NoError(t, err)
	if run {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); p.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return p, reg
}

// objectOn reads key straight from one server, bypassing the pool.
func objectOn(t *testing.T, s *miniotest.Server, key string) (string, bool) {
	t.Helper()
	obj, err := client(t, s).GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	require.NoError(t, err)
	b, err := io.ReadAll(obj)
	if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
		return "", false
	}
	require.NoError(t, err)
	return string(b), true
}

func attempts(t *testing.T, reg *prometheus.Registry, url, op string) float64 {
	return metricValue(t, reg, "supportstack_storage_attempts_total", map[string]string{"endpoint": url, "op": op})
}

// metricValue reads one counter or gauge from the registry; a series that does not exist reads as 0.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return promtest.Value(t, reg, name, labels)
}

func TestFailoverAndFailback(t *testing.T) {
	first, second := twoSites(t)
	switches := make(chan Switch, 10)
	p, reg := newPool(t, Options{Endpoints: []Endpoint{endpointOf(first), endpointOf(second)},
		OnSwitch: func(s Switch) { switches <- s }}, true)
	ctx := context.Background()
	require.Eventually(t, p.Ready, 10*time.Second, 20*time.Millisecond)

	got, err := p.Put(ctx, "a.json", []byte(`{"n":1}`), "application/json")
	require.NoError(t, err)
	require.Equal(t, first.URL, got)
	body, ok := objectOn(t, first, "a.json")
	require.True(t, ok)
	require.Equal(t, `{"n":1}`, body)
	_, ok = objectOn(t, second, "a.json")
	require.False(t, ok, "a write goes to the first endpoint only")

	// The first site fails: the very next write falls through to the second inside the same call.
	first.Stop()
	failing := time.Now()
	got, err = p.Put(ctx, "b.json", []byte(`{"n":2}`), "application/json")
	require.NoError(t, err)
	require.Equal(t, second.URL, got)
	// The pool reports the move once, with how long writes could not be taken.
	var sw Switch
	select {
	case sw = <-switches:
	case <-time.After(5 * time.Second):
		require.Fail(t, "no switch reported")
	}
	require.Equal(t, first.URL, sw.From)
	require.Equal(t, second.URL, sw.To)
	require.False(t, sw.FailedAt.Before(failing))
	require.False(t, sw.ResumedAt.Before(sw.FailedAt))
	require.Less(t, sw.ResumedAt.Sub(sw.FailedAt), 5*time.Second)
	body, ok = objectOn(t, second, "b.json")
	require.True(t, ok)
	require.Equal(t, `{"n":2}`, body)

	// The health loop opens the first breaker; from then on writes skip the first endpoint without trying it.
	require.Eventually(t, func() bool { return p.State()[0].State == Open }, 5*time.Second, 20*time.Millisecond)
	require.NotEmpty(t, p.State()[0].LastError)
	before := attempts(t, reg, first.URL, "put")
	for i := range 10 {
		got, err := p.Put(ctx, fmt.Sprintf("c%d.json", i), []byte(`{}`), "application/json")
		require.NoError(t, err)
		require.Equal(t, second.URL, got)
	}
	// Failing health checks keep postponing the half-open probe, so the first endpoint saw no request.
	require.Equal(t, Open, p.State()[0].State)
	require.Equal(t, before, attempts(t, reg, first.URL, "put"), "an open breaker sends no requests")
	require.True(t, p.Ready(), "one healthy endpoint is enough")
	require.Equal(t, 1.0, metricValue(t, reg, "supportstack_storage_breaker_state", map[string]string{"endpoint": first.URL, "state": "open"}))
	require.Equal(t, 0.0, metricValue(t, reg, "supportstack_storage_breaker_state", map[string]string{"endpoint": first.URL, "state": "closed"}))

	// The first site recovers: writes return to it, and none fails on the way.
	require.NoError(t, first.Restart())
	n := 0
	require.Eventually(t, func() bool {
		n++
		got, err := p.Put(ctx, fmt.Sprintf("d%d.json", n), []byte(`{}`), "application/json")
		require.NoError(t, err)
		return got == first.URL
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, Closed, p.State()[0].State)
	_, ok = objectOn(t, first, fmt.Sprintf("d%d.json", n))
	require.True(t, ok)
	require.Empty(t, switches, "one outage, one switch")

	// A second outage is a second switch.
	first.Stop()
	_, err = p.Put(ctx, "e.json", []byte(`{}`), "application/json")
	require.NoError(t, err)
	select {
	case sw2 := <-switches:
		require.True(t, sw2.FailedAt.After(sw.ResumedAt))
	case <-time.After(5 * time.Second):
		require.Fail(t, "no switch reported for the second outage")
	}
}

func TestBothDownIsUnavailableQuickly(t *testing.T) {
	first, second := twoSites(t)
	p, _ := newPool(t, Options{Endpoints: []Endpoint{endpointOf(first), endpointOf(second)}}, true)
	ctx := context.Background()
	_, err := p.Put(ctx, "before.json", []byte(`{}`), "application/json")
	require.NoError(t, err)

	first.Stop()
	second.Stop()
	start := time.Now()
	_, err = p.Put(ctx, "lost.json", []byte(`{}`), "application/json")
	require.ErrorIs(t, err, ErrUnavailable)
	require.Less(t, time.Since(start), 15*time.Second)
	require.Contains(t, err.Error(), first.URL)
	require.Contains(t, err.Error(), second.URL)

	_, err = p.Get(ctx, "before.json", 1<<20)
	require.ErrorIs(t, err, ErrUnavailable)
	_, err = p.List(ctx, ListOptions{Recursive: true, Limit: 10})
	require.ErrorIs(t, err, ErrUnavailable)
	require.Eventually(t, func() bool { return !p.Ready() }, 5*time.Second, 20*time.Millisecond)

	// Once the breakers are open, a call fails without waiting on any endpoint.
	start = time.Now()
	_, err = p.Put(ctx, "lost.json", []byte(`{}`), "application/json")
	require.ErrorIs(t, err, ErrUnavailable)
	require.Contains(t, err.Error(), "circuit open")
	require.Less(t, time.Since(start), time.Second)

	require.NoError(t, second.Restart())
	require.Eventually(t, p.Ready, 10*time.Second, 20*time.Millisecond)
	got, err := p.Put(ctx, "after.json", []byte(`{}`), "application/json")
	require.NoError(t, err)
	require.Equal(t, second.URL, got)
}

// A server that accepts connections and never answers holds a request only for RequestTimeout, and one such
// timeout opens its breaker, without any health check: a hung server costs one request timeout, not three.
func TestHungEndpointTimesOut(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { hung.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // read nothing, answer nothing
		}
	}()
	second := miniotest.Start(t, miniotest.Options{})
	createBucket(t, second)
	hungURL := "http://" + hung.Addr().String()
	p, reg := newPool(t, Options{
		Endpoints:      []Endpoint{{URL: hungURL, AccessKey: second.AccessKey, SecretKey: second.SecretKey}, endpointOf(second)},
		RequestTimeout: 300 * time.Millisecond,
		OpenFor:        time.Minute,
	}, false)

	start := time.Now()
	got, err := p.Put(context.Background(), "k0", []byte(`{}`), "application/json")
	require.NoError(t, err)
	require.Equal(t, second.URL, got)
	require.Less(t, time.Since(start), 5*time.Second)
	require.Equal(t, Open, p.State()[0].State, "one timeout opens the breaker")
	require.Equal(t, 1.0, attempts(t, reg, hungURL, "put"))
	require.Equal(t, 1.0, metricValue(t, reg, "supportstack_storage_failures_total", map[string]string{"endpoint": hungURL, "op": "put"}))

	for i := 1; i < 4; i++ {
		start := time.Now()
		_, err = p.Put(context.Background(), fmt.Sprintf("k%d", i), []byte(`{}`), "application/json")
		require.NoError(t, err)
		require.Less(t, time.Since(start), 300*time.Millisecond, "an open breaker is skipped, not waited on")
	}
	require.Equal(t, 1.0, attempts(t, reg, hungURL, "put"))
}

func TestReadsFallBackButNotFoundIsAnAnswer(t *testing.T) {
	first, second := twoSites(t)
	p, _ := newPool(t, Options{Endpoints: []Endpoint{endpointOf(first), endpointOf(second)}}, false)
	ctx := context.Background()
	for _, s := range []*miniotest.Server{first, second} {
		for _, k := range []string{"q/1.json", "q/2.json", "q/3.json", "other/x.json"} {
			_, err := client(t, s).PutObject(ctx, bucket, k, strings.NewReader(s.URL), -1, minio.PutObjectOptions{})
			require.NoError(t, err)
		}
	}
	_, err := client(t, second).PutObject(ctx, bucket, "only-second.json", strings.NewReader("x"), -1, minio.PutObjectOptions{})
	require.NoError(t, err)

	b, err := p.Get(ctx, "q/1.json", 1<<20)
	require.NoError(t, err)
	require.Equal(t, first.URL, string(b))
	keys, err := p.List(ctx, ListOptions{Prefix: "q/", Recursive: true, Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"q/1.json", "q/2.json"}, keys)

	// Missing on the first endpoint is an answer: the second is its replica, not a second opinion.
	_, err = p.Get(ctx, "only-second.json", 1<<20)
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, Closed, p.State()[0].State)
	require.Zero(t, p.State()[0].Failures)

	_, err = p.Get(ctx, "q/1.json", 3)
	require.ErrorIs(t, err, ErrTooLarge)

	first.Stop()
	b, err = p.Get(ctx, "q/1.json", 1<<20)
	require.NoError(t, err)
	require.Equal(t, second.URL, string(b))
	keys, err = p.List(ctx, ListOptions{Prefix: "q/", Recursive: true, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []string{"q/1.json", "q/2.json", "q/3.json"}, keys)
	require.Equal(t, 2, p.State()[0].Failures)
}

func TestCallerCancellationIsNoEndpointFailure(t *testing.T) {
	first, second := twoSites(t)
	p, _ := newPool(t, Options{Endpoints: []Endpoint{endpointOf(first), endpointOf(second)}}, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Put(ctx, "x.json", []byte(`{}`), "application/json")
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, errors.Is(err, ErrUnavailable))
	for _, s := range p.State() {
		require.Equal(t, Closed, s.State)
		require.Zero(t, s.Failures)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	ep := Endpoint{URL: "http://127.0.0.1:9000", AccessKey: "a", SecretKey: "b"}
	tests := map[string]struct {
		o    Options
		want string
	}{
		"no endpoints":   {Options{Bucket: "b"}, "no storage endpoints"},
		"no bucket":      {Options{Endpoints: []Endpoint{ep}}, "no bucket"},
		"listed twice":   {Options{Bucket: "b", Endpoints: []Endpoint{ep, ep}}, "listed twice"},
		"not a URL":      {Options{Bucket: "b", Endpoints: []Endpoint{{URL: "minio:9000"}}}, "want http(s)://host[:port]"},
		"unknown scheme": {Options{Bucket: "b", Endpoints: []Endpoint{{URL: "ftp://minio:9000"}}}, "want http(s)://host[:port]"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.o)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestRetryAfter(t *testing.T) {
	ep := Endpoint{URL: "http://127.0.0.1:9000"}
	for _, tc := range []struct {
		openFor, interval, want time.Duration
	}{
		{0, 0, time.Second},
		{5 * time.Second, 3 * time.Second, 3 * time.Second},
		{1500 * time.Millisecond, 10 * time.Second, 2 * time.Second},
		{100 * time.Millisecond, 100 * time.Millisecond, time.Second},
	} {
		p, err := New(Options{Bucket: "b", Endpoints: []Endpoint{ep}, OpenFor: tc.openFor, HealthInterval: tc.interval})
		require.NoError(t, err)
		require.Equal(t, tc.want, p.RetryAfter(), "openFor %s interval %s", tc.openFor, tc.interval)
	}
}
