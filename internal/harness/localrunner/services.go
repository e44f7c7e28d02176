package localrunner

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ServiceAddress returns "ip:port" of a ready pod behind a Service, the
// address a client inside the cluster would reach through
// <service>.<namespace>.svc:<port>. The Service's selector is matched against
// the pod template labels of the pods this runner runs, and port (a Service
// port) is mapped to its targetPort. Pods are tried in name order, so the
// answer is stable while the pods' readiness does not change. When no pod is
// ready it returns the address of one that was (connections to it fail, as to
// a Service without endpoints), and it fails when none ever was. Call it after
// SetupWithManager.
func (r *Runner) ServiceAddress(namespace, service string, port int32) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if port <= 0 {
		return "", fmt.Errorf("service %s/%s: invalid port %d", namespace, service, port)
	}
	return r.resolveService(ctx, serviceRef{Name: service, Namespace: namespace, Port: port})
}

// resolveService maps a Service reference to a ready pod's "ip:targetPort",
// or to its bare ip when ref has no port. A Service that does not exist yet
// or has never had a ready pod is a waitError: the caller retries.
func (r *Runner) resolveService(ctx context.Context, ref serviceRef) (string, error) {
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return "", waitf("service %s/%s not found", ref.Namespace, ref.Name)
		}
		return "", fmt.Errorf("get service %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	if len(svc.Spec.Selector) == 0 {
		return "", fmt.Errorf("service %s/%s has no selector", ref.Namespace, ref.Name)
	}
	var sp *corev1.ServicePort
	if ref.Port != 0 {
		i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == ref.Port })
		if i < 0 {
			return "", fmt.Errorf("service %s/%s has no port %d", ref.Namespace, ref.Name, ref.Port)
		}
		sp = &svc.Spec.Ports[i]
	}
	for _, p := range r.readyPods(ref.Namespace, labels.SelectorFromSet(svc.Spec.Selector)) {
		if sp == nil {
			return p.ip.String(), nil
		}
		if port, ok := targetPort(p.spec, sp); ok {
			return netip.AddrPortFrom(p.ip, uint16(port)).String(), nil
		}
	}
	return "", waitf("service %s/%s has no ready pod", ref.Namespace, ref.Name)
}

// selectsPod reports whether the referenced Service selects the pod described by meta.
func (r *Runner) selectsPod(ctx context.Context, ref serviceRef, meta *podMeta) (*corev1.Service, bool, error) {
	if ref.Namespace != meta.namespace {
		return nil, false, nil
	}
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, false, nil // resolveService reports the missing Service
		}
		return nil, false, fmt.Errorf("get service %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	return svc, len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(meta.labels)), nil
}

// ownAddress is what a pod that names a Service selecting it gets for the name: its own address and the
// Service port's target port. The pod need not wait for itself to be ready, and what it hands out (ingest
// advertising its URL to agents) is reachable from this machine, where the Service's name is not.
func ownAddress(svc *corev1.Service, ref serviceRef, ip netip.Addr, spec *corev1.PodSpec) (string, error) {
	if ref.Port == 0 {
		return ip.String(), nil
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == ref.Port })
	if i < 0 {
		return "", fmt.Errorf("service %s/%s has no port %d", ref.Namespace, ref.Name, ref.Port)
	}
	port, ok := targetPort(spec, &svc.Spec.Ports[i])
	if !ok {
		return "", fmt.Errorf("service %s/%s: port %d has no target in the pod", ref.Namespace, ref.Name, ref.Port)
	}
	return netip.AddrPortFrom(ip, uint16(port)).String(), nil
}

// readyPods returns the ready pods in namespace whose labels match sel, or,
// when none is, those that were ready once; sorted by name.
func (r *Runner) readyPods(namespace string, sel labels.Selector) []*pod {
	r.mu.Lock()
	var out, fallen []*pod
	for key, pods := range r.pods {
		if key.Namespace != namespace {
			continue
		}
		for _, p := range pods {
			switch {
			case !sel.Matches(labels.Set(p.labels)):
			case p.ready.Load():
				out = append(out, p)
			case p.wasReady.Load():
				fallen = append(fallen, p)
			}
		}
	}
	r.mu.Unlock()
	if len(out) == 0 {
		// Every pod that served is down: in a cluster the Service's name still resolves and connections to it
		// fail. Its last pods' addresses (nothing listens there now) fail the same way, so a pod started now
		// runs as it would in a cluster instead of waiting for the Service.
		out = fallen
	}
	slices.SortFunc(out, func(a, b *pod) int { return strings.Compare(a.name, b.name) })
	return out
}

// targetPort maps a Service port to a container port of a pod: a number
// (0 meaning the same as the Service port) or a named container port.
func targetPort(spec *corev1.PodSpec, sp *corev1.ServicePort) (int32, bool) {
	tp := sp.TargetPort
	if tp.Type == intstr.Int {
		if tp.IntVal == 0 {
			return sp.Port, true
		}
		return tp.IntVal, true
	}
	if tp.StrVal == "" {
		return sp.Port, true
	}
	for _, c := range spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == tp.StrVal && protocolOf(cp.Protocol) == protocolOf(sp.Protocol) {
				return cp.ContainerPort, true
			}
		}
	}
	if n, err := strconv.Atoi(tp.StrVal); err == nil && n > 0 && n <= 65535 {
		return int32(n), true
	}
	return 0, false
}

func protocolOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}
