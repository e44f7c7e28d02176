// Package miniotest starts real MinIO servers for tests and benchmarks: each on its own loopback port with its
// own data folder, stoppable and restartable to simulate a storage outage.
package miniotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/supportstack/supportstack/internal/harness/localbin"
)

// Server is one MinIO server process.
type Server struct {
	// URL is http://127.0.0.1:PORT.
	URL       string
	Addr      string
	AccessKey string
	SecretKey string
	DataDir   string

	bin string
	log *os.File
	cmd *exec.Cmd
	// endpoints lists the drives of the erasure set the server is part of (StartSet); empty for a lone server.
	endpoints []string
}

// Options of a server; zero values pick random credentials and a temporary folder.
type Options struct {
	AccessKey, SecretKey string
	DataDir              string
}

// Start starts a MinIO server and waits until it is ready. The server is stopped when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	s, err := StartServer(o, t.TempDir())
	if err != nil {
		t.Fatalf("start MinIO: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// StartServer starts a MinIO server outside a test (benchmarks, the demo); logDir receives its log. Close
// stops it.
func StartServer(o Options, logDir string) (*Server, error) {
	s, err := newServer(o, logDir)
	if err != nil {
		return nil, err
	}
	if err := s.Restart(); err != nil {
		s.log.Close()
		return nil, fmt.Errorf("%w (log: %s)", err, s.log.Name())
	}
	return s, nil
}

// StartSet starts n MinIO servers as one erasure set with one drive each, as a tenant with storage.servers n
// runs, outside a test; logDir receives their logs and drives (o.DataDir is ignored). Each listens on a
// 127.0.0.1 port of its own, by which MinIO tells its own drive from the others'. Every server serves the
// whole set; Close each to stop it.
func StartSet(o Options, n int, logDir string) ([]*Server, error) {
	if o.AccessKey == "" {
		o.AccessKey, o.SecretKey = "test"+randomHex(4), randomHex(16)
	}
	set := make([]*Server, n)
	var endpoints []string
	closeAll := func() {
		for _, s := range set {
			if s != nil {
				s.Close()
			}
		}
	}
	for i := range set {
		o.DataDir = filepath.Join(logDir, fmt.Sprintf("minio-drive-%d", i))
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			closeAll()
			return nil, fmt.Errorf("create drive folder: %w", err)
		}
		s, err := newServer(o, logDir)
		if err != nil {
			closeAll()
			return nil, err
		}
		set[i] = s
		endpoints = append(endpoints, s.URL+s.DataDir)
	}
	// The servers wait for each other: all start before any is waited for.
	for _, s := range set {
		s.endpoints = endpoints
		if err := s.start(); err != nil {
			closeAll()
			return nil, err
		}
	}
	for _, s := range set {
		if err := s.waitReady(); err != nil {
			closeAll()
			return nil, fmt.Errorf("%w (log: %s)", err, s.log.Name())
		}
	}
	return set, nil
}

// newServer prepares a server: its address, credentials, data folder and log. Nothing runs yet.
func newServer(o Options, logDir string) (*Server, error) {
	bin, err := localbin.MinIO()
	if err != nil {
		return nil, err
	}
	if o.AccessKey == "" {
		o.AccessKey, o.SecretKey = "test"+randomHex(4), randomHex(16)
	}
	if o.DataDir == "" {
		if o.DataDir, err = os.MkdirTemp(logDir, "minio-data-"); err != nil {
			return nil, fmt.Errorf("create data folder: %w", err)
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	log, err := os.CreateTemp(logDir, "minio-*.log")
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	return &Server{URL: "http://" + addr, Addr: addr, AccessKey: o.AccessKey, SecretKey: o.SecretKey,
		DataDir: o.DataDir, bin: bin, log: log}, nil
}

// Close stops the server for good.
func (s *Server) Close() {
	s.Stop()
	s.log.Close()
}

// Stop kills the server, as an outage would. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Freeze stops the server's process with SIGSTOP, as a hung server: the kernel accepts connections for it and
// nothing answers. thaw continues it.
func (s *Server) Freeze() (thaw func()) {
	cmd := s.cmd
	if cmd == nil {
		return func() {}
	}
	_ = cmd.Process.Signal(syscall.SIGSTOP)
	return func() { _ = cmd.Process.Signal(syscall.SIGCONT) }
}

// Restart starts the server again on the same address and data, and waits until it is ready.
func (s *Server) Restart() error {
	if s.cmd != nil {
		return nil
	}
	if err := s.start(); err != nil {
		return err
	}
	return s.waitReady()
}

func (s *Server) start() error {
	args := []string{"server", s.DataDir}
	env := []string{"MINIO_ROOT_USER=" + s.AccessKey, "MINIO_ROOT_PASSWORD=" + s.SecretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off"}
	if len(s.endpoints) > 0 {
		args = append([]string{"server"}, s.endpoints...)
		env = append(env, setEnv(s.Addr)...)
	}
	cmd := exec.Command(s.bin, append(args, "--address", s.Addr, "--console-address", "127.0.0.1:0", "--quiet")...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	s.cmd = cmd
	return nil
}

// waitReady waits until the started server answers as a client and the operator will see it.
func (s *Server) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Ready means what a client and the operator will see: MinIO answers an authenticated S3 request (its
	// health endpoints answer before the S3 API is initialised) and, a moment later, its cluster health check
	// (which can still answer 503 right after the first S3 request succeeds).
	mc, err := minio.New(s.Addr, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
	if err != nil {
		s.Stop()
		return fmt.Errorf("create client: %w", err)
	}
	ready := func() bool {
		if _, err := mc.ListBuckets(ctx); err != nil {
			return false
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/minio/health/cluster", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for !ready() {
		select {
		case <-ctx.Done():
			s.Stop()
			return fmt.Errorf("MinIO at %s not ready after 60s", s.URL)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// freeAddr finds a free loopback port. MinIO must be told a fixed address so that Restart can reuse it.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
