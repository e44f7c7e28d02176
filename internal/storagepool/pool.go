package storagepool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/supportstack/supportstack/internal/objectstore"
)

// Endpoint is one S3 endpoint and its credentials.
type Endpoint = objectstore.Endpoint

// Defaults of Options.
const (
	DefaultFailureThreshold = 3
	DefaultOpenFor          = 2 * time.Second
	DefaultHealthInterval   = time.Second
	DefaultRequestTimeout   = 10 * time.Second
)

var (
	// ErrUnavailable means that no endpoint could serve a request; the error wrapping it names each endpoint's
	// reason.
	ErrUnavailable = errors.New("no storage endpoint is available")
	// ErrNotFound means that the object does not exist. It is an answer, not a failure: reads do not fall
	// through to the next endpoint on it.
	ErrNotFound = errors.New("object not found")
	// ErrTooLarge means that an object is larger than the caller's limit.
	ErrTooLarge = errors.New("object larger than the limit")
)

// Options of a Pool.
type Options struct {
	// Endpoints in order of preference.
	Endpoints []Endpoint
	Bucket    string
	// FailureThreshold is how many consecutive request failures open an endpoint's breaker (default 3).
	FailureThreshold int
	// OpenFor is how long an open breaker refuses requests before it lets one probe through (default 2s).
	OpenFor time.Duration
	// HealthInterval is how often Run checks each endpoint's health (default 1s). A failed check opens the
	// endpoint's breaker at once, a good one closes it.
	HealthInterval time.Duration
	// RequestTimeout bounds one attempt at one endpoint (default 10s), so that a hung server cannot hold a
	// caller for longer than RequestTimeout per endpoint.
	RequestTimeout time.Duration
	// HTTPClient is used for health checks (default: a new client). S3 requests use minio-go's transport.
	HTTPClient *http.Client
	// Registerer receives the pool's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Pool is an ordered list of storage endpoints with a circuit breaker each. It is safe for concurrent use.
type Pool struct {
	bucket    string
	policy    Policy
	interval  time.Duration
	timeout   time.Duration
	hc        *http.Client
	now       func() time.Time
	endpoints []*endpoint
	metrics   *metrics

	mu      sync.Mutex
	checked bool // a health round has completed
}

type endpoint struct {
	url    string
	client *minio.Client

	mu          sync.Mutex
	breaker     Breaker
	lastErr     string
	lastErrAt   time.Time
	lastHealthy time.Time
}

// EndpointState is what State reports about one endpoint.
type EndpointState struct {
	URL   string
	State State
	// Since is when the breaker entered State.
	Since time.Time
	// Failures counts consecutive request failures while closed.
	Failures int
	// LastError is the endpoint's most recent request or health-check error, empty if there was none.
	LastError   string
	LastErrorAt time.Time
	// LastHealthy is the time of the most recent good health check.
	LastHealthy time.Time
}

// New returns a pool over o.Endpoints. It makes no requests; call Run to start the health loop.
func New(o Options) (*Pool, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New("no storage endpoints configured")
	}
	if o.Bucket == "" {
		return nil, errors.New("no bucket configured")
	}
	p := &Pool{
		bucket:   o.Bucket,
		policy:   Policy{FailureThreshold: orDefault(o.FailureThreshold, DefaultFailureThreshold), OpenFor: orDefault(o.OpenFor, DefaultOpenFor)},
		interval: orDefault(o.HealthInterval, DefaultHealthInterval),
		timeout:  orDefault(o.RequestTimeout, DefaultRequestTimeout),
		hc:       o.HTTPClient,
		now:      o.Now,
	}
	if p.hc == nil {
		p.hc = &http.Client{}
	}
	if p.now == nil {
		p.now = time.Now
	}
	seen := map[string]bool{}
	for _, ep := range o.Endpoints {
		if seen[ep.URL] {
			return nil, fmt.Errorf("storage endpoint %q is listed twice", ep.URL)
		}
		seen[ep.URL] = true
		c, err := newClient(ep)
		if err != nil {
			return nil, err
		}
		p.endpoints = append(p.endpoints, &endpoint{url: ep.URL, client: c, breaker: Breaker{Since: p.now()}})
	}
	if o.Registerer != nil {
		m, err := newMetrics(o.Registerer, p)
		if err != nil {
			return nil, err
		}
		p.metrics = m
	}
	return p, nil
}

// newClient is objectstore.NewClient without minio-go's own retries: minio-go retries a refused connection ten
// times with backoff (seconds), where the pool wants to fall through to the next endpoint at once.
func newClient(ep Endpoint) (*minio.Client, error) {
	if _, err := objectstore.NewClient(ep); err != nil { // the same URL rules as everywhere else
		return nil, err
	}
	u, _ := url.Parse(ep.URL)
	c, err := minio.New(u.Host, &minio.Options{
		Creds:      credentials.NewStaticV4(ep.AccessKey, ep.SecretKey, ""),
		Secure:     u.Scheme == "https",
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("create storage client for %s: %w", ep.URL, err)
	}
	return c, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Bucket is the bucket the pool reads and writes.
func (p *Pool) Bucket() string { return p.bucket }

// Run checks every endpoint's health every HealthInterval until ctx ends, the first round at once. Endpoints are
// checked in parallel, so a hung one delays no other.
func (p *Pool) Run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.CheckHealth(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckHealth runs one health round: every endpoint's /minio/health/cluster, in parallel.
func (p *Pool) CheckHealth(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ep := range p.endpoints {
		wg.Go(func() {
			err := objectstore.Health(ctx, p.hc, ep.url)
			if ctx.Err() != nil {
				return // shutting down: not the endpoint's fault
			}
			if err != nil {
				ep.record(EventHealthFail, err, p.now(), p.policy)
				return
			}
			ep.record(EventHealthOK, nil, p.now(), p.policy)
		})
	}
	wg.Wait()
	if ctx.Err() == nil {
		p.mu.Lock()
		p.checked = true
		p.mu.Unlock()
	}
}

// Ready reports whether a health round has completed and some endpoint's breaker is not open: a server that
// could store nothing should get no traffic.
func (p *Pool) Ready() bool {
	p.mu.Lock()
	checked := p.checked
	p.mu.Unlock()
	if !checked {
		return false
	}
	for _, s := range p.State() {
		if s.State != Open {
			return true
		}
	}
	return false
}

// RetryAfter is how long a caller refused with ErrUnavailable should wait: the time until an open breaker
// lets a probe through or the next health check, whichever is shorter, at least one second.
func (p *Pool) RetryAfter() time.Duration {
	d := min(p.policy.OpenFor, p.interval)
	return time.Duration(math.Ceil(max(d, time.Second).Seconds())) * time.Second
}

// State reports each endpoint's breaker, in order of preference.
func (p *Pool) State() []EndpointState {
	out := make([]EndpointState, 0, len(p.endpoints))
	for _, ep := range p.endpoints {
		ep.mu.Lock()
		out = append(out, EndpointState{URL: ep.url, State: ep.breaker.State, Since: ep.breaker.Since,
			Failures: ep.breaker.Failures, LastError: ep.lastErr, LastErrorAt: ep.lastErrAt, LastHealthy: ep.lastHealthy})
		ep.mu.Unlock()
	}
	return out
}

func (ep *endpoint) admit(now time.Time, p Policy) (bool, Breaker) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	var ok bool
	ep.breaker, ok = ep.breaker.Admit(now, p)
	return ok, ep.breaker
}

func (ep *endpoint) record(ev Event, err error, now time.Time, p Policy) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.breaker = ep.breaker.On(ev, now, p)
	if err != nil {
		ep.lastErr, ep.lastErrAt = err.Error(), now
	}
	if ev == EventHealthOK {
		ep.lastHealthy = now
	}
}

// Put writes an object to the first endpoint whose breaker admits it, falling through to the next endpoint when
// an attempt fails, and returns the URL of the endpoint that stored it. When every endpoint failed or was
// skipped, the error wraps ErrUnavailable and each endpoint's reason.
func (p *Pool) Put(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	url, err := p.do(ctx, "put", func(ctx context.Context, c *minio.Client) error {
		_, err := c.PutObject(ctx, p.bucket, key, bytes.NewReader(data), int64(len(data)),
			minio.PutObjectOptions{ContentType: contentType, DisableMultipart: true})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("put %q: %w", key, err)
	}
	return url, nil
}

// Get reads an object of at most limit bytes, with the same fallback as Put. A missing object is ErrNotFound,
// an answer that does not fall through (the next endpoint is a replica of this one).
func (p *Pool) Get(ctx context.Context, key string, limit int64) ([]byte, error) {
	var data []byte
	_, err := p.do(ctx, "get", func(ctx context.Context, c *minio.Client) error {
		obj, err := c.GetObject(ctx, p.bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return notFound(err)
		}
		defer obj.Close()
		b, err := io.ReadAll(io.LimitReader(obj, limit+1))
		if err != nil {
			return notFound(err)
		}
		if int64(len(b)) > limit {
			return fmt.Errorf("%w: %d bytes", ErrTooLarge, limit)
		}
		data = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	return data, nil
}

// List returns up to limit keys under prefix (recursively, in key order), with the same fallback as Put.
func (p *Pool) List(ctx context.Context, prefix string, limit int) ([]string, error) {
	var keys []string
	_, err := p.do(ctx, "list", func(ctx context.Context, c *minio.Client) error {
		keys = keys[:0]
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for obj := range c.ListObjectsIter(ctx, p.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				return obj.Err
			}
			if len(keys) == limit {
				break
			}
			keys = append(keys, obj.Key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	return keys, nil
}

func notFound(err error) error {
	if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// do runs op against the endpoints in order until one succeeds. Each attempt has its own timeout. The caller's
// own cancellation is no endpoint's fault: it ends the call without touching the breaker's counts.
func (p *Pool) do(ctx context.Context, op string, fn func(context.Context, *minio.Client) error) (string, error) {
	var errs []error
	for _, ep := range p.endpoints {
		ok, b := ep.admit(p.now(), p.policy)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: circuit %s since %s", ep.url, b.State, b.Since.UTC().Format(time.RFC3339)))
			continue
		}
		p.metrics.attempt(ep.url, op)
		actx, cancel := context.WithTimeout(ctx, p.timeout)
		err := fn(actx, ep.client)
		cancel()
		switch {
		case err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooLarge):
			ep.record(EventSuccess, nil, p.now(), p.policy)
			return ep.url, err
		case ctx.Err() != nil:
			ep.record(EventAbandoned, nil, p.now(), p.policy)
			return "", fmt.Errorf("%s: %w", op, ctx.Err())
		}
		p.metrics.failure(ep.url, op)
		ep.record(EventFailure, err, p.now(), p.policy)
		errs = append(errs, fmt.Errorf("%s: %w", ep.url, err))
	}
	return "", fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}
