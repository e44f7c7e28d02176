package ingest

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// Agent downloads. The image carries the agent built for every platform (--agent-dir); ingest, the address PCs
// already reach, serves them with their SHA-256 list and the install scripts that fetch and check them. Nothing
// here needs a credential: the binaries are not secret, and the enrollment token travels in the install command
// that staff copy from the dashboard, never through these URLs.

// DefaultAgentDir is where the agent binaries are looked for: the folder "agents" beside this binary, which is
// /agents in the image (the binary is /supportstack) and bin/agents where `make build` puts them.
func DefaultAgentDir() string {
	self, err := os.Executable()
	if err != nil {
		return "/agents"
	}
	return filepath.Join(filepath.Dir(self), "agents")
}

// downloadWriteTimeout bounds sending one download.
const downloadWriteTimeout = 10 * time.Minute

//go:embed install/install.sh install/install.ps1
var installScripts embed.FS

var scripts = template.Must(template.ParseFS(installScripts, "install/*"))

// agentFile names an agent binary: supportstack-agent-<os>-<arch>[.exe].
var agentFile = regexp.MustCompile(`^supportstack-agent-(linux|darwin|windows)-(amd64|arm64)(\.exe)?$`)

// safeURL is what may be written into a script between single quotes.
var safeURL = regexp.MustCompile(`^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/\-]*)?$`)

// agentDownloads are the binaries of the agent directory, read once.
type agentDownloads struct {
	dir  string
	once sync.Once
	sums []byte // SHA256SUMS: "<hex>  <name>" lines
	have map[string]bool
	err  error
}

func (a *agentDownloads) load() error {
	a.once.Do(func() {
		entries, err := os.ReadDir(a.dir)
		if err != nil {
			a.err = fmt.Errorf("no agent downloads on this server (%s): %w", a.dir, err)
			return
		}
		a.have = map[string]bool{}
		var lines []string
		for _, e := range entries {
			if !e.Type().IsRegular() || !agentFile.MatchString(e.Name()) {
				continue
			}
			sum, err := fileSHA256(filepath.Join(a.dir, e.Name()))
			if err != nil {
				a.err = err
				return
			}
			a.have[e.Name()] = true
			lines = append(lines, sum+"  "+e.Name())
		}
		if len(lines) == 0 {
			a.err = fmt.Errorf("no agent downloads on this server: %s holds no supportstack-agent-<os>-<arch> file", a.dir)
			return
		}
		sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
		a.sums = []byte(strings.Join(lines, "\n") + "\n")
	})
	return a.err
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// download answers GET /downloads/SHA256SUMS and GET /downloads/<agent file>.
func (s *Server) download(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	if err := s.agents.load(); err != nil {
		s.refuseUnread(w, info, &protocol.RequestError{Status: http.StatusNotFound, Code: "no_downloads", Message: err.Error()})
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/downloads/")
	switch {
	case name == "SHA256SUMS":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(s.agents.sums)
	case s.agents.have[name]:
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		http.ServeFile(w, r, filepath.Join(s.agents.dir, name))
	default:
		s.refuseUnread(w, info, &protocol.RequestError{Status: http.StatusNotFound, Code: "not_found",
			Message: "no such download: GET /downloads/SHA256SUMS lists them"})
	}
}

// installScript answers GET /install.sh and GET /install.ps1: the script with this workspace's ingest addresses.
func (s *Server) installScript(name string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, info *requestInfo) {
		urls := s.cfg.IngestEndpoints
		if len(urls) == 0 {
			// Not told its public address: the one the PC used, when it is a plain address.
			scheme := "http"
			if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
				scheme = "https"
			}
			urls = []string{scheme + "://" + r.Host}
		}
		for _, u := range urls {
			if !safeURL.MatchString(u) {
				s.refuseUnread(w, info, &protocol.RequestError{Status: http.StatusBadRequest, Code: "bad_address",
					Message: "this server's address cannot be written into an install script: set --ingest-endpoints"})
				return
			}
		}
		var buf bytes.Buffer
		if err := scripts.ExecuteTemplate(&buf, name, map[string]string{"Tenant": s.cfg.Tenant, "Base": urls[0],
			"URLs": strings.Join(urls, ",")}); err != nil {
			info.err = err
			s.fail(w, info, &protocol.RequestError{Status: http.StatusInternalServerError, Code: "internal", Message: "cannot render the script"})
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(buf.Bytes())
	}
}
