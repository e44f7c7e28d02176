package localrunner

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// waitError means a pod cannot start yet because something it references
// (a Secret, a ConfigMap, a ready pod behind a Service) is not there; the
// kubelet would keep the pod pending and retry, and so does the runner.
type waitError struct{ msg string }

func (e *waitError) Error() string { return e.msg }

func waitf(format string, args ...any) error { return &waitError{msg: fmt.Sprintf(format, args...)} }

// refs reads the Secrets and ConfigMaps a pod references, once per pod
// start. A missing object is remembered as nil.
type refs struct {
	client     client.Client
	namespace  string
	secrets    map[string]*corev1.Secret
	configMaps map[string]*corev1.ConfigMap
}

func newRefs(c client.Client, namespace string) *refs {
	return &refs{client: c, namespace: namespace, secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
}

func (r *refs) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	if s, ok := r.secrets[name]; ok {
		return s, nil
	}
	s := &corev1.Secret{}
	switch err := r.client.Get(ctx, client.ObjectKey{Namespace: r.namespace, Name: name}, s); {
	case apierrors.IsNotFound(err):
		s = nil
	case err != nil:
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	r.secrets[name] = s
	return s, nil
}

func (r *refs) configMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	if cm, ok := r.configMaps[name]; ok {
		return cm, nil
	}
	cm := &corev1.ConfigMap{}
	switch err := r.client.Get(ctx, client.ObjectKey{Namespace: r.namespace, Name: name}, cm); {
	case apierrors.IsNotFound(err):
		cm = nil
	case err != nil:
		return nil, fmt.Errorf("get config map %s: %w", name, err)
	}
	r.configMaps[name] = cm
	return cm, nil
}

// configMapData is a ConfigMap's data and binaryData as bytes.
func configMapData(cm *corev1.ConfigMap) map[string][]byte {
	out := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.BinaryData {
		out[k] = v
	}
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	return out
}

// podMeta is what the downward API exposes of a pod.
type podMeta struct {
	namespace      string
	name           string
	ip             netip.Addr
	serviceAccount string
	labels         map[string]string
	annotations    map[string]string
}

// envVar is one resolved environment variable; order matters for $(VAR).
type envVar struct {
	Name  string
	Value string
}

// envList keeps variables in definition order; a later definition of a name
// replaces the earlier value in place, as in the kubelet.
type envList struct {
	vars  []envVar
	index map[string]int
}

func (l *envList) set(name, value string) {
	if l.index == nil {
		l.index = map[string]int{}
	}
	if i, ok := l.index[name]; ok {
		l.vars[i].Value = value
		return
	}
	l.index[name] = len(l.vars)
	l.vars = append(l.vars, envVar{Name: name, Value: value})
}

func (l *envList) lookup(name string) (string, bool) {
	i, ok := l.index[name]
	if !ok {
		return "", false
	}
	return l.vars[i].Value, true
}

// containerEnv resolves c's envFrom and env the way the kubelet does: envFrom
// first, then env, each plain value expanded against the variables defined
// before it. Values from references are not expanded.
func containerEnv(ctx context.Context, refs *refs, pod *podMeta, spec *corev1.PodSpec, c *corev1.Container) (*envList, error) {
	env := &envList{}
	for _, from := range c.EnvFrom {
		var data map[string][]byte
		switch {
		case from.SecretRef != nil:
			s, err := refs.secret(ctx, from.SecretRef.Name)
			if err != nil {
				return nil, err
			}
			if s == nil {
				if isTrue(from.SecretRef.Optional) {
					continue
				}
				return nil, waitf("secret %s for envFrom not found", from.SecretRef.Name)
			}
			data = s.Data
		case from.ConfigMapRef != nil:
			cm, err := refs.configMap(ctx, from.ConfigMapRef.Name)
			if err != nil {
				return nil, err
			}
			if cm == nil {
				if isTrue(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, waitf("config map %s for envFrom not found", from.ConfigMapRef.Name)
			}
			data = make(map[string][]byte, len(cm.Data))
			for k, v := range cm.Data {
				data[k] = []byte(v)
			}
		}
		for k, v := range data {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				continue // the kubelet skips keys that cannot be variable names
			}
			env.set(from.Prefix+k, string(v))
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env.set(e.Name, expand(e.Value, env.lookup))
			continue
		}
		v, ok, err := valueFrom(ctx, refs, pod, spec, c, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			env.set(e.Name, v)
		}
	}
	return env, nil
}

// valueFrom resolves one env valueFrom; ok is false for an optional
// reference that does not resolve, which leaves the variable unset.
func valueFrom(ctx context.Context, refs *refs, pod *podMeta, spec *corev1.PodSpec, c *corev1.Container, src *corev1.EnvVarSource) (string, bool, error) {
	switch {
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := refs.secret(ctx, ref.Name)
		if err != nil {
			return "", false, err
		}
		if s != nil {
			if v, ok := s.Data[ref.Key]; ok {
				return string(v), true, nil
			}
		}
		if isTrue(ref.Optional) {
			return "", false, nil
		}
		return "", false, waitf("key %s of secret %s not found", ref.Key, ref.Name)
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := refs.configMap(ctx, ref.Name)
		if err != nil {
			return "", false, err
		}
		if cm != nil {
			if v, ok := configMapData(cm)[ref.Key]; ok {
				return string(v), true, nil
			}
		}
		if isTrue(ref.Optional) {
			return "", false, nil
		}
		return "", false, waitf("key %s of config map %s not found", ref.Key, ref.Name)
	case src.FieldRef != nil:
		v, err := fieldValue(pod, src.FieldRef.FieldPath)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := resourceValue(spec, c, src.ResourceFieldRef)
		return v, err == nil, err
	default:
		return "", false, fmt.Errorf("unsupported valueFrom source")
	}
}

// fieldValue answers the downward API field paths a local pod can have.
func fieldValue(pod *podMeta, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.name, nil
	case "metadata.namespace":
		return pod.namespace, nil
	case "metadata.uid":
		return "localrunner-" + pod.namespace + "-" + pod.name, nil
	case "spec.serviceAccountName":
		return pod.serviceAccount, nil
	case "spec.nodeName":
		return "localhost", nil
	case "status.podIP", "status.podIPs":
		return pod.ip.String(), nil
	case "status.hostIP", "status.hostIPs":
		return "127.0.0.1", nil
	}
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.annotations[key], nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// subscript parses field['key'] for the given field.
func subscript(path, field string) (string, bool) {
	rest, ok := strings.CutPrefix(path, field+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

// resourceValue answers a resourceFieldRef from the container's requests
// and limits; an unset CPU or memory limit stands for the whole machine,
// as it does for the node's allocatable in a cluster.
func resourceValue(spec *corev1.PodSpec, self *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	c := self
	if ref.ContainerName != "" && ref.ContainerName != self.Name {
		c = nil
		for i := range spec.Containers {
			if spec.Containers[i].Name == ref.ContainerName {
				c = &spec.Containers[i]
			}
		}
		if c == nil {
			return "", fmt.Errorf("resourceFieldRef: no container %s", ref.ContainerName)
		}
	}
	bound, name, _ := strings.Cut(ref.Resource, ".")
	list := c.Resources.Limits
	if bound == "requests" {
		list = c.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		switch {
		case bound == "requests":
			q = resource.MustParse("0")
		case name == string(corev1.ResourceCPU):
			q = *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI)
		case name == string(corev1.ResourceMemory):
			var si syscall.Sysinfo_t
			if err := syscall.Sysinfo(&si); err != nil {
				return "", fmt.Errorf("read total memory: %w", err)
			}
			q = *resource.NewQuantity(int64(si.Totalram)*int64(si.Unit), resource.BinarySI)
		default:
			return "", fmt.Errorf("unsupported resourceFieldRef %q without a limit", ref.Resource)
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == string(corev1.ResourceCPU) {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

func isTrue(b *bool) bool { return b != nil && *b }
