package client_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/ingesttest"
	"github.com/supportstack/supportstack/internal/protocol"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		header string
		want   time.Duration
	}{
		"absent":           {"", 0},
		"seconds":          {"7", 7 * time.Second},
		"zero":             {"0", 0},
		"negative":         {"-5", 0},
		"capped":           {"86400", time.Hour},
		"http date":        {now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		"date in the past": {now.Add(-time.Minute).Format(http.TimeFormat), 0},
		"garbage":          {"soon", 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := client.ParseRetryAfter(tc.header, now); got != tc.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}

func TestValidateEndpoints(t *testing.T) {
	if err := client.ValidateEndpoints([]string{"https://a.example.com", "http://10.0.0.1:8080/base"}); err != nil {
		t.Error(err)
	}
	for _, bad := range [][]string{nil, {"ftp://x"}, {"not a url"}, {"https://"}} {
		if client.ValidateEndpoints(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The answers support staff write into the tenant's bucket reach the device they are for, oldest first, through
// the real ingest service; a credential it does not take is a 401 the caller can tell.
func TestAnswers(t *testing.T) {
	const token = "client-test-enrollment-token"
	ri := ingesttest.StartReal(t, token)
	c := &client.Client{}
	ctx := context.Background()
	enrolled := func(host string) protocol.EnrollResponse {
		resp, err := c.Enroll(ctx, ri.URL, token, protocol.EnrollRequest{Hostname: host})
		require.NoError(t, err)
		return resp
	}
	dev, other := enrolled("pc-1"), enrolled("pc-2")

	got, err := c.Answers(ctx, ri.URL, dev.Credential)
	require.NoError(t, err)
	require.Empty(t, got)

	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	later := protocol.Answer{ID: "an-2", QuestionID: "q-00000001", Text: "close some browser tabs", Author: "support@acme.example", Time: t0.Add(time.Minute)}
	first := protocol.Answer{ID: "an-1", QuestionID: "q-00000001", Text: "let me look", Author: "support@acme.example", Time: t0}
	ri.PutAnswer(t, dev.DeviceID, later)
	ri.PutAnswer(t, dev.DeviceID, first)
	ri.PutAnswer(t, other.DeviceID, protocol.Answer{ID: "an-9", QuestionID: "q-00000009", Text: "not yours", Time: t0})

	got, err = c.Answers(ctx, ri.URL, dev.Credential)
	require.NoError(t, err)
	for i := range got {
		got[i].Time = got[i].Time.UTC()
	}
	require.Equal(t, []protocol.Answer{first, later}, got)

	_, err = c.Answers(ctx, ri.URL, "st1.not.valid")
	se := client.AsStatus(err)
	require.NotNil(t, se, "%v", err)
	require.Equal(t, http.StatusUnauthorized, se.Status)

	ri.Site.Stop()
	_, err = c.Answers(ctx, ri.URL, dev.Credential)
	se = client.AsStatus(err)
	require.NotNil(t, se, "%v", err)
	require.Equal(t, http.StatusServiceUnavailable, se.Status)
	require.Positive(t, se.RetryAfter)
}

// An answer list larger than the other responses' bound is read whole: the server may return hundreds of answers
// of up to 64 KiB.
func TestAnswersLargerThanOtherResponses(t *testing.T) {
	const token = "client-test-enrollment-token"
	ri := ingesttest.StartReal(t, token)
	c := &client.Client{}
	dev, err := c.Enroll(context.Background(), ri.URL, token, protocol.EnrollRequest{Hostname: "pc-1"})
	require.NoError(t, err)
	text := strings.Repeat("a long answer ", 4000) // 56 KB
	for i := range 24 {                            // 1.3 MB in all
		ri.PutAnswer(t, dev.DeviceID, protocol.Answer{ID: fmt.Sprintf("an-%02d", i), QuestionID: "q-00000001", Text: text,
			Time: time.Date(2026, 11, 25, 9, i, 0, 0, time.UTC)})
	}
	got, err := c.Answers(context.Background(), ri.URL, dev.Credential)
	require.NoError(t, err)
	require.Len(t, got, 24)
	require.Equal(t, text, got[23].Text)
}
