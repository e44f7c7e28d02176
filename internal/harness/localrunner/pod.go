package localrunner

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// runs numbers the runs of pods, for their run directories.
var runs atomic.Int64

// maxGrace caps terminationGracePeriodSeconds: local runs should not wait
// 30 s for a process that ignores SIGTERM.
const maxGrace = 10 * time.Second

// pod is one running replica of a workload: its containers' processes, its
// loopback address and its readiness.
type pod struct {
	owner   workloadKey
	name    string
	ordinal int32
	hash    string
	ip      netip.Addr
	// stableIP: the address belongs to the StatefulSet's pod, not to this run of it (see stableAddr).
	stableIP bool
	ips      *ipPool
	labels   map[string]string
	spec     *corev1.PodSpec
	dirs     podDirs
	grace    time.Duration
	log      logr.Logger

	containers []*podContainer
	ready      atomic.Bool
	// wasReady: the pod has been ready once; a Service whose pods are all unready resolves to it (see readyPods).
	wasReady atomic.Bool

	mu         sync.Mutex // serializes start and stop
	stopped    bool
	stopProbes context.CancelFunc
	probesDone chan struct{}
}

type podContainer struct {
	spec corev1.Container
	cmd  processSpec
	// proc is set once by start; Pods reads it concurrently.
	proc atomic.Pointer[process]
}

// buildPod prepares replica ordinal of w: it takes a loopback address,
// creates the pod's directories and volumes and turns every container into a
// command. Nothing runs yet; on error everything taken is given back.
func (r *Runner) buildPod(ctx context.Context, w *workload, ordinal int32) (_ *pod, err error) {
	name := podName(w.key.Name, ordinal)
	// A StatefulSet's pod keeps its address (see stableAddr); a Deployment's gets a new one each time.
	stable := w.key.Kind == kindStatefulSet
	var ip netip.Addr
	if stable {
		ip, err = r.stableAddr(w.key, ordinal)
	} else {
		ip, err = r.ips.allocate()
	}
	if err != nil {
		return nil, err
	}
	spec := w.template.Spec.DeepCopy()
	p := &pod{
		owner:    w.key,
		name:     name,
		ordinal:  ordinal,
		hash:     w.hash,
		ip:       ip,
		stableIP: stable,
		ips:      r.ips,
		labels:   w.template.Labels,
		spec:     spec,
		// The run's directory is unique even where the address is not: the pod a template change replaces
		// removes its own when it stops, after its successor was prepared.
		dirs:  newPodDirs(r.StateDir, w.key.Namespace, name, fmt.Sprintf("%s-%d", ip, runs.Add(1))),
		grace: min(time.Duration(max(ptr.Deref(spec.TerminationGracePeriodSeconds, 30), 0))*time.Second, maxGrace),
		log:   r.log.WithValues("pod", klog.KRef(w.key.Namespace, name)),
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(p.dirs.run)
			if !stable {
				r.ips.release(ip)
			}
		}
	}()
	if !r.hasPod(w.key, ordinal) {
		// No earlier run of this pod is alive: run dirs left by a crashed runner are garbage.
		stale, _ := filepath.Glob(filepath.Join(p.dirs.pod, ".run-*"))
		for _, d := range stale {
			_ = os.RemoveAll(d)
		}
	}

	if len(spec.InitContainers) > 0 {
		r.noteOnce("init/"+w.key.String(), "Init containers are not supported, ignoring them", "workload", w.key.String())
	}
	refs := newRefs(r.Client, w.key.Namespace)
	meta := &podMeta{
		namespace:      w.key.Namespace,
		name:           name,
		ip:             ip,
		serviceAccount: serviceAccountName(spec),
		labels:         w.template.Labels,
		annotations:    w.template.Annotations,
	}
	volumes, err := prepareVolumes(ctx, refs, p.dirs, spec, w.claims, func(volume, reason string) {
		r.noteOnce("volume/"+w.key.String()+"/"+volume, "Volume emulated partially", "workload", w.key.String(), "volume", volume, "reason", reason)
	})
	if err != nil {
		return nil, err
	}
	resolve := names{
		service: func(ref serviceRef) (string, error) {
			svc, self, err := r.selectsPod(ctx, ref, meta)
			switch {
			case err != nil:
				return "", err
			case self:
				return ownAddress(svc, ref, ip, spec)
			}
			return r.resolveService(ctx, ref)
		},
		pod: func(ref podRef) (netip.Addr, error) { return r.resolvePod(ctx, ref) },
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		if pr := c.ReadinessProbe; pr != nil && pr.HTTPGet == nil && pr.TCPSocket == nil {
			r.noteOnce("probe/"+w.key.String()+"/"+c.Name, "Readiness probe type not supported, container is ready once started",
				"workload", w.key.String(), "container", c.Name)
		}
		cmd, err := r.containerCommand(ctx, refs, meta, w, c, volumes, p.dirs, resolve)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
		p.containers = append(p.containers, &podContainer{spec: *c, cmd: cmd})
	}
	return p, nil
}

// containerCommand turns container c into a local command. The image maps to
// an executable through Binaries; command[0] is the entrypoint inside the
// image and is dropped, so the executable gets command[1:] followed by args.
func (r *Runner) containerCommand(ctx context.Context, refs *refs, meta *podMeta, w *workload, c *corev1.Container,
	volumes map[string]string, dirs podDirs, resolve names,
) (processSpec, error) {
	spec := &w.template.Spec
	bin, err := r.Binaries(c.Image)
	if err != nil {
		return processSpec{}, fmt.Errorf("map image %s to a binary: %w", c.Image, err)
	}
	env, err := containerEnv(ctx, refs, meta, spec, c)
	if err != nil {
		return processSpec{}, err
	}
	mounts, err := containerMounts(c, volumes)
	if err != nil {
		return processSpec{}, err
	}
	// Expansion uses the values as written, and each string is rewritten
	// exactly once afterwards: a local path must never be rewritten again
	// when the StateDir happens to lie under a mountPath such as /tmp.
	resolve.podPath = claimPaths(r.StateDir, w.key, dirs.pod, w.claims, mounts)
	rewrite := func(s string) (string, error) {
		s, err := r.rewriteNames(s, resolve)
		if err != nil {
			return "", err
		}
		return rewritePath(s, mounts), nil
	}
	var args []string
	if len(c.Command) > 0 {
		args = append(args, c.Command[1:]...)
	}
	args = append(args, c.Args...)
	for i, a := range args {
		if args[i], err = rewrite(expand(a, env.lookup)); err != nil {
			return processSpec{}, err
		}
	}

	osEnv := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOSTNAME=" + meta.name,
		"HOME=" + dirs.home(),
		"TMPDIR=" + dirs.tmp(),
	}
	// The kubelet tells every container where the API server is; programs take it as the sign that they run
	// in Kubernetes.
	osEnv = append(osEnv, r.apiServerEnv...)
	if r.ContainerEnv != nil {
		osEnv = append(osEnv, r.ContainerEnv(c.Image, meta.ip)...)
	}
	for _, v := range env.vars {
		val, err := rewrite(v.Value)
		if err != nil {
			return processSpec{}, fmt.Errorf("env %s: %w", v.Name, err)
		}
		// Later entries win in os/exec, so the container's own HOME or PATH takes precedence.
		osEnv = append(osEnv, v.Name+"="+val)
	}

	dir := dirs.work()
	if c.WorkingDir != "" {
		if local, ok := localPath(c.WorkingDir, mounts); ok {
			dir = local
		}
	}
	return processSpec{Path: bin, Args: args, Env: osEnv, Dir: dir, Log: dirs.log(c.Name)}, nil
}

func serviceAccountName(spec *corev1.PodSpec) string {
	switch {
	case spec.ServiceAccountName != "":
		return spec.ServiceAccountName
	case spec.DeprecatedServiceAccount != "":
		return spec.DeprecatedServiceAccount
	default:
		return "default"
	}
}

// start runs the containers and the readiness loop, which calls notify
// whenever the pod's readiness changes.
func (p *pod) start(probeMax time.Duration, notify func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	for _, c := range p.containers {
		c.proc.Store(startProcess(p.log.WithValues("container", c.spec.Name), c.cmd))
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stopProbes = cancel
	p.probesDone = make(chan struct{})
	go p.probeLoop(ctx, probeMax, notify)
}

// stop ends the readiness loop, stops every container (SIGTERM, SIGKILL
// after the grace period), removes the run directory and releases the
// address. Claim directories and logs stay.
func (p *pod) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.stopped = true
	if p.stopProbes != nil {
		p.stopProbes()
		<-p.probesDone
	}
	p.ready.Store(false)
	var wg sync.WaitGroup
	for _, c := range p.containers {
		if proc := c.proc.Load(); proc != nil {
			wg.Go(func() { proc.stop(p.grace) })
		}
	}
	wg.Wait()
	if err := os.RemoveAll(p.dirs.run); err != nil {
		p.log.Error(err, "Cannot remove the pod's run directory")
	}
	if !p.stableIP {
		p.ips.release(p.ip)
	}
}

// probeLoop probes every container each period and publishes the pod's
// readiness: all containers running and passing their readiness probes.
func (p *pod) probeLoop(ctx context.Context, probeMax time.Duration, notify func()) {
	defer close(p.probesDone)
	period := probeMax
	for _, c := range p.containers {
		period = min(period, probePeriod(c.spec.ReadinessProbe, probeMax))
	}
	states := make([]readiness, len(p.containers))
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		ready := true
		for i, c := range p.containers {
			pid, starts := c.proc.Load().state()
			var err error
			if pid != 0 && c.spec.ReadinessProbe != nil {
				err = probe(ctx, &c.spec, p.ip)
			}
			if !states[i].observe(c.spec.ReadinessProbe, pid != 0, starts, err) {
				ready = false
			}
		}
		if ctx.Err() != nil {
			return // stopping: a late result must not mark the pod ready again
		}
		if ready {
			p.wasReady.Store(true)
		}
		if p.ready.Swap(ready) != ready {
			p.log.Info("Pod readiness changed", "ready", ready)
			notify()
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// pids lists the running process of each container, 0 when not running.
func (p *pod) pids() []int {
	out := make([]int, len(p.containers))
	for i, c := range p.containers {
		if proc := c.proc.Load(); proc != nil {
			out[i], _ = proc.state()
		}
	}
	return out
}
