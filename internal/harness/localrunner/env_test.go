package localrunner

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestContainerEnv(t *testing.T) {
	c := fake.NewClientBuilder().WithObjects(
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "creds"},
			Data:       map[string][]byte{"accessKey": []byte("AK"), "secretKey": []byte("SK")},
		},
		&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "settings"},
			Data:       map[string]string{"LEVEL": "debug", "REGION": "eu"},
		},
	).Build()
	meta := &podMeta{
		namespace: "ns", name: "web-0", ip: netip.MustParseAddr("127.42.0.5"), serviceAccount: "web",
		labels: map[string]string{"app": "web"}, annotations: map[string]string{"team": "ops"},
	}
	secretKey := func(name, key string, optional bool) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: ptr.To(optional),
		}}
	}
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}

	tests := map[string]struct {
		container corev1.Container
		want      []envVar
		wantWait  bool
		wantErr   bool
	}{
		"plain values expand earlier ones": {
			container: corev1.Container{Env: []corev1.EnvVar{
				{Name: "A", Value: "a"},
				{Name: "B", Value: "$(A)-$(C)"}, // C is defined later: stays literal
				{Name: "C", Value: "c"},
				{Name: "D", Value: "$$(A)"},
			}},
			want: []envVar{{"A", "a"}, {"B", "a-$(C)"}, {"C", "c"}, {"D", "$(A)"}},
		},
		"downward API": {
			container: corev1.Container{Env: []corev1.EnvVar{
				{Name: "POD_NAME", ValueFrom: field("metadata.name")},
				{Name: "POD_NAMESPACE", ValueFrom: field("metadata.namespace")},
				{Name: "POD_IP", ValueFrom: field("status.podIP")},
				{Name: "SA", ValueFrom: field("spec.serviceAccountName")},
				{Name: "APP", ValueFrom: field("metadata.labels['app']")},
				{Name: "TEAM", ValueFrom: field("metadata.annotations['team']")},
				{Name: "LISTEN", Value: "$(POD_IP):8080"},
			}},
			want: []envVar{
				{"POD_NAME", "web-0"}, {"POD_NAMESPACE", "ns"}, {"POD_IP", "127.42.0.5"}, {"SA", "web"},
				{"APP", "web"}, {"TEAM", "ops"}, {"LISTEN", "127.42.0.5:8080"},
			},
		},
		"secret and config map keys": {
			container: corev1.Container{Env: []corev1.EnvVar{
				{Name: "KEY", ValueFrom: secretKey("creds", "accessKey", false)},
				{Name: "LEVEL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "LEVEL",
				}}},
				{Name: "NOT_EXPANDED", ValueFrom: secretKey("creds", "secretKey", false)},
			}},
			want: []envVar{{"KEY", "AK"}, {"LEVEL", "debug"}, {"NOT_EXPANDED", "SK"}},
		},
		"optional missing refs leave the variable unset": {
			container: corev1.Container{Env: []corev1.EnvVar{
				{Name: "NO_SECRET", ValueFrom: secretKey("missing", "k", true)},
				{Name: "NO_KEY", ValueFrom: secretKey("creds", "missing", true)},
				{Name: "X", Value: "x"},
			}},
			want: []envVar{{"X", "x"}},
		},
		"missing secret waits": {
			container: corev1.Container{Env: []corev1.EnvVar{{Name: "K", ValueFrom: secretKey("missing", "k", false)}}},
			wantWait:  true,
		},
		"missing key waits": {
			container: corev1.Container{Env: []corev1.EnvVar{{Name: "K", ValueFrom: secretKey("creds", "nope", false)}}},
			wantWait:  true,
		},
		"envFrom with prefix, env overrides in place": {
			container: corev1.Container{
				EnvFrom: []corev1.EnvFromSource{
					{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}},
					{Prefix: "S_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}},
					{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Optional: ptr.To(true)}},
				},
				Env: []corev1.EnvVar{{Name: "LEVEL", Value: "info-$(REGION)"}},
			},
			want: []envVar{{"LEVEL", "info-eu"}, {"REGION", "eu"}, {"S_accessKey", "AK"}, {"S_secretKey", "SK"}},
		},
		"missing envFrom waits": {
			container: corev1.Container{EnvFrom: []corev1.EnvFromSource{
				{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}},
			}},
			wantWait: true,
		},
		"unsupported field path": {
			container: corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: field("status.phase")}}},
			wantErr:   true,
		},
		"cpu limit": {
			container: corev1.Container{
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("1500m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
				}},
				Env: []corev1.EnvVar{
					{Name: "CPUS", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
					{Name: "MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
						Resource: "limits.memory", Divisor: resource.MustParse("1Mi"),
					}}},
				},
			},
			want: []envVar{{"CPUS", "2"}, {"MEM_MI", "64"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			spec := &corev1.PodSpec{Containers: []corev1.Container{tc.container}}
			env, err := containerEnv(context.Background(), newRefs(c, "ns"), meta, spec, &spec.Containers[0])
			var wait *waitError
			switch {
			case tc.wantWait:
				require.True(t, errors.As(err, &wait), "want a waitError, got %v", err)
			case tc.wantErr:
				require.Error(t, err)
				require.False(t, errors.As(err, &wait), "want a hard error, got a waitError")
			default:
				require.NoError(t, err)
				got := env.vars
				if len(tc.container.EnvFrom) > 0 {
					// envFrom keys come from a map; only their set matters.
					assert.ElementsMatch(t, tc.want, got)
					return
				}
				assert.Equal(t, tc.want, got)
			}
		})
	}
}
