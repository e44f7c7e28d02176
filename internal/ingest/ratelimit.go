package ingest

import (
	"math"
	"sync"
	"time"
)

// bucket is one device's token bucket: a token is one record.
type bucket struct {
	tokens float64
	last   time.Time
}

// take is the token bucket's pure step: refill for the time since the last step (up to burst), then take n
// tokens if there are enough. When there are not, nothing is taken and wait says how long until there would be.
func (b bucket) take(n int, now time.Time, rate float64, burst int) (next bucket, ok bool, wait time.Duration) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+rate*elapsed.Seconds())
		b.last = now
	}
	if b.tokens >= float64(n) {
		b.tokens -= float64(n)
		return b, true, 0
	}
	return b, false, time.Duration((float64(n) - b.tokens) / rate * float64(time.Second))
}

// limiter keeps a token bucket per device. Buckets that have refilled completely are dropped now and then, so
// memory follows the devices that are active, not all that ever were.
type limiter struct {
	rate  float64
	burst int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

// newLimiter returns nil, which admits everything, when rate is 0.
func newLimiter(rate float64, burst, minBurst int) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{rate: rate, burst: max(burst, minBurst, 1), buckets: map[string]*bucket{}}
}

// take takes n records from the device's bucket, or says how long the device should wait.
func (l *limiter) take(device string, n int, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= time.Minute {
		l.sweep(now)
	}
	b, found := l.buckets[device]
	if !found {
		b = &bucket{tokens: float64(l.burst), last: now}
		l.buckets[device] = b
	}
	next, ok, wait := b.take(n, now, l.rate, l.burst)
	*b = next
	return ok, wait
}

func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for id, b := range l.buckets {
		if b.tokens+l.rate*now.Sub(b.last).Seconds() >= float64(l.burst) {
			delete(l.buckets, id)
		}
	}
}

// retryAfterSeconds is a Retry-After value: whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// refund gives n records back to the device's bucket (up to its burst).
func (l *limiter) refund(device string, n int) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, found := l.buckets[device]; found {
		b.tokens = min(float64(l.burst), b.tokens+float64(n))
	}
}
