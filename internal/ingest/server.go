package ingest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"
	"github.com/supportstack/supportstack/internal/webserver"
)

// Server is the ingest service's HTTP handler and its storage.
type Server struct {
	cfg       Config
	limits    protocol.Limits
	pool      *storagepool.Pool
	ledgers   *ledgers
	admission *admission
	signer    protocol.Signer
	tokenHash [sha256.Size]byte
	agents    *agentDownloads
	limiter   *limiter
	metrics   *metrics
	log       *slog.Logger
	now       func() time.Time
	rand      func() float64
	handler   http.Handler
}

// New builds the service and registers its metrics (and the storage pool's) in reg, which /metrics serves; nil
// means a new registry. It makes no requests; run Pool().Run for the storage health loop.
func New(cfg Config, reg *prometheus.Registry) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, limits: cfg.limits(), log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.rand = cfg.Rand
	if s.rand == nil {
		s.rand = rand.Float64
	}
	s.tokenHash = sha256.Sum256([]byte(cfg.EnrollmentToken))
	s.signer = protocol.Signer{Tenant: cfg.Tenant, Key: cfg.SigningKey, TTL: cfg.CredentialTTL, Now: s.now}
	s.limiter = newLimiter(cfg.MaxRecordsPerSecond, cfg.RecordsBurst, s.limits.MaxRecords)
	if s.cfg.IngestEndpoints == nil {
		s.cfg.IngestEndpoints = []string{} // "endpoints": [] rather than null
	}

	var err error
	s.pool, err = cfg.NewPool(storagepool.Options{
		RequestTimeout: cfg.StorageRequestTimeout,
		HealthInterval: cfg.StorageHealthInterval,
		Registerer:     reg,
		Logger:         s.log,
		OnSwitch:       s.recordSwitch,
	})
	if err != nil {
		return nil, fmt.Errorf("set up storage: %w", err)
	}
	s.ledgers = newLedgers(s.pool, s.now)
	s.admission = newAdmission(cfg.maxConcurrentRequests(), cfg.admissionWait(), maxRetryAfterSeconds, s.rand)
	if s.metrics, err = newMetrics(reg); err != nil {
		return nil, fmt.Errorf("register ingest metrics: %w", err)
	}

	mux := http.NewServeMux()
	// Routes match any method and check it themselves, so that a wrong method gets a protocol.Error body too.
	// Every route bounds its body and the time the client has to send it before anything else happens, so a
	// client trickling bytes holds a goroutine for seconds, not forever.
	enrollRead := orDefault(cfg.EnrollReadTimeout, DefaultEnrollReadTimeout)
	batchRead := orDefault(cfg.BatchReadTimeout, DefaultBatchReadTimeout)
	mux.Handle(protocol.PathEnroll, s.route("enroll", http.MethodPost, limits{body: maxEnrollBytes + 1, read: enrollRead, write: enrollRead + storageWriteTimeout}, s.enroll))
	mux.Handle(protocol.PathBatches, s.route("batches", http.MethodPost, limits{body: s.limits.MaxBodyBytes + 1, read: batchRead, write: batchRead + storageWriteTimeout}, s.batches))
	mux.Handle(protocol.PathAnswers, s.route("answers", http.MethodGet, limits{read: shortReadTimeout, write: storageWriteTimeout}, s.answers))
	mux.Handle(protocol.PathEndpoints, s.route("endpoints", http.MethodGet, limits{read: shortReadTimeout, write: shortReadTimeout}, s.endpoints))
	s.agents = &agentDownloads{dir: cmp.Or(cfg.AgentDir, DefaultAgentDir())}
	mux.Handle("/downloads/", s.route("downloads", http.MethodGet, limits{read: shortReadTimeout, write: downloadWriteTimeout}, s.download))
	mux.Handle("/install.sh", s.route("install", http.MethodGet, limits{read: shortReadTimeout, write: shortReadTimeout}, s.installScript("install.sh")))
	mux.Handle("/install.ps1", s.route("install", http.MethodGet, limits{read: shortReadTimeout, write: shortReadTimeout}, s.installScript("install.ps1")))
	webserver.HealthHandlers(mux, s.pool)
	webserver.MetricsHandler(mux, reg)
	mux.Handle("/", s.route("other", "", limits{read: shortReadTimeout, write: shortReadTimeout}, func(w http.ResponseWriter, _ *http.Request, info *requestInfo) {
		s.refuseUnread(w, info, &protocol.RequestError{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint"})
	}))
	s.handler = mux
	return s, nil
}

// Handler serves the protocol, health and metrics endpoints.
func (s *Server) Handler() http.Handler { return s.handler }

// Pool is the service's storage.
func (s *Server) Pool() *storagepool.Pool { return s.pool }

// requestInfo is what a handler tells the request log and metrics about its request. It never holds
// credentials or payloads.
type requestInfo struct {
	status   int
	code     string
	device   string
	records  int
	firstSeq uint64
	lastSeq  uint64
	err      error
}

type handlerFunc func(http.ResponseWriter, *http.Request, *requestInfo)

// Deadlines of a request, from its arrival (after its headers); see also Config's read timeouts.
const (
	// shortReadTimeout: requests without a body.
	shortReadTimeout = 10 * time.Second
	// storageWriteTimeout: the response may wait for storage (two endpoints, a request timeout each).
	storageWriteTimeout = 60 * time.Second
	// maxRetryAfterSeconds is the widest window a Retry-After is drawn from.
	maxRetryAfterSeconds = 30
	// outageRetryWindow is how far Retry-Afters spread while storage is unavailable: agents come back within
	// seconds of its return, but not all in the same second.
	outageRetryWindow = 5
)

// limits of a route.
type limits struct {
	body        int64 // bytes; 0 for routes that read no body
	read, write time.Duration
}

// route wraps a handler with deadlines, the body limit, the method check, the request metric and the request
// log.
func (s *Server) route(name, method string, l limits, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(l.read))
		_ = rc.SetWriteDeadline(time.Now().Add(l.write))
		r.Body = http.MaxBytesReader(w, r.Body, l.body)
		info := &requestInfo{}
		if method != "" && r.Method != method {
			w.Header().Set("Allow", method)
			s.refuseUnread(w, info, &protocol.RequestError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
				Message: "use " + method})
		} else {
			h(w, r, info)
		}
		if info.status == 0 {
			info.status = http.StatusOK
		}
		s.metrics.request(name, info.status)
		if info.code != "" {
			s.metrics.rejections.WithLabelValues(name, info.code).Inc()
		}
		attrs := []any{"route", name, "status", info.status, "durationMs", s.now().Sub(start).Milliseconds()}
		if info.code != "" {
			attrs = append(attrs, "code", info.code)
		}
		if info.device != "" {
			attrs = append(attrs, "deviceId", info.device)
		}
		if info.records > 0 {
			attrs = append(attrs, "records", info.records, "firstSeq", info.firstSeq, "lastSeq", info.lastSeq)
		}
		level := slog.LevelInfo
		if info.err != nil {
			attrs = append(attrs, "error", info.err.Error())
			// A storage outage is announced once by the breaker's transition; each of the thousands of 503s
			// it causes is not news.
			if info.status != http.StatusServiceUnavailable {
				level = slog.LevelWarn
			}
		}
		s.log.Log(r.Context(), level, "Request", attrs...)
	})
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ok answers 200 with v.
func (s *Server) ok(w http.ResponseWriter, info *requestInfo, v any) {
	info.status = http.StatusOK
	writeJSON(w, http.StatusOK, v)
}

// fail answers with a protocol.Error body.
func (s *Server) fail(w http.ResponseWriter, info *requestInfo, e *protocol.RequestError) {
	info.status, info.code = e.Status, e.Code
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="supportstack"`)
	}
	setRetryAfter(w, e.RetryAfter)
	writeJSON(w, e.Status, e.Body())
}

// refuseUnread answers without reading the request body, and closes the connection rather than read and
// discard the body afterwards: a refused client must not hold the server by trickling it.
func (s *Server) refuseUnread(w http.ResponseWriter, info *requestInfo, e *protocol.RequestError) {
	s.closeAfter(w)
	s.fail(w, info, e)
}

// closeAfter makes the connection close after the response, without reading what is left of the body.
func (s *Server) closeAfter(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// unavailable answers 503 with Retry-After: no storage endpoint took the write, nothing is acknowledged. The
// Retry-After is spread over a few seconds past the time storage may be back, so agents return within seconds
// of it, but not all at once.
func (s *Server) unavailable(w http.ResponseWriter, info *requestInfo, err error) {
	info.err = err
	base := retryAfterSeconds(s.pool.RetryAfter())
	s.fail(w, info, &protocol.RequestError{Status: http.StatusServiceUnavailable, Code: "storage_unavailable",
		Message:    "storage is unavailable; nothing was acknowledged, retry later",
		RetryAfter: spread(base, base+outageRetryWindow-1, s.rand)})
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authenticate verifies the request's device credential.
func (s *Server) authenticate(r *http.Request) (protocol.Claims, *protocol.RequestError) {
	token, ok := bearer(r)
	if !ok {
		return protocol.Claims{}, &protocol.RequestError{Status: http.StatusUnauthorized, Code: "missing_credential",
			Message: "Authorization: Bearer <device credential> is required"}
	}
	c, err := s.signer.Verify(token)
	if err == nil {
		return c, nil
	}
	code := "malformed_credential"
	switch {
	case errors.Is(err, protocol.ErrBadSignature):
		code = "bad_signature"
	case errors.Is(err, protocol.ErrWrongTenant):
		code = "wrong_tenant"
	case errors.Is(err, protocol.ErrExpiredCredential):
		code = "expired_credential"
	}
	return protocol.Claims{}, &protocol.RequestError{Status: http.StatusUnauthorized, Code: code, Message: err.Error() + ": enroll again"}
}

// endpoints answers GET /v1/endpoints.
func (s *Server) endpoints(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	claims, rerr := s.authenticate(r)
	if rerr != nil {
		s.refuseUnread(w, info, rerr)
		return
	}
	info.device = claims.DeviceID
	s.ok(w, info, protocol.EndpointsResponse{Endpoints: s.cfg.IngestEndpoints, MaxRecordsPerSecond: s.cfg.DrainRecordsPerSecond})
}

// recordSwitch stores the storage pool's move of its writes to another copy in the bucket (the copy that took
// them), where the operator finds it: a failover's RTO is measured from this, the data plane's own
// acknowledgements. Written once under a key of its own; losing it loses a figure, never data.
func (s *Server) recordSwitch(sw storagepool.Switch) {
	server, err := os.Hostname()
	if err != nil || server == "" {
		server = "ingest"
	}
	rec := protocol.StorageSwitch{Server: server + "_" + strings.NewReplacer(":", "_", "/", "_").Replace(s.cfg.ListenAddress),
		From: sw.From, To: sw.To, FailedAt: sw.FailedAt.UTC(), ResumedAt: sw.ResumedAt.UTC()}
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storageWriteTimeout)
	defer cancel()
	if _, _, err := s.pool.Write(ctx, protocol.SwitchKey(rec.Server, rec.ResumedAt), b,
		storagepool.WriteOptions{ContentType: "application/json", IfAbsent: true}); err != nil {
		s.log.Warn("Recording the move to another storage endpoint failed", "error", err.Error())
	}
}
