package localrunner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// podDirs is where a pod's files live on the local disk.
//
//	StateDir/<ns>/<pod>/<claim>/         a StatefulSet volumeClaimTemplate: kept across restarts and scale to zero
//	StateDir/<ns>/<pod>/<container>.log  the container's stdout and stderr, appended
//	StateDir/<ns>/<pod>/.run-<ip>-<n>/   one run of the pod: emptyDirs, Secret and ConfigMap files, HOME,
//	                                     working dir and TMPDIR; removed when the pod stops
//	StateDir/<ns>/.claims/<claim>/       a pod volume that names a PersistentVolumeClaim
//
// Names of pods and volumes cannot contain dots, so the hidden names never
// collide with them.
type podDirs struct {
	pod    string
	run    string
	claims string
}

func newPodDirs(stateDir, namespace, pod, runID string) podDirs {
	return podDirs{
		pod:    filepath.Join(stateDir, namespace, pod),
		run:    filepath.Join(stateDir, namespace, pod, ".run-"+runID),
		claims: filepath.Join(stateDir, namespace, ".claims"),
	}
}

func (d podDirs) home() string { return filepath.Join(d.run, "home") }
func (d podDirs) work() string { return filepath.Join(d.run, "work") }
func (d podDirs) tmp() string  { return filepath.Join(d.run, "tmp") }
func (d podDirs) log(container string) string {
	return filepath.Join(d.pod, container+".log")
}

// prepareVolumes creates the local stand-in of every pod volume and returns
// its directory by volume name. claims are the StatefulSet's
// volumeClaimTemplates, which take precedence over pod volumes of the same
// name as they do in the StatefulSet controller. Unsupported volume types
// become empty directories; note receives their names for logging.
func prepareVolumes(ctx context.Context, refs *refs, dirs podDirs, spec *corev1.PodSpec, claims map[string]bool, note func(volume, reason string)) (map[string]string, error) {
	for _, d := range []string{dirs.home(), dirs.work(), dirs.tmp()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create pod dir: %w", err)
		}
	}
	local := map[string]string{}
	for name := range claims {
		local[name] = filepath.Join(dirs.pod, name)
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if claims[v.Name] {
			continue
		}
		dir := filepath.Join(dirs.run, "volumes", v.Name)
		switch {
		case v.PersistentVolumeClaim != nil:
			dir = filepath.Join(dirs.claims, v.PersistentVolumeClaim.ClaimName)
		case v.HostPath != nil:
			dir = v.HostPath.Path
		case v.EmptyDir != nil:
		case v.Secret != nil:
			if err := writeSecretVolume(ctx, refs, dir, v.Secret.SecretName, v.Secret.Items, isTrue(v.Secret.Optional)); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.ConfigMap != nil:
			if err := writeConfigMapVolume(ctx, refs, dir, v.ConfigMap.Name, v.ConfigMap.Items, isTrue(v.ConfigMap.Optional)); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				var err error
				switch {
				case src.Secret != nil:
					err = writeSecretVolume(ctx, refs, dir, src.Secret.Name, src.Secret.Items, isTrue(src.Secret.Optional))
				case src.ConfigMap != nil:
					err = writeConfigMapVolume(ctx, refs, dir, src.ConfigMap.Name, src.ConfigMap.Items, isTrue(src.ConfigMap.Optional))
				default:
					note(v.Name, "projected source other than secret or configMap is left empty")
				}
				if err != nil {
					return nil, fmt.Errorf("volume %s: %w", v.Name, err)
				}
			}
		default:
			note(v.Name, "unsupported volume type is an empty directory")
		}
		local[v.Name] = dir
	}
	for _, dir := range local {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create volume dir: %w", err)
		}
	}
	return local, nil
}

func writeSecretVolume(ctx context.Context, refs *refs, dir, name string, items []corev1.KeyToPath, optional bool) error {
	s, err := refs.secret(ctx, name)
	if err != nil {
		return err
	}
	if s == nil {
		if optional {
			return nil
		}
		return waitf("secret %s not found", name)
	}
	return writeKeys(dir, s.Data, items, optional)
}

func writeConfigMapVolume(ctx context.Context, refs *refs, dir, name string, items []corev1.KeyToPath, optional bool) error {
	cm, err := refs.configMap(ctx, name)
	if err != nil {
		return err
	}
	if cm == nil {
		if optional {
			return nil
		}
		return waitf("config map %s not found", name)
	}
	return writeKeys(dir, configMapData(cm), items, optional)
}

// writeKeys writes data as files into dir: every key, or only items (key to
// relative path) when given.
func writeKeys(dir string, data map[string][]byte, items []corev1.KeyToPath, optional bool) error {
	files := map[string][]byte{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = v
		}
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return waitf("key %s not found", it.Key)
		}
		files[it.Path] = v
	}
	for rel, v := range files {
		if filepath.IsAbs(rel) || strings.HasPrefix(filepath.Clean(rel), "..") {
			return fmt.Errorf("invalid volume file path %q", rel)
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("create volume dir: %w", err)
		}
		// Secrets are written owner-only; nothing else on the machine needs them.
		if err := os.WriteFile(p, v, 0o600); err != nil {
			return fmt.Errorf("write volume file %s: %w", rel, err)
		}
	}
	return nil
}

// containerMounts maps c's volumeMounts to local paths, honouring subPath.
func containerMounts(c *corev1.Container, volumes map[string]string) ([]mount, error) {
	mounts := make([]mount, 0, len(c.VolumeMounts))
	for _, vm := range c.VolumeMounts {
		dir, ok := volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("container %s mounts unknown volume %s", c.Name, vm.Name)
		}
		local := filepath.Join(dir, vm.SubPath)
		if vm.SubPath != "" {
			// Like the kubelet, a missing subPath is created as a directory.
			if _, err := os.Stat(local); errors.Is(err, fs.ErrNotExist) {
				if err := os.MkdirAll(local, 0o755); err != nil {
					return nil, fmt.Errorf("create subPath: %w", err)
				}
			}
		}
		mounts = append(mounts, mount{Path: vm.MountPath, Local: local})
	}
	return mounts, nil
}
