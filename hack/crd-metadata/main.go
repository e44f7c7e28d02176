// Command crd-metadata declares metadata.name in the schema of the CRDs controller-gen made, which it leaves out:
// the SupportTenant's rules on its name name the field (fieldPath: .metadata.name) so that kubectl shows which
// field is wrong, and the API server accepts a fieldPath only into the schema. Kubernetes allows a CRD's schema
// to declare metadata.name and metadata.generateName, and nothing else of metadata.
//
// Usage: go run ./hack/crd-metadata config/crd/bases/supportstack.io_supporttenants.yaml
package main

import (
	"bytes"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

func main() {
	for _, path := range os.Args[1:] {
		if err := declareName(path); err != nil {
			fmt.Fprintln(os.Stderr, "crd-metadata:", err)
			os.Exit(1)
		}
	}
}

func declareName(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var crd map[string]any
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	spec, _ := crd["spec"].(map[string]any)
	versions, _ := spec["versions"].([]any)
	for _, v := range versions {
		schema := dig(v, "schema", "openAPIV3Schema", "properties", "metadata")
		if schema == nil {
			return fmt.Errorf("%s: a version has no metadata in its schema", path)
		}
		schema["properties"] = map[string]any{"name": map[string]any{"type": "string"}}
	}
	out, err := yaml.Marshal(crd)
	if err != nil {
		return err
	}
	out = append([]byte("---\n"), out...)
	if bytes.Equal(out, data) {
		return nil
	}
	return os.WriteFile(path, out, 0o644)
}

// dig follows map keys down from v.
func dig(v any, keys ...string) map[string]any {
	m, _ := v.(map[string]any)
	for _, k := range keys {
		if m == nil {
			return nil
		}
		m, _ = m[k].(map[string]any)
	}
	return m
}
