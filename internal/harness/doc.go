// Package harness is the folder of what the tests and the demo run instead of a real cluster: a local control
// plane (localcluster), a workload runner that stands in for the kubelet (localrunner), MinIO servers
// (miniotest), the binaries they need (localbin), and helpers for reading metrics (promtest) and a device's
// stored records (stored) in tests. None of it is part of the operator or the agent.
package harness
