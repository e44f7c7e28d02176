package ingest

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the ingest service. The storage pool registers its own (breaker states, attempts, failures).
type metrics struct {
	requests     *prometheus.CounterVec
	rejections   *prometheus.CounterVec
	recordsAcked prometheus.Counter
	bytesStored  *prometheus.CounterVec
	writeSeconds *prometheus.HistogramVec
	// conditionalWrites is 1 when storage honours If-None-Match, 0 when it ignores it, -1 before the check.
	conditionalWrites prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportstack_ingest_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportstack_ingest_rejections_total",
			Help: "Refused requests by route and protocol error code (e.g. bad_signature, decoded_too_large, storage_unavailable).",
		}, []string{"route", "reason"}),
		recordsAcked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "supportstack_ingest_records_acked_total",
			Help: "Records acknowledged to agents (after their durable write); a retried batch counts again.",
		}),
		bytesStored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "supportstack_ingest_stored_bytes_total",
			Help: "Bytes written to storage, by object kind (batch, question, inventory, device).",
		}, []string{"object"}),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "supportstack_ingest_storage_write_seconds",
			Help:    "Latency of one object write through the storage pool (fallback to the next endpoint included), by object kind and result.",
			Buckets: []float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20},
		}, []string{"object", "result"}),
		conditionalWrites: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "supportstack_ingest_conditional_writes_supported",
			Help: "1 when storage honours conditional writes (If-None-Match), which keep acknowledged records from being replaced; 0 when it ignores them; -1 before the check.",
		}),
	}
	m.conditionalWrites.Set(-1)
	for _, c := range []prometheus.Collector{m.requests, m.rejections, m.recordsAcked, m.bytesStored, m.writeSeconds, m.conditionalWrites} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) request(route string, status int) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}
