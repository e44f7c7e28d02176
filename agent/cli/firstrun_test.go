package cli_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/cli"
	"github.com/supportstack/supportstack/agent/config"
	"github.com/supportstack/supportstack/agent/daemon"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/ingesttest"
	"github.com/supportstack/supportstack/internal/harness/stored"
	"github.com/supportstack/supportstack/internal/harness/syncbuf"
	"github.com/supportstack/supportstack/internal/protocol"
)

// deadURL is an http URL on which nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := "http://" + l.Addr().String()
	require.NoError(t, l.Close())
	return u
}

// fastSettings make a daemon quick enough for a test; they go in the config file, like everything else.
const fastSettings = `
inbox_poll_interval = 50ms
status_interval = 50ms
perf_interval = 100ms
backoff_max = 2s
`

// writeConfig replaces the agent's config file.
func (a *agent) writeConfig(lines ...string) {
	a.t.Helper()
	require.NoError(a.t, os.WriteFile(a.conf, []byte(strings.Join(lines, "\n")+fastSettings), 0o600))
}

// try runs a command that may fail and returns its exit code and output.
func (a *agent) try(args ...string) (int, string) {
	var out bytes.Buffer
	code := cli.Main(append(args, "--config", a.conf, "--state-dir", a.dir), &out, &out)
	return code, out.String()
}

// daemonRun is "run" in this process, with the config file and the state directory as its only flags.
type daemonRun struct {
	cancel context.CancelFunc
	done   chan int
	logs   *syncbuf.Buffer
}

func (a *agent) startRun() *daemonRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &daemonRun{cancel: cancel, done: make(chan int, 1), logs: &syncbuf.Buffer{}}
	go func() {
		r.done <- cli.MainContext(ctx, []string{"run", "--config", a.conf, "--state-dir", a.dir}, r.logs, r.logs)
	}()
	a.t.Cleanup(func() { r.stop(a.t) })
	return r
}

// stop ends the daemon as SIGTERM does and returns its exit code and logs.
func (r *daemonRun) stop(t *testing.T) (int, string) {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.done:
		r.done <- code // a second stop gets it too
		return code, r.logs.String()
	case <-time.After(15 * time.Second):
		t.Fatalf("run did not stop within 15s\n%s", r.logs.String())
		return 0, ""
	}
}

// storedKinds reads every batch the ingest service stored for the device and counts records by kind; questions
// maps the IDs of the stored questions to their texts.
func storedKinds(t *testing.T, ri *ingesttest.Real, deviceID string) (map[protocol.Kind]int, map[string]string) {
	t.Helper()
	kinds, qs := map[protocol.Kind]int{}, map[string]string{}
	records, err := stored.Records(context.Background(), ri.Storage, ingesttest.RealBucket, deviceID)
	require.NoError(t, err)
	for _, r := range records {
		kinds[r.Kind]++
		if q, err := protocol.ParseQuestion(r.Data); r.Kind == protocol.KindQuestion && err == nil {
			qs[q.ID] = q.Text
		}
	}
	return kinds, qs
}

// The customer's first run: a config file with the workspace's ingest URLs and token, no enrollment, no flags
// but where the files are. The first URL is down (a closed port); run enrolls at the second, records it as the
// enrollment's URL, and delivers a question asked before it started and telemetry to the real ingest service. It
// says nothing at the default log level.
func TestRunEnrollsFromTheConfigFile(t *testing.T) {
	ri := ingesttest.StartReal(t, token)
	a := newAgent(t)
	a.writeConfig("ingest_urls = "+deadURL(t)+", "+ri.URL, "enrollment_token = "+token)
	question := "Where did my network drive go?"
	qid := strings.Fields(a.run("ask", question))[0]

	r := a.startRun()
	lay := config.Layout{Root: a.dir}
	var st enroll.State
	waitFor(t, 20*time.Second, "the enrollment", func() bool {
		var err error
		st, err = enroll.Load(lay.Enrollment())
		return err == nil
	})
	require.Equal(t, ri.URL, st.URL, "the enrollment records the URL that answered")
	require.Equal(t, []string{ri.URL}, st.Endpoints)
	require.Equal(t, token, st.Token, "kept to enroll again")
	require.True(t, st.HasKey())
	require.False(t, st.EndpointsRefreshedAt.IsZero(), "endpoints fetched as enroll fetches them")

	waitFor(t, 30*time.Second, "the question and telemetry in the bucket", func() bool {
		kinds, qs := storedKinds(t, ri, st.DeviceID)
		return qs[qid] == question && kinds[protocol.KindInventory] >= 1 && kinds[protocol.KindPerf] >= 1
	})
	waitFor(t, 20*time.Second, "status: enrolled, running, nothing undelivered", func() bool {
		rep := a.status()
		return rep.Enrollment != nil && rep.Daemon == "running" && len(rep.Questions) == 0 && rep.Spool != nil && !rep.Spool.LastAck.IsZero()
	})
	rep := a.status()
	require.Equal(t, st.DeviceID, rep.Enrollment.DeviceID)
	require.Empty(t, rep.EnrollmentError)

	code, logs := r.stop(t)
	require.Zero(t, code, logs)
	require.Empty(t, strings.TrimSpace(logs), "run logged at the default level although all went well")
}

// A token the server refuses: run keeps running without an enrollment, takes questions into the spool, tries
// again every refused_enrollment_retry_interval and warns once; status says why it is not enrolled, without the
// token. Restarted with the right token (from a token file), it enrolls and delivers the question.
func TestRunWithARefusedToken(t *testing.T) {
	ri := ingesttest.StartReal(t, token)
	a := newAgent(t)
	const wrong = "tok-7.not-the-secret-you-want"
	a.writeConfig("ingest_urls = "+ri.URL, "enrollment_token = "+wrong, "refused_enrollment_retry_interval = 1s")
	r := a.startRun()
	question := "Is my laptop under warranty?"
	qid := strings.Fields(a.run("ask", question))[0]
	lay := config.Layout{Root: a.dir}

	waitFor(t, 20*time.Second, "three refused attempts and the question in the spool", func() bool {
		snap, err := daemon.ReadSnapshot(lay.Status())
		if err != nil || snap.Enrolling == nil || snap.Enrolling.Attempts < 3 {
			return false
		}
		rep := a.status()
		return len(rep.Questions) == 1 && rep.Questions[0].Seq > 0 // taken from the inbox into the spool
	})
	rep := a.status()
	require.Nil(t, rep.Enrollment)
	require.Equal(t, "running", rep.Daemon)
	require.True(t, strings.HasPrefix(rep.EnrollmentError, "not enrolled yet: the enrollment token was refused at "+ri.URL+": HTTP 401 invalid_enrollment_token"), rep.EnrollmentError)
	require.False(t, rep.EnrollmentNextAttempt.IsZero())
	require.Equal(t, qid, rep.Questions[0].ID)
	_, err := os.Stat(lay.Enrollment())
	require.True(t, os.IsNotExist(err), "a refused enrollment left a state file: %v", err)

	text := a.run("status")
	require.Contains(t, text, "Device:")
	require.Contains(t, text, "not enrolled yet: the enrollment token was refused")
	require.Contains(t, text, "Next enrollment attempt:")
	raw, err := os.ReadFile(lay.Status())
	require.NoError(t, err)
	for what, out := range map[string]string{"status": text, "status --json": a.run("status", "--json"), "status.json": string(raw)} {
		require.NotContains(t, out, wrong, "%s shows the token", what)
		require.NotContains(t, out, "not-the-secret", "%s shows part of the token", what)
	}

	code, logs := r.stop(t)
	require.Zero(t, code, logs)
	require.Equal(t, 1, strings.Count(logs, "level=WARN"), "one warning for the refusal, not one per attempt:\n%s", logs)
	require.Contains(t, logs, `level=WARN msg="The server refused the enrollment token`)
	require.Contains(t, logs, "code=invalid_enrollment_token")
	require.NotContains(t, logs, "not-the-secret")

	// Fixed: the token now comes from a file kept apart, as some installs keep it.
	tokenFile := filepath.Join(t.TempDir(), "enrollment-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	a.writeConfig("ingest_urls = "+ri.URL, "enrollment_token_file = "+tokenFile, "refused_enrollment_retry_interval = 1s")
	r = a.startRun()
	var st enroll.State
	waitFor(t, 20*time.Second, "the enrollment", func() bool {
		st, err = enroll.Load(lay.Enrollment())
		return err == nil
	})
	waitFor(t, 30*time.Second, "the question in the bucket", func() bool {
		_, qs := storedKinds(t, ri, st.DeviceID)
		return qs[qid] == question
	})
	waitFor(t, 20*time.Second, "status: delivered", func() bool {
		rep := a.status()
		return rep.Enrollment != nil && rep.EnrollmentError == "" && len(rep.Questions) == 0
	})
	out := a.run("status") + a.run("status", "--json")
	code, logs = r.stop(t)
	require.Zero(t, code, logs)
	require.Empty(t, strings.TrimSpace(logs))
	require.NotContains(t, out, token)
}

// An enrolled device keeps its enrollment: a config that later names other URLs and another token changes
// nothing (it is not enrolled again); "enroll" would enroll it again with them.
func TestEnrolledDeviceIgnoresTheConfigsToken(t *testing.T) {
	ri := ingesttest.StartReal(t, token)
	a := newAgent(t)
	// "enroll" takes URLs and token from the config file too, and tries the URLs in order.
	a.writeConfig("ingest_urls = "+deadURL(t)+","+ri.URL, "enrollment_token = "+token)
	out := a.run("enroll")
	lay := config.Layout{Root: a.dir}
	before, err := enroll.Load(lay.Enrollment())
	require.NoError(t, err)
	require.Equal(t, ri.URL, before.URL)
	require.Contains(t, out, "Enrolled device "+before.DeviceID+" at "+ri.URL)

	const other = "tok-9.another-workspace-secret"
	a.writeConfig("ingest_urls = "+deadURL(t), "enrollment_token = "+other, "log_level = info")
	r := a.startRun()
	qid := strings.Fields(a.run("ask", "still here?"))[0]
	waitFor(t, 30*time.Second, "the question in the bucket", func() bool {
		_, qs := storedKinds(t, ri, before.DeviceID)
		return qs[qid] == "still here?"
	})
	code, logs := r.stop(t)
	require.Zero(t, code, logs)
	after, err := enroll.Load(lay.Enrollment())
	require.NoError(t, err)
	require.Equal(t, before.DeviceID, after.DeviceID)
	require.Equal(t, before.URL, after.URL)
	require.Equal(t, token, after.Token)
	require.Equal(t, before.Credential, after.Credential, "not enrolled again")
	require.Contains(t, logs, "are not used")
	require.NotContains(t, logs, "another-workspace-secret")
}

// Without an enrollment and without ingest_urls and a token, run stops as before and names the keys; bad values
// of the keys are refused naming the key, and a token is never quoted.
func TestRunCannotEnrollWithoutTheKeys(t *testing.T) {
	a := newAgent(t)
	code, out := a.try("run")
	require.Equal(t, 1, code)
	for _, want := range []string{"not enrolled", "supportstack-agent enroll", "ingest_urls", "enrollment_token"} {
		require.Contains(t, out, want)
	}
	a.writeConfig("ingest_urls = https://ingest.acme.example.com")
	code, out = a.try("run")
	require.Equal(t, 1, code)
	require.Contains(t, out, "no token")

	for name, c := range map[string]struct{ config, want string }{
		"not http":       {"ingest_urls = ftp://ingest.acme.example.com", "ingest_urls"},
		"no scheme":      {"ingest_urls = ingest.acme.example.com", "ingest_urls"},
		"token and file": {"enrollment_token = tok-1.s3cr3t-value\nenrollment_token_file = /etc/token", "enrollment_token_file"},
		"bad token":      {"enrollment_token = tok-1 s3cr3t-value", "enrollment_token"},
	} {
		a.writeConfig(c.config)
		code, out := a.try("run")
		require.NotZero(t, code, name)
		require.Contains(t, out, c.want, name)
		require.NotContains(t, out, "s3cr3t-value", name)
	}
	// A token given as a flag is not quoted either when it is refused.
	a.writeConfig()
	code, out = a.try("run", "--enrollment-token", "tok-1 s3cr3t-value")
	require.NotZero(t, code)
	require.Contains(t, out, "enrollment_token")
	require.NotContains(t, out, "s3cr3t-value")
}
