package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/config"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/ingesttest"
	"github.com/supportstack/supportstack/agent/questions"
	"github.com/supportstack/supportstack/internal/protocol"
)

const token = "daemon-test-enrollment-token"

// deadURL is an http URL on which nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := "http://" + l.Addr().String()
	require.NoError(t, l.Close())
	return u
}

// Every fetch is merged into answers.json: what the service stops returning stays, a failed fetch changes
// nothing, and an endpoint that cannot be reached is passed over for the next one.
func TestPollKeepsAnswersAcrossShorterListsAndFailures(t *testing.T) {
	ri := ingesttest.StartReal(t, token)
	ctx := context.Background()
	lay := config.Layout{Root: t.TempDir()}
	st, err := enroll.Enroll(ctx, &client.Client{}, ri.URL, token, nil, "test", time.Now())
	require.NoError(t, err)
	st.Endpoints = []string{deadURL(t), ri.URL}
	require.NoError(t, enroll.Save(lay.Enrollment(), st))
	p := &answerPoller{lay: lay, client: &client.Client{}, store: questions.NewAnswers(lay.Answers()),
		log: slog.New(slog.DiscardHandler), rand: func() float64 { return 0.5 }}
	stored := func() []protocol.Answer {
		t.Helper()
		a, err := questions.LoadAnswers(lay.Answers())
		require.NoError(t, err)
		return a.List()
	}

	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	a1 := protocol.Answer{ID: "an-1", QuestionID: "q-00000001", Text: "let me look", Author: "support@acme.example", Time: t0}
	a2 := protocol.Answer{ID: "an-2", QuestionID: "q-00000001", Text: "close some tabs", Author: "support@acme.example", Time: t0.Add(time.Minute)}
	a3 := protocol.Answer{ID: "an-3", QuestionID: "q-00000002", Text: "it is offline", Author: "support@acme.example", Time: t0.Add(2 * time.Minute)}
	ri.PutAnswer(t, st.DeviceID, a1)
	ri.PutAnswer(t, st.DeviceID, a2)
	require.NoError(t, p.poll(ctx))
	require.Equal(t, []protocol.Answer{a1, a2}, stored())
	info, err := os.Stat(lay.Answers())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	// Nothing new: the file is not written again (a write replaces it by another file).
	require.NoError(t, p.poll(ctx))
	again, err := os.Stat(lay.Answers())
	require.NoError(t, err)
	require.True(t, os.SameFile(info, again), "answers.json rewritten although nothing changed")

	// The service no longer returns an answer (its response is bounded): the agent keeps it.
	ri.RemoveAnswer(t, st.DeviceID, a1.QuestionID, a1.ID)
	ri.PutAnswer(t, st.DeviceID, a3)
	require.NoError(t, p.poll(ctx))
	require.Equal(t, []protocol.Answer{a1, a2, a3}, stored())

	// Storage out: the fetch fails and the stored answers are untouched.
	before, err := os.ReadFile(lay.Answers())
	require.NoError(t, err)
	ri.Site.Stop()
	err = p.poll(ctx)
	require.Error(t, err)
	require.Equal(t, http.StatusServiceUnavailable, client.AsStatus(err).Status, "%v", err)
	after, err := os.ReadFile(lay.Answers())
	require.NoError(t, err)
	require.Equal(t, string(before), string(after))
}

// A refused credential ends the fetch: every endpoint of the service would refuse it alike. The loop reads the
// enrollment afresh each time, so it uses the credential the sender saves when it enrolls again.
func TestPollFollowsTheSavedCredential(t *testing.T) {
	ri := ingesttest.StartReal(t, token)
	ctx := context.Background()
	lay := config.Layout{Root: t.TempDir()}
	st, err := enroll.Enroll(ctx, &client.Client{}, ri.URL, token, nil, "test", time.Now())
	require.NoError(t, err)
	good := st.Credential
	st.Credential = "st1.not.valid"
	require.NoError(t, enroll.Save(lay.Enrollment(), st))
	p := &answerPoller{lay: lay, client: &client.Client{}, store: questions.NewAnswers(lay.Answers()),
		log: slog.New(slog.DiscardHandler), rand: func() float64 { return 0.5 }}
	ri.PutAnswer(t, st.DeviceID, protocol.Answer{ID: "an-1", QuestionID: "q-00000001", Text: "hello", Time: time.Now()})

	err = p.poll(ctx)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, client.AsStatus(err).Status, "%v", err)
	require.Empty(t, p.store.List())

	st.Credential = good
	require.NoError(t, enroll.Save(lay.Enrollment(), st))
	require.NoError(t, p.poll(ctx))
	require.Len(t, p.store.List(), 1)
}
