package ingest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// admission bounds the requests that do storage work at once. When storage comes back after an outage every
// agent returns with a backlog; rather than letting them all in (each request then slower, more of them timing
// out and retrying), a request waits up to a short while for a slot and is otherwise refused with 429
// "overloaded" and a Retry-After spread over a window that grows with the queue, so the herd comes back spread
// out instead of guessing.
type admission struct {
	slots   chan struct{}
	wait    time.Duration
	maxWait int // seconds: the widest Retry-After window
	queued  atomic.Int64
	rand    func() float64
}

func newAdmission(concurrency int, wait time.Duration, maxRetryAfter int, random func() float64) *admission {
	if random == nil {
		random = rand.Float64
	}
	return &admission{slots: make(chan struct{}, max(concurrency, 1)), wait: wait, maxWait: max(maxRetryAfter, 2), rand: random}
}

// enter takes a slot, waiting up to the admission wait; release gives it back.
func (a *admission) enter(ctx context.Context) (release func(), _ *protocol.RequestError) {
	release = func() { <-a.slots }
	select {
	case a.slots <- struct{}{}:
		return release, nil
	default:
	}
	queued := a.queued.Add(1)
	defer a.queued.Add(-1)
	t := time.NewTimer(a.wait)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
		return release, nil
	case <-ctx.Done():
	case <-t.C:
	}
	// The window holds the queue's worth of slot turns, at least 2 and at most maxWait seconds.
	window := min(a.maxWait, max(2, 1+int(queued)/cap(a.slots)))
	return nil, &protocol.RequestError{Status: http.StatusTooManyRequests, Code: "overloaded",
		Message:    fmt.Sprintf("ingest is busy (%d requests waiting): retry after the Retry-After time", queued),
		RetryAfter: spread(1, window, a.rand)}
}

// spread returns a whole number of seconds drawn evenly from [lo, hi].
func spread(lo, hi int, random func() float64) int {
	if hi <= lo {
		return lo
	}
	return lo + int(random()*float64(hi-lo+1))
}

// setRetryAfter sets the Retry-After header of a refusal that carries one.
func setRetryAfter(w http.ResponseWriter, seconds int) {
	if seconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(seconds))
	}
}
