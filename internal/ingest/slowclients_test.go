package ingest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

// slowClient sends a request's headers at once and then its body one byte every interval, as a hostile or very
// broken client would, and reports how long the server took to answer (or to close the connection).
type slowClient struct {
	path, auth string
	method     string // POST when empty
}

// trickleInterval is the pace of a slow client's body.
const trickleInterval = 500 * time.Millisecond

type slowResult struct {
	status int // 0: the connection was closed without an answer
	after  time.Duration
	err    error
}

func (c slowClient) run(t *testing.T, base string, give time.Duration) slowResult {
	u, err := url.Parse(base)
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return slowResult{err: err}
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetDeadline(start.Add(give))
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n", method, c.path, u.Host)
	if c.auth != "" {
		head += "Authorization: Bearer " + c.auth + "\r\n"
	}
	if _, err := conn.Write([]byte(head + "\r\n")); err != nil {
		return slowResult{err: err}
	}
	answered := make(chan slowResult, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- slowResult{after: time.Since(start), err: err}
			return
		}
		resp.Body.Close()
		answered <- slowResult{status: resp.StatusCode, after: time.Since(start)}
	}()
	tick := time.NewTicker(trickleInterval)
	defer tick.Stop()
	for {
		select {
		case r := <-answered:
			return r
		case <-tick.C:
			// A write error means the server closed the connection; the reader reports it.
			_, _ = conn.Write([]byte("{"))
		}
	}
}

// serverConns counts the goroutines serving an HTTP connection in this process: the server's side of every
// connection, whoever the clients are.
func serverConns() int {
	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("net/http.(*conn).serve("))
}

// Clients that trickle their bodies cannot hold the server: an unauthenticated request is answered at once
// without its body being read, an authenticated one is cut at its read deadline, and while hundreds of them
// are connected good requests are served promptly, with goroutines and memory bounded and back to normal after.
func TestSlowClientsCannotHoldTheServer(t *testing.T) {
	site := startSite(t)
	cfg := testConfig(site)
	cfg.EnrollReadTimeout, cfg.BatchReadTimeout = 2*time.Second, 3*time.Second
	h := newHarness(t, cfg)
	dev := h.enroll(protocol.EnrollRequest{Hostname: "good-pc"})
	// Warm up connections and the ledger, then take the baseline.
	ack(t, h.postBatch(dev.Credential, protocol.Batch{DeviceID: dev.DeviceID, Records: telemetry(1, 1)}))
	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()
	var baseMem runtime.MemStats
	runtime.ReadMemStats(&baseMem)

	kinds := []struct {
		name string
		c    slowClient
		// within is when the server must have answered; status what it answers.
		within time.Duration
		status int
	}{
		{"batch without credential", slowClient{path: protocol.PathBatches}, time.Second, http.StatusUnauthorized},
		{"batch with a forged credential", slowClient{path: protocol.PathBatches, auth: "st1.e30.AAAA"}, time.Second, http.StatusUnauthorized},
		{"enroll with a wrong token", slowClient{path: protocol.PathEnroll, auth: "wrong"}, time.Second, http.StatusUnauthorized},
		{"unknown path", slowClient{path: "/v1/nothing"}, time.Second, http.StatusNotFound},
		{"health check with a body", slowClient{path: "/healthz", method: http.MethodGet}, time.Second, http.StatusBadRequest},
		{"metrics with a body", slowClient{path: "/metrics", method: http.MethodGet}, time.Second, http.StatusBadRequest},
		{"enroll with the right token", slowClient{path: protocol.PathEnroll, auth: testEnrollmentToken}, cfg.EnrollReadTimeout + 2*time.Second, http.StatusRequestTimeout},
		{"batch with a valid credential", slowClient{path: protocol.PathBatches, auth: dev.Credential}, cfg.BatchReadTimeout + 2*time.Second, http.StatusRequestTimeout},
	}
	const perKind = 60
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		peak     atomic.Int64
	)
	for _, k := range kinds {
		for range perKind {
			wg.Go(func() {
				r := k.c.run(t, h.url, k.within+5*time.Second)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case r.err != nil:
					failures = append(failures, fmt.Sprintf("%s: no answer: %v after %s", k.name, r.err, r.after))
				case r.status != k.status:
					failures = append(failures, fmt.Sprintf("%s: status %d, want %d", k.name, r.status, k.status))
				case r.after > k.within:
					failures = append(failures, fmt.Sprintf("%s: answered after %s, want within %s", k.name, r.after, k.within))
				}
			})
		}
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := int64(serverConns()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	// Meanwhile, good requests are served promptly.
	seq := uint64(2)
	var slowest time.Duration
	deadline := time.Now().Add(cfg.BatchReadTimeout)
	for time.Now().Before(deadline) {
		start := time.Now()
		require.Equal(t, seq, ack(t, h.postBatch(dev.Credential, protocol.Batch{DeviceID: dev.DeviceID, Records: telemetry(seq, 1)})))
		h.enroll(protocol.EnrollRequest{Hostname: "another-pc"})
		slowest = max(slowest, time.Since(start))
		seq++
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	close(stop)
	<-sampled
	require.Empty(t, failures)
	require.Less(t, slowest, 2*time.Second, "a good batch and enrollment took too long while slow clients were connected")
	t.Logf("%d slow clients; %d good batches, slowest with an enrollment %s; at most %d connections served at once",
		len(kinds)*perKind, seq-2, slowest, peak.Load())
	// Each slow connection costs the server one connection goroutine while it lasts, nothing more.
	require.LessOrEqual(t, peak.Load(), int64(len(kinds)*perKind+8))

	// Once they are gone, so is what they held.
	require.Eventually(t, func() bool { return serverConns() <= 2 && runtime.NumGoroutine() <= baseGoroutines+10 },
		10*time.Second, 100*time.Millisecond, "connections left: %d; goroutines %d, baseline %d", serverConns(), runtime.NumGoroutine(), baseGoroutines)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	require.Less(t, int64(after.HeapAlloc)-int64(baseMem.HeapAlloc), int64(32<<20), "heap grew by more than 32 MiB")
}
