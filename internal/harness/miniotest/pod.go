package miniotest

import (
	"net/netip"

	"github.com/supportstack/supportstack/internal/naming"
)

// PodEnv is a localrunner ContainerEnv for the pods of a tenant's MinIO (image minioImage), for what running
// every server on one machine changes for MinIO:
//
//   - Every pod's address is a loopback address, which MinIO takes for its own: each server of an erasure set
//     would claim every drive. In a cluster a server's own network namespace tells it which endpoint is its own;
//     here _MINIO_SERVER_LOCAL does, which MinIO honours where it runs in Kubernetes (the runner sets
//     KUBERNETES_SERVICE_HOST, as a kubelet does).
//   - Every drive is a folder on the machine's root file system, which a distributed MinIO refuses to use; in a
//     cluster each is a volume of its own. A root-drive threshold of one byte lets MinIO use them.
//
// A single server is unaffected by either.
func PodEnv(minioImage string) func(image string, ip netip.Addr) []string {
	return func(image string, ip netip.Addr) []string {
		if image != minioImage {
			return nil
		}
		return setEnv(netip.AddrPortFrom(ip, naming.MinIOPort).String())
	}
}

// setEnv is the environment of a server of an erasure set on this machine whose own endpoint is host:port own
// (see PodEnv). MinIO also counts a machine with /.dockerenv or /run/.containerenv as a container, where every
// loopback name waits to "resolve to a valid IP" unless it is the one _MINIO_SERVER_LOCAL names.
func setEnv(own string) []string {
	return []string{"_MINIO_SERVER_LOCAL=" + own, "MINIO_ROOTDRIVE_THRESHOLD_SIZE=1B"}
}
