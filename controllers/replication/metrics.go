package replication

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Per-tenant replication metrics, labelled by the tenant's namespace and name and by the role of the copy this
// cluster holds (home or standby). They report what this cluster's copy sees: how late the peer's writes arrive
// here, and what leaves here for the peer.
var (
	lagSecondsGauge = gauge("supportstack_replication_lag_seconds",
		"How late the peer's heartbeat arrives in this copy now (grows while nothing arrives); absent before any arrived.")
	lagObserved = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "supportstack_replication_lag_observed_seconds",
		Help:    "Lag of each of the peer's heartbeats seen in this copy, estimated to half a probe interval.",
		Buckets: []float64{0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 300},
	}, []string{"namespace", "tenant", "role"})
	peerStorageUp = gauge("supportstack_replication_peer_storage_up",
		"1 when the peer's copy of the storage answers its health check from this operator, else 0.")
	targetOnline = gauge("supportstack_replication_target_online",
		"1 when this copy's MinIO sees its replication target (the peer's MinIO) online, else 0.")
	configured = gauge("supportstack_replication_configured",
		"1 when this copy's users, remote target and replication rule are in place, else 0.")
	failedLastHour = gauge("supportstack_replication_failed_last_hour",
		"Versions that failed to replicate to the peer in the last hour, as MinIO counts them.")
	queued = gauge("supportstack_replication_queued_versions",
		"Versions in MinIO's replication queue (not counting what MinIO left to its scanner).")
	backlogVersions = gauge("supportstack_replication_backlog_versions",
		"Versions in this copy that the last diff found not yet on the peer.")
	verifiedAt = gauge("supportstack_replication_last_verified_timestamp_seconds",
		"When both copies were last found to hold the same versions (Unix time).")
	requeuedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "supportstack_replication_requeued_versions_total",
		Help: "Versions the operator made MinIO queue again while catching up.",
	}, []string{"namespace", "tenant", "role"})
	heartbeatErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "supportstack_replication_heartbeat_errors_total",
		Help: "Failed heartbeat writes and reads in this copy, by operation.",
	}, []string{"namespace", "tenant", "role", "op"})
	failoverState = gauge("supportstack_failover_state",
		"Where the tenant is in the failover cycle: 0 Normal, 1 LocalFailing, 2 AwaitingSwitch, 3 FailedOver, 4 FailingBack, 5 Unavailable.")
	failoverEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "supportstack_failover_events_total",
		Help: "Failover decisions by what they changed (FailedOver, FailbackStarted, FailedBack, SwitchedOver, ...).",
	}, []string{"namespace", "tenant", "role", "event"})
	drillRTO = gauge("supportstack_drill_rto_seconds",
		"RTO the last drill measured: the longest a data-plane server could not write once this copy was fenced.")
	drillRPO = gauge("supportstack_drill_rpo_seconds",
		"RPO the last drill measured: age of the oldest canary the peer lacked when this copy was fenced (0: none).")
	drillCanariesMissing = gauge("supportstack_drill_canaries_missing",
		"Canaries of the last drill that the peer lacked when this copy was fenced.")
	drillCompleted = gauge("supportstack_drill_completed_timestamp_seconds",
		"When the last drill ended (Unix time).")
	drillsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "supportstack_drills_total",
		Help: "Drills by result: Succeeded, Failed, Aborted, Refused.",
	}, []string{"namespace", "tenant", "role", "result"})
)

func gauge(name, help string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"namespace", "tenant", "role"})
}

var gauges = []*prometheus.GaugeVec{lagSecondsGauge, peerStorageUp, targetOnline, configured, failedLastHour, queued,
	backlogVersions, verifiedAt, failoverState, drillRTO, drillRPO, drillCanariesMissing, drillCompleted}

func init() {
	metrics.Registry.MustRegister(lagObserved, requeuedTotal, heartbeatErrors, failoverEvents, drillsTotal)
	for _, g := range gauges {
		metrics.Registry.MustRegister(g)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// recordMetrics exports a snapshot.
func recordMetrics(key types.NamespacedName, role string, s Snapshot) {
	ns, name := key.Namespace, key.Name
	if s.LagKnown {
		lagSecondsGauge.WithLabelValues(ns, name, role).Set(s.Lag.Seconds())
	}
	if s.PeerChecked {
		peerStorageUp.WithLabelValues(ns, name, role).Set(boolValue(s.PeerHealthErr == nil))
	}
	configured.WithLabelValues(ns, name, role).Set(boolValue(s.Configured))
	if s.Configured {
		targetOnline.WithLabelValues(ns, name, role).Set(boolValue(s.TargetOnline))
		failedLastHour.WithLabelValues(ns, name, role).Set(float64(s.FailedLastHour))
		queued.WithLabelValues(ns, name, role).Set(float64(s.Queued))
	}
	if s.Backlog >= 0 {
		backlogVersions.WithLabelValues(ns, name, role).Set(float64(s.Backlog))
	}
	if !s.LastVerified.IsZero() {
		verifiedAt.WithLabelValues(ns, name, role).Set(float64(s.LastVerified.Unix()))
	}
}

// forgetMetrics removes a tenant's series.
func forgetMetrics(key types.NamespacedName) {
	labels := prometheus.Labels{"namespace": key.Namespace, "tenant": key.Name}
	for _, g := range gauges {
		g.DeletePartialMatch(labels)
	}
	lagObserved.DeletePartialMatch(labels)
	requeuedTotal.DeletePartialMatch(labels)
	heartbeatErrors.DeletePartialMatch(labels)
	failoverEvents.DeletePartialMatch(labels)
	drillsTotal.DeletePartialMatch(labels)
}

// recordDrill exports an ended drill's result and what it measured.
func recordDrill(key types.NamespacedName, role string, d DrillProgress) {
	ns, name := key.Namespace, key.Name
	drillsTotal.WithLabelValues(ns, name, role, string(d.Phase)).Inc()
	drillCompleted.WithLabelValues(ns, name, role).Set(float64(d.Completed.Unix()))
	if d.RTOKnown {
		drillRTO.WithLabelValues(ns, name, role).Set(d.RTO.Seconds())
	}
	if d.RPOKnown {
		drillRPO.WithLabelValues(ns, name, role).Set(d.RPO.Seconds())
		drillCanariesMissing.WithLabelValues(ns, name, role).Set(float64(d.Missing))
	}
}
