// Package localbin finds the binaries that local runs and tests start for real: the control plane
// (kube-apiserver, etcd, kube-controller-manager, kubectl) and MinIO. `make test-binaries` (hack/test-binaries.sh)
// puts them into bin/ and exports their locations; this package reads the same environment variables and falls
// back to bin/ of the repository, so that `go test` run by hand finds them too.
package localbin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrMissing is returned when a binary is not where it should be.
var ErrMissing = errors.New("binary not found: run `make test-binaries` first")

// RepoRoot walks up from the working directory to the folder holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// find returns the path in env var, or bin/rel under the repository root, if it exists.
func find(envVar, rel string) (string, error) {
	path := os.Getenv(envVar)
	if path == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		path = filepath.Join(root, "bin", rel)
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s (%s): %w", path, envVar, ErrMissing)
	}
	return path, nil
}

// ControlPlaneDir is the folder with kube-apiserver, etcd, kube-controller-manager and kubectl
// ($KUBEBUILDER_ASSETS, as envtest expects).
func ControlPlaneDir() (string, error) {
	dir, err := find("KUBEBUILDER_ASSETS", "k8s")
	if err != nil {
		return "", err
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("%s in %s: %w", b, dir, ErrMissing)
		}
	}
	return dir, nil
}

// MinIO is the MinIO server binary ($SUPPORTSTACK_MINIO_BIN).
func MinIO() (string, error) { return find("SUPPORTSTACK_MINIO_BIN", "minio") }
