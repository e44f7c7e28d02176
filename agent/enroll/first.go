package enroll

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/supportstack/supportstack/agent/client"
)

// RoundError is why Try enrolled nowhere: one error per URL tried, in order, and what they say together.
type RoundError struct {
	Errs []error
	// Refused is set when the server refused the enrollment itself (401 or 403: a wrong, revoked, expired or
	// exhausted token). Every URL of the service would say the same, so the round ended there.
	Refused bool
	// Answered is set when some URL answered with an HTTP status (it is reachable).
	Answered bool
	// RetryAfter is the longest Retry-After of the round (429, 503, 409 enrollment_conflict), zero when none.
	RetryAfter time.Duration
}

func (e *RoundError) Error() string {
	msgs := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e *RoundError) Unwrap() []error { return e.Errs }

// Refusal returns the server's refusal (a 401 or 403) that ended the round, or nil.
func (e *RoundError) Refusal() *client.StatusError {
	if !e.Refused || len(e.Errs) == 0 {
		return nil
	}
	return client.AsStatus(e.Errs[len(e.Errs)-1])
}

// refused tells whether a failed enrollment was refused by the server as such, rather than failed at one URL.
func refused(se *client.StatusError) bool {
	return se != nil && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden)
}

// Try makes one round of enrollment at urls, in order of preference: a URL that cannot be reached, times out,
// fails, is busy or answers anything but a refusal passes to the next one at once; a refusal of the token
// (401, 403) ends the round, as every URL would say the same. The state records the URL that took the
// enrollment (Enroll's prev and agentVersion as there). On failure the error is a *RoundError; it never holds
// the token.
func Try(ctx context.Context, c *client.Client, urls []string, token string, prev *State, agentVersion string, now time.Time) (State, error) {
	re := &RoundError{}
	for _, u := range urls {
		st, err := Enroll(ctx, c, u, token, prev, agentVersion, now)
		if err == nil {
			st.URL = u
			return st, nil
		}
		re.Errs = append(re.Errs, err)
		if ctx.Err() != nil {
			break
		}
		if se := client.AsStatus(err); se != nil {
			re.Answered = true
			re.RetryAfter = max(re.RetryAfter, se.RetryAfter)
			if refused(se) {
				re.Refused = true
				break
			}
		}
	}
	if len(re.Errs) == 0 {
		re.Errs = append(re.Errs, errors.New("enroll: no ingest URL"))
	}
	return State{}, re
}

// FetchEndpoints completes a new enrollment with the endpoint list and the drain rate (GET /v1/endpoints), from
// the first of its endpoints that serves them. It is best effort: the daemon fetches them again when it fails.
func FetchEndpoints(ctx context.Context, c *client.Client, st *State, now time.Time, log *slog.Logger) {
	for _, ep := range st.Endpoints {
		resp, err := c.Endpoints(ctx, ep, st.Credential)
		if err != nil {
			if log != nil {
				log.Info("Cannot fetch the endpoint list", "endpoint", ep, "err", err)
			}
			continue
		}
		// An empty list means "keep yours".
		if len(resp.Endpoints) > 0 {
			st.Endpoints = resp.Endpoints
		}
		st.MaxRecordsPerSecond, st.EndpointsRefreshedAt = resp.MaxRecordsPerSecond, now
		return
	}
}
