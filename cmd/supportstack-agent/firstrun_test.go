package main_test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/supportstack/supportstack/agent/cli"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/ingesttest"
)

// The business customer's install: the agent and the config file downloaded from the workspace (state
// directory, ingest URLs, the token in a file of its own), and "supportstack-agent run" without a single flag.
// The first ingest URL is down; run enrolls at the second, and ask and status, without flags too, work against
// the same state directory. The token appears in no output.
func TestRunWithoutFlagsEnrollsFromTheConfigFile(t *testing.T) {
	srv := ingesttest.New(t, token)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	tokenFile := filepath.Join(dir, "enrollment-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	conf := filepath.Join(dir, "agent.conf")
	err = os.WriteFile(conf, []byte(`# downloaded from the workspace
state_dir = `+stateDir+`
ingest_urls = `+dead+`, `+srv.URL+`
enrollment_token_file = `+tokenFile+`
inbox_poll_interval = 50ms
status_interval = 50ms
perf_interval = 100ms
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "SUPPORTSTACK_AGENT_CONFIG="+conf, "SUPPORTSTACK_ENROLL_TOKEN=")
	run := func(args ...string) result {
		t.Helper()
		return agentIn(t, env, args...)
	}

	early := run("ask", "asked before the agent ever ran")
	if early.code != 0 {
		t.Fatalf("ask: %d %s", early.code, early.stderr)
	}

	stop := startAgent(t, env, "run")

	r := run("ask", "--wait", "20s", "Can you install the new printer?")
	if r.code != 0 || !strings.HasSuffix(strings.TrimSpace(r.stdout), "delivered") {
		t.Fatalf("ask --wait: exit %d\n%s%s\n%s", r.code, r.stdout, r.stderr, stop())
	}
	st, err := enroll.Load(filepath.Join(stateDir, "enrollment.json"))
	if err != nil {
		t.Fatal(err)
	}
	if st.URL != srv.URL {
		t.Errorf("enrolled at %q, want the URL that answered, %q", st.URL, srv.URL)
	}
	earlyID := strings.Fields(early.stdout)[0]
	waitFor(t, 20*time.Second, "the early question at the server", func() bool {
		return questionsAt(srv)[earlyID] == "asked before the agent ever ran"
	})

	var rep cli.Report
	waitFor(t, 20*time.Second, "status: running, enrolled, nothing undelivered", func() bool {
		js := run("status", "--json")
		return json.Unmarshal([]byte(js.stdout), &rep) == nil && rep.Daemon == "running" && rep.Enrollment != nil && len(rep.Questions) == 0
	})
	if rep.StateDir != stateDir || rep.Enrollment.DeviceID != st.DeviceID || rep.EnrollmentError != "" {
		t.Errorf("status: %+v", rep)
	}
	text := run("status")
	if !strings.Contains(text.stdout, st.DeviceID) {
		t.Errorf("status text lacks the device:\n%s", text.stdout)
	}
	out := stop()
	if strings.TrimSpace(out) != "" {
		t.Errorf("run logged at the default level during a normal first run:\n%s", out)
	}
	for _, s := range []string{out, text.stdout, text.stderr, r.stdout, r.stderr} {
		if strings.Contains(s, token) {
			t.Error("the token was printed")
		}
	}
}
