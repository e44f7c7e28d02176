package peer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	reachable = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "supportstack_peer_reachable",
		Help: "1 when the peer cluster's API server answered the last probe with the supportstack API, else 0.",
	}, []string{"peer"})
	lastContact = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "supportstack_peer_last_contact_timestamp_seconds",
		Help: "When the peer cluster's API server last answered a probe (Unix time).",
	}, []string{"peer"})
	clientBuilds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "supportstack_peer_client_builds_total",
		Help: "Clients built for the peer cluster: one at start and one per kubeconfig change.",
	}, []string{"peer"})
	probeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "supportstack_peer_probe_duration_seconds",
		Help:    "How long a probe of the peer cluster's API server took.",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"peer"})
)

func init() {
	metrics.Registry.MustRegister(reachable, lastContact, clientBuilds, probeDuration)
}

func observeProbe(peer string, ok bool) {
	if ok {
		reachable.WithLabelValues(peer).Set(1)
		lastContact.WithLabelValues(peer).Set(float64(time.Now().Unix()))
		return
	}
	reachable.WithLabelValues(peer).Set(0)
}

func forgetMetrics(peer string) {
	for _, v := range []*prometheus.GaugeVec{reachable, lastContact} {
		v.DeleteLabelValues(peer)
	}
	clientBuilds.DeleteLabelValues(peer)
	probeDuration.DeleteLabelValues(peer)
}
