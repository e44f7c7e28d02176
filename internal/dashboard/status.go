package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// The public status page is rendered from memory: the storage pool's breakers (which its health loop keeps
// current) and what a background loop last read from the bucket (the replication heartbeats, the last switch
// record). A request never waits on storage, so the page answers at once when every storage endpoint is down —
// when it is needed. It names the copies ("this cluster", "the peer cluster") rather than their addresses: it
// needs no sign-in.

// DefaultStatusInterval is how often the heartbeats and the last switch are read from the bucket.
const DefaultStatusInterval = 2 * time.Second

// Status is what the status page shows, and its JSON variant (GET /status.json) returns.
type Status struct {
	Tenant      string `json:"tenant"`
	DisplayName string `json:"displayName"`
	// Serving names the copy the workspace reads from now: "this cluster", "the peer cluster", or "" when no copy
	// answers.
	Serving  string `json:"serving"`
	FromPeer bool   `json:"fromPeer"`
	// Storage is each copy's health as this server's storage pool sees it, in order of preference.
	Storage []CopyHealth `json:"storage"`
	// Heartbeats are the replication heartbeats found in the copy that serves: each copy's operator writes its
	// own every few seconds and replication brings the other's, so the older one's age bounds the replication
	// lag. Empty for a tenant that is not replicated.
	Heartbeats []Heartbeat `json:"heartbeats,omitempty"`
	// ReplicationLagSeconds is the age of the older heartbeat, when both were found.
	ReplicationLagSeconds *float64 `json:"replicationLagSeconds,omitempty"`
	// LastSwitch is the data plane's latest move of its writes to another copy (the last failover), if any.
	LastSwitch *Switch `json:"lastSwitch,omitempty"`
	// CheckedAt is when the page was rendered; BucketReadAt when the heartbeats and the last switch were last
	// read from the bucket (a page served during an outage says how old they are).
	CheckedAt    time.Time `json:"checkedAt"`
	BucketReadAt time.Time `json:"bucketReadAt,omitzero"`
}

// Lag is ReplicationLagSeconds for the page, 0 when unknown.
func (s Status) Lag() float64 {
	if s.ReplicationLagSeconds == nil {
		return 0
	}
	return *s.ReplicationLagSeconds
}

// CopyHealth is one copy of the tenant's storage.
type CopyHealth struct {
	Site    string `json:"site"`
	Healthy bool   `json:"healthy"`
	// Since is when the copy's current health began, as this server saw it.
	Since time.Time `json:"since,omitzero"`
	// LastFailureAt is when a request or health check to the copy last failed.
	LastFailureAt time.Time `json:"lastFailureAt,omitzero"`
}

// Heartbeat is one copy's replication heartbeat.
type Heartbeat struct {
	Copy       string    `json:"copy"`
	WrittenAt  time.Time `json:"writtenAt"`
	AgeSeconds float64   `json:"ageSeconds"`
}

// Switch is a data-plane server moving its writes to another copy.
type Switch struct {
	From string    `json:"from"`
	To   string    `json:"to"`
	At   time.Time `json:"at"`
	// WaitSeconds is how long that server could not write: the failover's RTO as it measured it.
	WaitSeconds float64 `json:"waitSeconds"`
}

// statusTracker keeps what the status page shows of the bucket.
type statusTracker struct {
	cfg  Config
	pool *storagepool.Pool

	// mu guards what the last refresh read; each part is kept from the last refresh that could read it: an
	// outage does not erase the last failover from the page.
	mu         sync.Mutex
	lastSwitch *Switch
	heartbeats []Heartbeat
	readAt     time.Time
}

func newStatusTracker(cfg Config, pool *storagepool.Pool) *statusTracker {
	return &statusTracker{cfg: cfg, pool: pool}
}

// run refreshes the snapshot every interval until ctx ends.
func (t *statusTracker) run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		t.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// status is the page's content now.
func (t *statusTracker) status(now time.Time) Status {
	s := t.health(now)
	t.mu.Lock()
	defer t.mu.Unlock()
	s.LastSwitch, s.BucketReadAt = t.lastSwitch, t.readAt
	var oldest float64
	for _, hb := range t.heartbeats {
		hb.AgeSeconds = max(0, now.Sub(hb.WrittenAt).Seconds())
		oldest = max(oldest, hb.AgeSeconds)
		s.Heartbeats = append(s.Heartbeats, hb)
	}
	if len(s.Heartbeats) == 2 {
		s.ReplicationLagSeconds = &oldest
	}
	return s
}

// site names an endpoint for the public page.
func (t *statusTracker) site(url string) string {
	if url == t.cfg.LocalEndpoint() {
		return "this cluster"
	}
	return "the peer cluster"
}

// health is the storage part of the snapshot: the pool's breakers, read from memory.
func (t *statusTracker) health(now time.Time) Status {
	s := Status{Tenant: t.cfg.Tenant, DisplayName: t.cfg.DisplayName, CheckedAt: now.UTC()}
	for _, st := range t.pool.State() {
		c := CopyHealth{Site: t.site(st.URL), Healthy: st.State != storagepool.Open, Since: st.Since, LastFailureAt: st.LastErrorAt}
		if c.Healthy && s.Serving == "" {
			s.Serving, s.FromPeer = c.Site, st.URL != t.cfg.LocalEndpoint()
		}
		s.Storage = append(s.Storage, c)
	}
	return s
}

// refresh reads the replication heartbeats and the last switch record from the bucket, with a short deadline,
// when some copy answers.
func (t *statusTracker) refresh(ctx context.Context) {
	if t.health(time.Now()).Serving == "" {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	hbs, hbErr := t.readHeartbeats(rctx)
	sw, swErr := t.readLastSwitch(rctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	if hbErr == nil {
		t.heartbeats = hbs
	}
	if swErr == nil && sw != nil {
		t.lastSwitch = sw
	}
	if hbErr == nil && swErr == nil {
		t.readAt = time.Now().UTC()
	}
}

// readHeartbeats reads both copies' heartbeats from the copy that serves.
func (t *statusTracker) readHeartbeats(ctx context.Context) ([]Heartbeat, error) {
	var out []Heartbeat
	for _, copyName := range []string{naming.RoleHome, naming.RoleStandby} {
		data, err := t.pool.Get(ctx, objectstore.HeartbeatKey(copyName), 4096)
		if errors.Is(err, storagepool.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var hb objectstore.Heartbeat
		if json.Unmarshal(data, &hb) != nil || hb.At.IsZero() {
			continue
		}
		out = append(out, Heartbeat{Copy: copyName, WrittenAt: hb.At.UTC()})
	}
	return out, nil
}

// readLastSwitch reads the newest switch record: keys sort by time.
func (t *statusTracker) readLastSwitch(ctx context.Context) (*Switch, error) {
	keys, err := t.pool.List(ctx, storagepool.ListOptions{Prefix: protocol.SwitchPrefix, Recursive: true, Limit: 10_000})
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	slices.Sort(keys)
	data, err := t.pool.Get(ctx, keys[len(keys)-1], 4096)
	if err != nil {
		return nil, err
	}
	var rec protocol.StorageSwitch
	if err := json.Unmarshal(data, &rec); err != nil || rec.ResumedAt.IsZero() {
		return nil, err
	}
	return &Switch{From: t.site(rec.From), To: t.site(rec.To), At: rec.ResumedAt.UTC(),
		WaitSeconds: rec.ResumedAt.Sub(rec.FailedAt).Seconds()}, nil
}

// serveStatus answers the status page and its JSON variant from the snapshot. With no copy answering the code is
// 503 and the page still renders.
func (t *statusTracker) serveStatus(asJSON bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		s := t.status(time.Now())
		code := http.StatusOK
		if s.Serving == "" {
			code = http.StatusServiceUnavailable
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		// A public page with no script: nothing may run, frame it or be loaded from elsewhere.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if asJSON {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(s)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(code)
		_ = pages.ExecuteTemplate(w, "status.html", s)
	}
}
