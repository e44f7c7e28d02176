package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/config"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/questions"
)

// firstAnswerPoll bounds the wait for the first fetch of answers after start.
const firstAnswerPoll = 5 * time.Second

// answerPoller fetches the answers to this PC's questions and keeps them in the answers file for "status".
type answerPoller struct {
	lay    config.Layout
	client *client.Client
	store  *questions.Answers
	log    *slog.Logger
	rand   func() float64 // in [0, 1), for the jitter

	// Owned by the loop.
	lastErr    string
	lastLogged time.Time
}

// loop fetches answers shortly after start and then every `every`, until ctx is done. The waits are jittered
// so that a fleet switched on at nine does not ask at the same second ever after. Failures are retried at the
// next tick and logged quietly: answers are a convenience, and a PC that cannot reach the service for a while
// must not fill its log.
func (p *answerPoller) loop(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = config.Default().AnswerInterval
	}
	wait := time.Duration(p.rand() * float64(min(every, firstAnswerPoll)))
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait = every - every/10 + time.Duration(p.rand()*float64(every/5))
		if err := p.poll(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.failed(err)
			if se := client.AsStatus(err); se != nil {
				wait = max(wait, se.RetryAfter) // a server that asks for more time gets it
			}
		} else if p.lastErr != "" {
			p.log.Info("Fetching answers works again")
			p.lastErr = ""
		}
		t.Reset(wait)
	}
}

// failed logs a failure at info when it is new or every 10 minutes, at debug otherwise.
func (p *answerPoller) failed(err error) {
	level := slog.LevelDebug
	if err.Error() != p.lastErr || time.Since(p.lastLogged) > 10*time.Minute {
		level, p.lastErr, p.lastLogged = slog.LevelInfo, err.Error(), time.Now()
	}
	p.log.Log(context.Background(), level, "Cannot fetch answers; trying again later", "err", err)
}

// poll fetches the answers once, from the first endpoint that serves them, and saves them if they changed.
func (p *answerPoller) poll(ctx context.Context) error {
	// Read afresh every time: the sender enrolls again after a 401 and saves the new credential and endpoints
	// here; this loop then picks them up.
	st, err := enroll.Load(p.lay.Enrollment())
	if err != nil {
		return err
	}
	var lastErr error
	for _, ep := range st.SendEndpoints() {
		answers, err := p.client.Answers(ctx, ep, st.Credential)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil || !tryElsewhere(err) {
				return err
			}
			continue
		}
		if n := p.store.Merge(answers); n > 0 {
			p.log.Info("New answers to questions", "count", n, "endpoint", ep)
		}
		// Also after an unchanged fetch: a save that failed last time is tried again.
		return p.store.Save()
	}
	return lastErr
}

// tryElsewhere tells whether another endpoint may serve a request that failed at one: this one could not be
// reached, timed out, failed or was too busy. A refusal of the request itself (401, 403, 404) would be the same
// everywhere.
func tryElsewhere(err error) bool {
	se := client.AsStatus(err)
	return se == nil || se.Status >= 500 || se.Status == http.StatusRequestTimeout || se.Status == http.StatusTooManyRequests
}
