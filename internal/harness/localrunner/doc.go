// Package localrunner is a tiny stand-in for a kubelet, scheduler and the
// workload controllers of kube-controller-manager, for local runs against a
// bare control plane (envtest) where nothing would otherwise run the pods the
// operator renders.
//
// A Runner watches the Deployments and StatefulSets that match its label
// selector and runs every replica's containers as local processes, built from
// exactly their command, args and env. Each pod replica gets its own loopback
// address in 127.42.0.0/16, so containers that bind to $(POD_IP):port never
// collide on ports. What a container would see inside a cluster is emulated by
// rewriting strings, not by namespaces or mounts:
//
//   - the container image maps to a local executable through Runner.Binaries;
//     command[0] names the entrypoint inside the image and is dropped, so the
//     process runs Binaries(image) with command[1:] + args;
//   - env comes from value, secretKeyRef, configMapKeyRef, fieldRef and
//     envFrom, then $(VAR) references are expanded with Kubernetes semantics;
//   - <svc>.<ns>.svc[.cluster.local][:port] in env values and args becomes the
//     loopback address and target port of a ready pod behind that Service;
//   - <pod>.<svc>.<ns>.svc[.cluster.local], the name cluster DNS gives pod
//     <pod> of a StatefulSet whose serviceName is the headless Service <svc>,
//     becomes that pod's address (a port after it stays), and the path of a
//     URL on it under one of the StatefulSet's claim mounts becomes that pod's
//     claim: every server of a distributed store sees the same list of drives.
//     A StatefulSet's pod keeps its address while the StatefulSet wants it, as
//     its name would keep resolving to it;
//   - KUBERNETES_SERVICE_HOST and _PORT name the API server, as the kubelet
//     sets them, and ContainerEnv adds what a program needs where one machine
//     differs from pods of their own (see miniotest.PodEnv);
//   - a volumeMount's mountPath at the start of an env value or arg becomes a
//     local directory: StatefulSet volumeClaimTemplates persist under
//     StateDir/<ns>/<pod>/<volume> across restarts and scale to zero; emptyDir,
//     Secret and ConfigMap volumes live in a per-run directory.
//
// Readiness probes (httpGet, tcpSocket) are polled per pod, and the runner
// writes the workloads' status, which nothing else updates without
// kube-controller-manager. A container that exits is restarted with backoff
// and is unready meanwhile. A changed pod template replaces the pods one at
// a time while their siblings are ready.
//
// Not emulated: init containers (ignored), exec and grpc readiness probes
// (ready once started), liveness and startup probes, initialDelaySeconds,
// minReadySeconds, ordered StatefulSet start-up (replicas start together),
// DNS lookups by the processes themselves (names are rewritten, not
// resolved), a Service balancing connections over its pods (a name is fixed
// to one ready pod when a process starts), other Service environment
// variables, resource limits, security contexts and network policies.
package localrunner
