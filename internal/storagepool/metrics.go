package storagepool

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of a pool. A nil *metrics records nothing.
type metrics struct {
	attempts    *prometheus.CounterVec
	failures    *prometheus.CounterVec
	transitions *prometheus.CounterVec
	stale       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, p *Pool) (*metrics, error) {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportstack_storage_attempts_total",
			Help: "Requests sent to a storage endpoint, by endpoint and operation (put, get, stat, list).",
		}, []string{"endpoint", "op"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportstack_storage_failures_total",
			Help: "Requests to a storage endpoint that failed (and fell through to the next endpoint), by endpoint and operation.",
		}, []string{"endpoint", "op"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportstack_storage_breaker_transitions_total",
			Help: "Changes of a storage endpoint's circuit breaker, by endpoint, old and new state, and the cause (request-failed, health-check-failed, health-check-passed, request-succeeded, retry-due, ...).",
		}, []string{"endpoint", "from", "to", "cause"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportstack_storage_stale_health_failures_total",
			Help: "Failed health checks ignored because a request to the endpoint succeeded while the check was under way.",
		}, []string{"endpoint"}),
	}
	for _, c := range []prometheus.Collector{m.attempts, m.failures, m.transitions, m.stale, breakerCollector{p}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register storage pool metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) attempt(endpoint, op string) {
	if m != nil {
		m.attempts.WithLabelValues(endpoint, op).Inc()
	}
}

func (m *metrics) failure(endpoint, op string) {
	if m != nil {
		m.failures.WithLabelValues(endpoint, op).Inc()
	}
}

func (m *metrics) transition(endpoint string, from, to State, cause string) {
	if m != nil {
		m.transitions.WithLabelValues(endpoint, from.String(), to.String(), cause).Inc()
	}
}

func (m *metrics) staleHealth(endpoint string) {
	if m != nil {
		m.stale.WithLabelValues(endpoint).Inc()
	}
}

var breakerDesc = prometheus.NewDesc("supportstack_storage_breaker_state",
	"State of each storage endpoint's circuit breaker: 1 for the current state (closed, half-open, open), 0 for the others.",
	[]string{"endpoint", "state"}, nil)

// breakerCollector reads the breakers at scrape time, so the gauge is never stale.
type breakerCollector struct{ p *Pool }

func (c breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- breakerDesc }

func (c breakerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.p.State() {
		for _, st := range []State{Closed, HalfOpen, Open} {
			v := 0.0
			if s.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, v, s.URL, st.String())
		}
	}
}
