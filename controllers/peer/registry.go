package peer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/supportstack/supportstack/api/v1alpha1"
	"github.com/supportstack/supportstack/internal/naming"
)

// Peer is a connection to a peer cluster that answered its last probe.
type Peer struct {
	Name string
	// Client writes to the peer's API server; Reader reads from it without a cache.
	Client client.Client
	Reader client.Reader
}

// NotReadyError says why a peer cannot be used; Reason is one of the PeerCluster Ready reasons.
type NotReadyError struct {
	Peer    string
	Reason  string
	Message string
}

func (e *NotReadyError) Error() string {
	return fmt.Sprintf("peer cluster %s: %s: %s", e.Peer, e.Reason, e.Message)
}

// Registry holds a cluster.Cluster per PeerCluster, built from its kubeconfig and rebuilt in place when the
// kubeconfig changes. Each peer cluster's cache watches the standbys this cluster's operator mirrored there
// (SupportTenants labelled standby-of=<this cluster>), so that a hand edit of one reaches the replication
// controller at once through Events.
type Registry struct {
	// ClusterName is this cluster's name: it selects the standbys this cluster owns in the peers.
	ClusterName string
	// RequestTimeout bounds every request to a peer's API server.
	RequestTimeout time.Duration

	scheme *runtime.Scheme
	events chan event.GenericEvent

	mu    sync.Mutex
	peers map[string]*entry
}

type entry struct {
	hash string
	// cluster is built once a probe with this kubeconfig succeeded.
	cluster cluster.Cluster
	cancel  context.CancelFunc
	err     *NotReadyError
}

// NewRegistry returns an empty registry for an operator of the named cluster.
func NewRegistry(clusterName string) *Registry {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	return &Registry{ClusterName: clusterName, RequestTimeout: 10 * time.Second, scheme: s,
		events: make(chan event.GenericEvent, 1024), peers: map[string]*entry{}}
}

// Events delivers a standby (by its namespace and name, which are its home's) whenever it changes in a peer.
func (r *Registry) Events() <-chan event.GenericEvent { return r.events }

// Get returns a usable connection to the named peer, or a *NotReadyError saying why there is none.
func (r *Registry) Get(name string) (Peer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.peers[name]
	switch {
	case !ok:
		return Peer{}, &NotReadyError{Peer: name, Reason: v1alpha1.ReasonUnreachable, Message: "not connected yet"}
	case e.err != nil:
		return Peer{}, e.err
	case e.cluster == nil:
		return Peer{}, &NotReadyError{Peer: name, Reason: v1alpha1.ReasonUnreachable, Message: "not connected yet"}
	}
	return Peer{Name: name, Client: e.cluster.GetClient(), Reader: e.cluster.GetAPIReader()}, nil
}

// update records the outcome of a probe of the named peer with the kubeconfig of the given hash: nil makes it
// usable, building its client (and watching its standbys) unless one is built for this kubeconfig already; a
// *NotReadyError makes it unusable but keeps a client built for the same kubeconfig, for when the peer answers
// again. A client of another kubeconfig is stopped. It reports whether it built a client.
func (r *Registry) update(ctx context.Context, name, hash string, cfg *rest.Config, probeErr *NotReadyError) (bool, error) {
	r.mu.Lock()
	e, ok := r.peers[name]
	if ok && e.hash != hash {
		r.stopLocked(name)
		ok = false
	}
	if !ok {
		e = &entry{hash: hash}
		r.peers[name] = e
	}
	e.err = probeErr
	if probeErr != nil || e.cluster != nil {
		r.mu.Unlock()
		return false, nil
	}
	r.mu.Unlock()

	cl, cancel, err := r.build(name, cfg)
	if err == nil {
		err = r.watchStandbys(ctx, name, cl)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.peers[name]; !ok || cur != e {
		if cancel != nil {
			cancel() // replaced meanwhile
		}
		return false, nil
	}
	if err != nil {
		if cancel != nil {
			cancel()
		}
		e.err = &NotReadyError{Peer: name, Reason: v1alpha1.ReasonUnauthorized, Message: oneLine(err)}
		return false, err
	}
	e.cluster, e.cancel = cl, cancel
	return true, nil
}

// build makes and starts a cluster for cfg whose cache holds only the standbys this cluster's operator made.
func (r *Registry) build(name string, cfg *rest.Config) (cluster.Cluster, context.CancelFunc, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = r.RequestTimeout
	standbys := labels.SelectorFromSet(labels.Set{naming.LabelStandbyOf: r.ClusterName})
	cl, err := cluster.New(cfg, func(o *cluster.Options) {
		o.Scheme = r.scheme
		o.Cache = cache.Options{ByObject: map[client.Object]cache.ByObject{&v1alpha1.SupportTenant{}: {Label: standbys}}}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("build client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if err := cl.Start(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Log.WithName("peer").Error(err, "Peer cluster cache stopped", "peerCluster", name)
		}
	}()
	return cl, cancel, nil
}

// watchStandbys feeds every change of a standby in the peer into Events.
func (r *Registry) watchStandbys(ctx context.Context, name string, cl cluster.Cluster) error {
	wctx, cancel := context.WithTimeout(ctx, r.RequestTimeout)
	defer cancel()
	inf, err := cl.GetCache().GetInformer(wctx, &v1alpha1.SupportTenant{})
	if err != nil {
		return fmt.Errorf("watch standbys in peer cluster %s: %w", name, err)
	}
	notify := func(obj any) {
		if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		t, ok := obj.(*v1alpha1.SupportTenant)
		if !ok {
			return
		}
		home := &v1alpha1.SupportTenant{}
		home.Namespace, home.Name = t.Namespace, t.Name
		select {
		case r.events <- event.GenericEvent{Object: home}:
		default: // the home is reconciled at its next resync
		}
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, obj any) { notify(obj) },
		DeleteFunc: notify,
	})
	if err != nil {
		return fmt.Errorf("watch standbys in peer cluster %s: %w", name, err)
	}
	return nil
}

// remove stops and forgets the named peer; err (a *NotReadyError) is what Get says about it from now on.
func (r *Registry) remove(name string, err *NotReadyError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked(name)
	if err != nil {
		r.peers[name] = &entry{err: err}
	}
}

// forget stops and forgets the named peer.
func (r *Registry) forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked(name)
}

func (r *Registry) stopLocked(name string) {
	if e, ok := r.peers[name]; ok {
		if e.cancel != nil {
			e.cancel()
		}
		delete(r.peers, name)
	}
}

// Stop stops every peer's cache.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range r.peers {
		r.stopLocked(name)
	}
}
