package sender

import "time"

// Backoff is the wait before retry number attempt (1 for the first retry): a uniformly random duration in
// [0, min(max, base·2^(attempt-1))), "full jitter", so that agents that failed together do not retry together.
// r is a random number in [0, 1).
func Backoff(attempt int, base, max time.Duration, r float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	ceiling := base
	for i := 1; i < attempt && ceiling < max; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, max)
	if r < 0 {
		r = 0
	}
	if r >= 1 {
		r = 0.999999
	}
	return time.Duration(float64(ceiling) * r)
}

// Paced is the wait a reachable server asked for: its Retry-After plus up to a quarter more (at most 5 s), so
// agents told the same time spread out, capped at pacedMax. A server that gives no Retry-After gets the
// exponential backoff for attempt (Backoff with base and max), capped at pacedMax too. r is a random number in
// [0, 1).
func Paced(retryAfter time.Duration, attempt int, base, max, pacedMax time.Duration, r float64) time.Duration {
	if retryAfter <= 0 {
		return min(Backoff(attempt, base, max, r), pacedMax)
	}
	jitter := time.Duration(r * float64(min(retryAfter/4, 5*time.Second)))
	return min(retryAfter+jitter, pacedMax)
}

// bucket is a token bucket of records: rate per second, holding at most one second's worth. A batch larger than
// that is let through once enough time has passed for it, so the average rate stays at most rate.
type bucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

func (b *bucket) setRate(perSecond int, now time.Time) {
	if !b.last.IsZero() {
		b.refill(now)
	}
	b.rate = float64(perSecond)
	if b.last.IsZero() {
		b.last, b.tokens = now, b.burst()
	}
	b.tokens = min(b.tokens, b.burst())
}

func (b *bucket) burst() float64 { return max(b.rate, 1) }

func (b *bucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.last, b.tokens = now, b.burst()
		return
	}
	if now.After(b.last) {
		b.tokens = min(b.burst(), b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
}

// take charges n records and returns how long to wait before sending them (zero without a rate).
func (b *bucket) take(n int, now time.Time) time.Duration {
	if b.rate <= 0 {
		return 0
	}
	b.refill(now)
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// refund gives back n records that were not sent after all.
func (b *bucket) refund(n int) {
	if b.rate <= 0 {
		return
	}
	b.tokens = min(b.burst(), b.tokens+float64(n))
}
