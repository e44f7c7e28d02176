package enroll_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/ingesttest"
)

// deadURL is an http URL on which nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

// Try goes down the URLs until one takes the enrollment and records that one; a refusal of the token ends the
// round, since the next URL would refuse it too.
func TestTry(t *testing.T) {
	ctx := context.Background()
	cl := &client.Client{HTTP: client.NewHTTPClient(2*time.Second, 5*time.Second)}
	a, b := ingesttest.New(t, "tok.secret-1"), ingesttest.New(t, "tok.secret-1")
	dead := deadURL(t)

	st, err := enroll.Try(ctx, cl, []string{dead, b.URL, a.URL}, "tok.secret-1", nil, "v1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st.URL != b.URL || st.DeviceID == "" || st.Token != "tok.secret-1" || a.Stats().EnrollRequests != 0 {
		t.Errorf("enrolled at %s (want %s), device %q, first URL after it asked %d times", st.URL, b.URL, st.DeviceID, a.Stats().EnrollRequests)
	}

	// Busy and failing URLs: the next one is tried; the longest Retry-After is kept.
	a.SetEnrollHook(func(int) *ingesttest.Reply {
		return &ingesttest.Reply{Status: 503, Code: "storage_unavailable", RetryAfter: "3"}
	})
	b.SetEnrollHook(func(int) *ingesttest.Reply {
		return &ingesttest.Reply{Status: 429, Code: "overloaded", RetryAfter: "7"}
	})
	_, err = enroll.Try(ctx, cl, []string{a.URL, dead, b.URL}, "tok.secret-1", nil, "v1", time.Now())
	var re *enroll.RoundError
	if !errors.As(err, &re) || re.Refused || !re.Answered || re.RetryAfter != 7*time.Second || len(re.Errs) != 3 {
		t.Fatalf("busy round: %v %+v", err, re)
	}
	if client.AsStatus(err) == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("the round's error should name every URL's failure: %v", err)
	}

	// Nobody answers.
	_, err = enroll.Try(ctx, cl, []string{dead}, "tok.secret-1", nil, "v1", time.Now())
	if !errors.As(err, &re) || re.Answered || re.Refused {
		t.Errorf("unreachable round: %+v", re)
	}

	// A refused token: the round ends at the first URL that refuses it.
	a.SetEnrollHook(nil)
	b.SetEnrollHook(nil)
	before := b.Stats().EnrollRequests
	_, err = enroll.Try(ctx, cl, []string{dead, a.URL, b.URL}, "tok.wrong-secret", nil, "v1", time.Now())
	if !errors.As(err, &re) || !re.Refused || re.Refusal() == nil || re.Refusal().Status != http.StatusUnauthorized || len(re.Errs) != 2 {
		t.Fatalf("refused round: %v %+v", err, re)
	}
	if b.Stats().EnrollRequests != before {
		t.Error("a URL after the refusal was asked too")
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("the error holds the token: %v", err)
	}
}
