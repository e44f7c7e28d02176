package sender

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const base, ceiling = time.Second, 10 * time.Minute
	tests := map[string]struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		"first retry, no jitter drawn":   {attempt: 1, r: 0, want: 0},
		"first retry, half":              {attempt: 1, r: 0.5, want: 500 * time.Millisecond},
		"second retry doubles the bound": {attempt: 2, r: 0.5, want: time.Second},
		"fifth retry":                    {attempt: 5, r: 0.5, want: 8 * time.Second},
		"tenth retry":                    {attempt: 10, r: 0.5, want: 256 * time.Second},
		"capped":                         {attempt: 11, r: 0.5, want: 5 * time.Minute},
		"capped far out":                 {attempt: 1000, r: 0.5, want: 5 * time.Minute},
		"attempt 0 counts as the first":  {attempt: 0, r: 0.5, want: 500 * time.Millisecond},
		"r out of range is clamped":      {attempt: 1, r: 7, want: time.Duration(float64(time.Second) * 0.999999)},
		"negative r is clamped":          {attempt: 3, r: -1, want: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Backoff(tc.attempt, base, ceiling, tc.r); got != tc.want {
				t.Errorf("Backoff(%d, r=%v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
			}
		})
	}
}

// Full jitter: every wait lies in [0, min(cap, base·2^(n-1))), and the bound is reached from below.
func TestBackoffFullJitterBounds(t *testing.T) {
	const base, ceiling = time.Second, 10 * time.Minute
	for attempt := 1; attempt <= 30; attempt++ {
		bound := min(ceiling, base<<min(attempt-1, 20))
		for _, r := range []float64{0, 0.1, 0.5, 0.9, 0.999999} {
			got := Backoff(attempt, base, ceiling, r)
			if got < 0 || got >= bound {
				t.Fatalf("Backoff(%d, %v) = %v, outside [0, %v)", attempt, r, got, bound)
			}
		}
		if hi := Backoff(attempt, base, ceiling, 0.999999); hi < bound*99/100 {
			t.Fatalf("Backoff(%d) never gets near its bound %v: %v", attempt, bound, hi)
		}
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := map[string]struct {
		rate  int
		steps []struct {
			at   time.Duration
			n    int
			want time.Duration
		}
	}{
		"no rate: never waits": {rate: 0, steps: []struct {
			at   time.Duration
			n    int
			want time.Duration
		}{{0, 1000, 0}, {0, 1000, 0}}},
		"burst of one second, then the rate": {rate: 100, steps: []struct {
			at   time.Duration
			n    int
			want time.Duration
		}{
			{0, 100, 0},                 // the full bucket
			{0, 1000, 10 * time.Second}, // 1000 records at 100/s
			{10 * time.Second, 50, 500 * time.Millisecond}, // the debt was repaid exactly, nothing more
			{time.Hour, 100, 0},                            // refilled, but never above one second's worth
			{time.Hour, 1, 10 * time.Millisecond},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var b bucket
			b.setRate(tc.rate, t0)
			for i, s := range tc.steps {
				if got := b.take(s.n, t0.Add(s.at)); got != s.want {
					t.Fatalf("step %d: take(%d) at +%v = %v, want %v", i, s.n, s.at, got, s.want)
				}
			}
		})
	}
}

// Paced is what the sender and the daemon's first enrollment wait when a reachable server answered.
func TestPaced(t *testing.T) {
	const base, ceiling, paced = time.Second, 10 * time.Minute, 30 * time.Second
	tests := map[string]struct {
		retryAfter time.Duration
		attempt    int
		r          float64
		want       time.Duration
	}{
		"Retry-After and a quarter of jitter": {retryAfter: 4 * time.Second, r: 0.5, want: 4*time.Second + 500*time.Millisecond},
		"jitter at most 5s":                   {retryAfter: 28 * time.Second, r: 0.1, want: 28*time.Second + 500*time.Millisecond},
		"capped at the paced maximum":         {retryAfter: 2 * time.Minute, r: 0, want: paced},
		"no Retry-After: backoff":             {attempt: 3, r: 0.5, want: 2 * time.Second},
		"no Retry-After: backoff capped too":  {attempt: 20, r: 0.5, want: paced},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Paced(tc.retryAfter, tc.attempt, base, ceiling, paced, tc.r); got != tc.want {
				t.Errorf("Paced(%v, %d, r=%v) = %v, want %v", tc.retryAfter, tc.attempt, tc.r, got, tc.want)
			}
		})
	}
}
