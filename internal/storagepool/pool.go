package storagepool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/supportstack/supportstack/internal/objectstore"
)

// Endpoint is one S3 endpoint and its credentials.
type Endpoint = objectstore.Endpoint

// Defaults of Options.
const (
	DefaultFailureThreshold       = 3
	DefaultHealthFailureThreshold = 3
	DefaultOpenFor                = 2 * time.Second
	DefaultHealthInterval         = time.Second
	DefaultHealthTimeout          = 5 * time.Second
	DefaultRequestTimeout         = 10 * time.Second
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
	// ErrPrecondition means that a conditional write did not happen: an object exists where IfAbsent asked for
	// none, or the current object's ETag is not IfMatch. Like ErrNotFound it is an answer, not a failure.
	ErrPrecondition = errors.New("precondition failed")
)

// Options of a Pool.
type Options struct {
	// Endpoints in order of preference.
	Endpoints []Endpoint
	Bucket    string
	// FailureThreshold is how many consecutive request failures open an endpoint's breaker (default 3).
	FailureThreshold int
	// HealthFailureThreshold is how many consecutive failed health checks open it (default 3). A check that
	// fails while a request to the endpoint succeeds does not count: the request is better evidence.
	HealthFailureThreshold int
	// OpenFor is how long an open breaker refuses requests before it lets one probe through (default 2s).
	OpenFor time.Duration
	// HealthInterval is how often Run checks each endpoint's health (default 1s). HealthFailureThreshold
	// failed checks in a row open the endpoint's breaker, a good one closes it.
	HealthInterval time.Duration
	// HealthTimeout bounds one health check (default 5s): long enough that a busy server's answer still counts.
	HealthTimeout time.Duration
	// RequestTimeout bounds one attempt at one endpoint (default 10s), so that a hung server cannot hold a
	// caller for longer than RequestTimeout per endpoint.
	RequestTimeout time.Duration
	// HTTPClient is used for health checks (default: a new client). S3 requests use minio-go's transport.
	HTTPClient *http.Client
	// Registerer receives the pool's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives a line for every breaker transition; nil logs nothing.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnSwitch, if set, is called (on a goroutine of its own) once per outage of the preferred endpoint, when
	// another endpoint first takes a write: the data plane's own measure of how long writes could not be taken.
	OnSwitch func(Switch)
}

// Switch is writes moving from the preferred endpoint to another: FailedAt is the first request that failed on
// the preferred endpoint since it last took a write (or that its open breaker refused), ResumedAt when another
// endpoint took a write.
type Switch struct {
	From, To            string
	FailedAt, ResumedAt time.Time
}

// Pool is an ordered list of storage endpoints with a circuit breaker each. It is safe for concurrent use.
type Pool struct {
	bucket    string
	policy    Policy
	interval  time.Duration
	hcTimeout time.Duration
	timeout   time.Duration
	log       *slog.Logger
	hc        *http.Client
	now       func() time.Time
	endpoints []*endpoint
	metrics   *metrics

	mu      sync.Mutex
	checked bool // a health round has completed
	// failedAt is when writes began to fail on the preferred endpoint, zero while it takes them; switched says
	// the switch of this outage was reported.
	failedAt time.Time
	switched bool
	onSwitch func(Switch)
}

type endpoint struct {
	url    string
	client *minio.Client

	mu          sync.Mutex
	breaker     Breaker
	lastErr     string
	lastErrAt   time.Time
	lastHealthy time.Time
	lastSuccess time.Time // of a write
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
		bucket: o.Bucket,
		policy: Policy{
			FailureThreshold:       orDefault(o.FailureThreshold, DefaultFailureThreshold),
			HealthFailureThreshold: orDefault(o.HealthFailureThreshold, DefaultHealthFailureThreshold),
			OpenFor:                orDefault(o.OpenFor, DefaultOpenFor),
		},
		interval:  orDefault(o.HealthInterval, DefaultHealthInterval),
		hcTimeout: orDefault(o.HealthTimeout, DefaultHealthTimeout),
		timeout:   orDefault(o.RequestTimeout, DefaultRequestTimeout),
		hc:        o.HTTPClient,
		now:       o.Now,
		log:       o.Logger,
		onSwitch:  o.OnSwitch,
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
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
		c, err := objectstore.NewFailFastClient(ep)
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
			start := p.now()
			hctx, cancel := context.WithTimeout(ctx, p.hcTimeout)
			err := objectstore.Health(hctx, p.hc, ep.url)
			cancel()
			if ctx.Err() != nil {
				return // shutting down: not the endpoint's fault
			}
			if err != nil {
				p.record(ep, EventHealthFail, err, start)
				return
			}
			p.record(ep, EventHealthOK, nil, time.Time{})
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

// Available reports whether some endpoint's breaker would admit a request now. A server asks before it reads a
// request body that it could not store anyway.
func (p *Pool) Available() bool {
	now := p.now()
	for _, ep := range p.endpoints {
		ep.mu.Lock()
		b := ep.breaker
		ep.mu.Unlock()
		switch {
		case b.State == Closed, b.State == HalfOpen && !b.Probing, b.State == Open && !now.Before(b.RetryAt):
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

// admit asks ep's breaker whether a request may go now.
func (p *Pool) admit(ep *endpoint) (bool, Breaker) {
	now := p.now()
	ep.mu.Lock()
	prev := ep.breaker
	var ok bool
	ep.breaker, ok = ep.breaker.Admit(now, p.policy)
	next, lastErr := ep.breaker, ep.lastErr
	ep.mu.Unlock()
	p.transition(ep, prev, next, "retry-due", lastErr)
	return ok, next
}

// record feeds an event to ep's breaker. A failed health check that started before the endpoint's latest
// successful request is stale evidence and is ignored: a check that timed out on a busy server must not open a
// breaker that requests are getting through.
func (p *Pool) record(ep *endpoint, ev Event, err error, checkStarted time.Time) {
	now := p.now()
	ep.mu.Lock()
	if ev == EventHealthFail && !ep.lastSuccess.IsZero() && !ep.lastSuccess.Before(checkStarted) {
		ep.mu.Unlock()
		p.metrics.staleHealth(ep.url)
		return
	}
	prev := ep.breaker
	ep.breaker = ep.breaker.On(ev, now, p.policy)
	if err != nil {
		ep.lastErr, ep.lastErrAt = err.Error(), now
	}
	switch ev {
	case EventHealthOK:
		ep.lastHealthy = now
	case EventSuccess:
		ep.lastSuccess = now
	}
	next, lastErr := ep.breaker, ep.lastErr
	ep.mu.Unlock()
	p.transition(ep, prev, next, causes[ev], lastErr)
}

// causes name what moved a breaker, for the log and the transitions metric.
var causes = map[Event]string{
	EventSuccess:     "request-succeeded",
	EventReadSuccess: "read-succeeded",
	EventFailure:     "request-failed",
	EventHealthOK:    "health-check-passed",
	EventHealthFail:  "health-check-failed",
	EventAbandoned:   "request-abandoned",
	EventTimeout:     "request-timed-out",
}

// transition logs and counts a change of a breaker's state.
func (p *Pool) transition(ep *endpoint, prev, next Breaker, cause, lastErr string) {
	if prev.State == next.State {
		return
	}
	p.metrics.transition(ep.url, prev.State, next.State, cause)
	level := slog.LevelInfo
	attrs := []any{"endpoint", ep.url, "from", prev.State.String(), "to", next.State.String(), "cause", cause}
	if next.State == Open {
		level = slog.LevelWarn
		attrs = append(attrs, "requestFailures", prev.Failures, "healthFailures", prev.HealthFailures, "lastError", lastErr)
	}
	p.log.Log(context.Background(), level, "Storage endpoint breaker changed", attrs...)
}

// WriteOptions qualify a write.
type WriteOptions struct {
	ContentType string
	// IfAbsent writes only where no object exists (If-None-Match: *); otherwise the write fails with
	// ErrPrecondition. Write-once objects use it, so that two writers racing on a key cannot replace data.
	IfAbsent bool
	// IfMatch writes only when the current object's ETag is this one (optimistic concurrency).
	IfMatch string
	// Metadata is stored as the object's user metadata.
	Metadata map[string]string
	// Endpoint, when set, is the only endpoint written to: an IfMatch ETag belongs to the endpoint the object
	// was read from (Object.Endpoint), and another endpoint's copy has its own.
	Endpoint string
}

// Object is an object as read, with its ETag and user metadata (keys in canonical header form, e.g.
// "Records-Sha256"), and the endpoint that answered (also for ErrNotFound).
type Object struct {
	Data     []byte
	ETag     string
	Metadata map[string]string
	Endpoint string
}

// route restricts which endpoints a call may use: only one, or all but some.
type route struct {
	only string
	skip []string
}

func (r route) allows(url string) bool {
	return (r.only == "" || r.only == url) && !slices.Contains(r.skip, url)
}

// Put writes an object unconditionally; see Write.
func (p *Pool) Put(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	url, _, err := p.Write(ctx, key, data, WriteOptions{ContentType: contentType})
	return url, err
}

// Write writes an object to the first endpoint whose breaker admits it, falling through to the next endpoint
// when an attempt fails, and returns the URL of the endpoint that stored it and the object's new ETag. When
// every endpoint failed or was skipped, the error wraps ErrUnavailable and each endpoint's reason. A
// precondition that does not hold is ErrPrecondition, an answer that does not fall through.
func (p *Pool) Write(ctx context.Context, key string, data []byte, o WriteOptions) (string, string, error) {
	opts := minio.PutObjectOptions{ContentType: o.ContentType, DisableMultipart: true, UserMetadata: o.Metadata}
	switch {
	case o.IfAbsent:
		opts.SetMatchETagExcept("*")
	case o.IfMatch != "":
		opts.SetMatchETag(o.IfMatch)
	}
	var etag string
	url, err := p.do(ctx, "put", route{only: o.Endpoint}, func(ctx context.Context, c *minio.Client) error {
		info, err := c.PutObject(ctx, p.bucket, key, bytes.NewReader(data), int64(len(data)), opts)
		if err != nil {
			err = classify(err)
			if errors.Is(err, ErrNotFound) {
				// If-Match on a key with no object: the object it was read as is gone.
				return fmt.Errorf("%w: %w", ErrPrecondition, err)
			}
			return err
		}
		etag = info.ETag
		return nil
	})
	if err != nil {
		return "", "", fmt.Errorf("put %q: %w", key, err)
	}
	return url, etag, nil
}

// Get reads an object of at most limit bytes; see Read.
func (p *Pool) Get(ctx context.Context, key string, limit int64) ([]byte, error) {
	obj, err := p.Read(ctx, key, limit)
	return obj.Data, err
}

// Read reads an object of at most limit bytes with its ETag and metadata, with the same fallback as Write. A
// missing object is ErrNotFound, an answer that does not fall through (the next endpoint is a replica of this
// one). Endpoints listed in skip are not asked.
func (p *Pool) Read(ctx context.Context, key string, limit int64, skip ...string) (Object, error) {
	var out Object
	url, err := p.do(ctx, "get", route{skip: skip}, func(ctx context.Context, c *minio.Client) error {
		obj, err := c.GetObject(ctx, p.bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return classify(err)
		}
		defer obj.Close()
		info, err := obj.Stat()
		if err != nil {
			return classify(err)
		}
		if info.Size > limit {
			return fmt.Errorf("%w: %d bytes", ErrTooLarge, limit)
		}
		b, err := io.ReadAll(io.LimitReader(obj, limit+1))
		if err != nil {
			return classify(err)
		}
		if int64(len(b)) > limit {
			return fmt.Errorf("%w: %d bytes", ErrTooLarge, limit)
		}
		out = Object{Data: b, ETag: info.ETag, Metadata: metadata(info)}
		return nil
	})
	out.Endpoint = url
	if err != nil {
		return Object{Endpoint: url}, fmt.Errorf("get %q: %w", key, err)
	}
	return out, nil
}

// Stat reads an object's ETag and metadata without its content.
func (p *Pool) Stat(ctx context.Context, key string) (Object, error) {
	var out Object
	url, err := p.do(ctx, "stat", route{}, func(ctx context.Context, c *minio.Client) error {
		info, err := c.StatObject(ctx, p.bucket, key, minio.StatObjectOptions{})
		if err != nil {
			return classify(err)
		}
		out = Object{ETag: info.ETag, Metadata: metadata(info)}
		return nil
	})
	if err != nil {
		return Object{Endpoint: url}, fmt.Errorf("stat %q: %w", key, err)
	}
	out.Endpoint = url
	return out, nil
}

func metadata(info minio.ObjectInfo) map[string]string {
	out := map[string]string{}
	for k, v := range info.UserMetadata {
		out[http.CanonicalHeaderKey(strings.TrimPrefix(strings.ToLower(k), "x-amz-meta-"))] = v
	}
	return out
}

// ListOptions select keys to list.
type ListOptions struct {
	Prefix string
	// StartAfter lists the keys after this one.
	StartAfter string
	// Recursive lists every key under Prefix; otherwise keys and common prefixes one level down.
	Recursive bool
	// Limit bounds the keys returned.
	Limit int
}

// List returns keys in key order, with the same fallback as Write.
func (p *Pool) List(ctx context.Context, o ListOptions) ([]string, error) {
	objs, err := p.ListInfo(ctx, o)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(objs))
	for i, obj := range objs {
		keys[i] = obj.Key
	}
	return keys, nil
}

// ObjectInfo is a listed object: its key, size, ETag and when the copy that listed it stored it.
type ObjectInfo struct {
	Key          string
	Size         int64
	ETag         string
	LastModified time.Time
}

// ListInfo is List with each object's size, ETag and time. Readers that page through a large prefix call it
// with a Limit and StartAfter the last key they got, so that each page is one request under the timeout.
func (p *Pool) ListInfo(ctx context.Context, o ListOptions) ([]ObjectInfo, error) {
	var objs []ObjectInfo
	_, err := p.do(ctx, "list", route{}, func(ctx context.Context, c *minio.Client) error {
		objs = objs[:0]
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for obj := range c.ListObjectsIter(ctx, p.bucket, minio.ListObjectsOptions{Prefix: o.Prefix, StartAfter: o.StartAfter, Recursive: o.Recursive}) {
			if obj.Err != nil {
				return obj.Err
			}
			if len(objs) == o.Limit {
				break
			}
			objs = append(objs, ObjectInfo{Key: obj.Key, Size: obj.Size, ETag: obj.ETag, LastModified: obj.LastModified})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", o.Prefix, err)
	}
	return objs, nil
}

// classify turns the S3 answers that are answers, not failures, into ErrNotFound and ErrPrecondition.
func classify(err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == minio.NoSuchKey || (resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	// MinIO answers 409 ConditionalRequestConflict when a concurrent conditional write won: for the caller it
	// is the same as a precondition that did not hold.
	case resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed" ||
		resp.Code == "ConditionalRequestConflict":
		return fmt.Errorf("%w: %w", ErrPrecondition, err)
	}
	return err
}

// do runs op against the endpoints r allows, in order, until one answers. Each attempt has its own timeout. The
// caller's own cancellation is no endpoint's fault: it ends the call without touching the breaker's counts. An
// answer (success, not found, precondition) of a write counts as a success, of a read as a read success.
func (p *Pool) do(ctx context.Context, op string, r route, fn func(context.Context, *minio.Client) error) (string, error) {
	answered := EventSuccess
	if op != "put" {
		answered = EventReadSuccess
	}
	var errs []error
	for i, ep := range p.endpoints {
		if !r.allows(ep.url) {
			continue
		}
		ok, b := p.admit(ep)
		if !ok {
			if i == 0 {
				p.preferredFailed(b.Since)
			}
			errs = append(errs, fmt.Errorf("%s: circuit %s since %s", ep.url, b.State, b.Since.UTC().Format(time.RFC3339)))
			continue
		}
		p.metrics.attempt(ep.url, op)
		started := p.now()
		actx, cancel := context.WithTimeout(ctx, p.timeout)
		err := fn(actx, ep.client)
		cancel()
		switch {
		case err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrPrecondition):
			p.record(ep, answered, nil, time.Time{})
			if op == "put" {
				p.wrote(i, ep.url)
			}
			return ep.url, err
		case ctx.Err() != nil:
			p.record(ep, EventAbandoned, nil, time.Time{})
			return "", fmt.Errorf("%s: %w", op, ctx.Err())
		}
		p.metrics.failure(ep.url, op)
		ev := EventFailure
		if errors.Is(actx.Err(), context.DeadlineExceeded) {
			ev = EventTimeout
		}
		p.record(ep, ev, err, time.Time{})
		if i == 0 {
			// Any request the preferred endpoint fails counts: a write begins with reads (a batch reads its
			// device's ledger first), and a hung endpoint is found by the first of them.
			p.preferredFailed(started)
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep.url, err))
	}
	if len(errs) == 0 {
		errs = append(errs, fmt.Errorf("no storage endpoint may serve this request (only %q, skipping %q)", r.only, r.skip))
	}
	return "", fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

// preferredFailed notes a write the preferred endpoint did not take, begun at at.
func (p *Pool) preferredFailed(at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failedAt.IsZero() || at.Before(p.failedAt) {
		p.failedAt = at
	}
}

// wrote notes a write taken by the i-th endpoint: the preferred one ends an outage, another one ends the first
// wait of an outage, which is reported once.
func (p *Pool) wrote(i int, url string) {
	p.mu.Lock()
	if i == 0 {
		p.failedAt, p.switched = time.Time{}, false
		p.mu.Unlock()
		return
	}
	if p.failedAt.IsZero() || p.switched {
		p.mu.Unlock()
		return
	}
	p.switched = true
	s := Switch{From: p.endpoints[0].url, To: url, FailedAt: p.failedAt, ResumedAt: p.now()}
	p.mu.Unlock()
	p.log.Warn("Writes moved to another storage endpoint", "from", s.From, "to", s.To,
		"unavailableFor", s.ResumedAt.Sub(s.FailedAt).String())
	if p.onSwitch != nil {
		go p.onSwitch(s)
	}
}
