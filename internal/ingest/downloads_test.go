package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Ingest serves the agent binaries of its agent folder with their SHA-256 list, and install scripts that carry
// the workspace's ingest addresses; nothing else of the folder or the machine is reachable.
func TestAgentDownloads(t *testing.T) {
	site := startSite(t)
	dir := t.TempDir()
	binary := []byte("#!/bin/sh\necho agent\n")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "supportstack-agent-linux-amd64"), binary, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not served"), 0o644))
	cfg := testConfig(site)
	cfg.AgentDir = dir
	h := newHarness(t, cfg)

	r := h.do(http.MethodGet, "/downloads/SHA256SUMS", "", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	sum := sha256.Sum256(binary)
	require.Equal(t, hex.EncodeToString(sum[:])+"  supportstack-agent-linux-amd64\n", string(r.body), "only agent binaries are listed")
	r = h.do(http.MethodGet, "/downloads/supportstack-agent-linux-amd64", "", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, binary, r.body)
	for _, path := range []string{"/downloads/notes.txt", "/downloads/../downloads_test.go", "/downloads/%2e%2e%2fingest.go", "/downloads/supportstack-agent-linux-mips"} {
		r = h.do(http.MethodGet, path, "", nil, nil)
		require.Equal(t, http.StatusNotFound, r.status, path)
	}
	r = h.do(http.MethodPost, "/downloads/SHA256SUMS", "", nil, nil)
	require.Equal(t, http.StatusMethodNotAllowed, r.status)

	r = h.do(http.MethodGet, "/install.sh", "", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, string(r.body), "base='https://acme-ingest.east.example.com'")
	require.Contains(t, string(r.body), "urls='https://acme-ingest.east.example.com,https://acme-ingest.west.example.com'")
	r = h.do(http.MethodGet, "/install.ps1", "", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, string(r.body), "$base = 'https://acme-ingest.east.example.com'")

	// Without configured addresses the script uses the one the PC asked, but never writes a hostile one into it.
	cfg.IngestEndpoints = nil
	h = newHarness(t, cfg)
	r = h.do(http.MethodGet, "/install.sh", "", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, string(r.body), "base='"+h.url+"'")
	// Go's client refuses to send such a Host: a raw connection does.
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("GET /install.sh HTTP/1.1\r\nHost: evil.example';rm -rf ~;'\r\nConnection: close\r\n\r\n"))
	require.NoError(t, err)
	raw, _ := io.ReadAll(conn)
	require.NotContains(t, string(raw), "rm -rf", "a hostile Host is never written into a script")
	require.False(t, strings.HasPrefix(string(raw), "HTTP/1.1 200"), "%s", raw)

	// No agent folder: a clear answer.
	cfg.AgentDir = filepath.Join(dir, "missing")
	h = newHarness(t, cfg)
	r = h.do(http.MethodGet, "/downloads/SHA256SUMS", "", nil, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "no_downloads", r.errorCode(t))
}
