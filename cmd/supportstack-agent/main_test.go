package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/supportstack/supportstack/agent/cli"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/ingesttest"
	"github.com/supportstack/supportstack/internal/harness/syncbuf"
	"github.com/supportstack/supportstack/internal/protocol"
)

const token = "cli-test-enrollment-token"

var agentBin string

// TestMain builds the agent once; the CLI tests run the binary.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "supportstack-agent-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "supportstack-agent")
	build := exec.Command("go", "build", "-o", agentBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// agent runs the binary to completion with an isolated environment.
func agent(t *testing.T, args ...string) result {
	t.Helper()
	return agentIn(t, isolatedEnv(t), args...)
}

// agentIn runs the binary to completion with the environment env.
func agentIn(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(agentBin, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run agent %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// isolatedEnv keeps the agent away from the machine's real config file.
func isolatedEnv(t *testing.T) []string {
	empty := filepath.Join(t.TempDir(), "agent.conf")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), "SUPPORTSTACK_AGENT_CONFIG="+empty, "SUPPORTSTACK_ENROLL_TOKEN=")
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func enrollDevice(t *testing.T, srv *ingesttest.Server, stateDir string) {
	t.Helper()
	r := agent(t, "enroll", "--url", srv.URL, "--token", token, "--state-dir", stateDir)
	if r.code != 0 {
		t.Fatalf("enroll: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := agent(t, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "supportstack-agent ") {
		t.Errorf("version: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestEnroll(t *testing.T) {
	srv := ingesttest.New(t, token)
	srv.SetEndpoints([]string{srv.URL, "https://peer.example.com"}, 250)
	dir := filepath.Join(t.TempDir(), "state")

	bad := agent(t, "enroll", "--url", srv.URL, "--token", "wrong", "--state-dir", dir)
	if bad.code == 0 || !strings.Contains(bad.stderr, "401") {
		t.Errorf("enroll with a wrong token: exit %d, stderr %q", bad.code, bad.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "enrollment.json")); !os.IsNotExist(err) {
		t.Errorf("a refused enrollment left a state file: %v", err)
	}

	r := agent(t, "enroll", "--url", srv.URL, "--token", token, "--state-dir", dir)
	if r.code != 0 {
		t.Fatalf("enroll: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	path := filepath.Join(dir, "enrollment.json")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("enrollment file mode %v, want 0600", info.Mode().Perm())
	}
	st, err := enroll.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !protocol.ValidDeviceID(st.DeviceID) || st.Credential == "" || st.Token != token || st.ExpiresAt.IsZero() {
		t.Errorf("stored state incomplete: device %q, credential set %v, token kept %v, expiry %v", st.DeviceID, st.Credential != "", st.Token == token, st.ExpiresAt)
	}
	if want := []string{srv.URL, "https://peer.example.com"}; strings.Join(st.Endpoints, ",") != strings.Join(want, ",") || st.MaxRecordsPerSecond != 250 {
		t.Errorf("endpoints %v rate %d, want %v 250", st.Endpoints, st.MaxRecordsPerSecond, want)
	}
	if !strings.Contains(r.stdout, st.DeviceID) {
		t.Errorf("enroll output lacks the device ID: %q", r.stdout)
	}
	for _, secret := range []string{token, st.Credential} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("enroll printed a secret")
		}
	}
	// Enrolling again keeps the device's identity.
	agent(t, "enroll", "--url", srv.URL, "--token", token, "--state-dir", dir)
	again, _ := enroll.Load(path)
	if again.DeviceID != st.DeviceID {
		t.Errorf("re-enrollment changed the device ID")
	}
}

var askLine = regexp.MustCompile(`^([0-9A-Za-z-]{8,64}) (queued|delivered)\n`)

// ask persists the question in the inbox before it prints anything, with or without a daemon; status lists it.
func TestAskQueuesAndStatusShowsIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	text := "Why is my PC slow since Tuesday?"

	// With --wait and no daemon, the command stays running: the file must exist when the line is printed.
	cmd := exec.Command(agentBin, "ask", "--state-dir", dir, "--wait", "1s", text)
	cmd.Env = isolatedEnv(t)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("read ask output: %v", err)
	}
	m := askLine.FindStringSubmatch(line)
	if m == nil || m[2] != "queued" {
		t.Fatalf("ask printed %q, want \"<id> queued\"", line)
	}
	id := m[1]
	raw, err := os.ReadFile(filepath.Join(dir, "inbox", id+".json"))
	if err != nil {
		t.Fatalf("question not in the inbox when its ID was printed: %v", err)
	}
	var q struct{ ID, Text string }
	if err := json.Unmarshal(raw, &q); err != nil || q.ID != id || q.Text != text {
		t.Errorf("inbox file %s", raw)
	}
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Errorf("ask --wait without a daemon: %v, want exit 3 (still queued)", err)
	}
	if !strings.Contains(stderr.String(), "not delivered within 1s") {
		t.Errorf("stderr %q", stderr.String())
	}

	r := agent(t, "ask", "--state-dir", dir, "second question")
	if r.code != 0 || askLine.FindStringSubmatch(r.stdout) == nil {
		t.Fatalf("ask: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if empty := agent(t, "ask", "--state-dir", dir, "   "); empty.code == 0 {
		t.Errorf("an empty question was accepted")
	}

	st := agent(t, "status", "--state-dir", dir)
	if st.code != 0 || !strings.Contains(st.stdout, id+" queued") || !strings.Contains(st.stdout, "Questions not yet delivered:  2") || !strings.Contains(st.stdout, "not enrolled") {
		t.Errorf("status:\n%s%s", st.stdout, st.stderr)
	}
	js := agent(t, "status", "--state-dir", dir, "--json")
	var rep cli.Report
	if err := json.Unmarshal([]byte(js.stdout), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, js.stdout)
	}
	if len(rep.Questions) != 2 || rep.Questions[0].ID != id || rep.Questions[0].State != "queued" || rep.Daemon != "stopped" {
		t.Errorf("status --json: %+v", rep)
	}
}

// runAgent starts "run" and returns a function that stops it with SIGTERM and returns its stderr.
func runAgent(t *testing.T, dir string, extra ...string) (stop func() string) {
	t.Helper()
	args := append([]string{"run", "--state-dir", dir, "--inbox-poll-interval", "50ms", "--status-interval", "50ms",
		"--perf-interval", "100ms", "--backoff-max", "2s"}, extra...)
	return startAgent(t, isolatedEnv(t), args...)
}

// startAgent starts the binary with the environment env and returns a function that stops it with SIGTERM
// (failing the test unless it exits cleanly within 15 s) and returns its output.
func startAgent(t *testing.T, env []string, args ...string) (stop func() string) {
	t.Helper()
	cmd := exec.Command(agentBin, args...)
	cmd.Env = env
	var stderr syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop = func() string {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("run exited with %v after SIGTERM\n%s", err, stderr.String())
				}
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				t.Errorf("run did not stop within 15s of SIGTERM")
			}
		})
		return stderr.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}

func questionsAt(srv *ingesttest.Server) map[string]string {
	out := map[string]string{}
	for _, seq := range srv.Stats().Order {
		r, _ := srv.Record(seq)
		if r.Kind == protocol.KindQuestion {
			q, _ := protocol.ParseQuestion(r.Data)
			out[q.ID] = q.Text
		}
	}
	return out
}

// The whole agent: a question asked before the daemon starts and one asked while it runs both reach the ingest
// service; telemetry flows; status tells; the daemon is quiet and stops on SIGTERM.
func TestRunDeliversQuestionsAndTelemetry(t *testing.T) {
	srv := ingesttest.New(t, token)
	dir := filepath.Join(t.TempDir(), "state")
	enrollDevice(t, srv, dir)
	st, _ := enroll.Load(filepath.Join(dir, "enrollment.json"))

	early := agent(t, "ask", "--state-dir", dir, "asked while the agent was stopped")
	earlyID := strings.Fields(early.stdout)[0]

	stop := runAgent(t, dir)
	r := agent(t, "ask", "--state-dir", dir, "--wait", "20s", "Is my backup running?")
	if r.code != 0 {
		t.Fatalf("ask --wait: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	id := strings.Fields(lines[0])[0]
	if len(lines) != 2 || lines[0] != id+" queued" || lines[1] != id+" delivered" {
		t.Fatalf("ask --wait printed %q", r.stdout)
	}
	waitFor(t, 20*time.Second, "both questions at the server", func() bool {
		qs := questionsAt(srv)
		return qs[id] == "Is my backup running?" && qs[earlyID] == "asked while the agent was stopped"
	})
	waitFor(t, 20*time.Second, "telemetry at the server", func() bool {
		kinds := map[protocol.Kind]int{}
		for _, seq := range srv.Stats().Order {
			r, _ := srv.Record(seq)
			kinds[r.Kind]++
		}
		return kinds[protocol.KindInventory] >= 1 && kinds[protocol.KindPerf] >= 2 && kinds[protocol.KindEvent] == 1
	})

	var rep cli.Report
	waitFor(t, 20*time.Second, "status: running, nothing undelivered", func() bool {
		js := agent(t, "status", "--state-dir", dir, "--json")
		if json.Unmarshal([]byte(js.stdout), &rep) != nil {
			return false
		}
		return rep.Daemon == "running" && len(rep.Questions) == 0 && rep.Spool != nil && !rep.Spool.LastAck.IsZero()
	})
	if rep.Enrollment == nil || rep.Enrollment.DeviceID != st.DeviceID || rep.DaemonPID == 0 {
		t.Errorf("status: %+v", rep)
	}
	text := agent(t, "status", "--state-dir", dir)
	for _, want := range []string{"Agent:", "running (pid", st.DeviceID, "Last ack:", "Questions not yet delivered:  0"} {
		if !strings.Contains(text.stdout, want) {
			t.Errorf("status text lacks %q:\n%s", want, text.stdout)
		}
	}
	if strings.Contains(text.stdout, st.Credential) || strings.Contains(text.stdout, token) {
		t.Error("status printed a secret")
	}

	logs := stop()
	if strings.TrimSpace(logs) != "" {
		t.Errorf("run logged at the default level during normal operation:\n%s", logs)
	}
	after := agent(t, "status", "--state-dir", dir, "--json")
	if err := json.Unmarshal([]byte(after.stdout), &rep); err != nil || rep.Daemon != "stopped" {
		t.Errorf("status after stop: %v %+v", err, rep.Daemon)
	}
}

// With -v the daemon tells more, and still never logs the credential, the token or record payloads.
func TestRunVerboseNeverLogsSecrets(t *testing.T) {
	srv := ingesttest.New(t, token)
	dir := filepath.Join(t.TempDir(), "state")
	enrollDevice(t, srv, dir)
	st, _ := enroll.Load(filepath.Join(dir, "enrollment.json"))
	stop := runAgent(t, dir, "--log-level", "debug")
	secretQuestion := "my password is hunter2, why does it not work"
	r := agent(t, "ask", "--state-dir", dir, "--wait", "20s", secretQuestion)
	if r.code != 0 {
		t.Fatalf("ask: %d %s", r.code, r.stderr)
	}
	srv.RotateKey() // force a re-enrollment, which handles the token
	agent(t, "ask", "--state-dir", dir, "--wait", "20s", "second")
	logs := stop()
	t.Logf("debug logs:\n%s", logs)
	if !strings.Contains(logs, "Agent running") || !strings.Contains(logs, "Enrolled again") {
		t.Errorf("debug logs lack the expected messages:\n%s", logs)
	}
	for name, secret := range map[string]string{"token": token, "credential": st.Credential, "question": "hunter2"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain the %s", name)
		}
	}
}

// A second daemon on the same state directory refuses to start instead of sharing the spool.
func TestSecondRunRefused(t *testing.T) {
	srv := ingesttest.New(t, token)
	dir := filepath.Join(t.TempDir(), "state")
	enrollDevice(t, srv, dir)
	runAgent(t, dir)
	waitFor(t, 20*time.Second, "first daemon running", func() bool {
		var rep cli.Report
		js := agent(t, "status", "--state-dir", dir, "--json")
		return json.Unmarshal([]byte(js.stdout), &rep) == nil && rep.Daemon == "running"
	})
	r := agent(t, "run", "--state-dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "another supportstack-agent is running") {
		t.Errorf("second run: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.conf")
	os.WriteFile(conf, []byte("# test\nstate_dir = "+filepath.Join(dir, "from-config")+"\nperf_interval = 5m\n"), 0o600)
	r := agent(t, "status", "--config", conf, "--json")
	var rep cli.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.StateDir != filepath.Join(dir, "from-config") {
		t.Errorf("state_dir from the config file not used: %v %q", err, r.stdout)
	}
	// A flag wins over the file.
	r = agent(t, "status", "--config", conf, "--state-dir", filepath.Join(dir, "flag"), "--json")
	if json.Unmarshal([]byte(r.stdout), &rep) != nil || rep.StateDir != filepath.Join(dir, "flag") {
		t.Errorf("--state-dir did not override the config file: %q", r.stdout)
	}
	os.WriteFile(conf, []byte("perf_intervall = 5m\n"), 0o600)
	if r := agent(t, "status", "--config", conf); r.code == 0 || !strings.Contains(r.stderr, "unknown setting") {
		t.Errorf("a misspelt key was accepted: %d %q", r.code, r.stderr)
	}
}
