package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/supportstack/supportstack/agent/config"
)

func TestDefaultStateDir(t *testing.T) {
	tests := map[string]struct {
		goos string
		root bool
		env  map[string]string
		want string
	}{
		"linux root":        {"linux", true, map[string]string{"HOME": "/root"}, "/var/lib/supportstack-agent"},
		"linux user XDG":    {"linux", false, map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "/x/state"}, "/x/state/supportstack-agent"},
		"linux user no XDG": {"linux", false, map[string]string{"HOME": "/home/u"}, "/home/u/.local/state/supportstack-agent"},
		"windows":           {"windows", true, map[string]string{"ProgramData": `D:\PD`}, `D:\PD\supportstack-agent`},
		"windows default":   {"windows", true, nil, `C:\ProgramData\supportstack-agent`},
		"darwin root":       {"darwin", true, map[string]string{"HOME": "/var/root"}, "/Library/Application Support/supportstack-agent"},
		"darwin user":       {"darwin", false, map[string]string{"HOME": "/Users/u"}, "/Users/u/Library/Application Support/supportstack-agent"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			env := config.Env{GOOS: tc.goos, Root: tc.root, Getenv: func(k string) string { return tc.env[k] }}
			if got := config.DefaultStateDir(env); got != tc.want {
				t.Errorf("DefaultStateDir = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	c := config.Default()
	err := c.Parse(strings.NewReader(`
# comment
state_dir = /srv/agent
perf_interval=30s   # inline comment
spool_max_telemetry_bytes = 64 MiB
log_level = info
answer_interval = 30s
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "/srv/agent" || c.PerfInterval != 30*time.Second || c.SpoolMaxTelemetryBytes != 64<<20 || c.LogLevel != "info" ||
		c.AnswerInterval != 30*time.Second {
		t.Errorf("parsed %+v", c)
	}
	for name, bad := range map[string]string{
		"unknown key":       "perf_intervall = 1m",
		"no equals":         "perf_interval 1m",
		"bad duration":      "perf_interval = soon",
		"negative duration": "perf_interval = -1s",
		"bad size":          "spool_segment_bytes = lots",
		"bad level":         "log_level = chatty",
		"answers too often": "answer_interval = 500ms",
	} {
		c := config.Default()
		if err := c.Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: %q accepted", name, bad)
		}
	}
}

func TestAnswerIntervalDefault(t *testing.T) {
	if got := config.Default().AnswerInterval; got != time.Minute {
		t.Errorf("default answer_interval %s, want 1m", got)
	}
	c := config.Default()
	if err := c.Set("answer_interval", "1s"); err != nil || c.AnswerInterval != time.Second {
		t.Errorf("the minimum itself refused: %v %s", err, c.AnswerInterval)
	}
}

func TestEnrollmentKeys(t *testing.T) {
	c := config.Default()
	err := c.Parse(strings.NewReader(`
ingest_urls = https://ingest.acme.example.com, https://ingest-b.acme.example.com:8443/base/
enrollment_token = tok-1.s3cr3t   # from the workspace
refused_enrollment_retry_interval = 2m
`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://ingest.acme.example.com", "https://ingest-b.acme.example.com:8443/base/"}; !slices.Equal(c.IngestURLs, want) {
		t.Errorf("ingest_urls %q, want %q in order", c.IngestURLs, want)
	}
	if c.EnrollmentToken.Reveal() != "tok-1.s3cr3t" || c.RefusedEnrollmentRetryInterval != 2*time.Minute || !c.CanEnroll() {
		t.Errorf("token or retry interval not taken: %v %v", c.RefusedEnrollmentRetryInterval, c.CanEnroll())
	}
	if tok, err := c.Token(); err != nil || tok != "tok-1.s3cr3t" {
		t.Errorf("Token() = %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if def := config.Default(); def.CanEnroll() || def.RefusedEnrollmentRetryInterval != 10*time.Minute {
		t.Errorf("defaults: can enroll %v, refused retry %s", def.CanEnroll(), def.RefusedEnrollmentRetryInterval)
	}

	for name, bad := range map[string]string{
		"not a URL":         "ingest_urls = ingest.acme.example.com",
		"other scheme":      "ingest_urls = ftp://ingest.acme.example.com",
		"no host":           "ingest_urls = https://",
		"second one bad":    "ingest_urls = https://a.example.com, gopher://b.example.com",
		"empty element":     "ingest_urls = https://a.example.com,,https://b.example.com",
		"user info":         "ingest_urls = https://user:pw@a.example.com",
		"query":             "ingest_urls = https://a.example.com/?x=1",
		"retry too often":   "refused_enrollment_retry_interval = 10ms",
		"token with spaces": "enrollment_token = two words",
	} {
		c := config.Default()
		err := c.Parse(strings.NewReader(bad))
		key, _, _ := strings.Cut(bad, " =")
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %q gave %v, want an error naming %s", name, bad, err, key)
		}
	}
	// An empty list is no list (a config template with the key left blank).
	empty := config.Default()
	if err := empty.Parse(strings.NewReader("ingest_urls =\n")); err != nil || empty.IngestURLs != nil {
		t.Errorf("empty ingest_urls: %v %q", err, empty.IngestURLs)
	}

	both := config.Default()
	if err := both.Parse(strings.NewReader("enrollment_token = x\nenrollment_token_file = /etc/tok\n")); err != nil {
		t.Fatal(err)
	}
	if err := both.Validate(); err == nil || !strings.Contains(err.Error(), "enrollment_token_file") {
		t.Errorf("token and token file both set: %v", err)
	}
}

func TestEnrollmentTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("  tok-2.from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	if err := c.Set("enrollment_token_file", path); err != nil {
		t.Fatal(err)
	}
	c.IngestURLs = []string{"https://ingest.example.com"}
	if tok, err := c.Token(); err != nil || tok != "tok-2.from-file" || !c.CanEnroll() {
		t.Errorf("Token() from file: %v, can enroll %v", err, c.CanEnroll())
	}
	for name, content := range map[string]string{"empty": "\n", "two lines": "tok-2.from-file\nsecond-line\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := c.Token()
		if err == nil || strings.Contains(err.Error(), "from-file") || strings.Contains(err.Error(), "second-line") {
			t.Errorf("%s token file: %v", name, err)
		}
	}
	c.EnrollmentTokenFile = filepath.Join(dir, "missing")
	if _, err := c.Token(); err == nil || !strings.Contains(err.Error(), "enrollment_token_file") {
		t.Errorf("missing token file: %v", err)
	}
}

// The token is never printed: not in errors about it, not when the config is formatted or logged, not by Get
// (which "help config" prints).
func TestEnrollmentTokenNeverPrinted(t *testing.T) {
	const secret = "tok-3.do-not-print-me"
	c := config.Default()
	if err := c.Set("enrollment_token", secret); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "config", c, "token", c.EnrollmentToken)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "config", c, "token", c.EnrollmentToken)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c),
		"%s": fmt.Sprintf("%s", c.EnrollmentToken), "%q": fmt.Sprintf("%q", c.EnrollmentToken),
		"Get": c.Get("enrollment_token"), "slog": logs.String(), "json": string(js),
	}
	for how, s := range out {
		if strings.Contains(s, "do-not-print-me") {
			t.Errorf("%s printed the token: %s", how, s)
		}
	}
	if out["Get"] != "[redacted]" {
		t.Errorf("Get = %q", out["Get"])
	}
	// A token the config refuses is not quoted in the error, whether it comes from the file or a flag.
	bad := "bad token do-not-print-me"
	if err := c.Set("enrollment_token", bad); err == nil || strings.Contains(err.Error(), "do-not-print-me") || !strings.Contains(err.Error(), "enrollment_token") {
		t.Errorf("refused token: %v", err)
	}
	if err := c.Parse(strings.NewReader("enrollment_token = " + bad + "\n")); err == nil || strings.Contains(err.Error(), "do-not-print-me") {
		t.Errorf("refused token in the file: %v", err)
	}
	if !config.IsSecret("enrollment_token") || config.IsSecret("enrollment_token_file") {
		t.Error("IsSecret")
	}
}
