package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/cli"
	"github.com/supportstack/supportstack/agent/config"
	"github.com/supportstack/supportstack/agent/daemon"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/ingesttest"
	"github.com/supportstack/supportstack/internal/harness/syncbuf"
	"github.com/supportstack/supportstack/internal/protocol"
)

const token = "cli-test-enrollment-token"

// agent runs a command of the command line in this process, on dir, away from the machine's config file.
type agent struct {
	t    *testing.T
	dir  string
	conf string
}

func newAgent(t *testing.T) *agent {
	conf := filepath.Join(t.TempDir(), "agent.conf")
	require.NoError(t, os.WriteFile(conf, nil, 0o600))
	return &agent{t: t, dir: filepath.Join(t.TempDir(), "state"), conf: conf}
}

func (a *agent) run(args ...string) string {
	a.t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--config", a.conf, "--state-dir", a.dir)
	code := cli.Main(args, &out, &errb)
	require.Zero(a.t, code, "%v: %s%s", args, out.String(), errb.String())
	return out.String()
}

func (a *agent) status() cli.Report {
	a.t.Helper()
	var rep cli.Report
	require.NoError(a.t, json.Unmarshal([]byte(a.run("status", "--json")), &rep))
	return rep
}

// startDaemon runs the daemon on the agent's state directory until the test ends; its logs go to the buffer.
func (a *agent) startDaemon(logs *syncbuf.Buffer) {
	cfg := config.Default()
	cfg.InboxPollInterval, cfg.StatusInterval, cfg.AnswerInterval = 20*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{Config: cfg, StateDir: a.dir, AgentVersion: "test",
			Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	}()
	a.t.Cleanup(func() {
		cancel()
		require.NoError(a.t, <-done)
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, timeout, 10*time.Millisecond, "waiting for %s", what)
}

// The user asks; support staff answer in the tenant's bucket; the daemon fetches the answers and "status" shows
// them with the question, in JSON as written and in text made safe for the terminal. When the service then fails,
// the answers stay.
func TestStatusShowsAnswers(t *testing.T) {
	ri := ingesttest.StartReal(t, token)
	a := newAgent(t)
	a.run("enroll", "--url", ri.URL, "--token", token)
	st, err := enroll.Load(config.Layout{Root: a.dir}.Enrollment())
	require.NoError(t, err)
	qid := strings.Fields(a.run("ask", "Why is my PC so slow since the update yesterday? It takes minutes to open Outlook and Teams."))[0]
	logs := &syncbuf.Buffer{}
	a.startDaemon(logs)
	waitFor(t, 20*time.Second, "the question delivered", func() bool {
		rep := a.status()
		return len(rep.Questions) == 0 && rep.Spool != nil && !rep.Spool.LastAck.IsZero()
	})
	require.Empty(t, a.status().Answers)

	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	hostile := "\x1b]0;pwned\x07\x1b[2Jscreen cleared\rover\u009b31mred\u202egnp.exe"
	answers := []protocol.Answer{
		{ID: "an-1", QuestionID: qid, Text: "Close some browser tabs.\r\nThen restart\tplease.", Author: "support@acme.example", Time: t0},
		{ID: "an-2", QuestionID: qid, Text: hostile, Author: "mallory\x1b[8m", Time: t0.Add(time.Minute)},
		{ID: "an-3", QuestionID: "q-asked-elsewhere", Text: "An answer to a question this agent no longer knows.", Author: "support@acme.example", Time: t0.Add(2 * time.Minute)},
	}
	// Put newest first: the order shown is by time.
	for i := len(answers) - 1; i >= 0; i-- {
		ri.PutAnswer(t, st.DeviceID, answers[i])
	}
	waitFor(t, 20*time.Second, "the answers in status", func() bool { return len(a.status().Answers) == len(answers) })

	rep := a.status()
	require.Empty(t, rep.AnswersError)
	question := "Why is my PC so slow since the update yesterday? It takes minutes to open Outlook and Teams."
	for i, want := range answers {
		got := rep.Answers[i]
		require.Equal(t, want.ID, got.ID)
		require.Equal(t, want.QuestionID, got.QuestionID)
		require.Equal(t, want.Text, got.Text, "JSON holds the text as written")
		require.Equal(t, want.Author, got.Author)
		require.True(t, want.Time.Equal(got.Time), "answer %d time %s, want %s", i, got.Time, want.Time)
	}
	require.Equal(t, question, rep.Answers[0].Question)
	require.Empty(t, rep.Answers[2].Question)

	text := a.run("status")
	require.Contains(t, text, "Answers:")
	require.Contains(t, text, `To "Why is my PC so slow since the update yesterday? It takes minutes to…"`)
	require.Contains(t, text, "    Close some browser tabs.\n    Then restart\tplease.\n")
	require.Contains(t, text, "To question q-asked-elsewhere")
	require.Contains(t, text, `\x1b]0;pwned\x07\x1b[2Jscreen cleared\x0dover\u009b31mred\u202egnp.exe`)
	require.Contains(t, text, `mallory\x1b[8m`)
	for _, r := range text {
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || r == '\u202e') {
			t.Fatalf("text status holds control character %U:\n%q", r, text)
		}
	}

	// The service fails: the daemon logs it quietly and keeps what it has.
	mark := len(logs.String())
	ri.Site.Stop()
	waitFor(t, 20*time.Second, "a failed fetch", func() bool { return strings.Contains(logs.String()[mark:], "Cannot fetch answers") })
	require.Contains(t, logs.String()[mark:], `level=INFO msg="Cannot fetch answers`, "a failure is logged below the default level")
	rep = a.status()
	require.Len(t, rep.Answers, len(answers))
	require.Equal(t, answers[1].Text, rep.Answers[1].Text)
	require.Contains(t, a.run("status"), "Close some browser tabs.")
}
