package localrunner

import (
	"fmt"
	"path/filepath"
	"syscall"
)

// Hold kills every container of the named pod and keeps them from restarting until release is called: the pod
// keeps its address and its Services keep pointing at it, as with a server process that crashed or was cut off.
// Outage tests use it; Freeze makes a hung server.
func (r *Runner) Hold(namespace, name string) (release func(), err error) {
	procs, err := r.processes(namespace, name)
	if err != nil {
		return nil, err
	}
	for _, proc := range procs {
		proc.hold()
	}
	return func() {
		for _, proc := range procs {
			proc.release()
		}
	}, nil
}

// Freeze stops a pod's processes with SIGSTOP, as a hung server: they keep their sockets, the kernel accepts
// connections for them, and nothing answers. The returned thaw continues them with SIGCONT.
func (r *Runner) Freeze(namespace, name string) (thaw func(), err error) {
	procs, err := r.processes(namespace, name)
	if err != nil {
		return nil, err
	}
	for _, proc := range procs {
		proc.signal(syscall.SIGSTOP)
	}
	return func() {
		for _, proc := range procs {
			proc.signal(syscall.SIGCONT)
		}
	}, nil
}

// processes are the running processes of a pod's containers.
func (r *Runner) processes(namespace, name string) ([]*process, error) {
	r.mu.Lock()
	var target *pod
	for key, pods := range r.pods {
		if key.Namespace != namespace {
			continue
		}
		for _, p := range pods {
			if p.name == name {
				target = p
			}
		}
	}
	r.mu.Unlock()
	if target == nil {
		return nil, fmt.Errorf("no running pod %s/%s", namespace, name)
	}
	var procs []*process
	for _, c := range target.containers {
		if proc := c.proc.Load(); proc != nil {
			procs = append(procs, proc)
		}
	}
	return procs, nil
}

// ClaimDir is the local folder of a StatefulSet pod's volume claim, where tests look at what the pod stored.
func (r *Runner) ClaimDir(namespace, pod, claim string) string {
	return filepath.Join(r.StateDir, namespace, pod, claim)
}
