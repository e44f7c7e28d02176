package localrunner

import "fmt"

// Hold kills every container of the named pod and keeps them from restarting until release is called: the pod
// keeps its address and its Services keep pointing at it, as with a server process that crashed or was cut off.
// Outage tests use it; a hung server is a SIGSTOP to the PIDs that Pods lists.
func (r *Runner) Hold(namespace, name string) (release func(), err error) {
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
			proc.hold()
			procs = append(procs, proc)
		}
	}
	return func() {
		for _, proc := range procs {
			proc.release()
		}
	}, nil
}
