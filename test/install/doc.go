// Package install holds the tests of the operator's two installation paths, the Helm chart in charts/supportstack
// and the kustomize tree in config/: they render the objects they should, agree with each other, and carry
// up-to-date copies of the CRDs and RBAC rules that controller-gen generates from the markers.
//
// The tests run the real helm and kustomize binaries that `make tools` installs into bin/; the Makefile points
// SUPPORTSTACK_HELM_BIN and SUPPORTSTACK_KUSTOMIZE_BIN at them. Without them the tests fail, they do not skip.
package install
