package dashboard

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/webserver"
)

// The dashboard reads through the same storage pool as ingest: with its own cluster's storage stopped it keeps
// serving from the peer's, says which endpoint is unreachable, and stays ready.
func TestDashboardFallsBackToThePeersStorage(t *testing.T) {
	ctx := context.Background()
	opts := miniotest.Options{AccessKey: "dashtest", SecretKey: "dashtest-secret-key"}
	own, peer := miniotest.Start(t, opts), miniotest.Start(t, opts)
	for _, s := range []*miniotest.Server{own, peer} {
		mc, err := objectstore.NewClient(objectstore.Endpoint{URL: s.URL, AccessKey: s.AccessKey, SecretKey: s.SecretKey})
		require.NoError(t, err)
		_, err = objectstore.EnsureBucket(ctx, mc, "supportstack", 7)
		require.NoError(t, err)
		// Replication keeps both sides equal; here each gets the same question by hand.
		_, err = mc.PutObject(ctx, "supportstack", "questions/d1/q1.json", strings.NewReader("{}"), 2, minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	get := serve(t, Config{DisplayName: "Acme IT", StorageConfig: webserver.StorageConfig{Tenant: "acme",
		Bucket: "supportstack", Endpoints: []string{own.URL, peer.URL}, AccessKey: own.AccessKey, SecretKey: own.SecretKey}})

	// A dashboard the operator pointed at the peer's copy first (a declared failover, not yet failed back) says
	// so while both copies answer: the banner follows which copy is this cluster's, not the order.
	onPeer := serve(t, Config{DisplayName: "Acme IT", StorageConfig: webserver.StorageConfig{Tenant: "acme",
		Bucket: "supportstack", Endpoints: []string{peer.URL, own.URL}, Local: own.URL, AccessKey: own.AccessKey, SecretKey: own.SecretKey}})
	code, body := onPeer("/")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `<span class="ok" id="storage">`+peer.URL)
	require.Contains(t, body, `id="failover-banner"`)

	code, body = get("/")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `<span class="ok" id="storage">`+own.URL)
	require.Contains(t, body, `<div class="num" id="questions">1</div>`)
	require.NotContains(t, body, `id="failover-banner"`, "no banner while the own storage serves")

	own.Stop()
	require.Eventually(t, func() bool {
		code, body := get("/status")
		return code == http.StatusOK && strings.Count(body, "unreachable") == 1
	}, 20*time.Second, 100*time.Millisecond, "the status page never showed the own storage down")
	code, body = get("/")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `<span class="ok" id="storage">`+peer.URL, "the page is read from the peer's storage")
	require.Contains(t, body, `id="failover-banner"`, "the page says it is served from the peer's copy")
	_, status := get("/status")
	require.Contains(t, status, `id="failover-banner"`)
	require.Contains(t, body, `<div class="num" id="questions">1</div>`)
	code, _ = get("/readyz")
	require.Equal(t, http.StatusOK, code, "the peer's storage keeps the dashboard ready")

	peer.Stop()
	require.Eventually(t, func() bool { code, _ := get("/readyz"); return code == http.StatusServiceUnavailable }, 20*time.Second, 100*time.Millisecond)
	code, body = get("/status")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "Acme IT", "the status page still renders with every storage down")
}

// serve runs a dashboard on a free port until the test ends, waits until it is ready, and returns a getter of its
// pages.
func serve(t *testing.T, cfg Config) func(path string) (int, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	cfg.ListenAddress = addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() { cancel(); <-done })
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	require.Eventually(t, func() bool { code, _ := get("/readyz"); return code == http.StatusOK }, 20*time.Second, 50*time.Millisecond)
	return get
}
