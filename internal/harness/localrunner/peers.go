package localrunner

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// PeerResolver maps a Service of a peer plane (namespace, name and Service port) to the address at which this
// plane reaches it, e.g. a gateway in front of the peer's pods.
type PeerResolver func(namespace, service string, port int32) (string, error)

// AddPeer lets this runner's pods reach the Services of another control plane (a peer cluster) under
// <service>.<namespace>.<suffix>, e.g. acme-minio.tenant-acme.west.test:9000: every such name in a pod's args
// and environment becomes what resolve returns for it. Call it before the pods that name the peer start.
func (r *Runner) AddPeer(suffix string, resolve PeerResolver) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers == nil {
		r.peers = map[string]PeerResolver{}
	}
	r.peers[suffix] = resolve
}

// peerRunners returns the peers by suffix, longest suffix first, so that a suffix that ends another is tried
// after it.
func (r *Runner) peerResolvers() ([]string, map[string]PeerResolver) {
	r.mu.Lock()
	defer r.mu.Unlock()
	peers := maps.Clone(r.peers)
	suffixes := slices.Collect(maps.Keys(peers))
	slices.SortFunc(suffixes, func(a, b string) int { return len(b) - len(a) })
	return suffixes, peers
}

// rewriteNames replaces the per-pod and Service names in s (through n) and the peers' names.
func (r *Runner) rewriteNames(s string, n names) (string, error) {
	s, err := rewritePodNames(s, n)
	if err != nil {
		return "", err
	}
	if s, err = rewriteServices(s, n.service); err != nil {
		return "", err
	}
	suffixes, peers := r.peerResolvers()
	for _, suffix := range suffixes {
		resolve := peers[suffix]
		if s, err = rewritePeerServices(s, suffix, func(ref serviceRef) (string, error) {
			return resolve(ref.Namespace, ref.Name, ref.Port)
		}); err != nil {
			return "", err
		}
	}
	return s, nil
}

// ResolveURL rewrites the Service and per-pod names in s, this plane's and its peers', to the addresses of pods, as
// the runner does for its pods' args: what a process on this machine must use where a pod would use the name.
// It fails while a named Service has no ready pod.
func (r *Runner) ResolveURL(s string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.rewriteNames(s, names{
		service: func(ref serviceRef) (string, error) { return r.resolveService(ctx, ref) },
		pod:     func(ref podRef) (netip.Addr, error) { return r.resolvePod(ctx, ref) },
	})
}
