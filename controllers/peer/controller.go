// Package peer connects the operator to its peer clusters: the PeerCluster reconciler reads each PeerCluster's
// kubeconfig Secret, keeps a client for the peer (a cluster.Cluster with its own cache) in the Registry, rebuilds
// it in place when the kubeconfig changes, probes the peer's API server and reports what it found in the
// PeerCluster's status, with reasons a human can act on. Nothing here blocks local tenants: a wrong PeerCluster
// only makes its peer unusable to the replication controller.
package peer

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/supportstack/supportstack/api/v1alpha1"
	tenantac "github.com/supportstack/supportstack/api/v1alpha1/applyconfiguration/api/v1alpha1"
	conds "github.com/supportstack/supportstack/internal/conditions"
	"github.com/supportstack/supportstack/internal/naming"
)

// ControllerName names the controller in logs, metrics and events.
const ControllerName = "peercluster"

// Defaults of the Reconciler.
const (
	// DefaultInterval is how often a peer is probed (and its Secret read again: a changed kubeconfig is picked up
	// within it).
	DefaultInterval = 10 * time.Second
	// DefaultProbeTimeout bounds a probe of the peer's API server.
	DefaultProbeTimeout = 5 * time.Second
	// lastContactResolution: status.lastContact moves forward at most this often, so that a reachable peer does
	// not cost a status write per probe.
	lastContactResolution = time.Minute
)

// RequiredFields are the fields of the SupportTenant schema this operator writes in a peer cluster; a peer whose
// CRD lacks one runs an older supportstack.
var RequiredFields = [][]string{{"spec", "replication", "standbyOf"}}

// Reconciler reconciles PeerClusters.
type Reconciler struct {
	client.Client
	// APIReader reads the kubeconfig Secret, which the operator's cache (its own Secrets only) does not hold.
	APIReader client.Reader
	Registry  *Registry
	Recorder  events.EventRecorder
	// Interval overrides DefaultInterval; ProbeTimeout DefaultProbeTimeout.
	Interval, ProbeTimeout time.Duration
}

// +kubebuilder:rbac:groups=supportstack.io,resources=peerclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=supportstack.io,resources=peerclusters/status,verbs=get;patch;update

// SetupWithManager registers the controller and stops the peers' caches when the manager stops.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(stopper{r.Registry}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&v1alpha1.PeerCluster{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Complete(r)
}

type stopper struct{ r *Registry }

func (s stopper) Start(ctx context.Context) error {
	<-ctx.Done()
	s.r.Stop()
	return nil
}

func (r *Reconciler) interval() time.Duration {
	if r.Interval > 0 {
		return r.Interval
	}
	return DefaultInterval
}

// Reconcile reads the kubeconfig, keeps the registry's client in step with it, probes the peer and writes the
// status. It never fails: what is wrong is the status's business, and the peer is probed again after Interval.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pc := &v1alpha1.PeerCluster{}
	if err := r.Get(ctx, req.NamespacedName, pc); err != nil {
		if apierrors.IsNotFound(err) {
			r.Registry.forget(req.Name)
			forgetMetrics(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !pc.DeletionTimestamp.IsZero() {
		r.Registry.forget(pc.Name)
		return ctrl.Result{}, nil
	}
	problem := r.connect(ctx, pc)
	observeProbe(pc.Name, problem == nil)
	if err := r.writeStatus(ctx, pc, problem, time.Now()); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.interval()}, nil
}

// connect brings the registry's client for pc in step with its Secret and probes the peer. It returns nil when
// the peer is usable.
func (r *Reconciler) connect(ctx context.Context, pc *v1alpha1.PeerCluster) *NotReadyError {
	notReady := func(reason, format string, args ...any) *NotReadyError {
		return &NotReadyError{Peer: pc.Name, Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	ref := pc.Spec.KubeconfigSecretRef
	key := ref.Key
	if key == "" {
		key = "kubeconfig"
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			e := notReady(v1alpha1.ReasonSecretMissing, "Secret %s/%s does not exist", ref.Namespace, ref.Name)
			r.Registry.remove(pc.Name, e)
			return e
		}
		return notReady(v1alpha1.ReasonSecretMissing, "cannot read Secret %s/%s: %v", ref.Namespace, ref.Name, err)
	}
	kubeconfig, ok := secret.Data[key]
	if !ok || len(kubeconfig) == 0 {
		e := notReady(v1alpha1.ReasonSecretMissing, "Secret %s/%s has no key %q", ref.Namespace, ref.Name, key)
		r.Registry.remove(pc.Name, e)
		return e
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		e := notReady(v1alpha1.ReasonKubeconfigInvalid, "key %q of Secret %s/%s: %v", key, ref.Namespace, ref.Name, oneLine(err))
		r.Registry.remove(pc.Name, e)
		return e
	}
	sum := sha256.Sum256(kubeconfig)
	hash := hex.EncodeToString(sum[:])
	problem := r.probe(ctx, pc.Name, cfg)
	built, err := r.Registry.update(ctx, pc.Name, hash, cfg, problem)
	if err != nil && problem == nil {
		problem = notReady(v1alpha1.ReasonUnauthorized, "cannot watch SupportTenants in the peer: %v", oneLine(err))
	}
	if built {
		clientBuilds.WithLabelValues(pc.Name).Inc()
		log.FromContext(ctx).Info("Built a client for the peer cluster from its kubeconfig", "secret", ref.Namespace+"/"+ref.Name)
		r.Recorder.Eventf(pc, nil, corev1.EventTypeNormal, "ClientBuilt", "Connect",
			"Built a client from key %q of Secret %s/%s", key, ref.Namespace, ref.Name)
	}
	return problem
}

// probe asks the peer's API server for the supportstack API and reads its SupportTenant CRD.
func (r *Reconciler) probe(ctx context.Context, name string, cfg *rest.Config) *NotReadyError {
	timeout := r.ProbeTimeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = timeout
	start := time.Now()
	defer func() { probeDuration.WithLabelValues(name).Observe(time.Since(start).Seconds()) }()

	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return &NotReadyError{Peer: name, Reason: v1alpha1.ReasonKubeconfigInvalid, Message: oneLine(err)}
	}
	if _, err := dc.ServerResourcesForGroupVersion(v1alpha1.GroupVersion.String()); err != nil {
		if apierrors.IsNotFound(err) {
			return &NotReadyError{Peer: name, Reason: v1alpha1.ReasonCRDMissing,
				Message: "the peer's API server does not serve " + v1alpha1.GroupVersion.String() + ": install the supportstack CRDs there"}
		}
		return classify(name, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: r.Registry.scheme})
	if err != nil {
		return &NotReadyError{Peer: name, Reason: v1alpha1.ReasonKubeconfigInvalid, Message: oneLine(err)}
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := c.Get(ctx, client.ObjectKey{Name: "supporttenants." + v1alpha1.GroupVersion.Group}, crd); err != nil {
		if apierrors.IsForbidden(err) {
			return &NotReadyError{Peer: name, Reason: v1alpha1.ReasonUnauthorized,
				Message: "cannot read the SupportTenant CRD: bind the kubeconfig's identity to the supportstack-peer ClusterRole"}
		}
		return classify(name, err)
	}
	if missing := missingFields(crd, v1alpha1.GroupVersion.Version); len(missing) > 0 {
		return &NotReadyError{Peer: name, Reason: v1alpha1.ReasonCRDOutdated, Message: fmt.Sprintf(
			"the peer's SupportTenant CRD lacks %s: upgrade supportstack there", strings.Join(missing, ", "))}
	}
	return nil
}

// missingFields lists the RequiredFields that the CRD's schema of version lacks.
func missingFields(crd *apiextensionsv1.CustomResourceDefinition, version string) []string {
	var schema *apiextensionsv1.JSONSchemaProps
	for _, v := range crd.Spec.Versions {
		if v.Name == version && v.Schema != nil {
			schema = v.Schema.OpenAPIV3Schema
		}
	}
	var missing []string
	for _, path := range RequiredFields {
		s := schema
		for _, p := range path {
			if s == nil {
				break
			}
			next, ok := s.Properties[p]
			if !ok {
				s = nil
				break
			}
			s = &next
		}
		if s == nil {
			missing = append(missing, strings.Join(path, "."))
		}
	}
	return missing
}

// classify turns an error talking to the peer's API server into a reason a human can act on.
func classify(name string, err error) *NotReadyError {
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var netErr net.Error
	msg := oneLine(err)
	switch {
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &invalid),
		strings.Contains(msg, "x509:"), strings.Contains(msg, "tls:"):
		return &NotReadyError{Peer: name, Reason: v1alpha1.ReasonTLSFailed, Message: msg}
	case apierrors.IsUnauthorized(err):
		return &NotReadyError{Peer: name, Reason: v1alpha1.ReasonUnauthorized, Message: "the peer's API server refused the kubeconfig's credentials: " + msg}
	case apierrors.IsForbidden(err):
		return &NotReadyError{Peer: name, Reason: v1alpha1.ReasonUnauthorized,
			Message: "the kubeconfig's identity lacks permissions (bind it to the supportstack-peer ClusterRole): " + msg}
	case errors.As(err, &netErr):
		return &NotReadyError{Peer: name, Reason: v1alpha1.ReasonUnreachable, Message: msg}
	}
	return &NotReadyError{Peer: name, Reason: v1alpha1.ReasonUnreachable, Message: msg}
}

// oneLine keeps an error on one line for a condition message.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// writeStatus applies the PeerCluster's status when it changed, and records an event when its readiness did.
func (r *Reconciler) writeStatus(ctx context.Context, pc *v1alpha1.PeerCluster, problem *NotReadyError, now time.Time) error {
	at := metav1.NewTime(now)
	cond := metav1.Condition{Type: v1alpha1.PeerConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonConnected,
		Message: "the peer's API server answers with the supportstack API", ObservedGeneration: pc.Generation}
	if problem != nil {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, problem.Reason, problem.Message
	}
	next := *pc.Status.DeepCopy()
	next.ObservedGeneration = pc.Generation
	next.Conditions = conds.Merge(next.Conditions, []metav1.Condition{cond}, at)
	next.Reachable = problem == nil
	if problem == nil && (next.LastContact == nil || now.Sub(next.LastContact.Time) >= lastContactResolution) {
		next.LastContact = &at
	}
	if equality.Semantic.DeepEqual(pc.Status, next) {
		return nil
	}
	status := tenantac.PeerClusterStatus().
		WithObservedGeneration(next.ObservedGeneration).
		WithReachable(next.Reachable).
		WithConditions(conds.Apply(next.Conditions)...)
	if next.LastContact != nil {
		status.WithLastContact(*next.LastContact)
	}
	if err := r.Status().Apply(ctx, tenantac.PeerCluster(pc.Name).WithStatus(status),
		client.FieldOwner(naming.StatusOwnerPeer), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply status: %w", err)
	}
	if old := meta.FindStatusCondition(pc.Status.Conditions, cond.Type); old == nil || old.Reason != cond.Reason {
		if problem == nil {
			r.Recorder.Eventf(pc, nil, corev1.EventTypeNormal, v1alpha1.ReasonConnected, "Probe", "%s", cond.Message)
		} else {
			r.Recorder.Eventf(pc, nil, corev1.EventTypeWarning, problem.Reason, "Probe", "%s", problem.Message)
		}
	}
	pc.Status = next
	return nil
}
