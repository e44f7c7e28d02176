package localrunner

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Per-pod names. In a cluster, pod <sts>-<i> of a StatefulSet whose serviceName is a headless Service is
// <sts>-<i>.<svc>.<ns>.svc[.cluster.local] in DNS, and the name follows the pod across restarts. The runner
// resolves such names when it rewrites a pod's strings, and gives every StatefulSet pod one address for as long
// as its StatefulSet wants the pod (across restarts, holds and template changes): a sibling that had the name
// rewritten into its arguments at its start keeps reaching the pod, as it would through DNS.

// podRef is a per-pod name: <Pod>.<Service>.<Namespace>.svc.
type podRef struct {
	Pod       string
	Service   string
	Namespace string
}

// podHost matches <pod>.<svc>.<ns>.svc or <pod>.<svc>.<ns>.svc.cluster.local; a :port after it stays as is,
// since a headless Service's name leads straight to the pod's own port.
var podHost = regexp.MustCompile(dnsLabel + `\.` + dnsLabel + `\.` + dnsLabel + `\.svc(?:\.cluster\.local)?`)

// names resolves the names in a pod's strings.
type names struct {
	service func(serviceRef) (string, error)
	pod     func(podRef) (netip.Addr, error)
	// podPath maps the path of a URL whose host is a per-pod name (http://<pod>.<svc>.<ns>.svc:9000/data) to the
	// local path that stands for it in that pod; nil leaves such paths alone.
	podPath func(ref podRef, path string) string
}

// rewritePodNames replaces every per-pod name in s by the pod's address, and the path of a URL on such a name
// by what n.podPath returns for it.
func rewritePodNames(s string, n names) (string, error) {
	if !strings.Contains(s, ".svc") {
		return s, nil
	}
	var b strings.Builder
	last := 0
	for _, m := range podHost.FindAllStringSubmatchIndex(s, -1) {
		start, end := m[0], m[1]
		if !hostBoundaries(s, start, end) {
			continue
		}
		ref := podRef{Pod: s[m[2]:m[3]], Service: s[m[4]:m[5]], Namespace: s[m[6]:m[7]]}
		addr, err := n.pod(ref)
		if err != nil {
			return "", err
		}
		b.WriteString(s[last:start])
		b.WriteString(addr.String())
		last = end
		if n.podPath == nil || !strings.HasSuffix(s[:start], "://") {
			continue
		}
		pathStart := end
		if pathStart < len(s) && s[pathStart] == ':' {
			pathStart++
			for pathStart < len(s) && s[pathStart] >= '0' && s[pathStart] <= '9' {
				pathStart++
			}
		}
		if pathStart >= len(s) || s[pathStart] != '/' {
			continue
		}
		pathEnd := pathStart + strings.IndexAny(s[pathStart:]+" ", " ,;")
		b.WriteString(s[end:pathStart])
		b.WriteString(n.podPath(ref, s[pathStart:pathEnd]))
		last = pathEnd
	}
	if last == 0 {
		return s, nil
	}
	b.WriteString(s[last:])
	return b.String(), nil
}

// resolvePod answers for a per-pod name as cluster DNS does: the pod of a StatefulSet this runner runs whose
// serviceName is the named headless Service, ready or not when the Service publishes not-ready addresses.
func (r *Runner) resolvePod(ctx context.Context, ref podRef) (netip.Addr, error) {
	key, ordinal, err := r.podOf(ctx, ref)
	if err != nil {
		return netip.Addr{}, err
	}
	return r.stableAddr(key, ordinal)
}

// podOf finds the StatefulSet pod a per-pod name stands for.
func (r *Runner) podOf(ctx context.Context, ref podRef) (workloadKey, int32, error) {
	name := fmt.Sprintf("%s.%s.%s.svc", ref.Pod, ref.Service, ref.Namespace)
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Service}, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return workloadKey{}, 0, waitf("%s: service %s/%s not found", name, ref.Namespace, ref.Service)
		}
		return workloadKey{}, 0, fmt.Errorf("%s: get service: %w", name, err)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		return workloadKey{}, 0, fmt.Errorf("%s: service %s/%s is not headless; only a headless Service gives its pods names",
			name, ref.Namespace, ref.Service)
	}
	var sets appsv1.StatefulSetList
	if err := r.Client.List(ctx, &sets, client.InNamespace(ref.Namespace)); err != nil {
		return workloadKey{}, 0, fmt.Errorf("%s: list statefulsets: %w", name, err)
	}
	for _, sts := range sets.Items {
		ordinal, ok := ordinalOf(ref.Pod, sts.Name)
		switch {
		case !ok, sts.Spec.ServiceName != ref.Service, ordinal >= ptr.Deref(sts.Spec.Replicas, 1):
			continue
		case !r.Selector.Matches(labels.Set(sts.Labels)),
			len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(sts.Spec.Template.Labels)):
			continue // no address in DNS: the pod would not be the Service's endpoint, or nothing here runs it
		}
		key := workloadKey{Kind: kindStatefulSet, Namespace: sts.Namespace, Name: sts.Name}
		if !svc.Spec.PublishNotReadyAddresses && !r.podReady(key, ordinal) {
			return workloadKey{}, 0, waitf("%s: pod is not ready", name)
		}
		return key, ordinal, nil
	}
	return workloadKey{}, 0, waitf("%s: no such pod behind service %s/%s", name, ref.Namespace, ref.Service)
}

// ordinalOf parses pod name <sts>-<ordinal>.
func ordinalOf(pod, sts string) (int32, bool) {
	rest, ok := strings.CutPrefix(pod, sts+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != rest {
		return 0, false
	}
	return int32(n), true
}

func (r *Runner) podReady(key workloadKey, ordinal int32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pods[key][ordinal]
	return p != nil && p.ready.Load()
}

// stableAddr is the address of a StatefulSet's pod, taken on first use and kept until releaseStable.
func (r *Runner) stableAddr(key workloadKey, ordinal int32) (netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ip, ok := r.stable[key][ordinal]; ok {
		return ip, nil
	}
	ip, err := r.ips.allocate()
	if err != nil {
		return netip.Addr{}, err
	}
	if r.stable[key] == nil {
		r.stable[key] = map[int32]netip.Addr{}
	}
	r.stable[key][ordinal] = ip
	return ip, nil
}

// releaseStable gives back the addresses of a StatefulSet's pods at or above ordinal from, which the StatefulSet
// no longer wants.
func (r *Runner) releaseStable(key workloadKey, from int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ord, ip := range r.stable[key] {
		if ord >= from {
			r.ips.release(ip)
			delete(r.stable[key], ord)
		}
	}
	if len(r.stable[key]) == 0 {
		delete(r.stable, key)
	}
}

// claimPaths maps a path under one of a pod's volume claims, in a URL that names a pod of the same StatefulSet,
// to that pod's claim: a distributed store lists every server's drive (http://<sts>-<i>.<svc>:9000/data) in the
// same arguments on every server, and each server must find its own drive there and name the others' the same
// way. ownDir is the pod's directory, under which its claims live.
func claimPaths(stateDir string, key workloadKey, ownDir string, claims map[string]bool, mounts []mount) func(podRef, string) string {
	return func(ref podRef, p string) string {
		if _, ok := ordinalOf(ref.Pod, key.Name); !ok || ref.Namespace != key.Namespace {
			return p
		}
		theirDir := filepath.Join(stateDir, key.Namespace, ref.Pod)
		var theirs []mount
		for _, m := range mounts {
			for claim := range claims {
				rest, ok := strings.CutPrefix(m.Local, filepath.Join(ownDir, claim))
				if ok && (rest == "" || rest[0] == '/') {
					theirs = append(theirs, mount{Path: m.Path, Local: filepath.Join(theirDir, claim) + rest})
				}
			}
		}
		if local, ok := localPath(p, theirs); ok {
			return local
		}
		return p
	}
}
