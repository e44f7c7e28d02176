package config_test

import (
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
