package localrunner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// Restart backoff for exited containers, like restartPolicy Always but
// scaled down for local runs.
const (
	initialBackoff = 200 * time.Millisecond
	maxBackoff     = 10 * time.Second
	// stableRun is how long a process must run for its backoff to reset.
	stableRun = 10 * time.Second
)

// processSpec is one container turned into a local command.
type processSpec struct {
	Path string
	Args []string
	Env  []string
	Dir  string
	Log  string // stdout and stderr are appended here
}

// process supervises one container: it starts the command in its own
// process group and restarts it with backoff whenever it exits, until stop.
type process struct {
	spec processSpec
	log  logr.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd // the running command, nil between runs
	starts   int       // number of successful starts, so probes notice restarts
	stopping bool
	// held is non-nil while the process is held down (Runner.Hold): it is not restarted until the channel closes.
	held   chan struct{}
	stopCh chan struct{} // closed by stop
	done   chan struct{} // closed when supervise returns
}

func startProcess(log logr.Logger, spec processSpec) *process {
	p := &process{spec: spec, log: log, stopCh: make(chan struct{}), done: make(chan struct{})}
	go p.supervise()
	return p
}

// state reports the pid of the running command (0 when none) and how many
// times it has been started.
func (p *process) state() (pid, starts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		pid = p.cmd.Process.Pid
	}
	return pid, p.starts
}

func (p *process) supervise() {
	defer close(p.done)
	backoff := initialBackoff
	for {
		started := time.Now()
		err := p.runOnce()
		if p.isStopping() {
			return
		}
		if held := p.heldCh(); held != nil {
			p.log.Info("Container held down")
			select {
			case <-p.stopCh:
				return
			case <-held:
			}
			p.log.Info("Container released")
			backoff = initialBackoff
			continue
		}
		if time.Since(started) > stableRun {
			backoff = initialBackoff
		}
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			p.log.Info("Container exited, restarting", "exitCode", exit.ExitCode(), "backoff", backoff)
		case err != nil:
			p.log.Error(err, "Container failed to start, retrying", "backoff", backoff)
		default:
			p.log.Info("Container exited, restarting", "exitCode", 0, "backoff", backoff)
		}
		select {
		case <-p.stopCh:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (p *process) heldCh() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// hold kills the process and keeps it from restarting until release.
func (p *process) hold() {
	p.mu.Lock()
	if p.held == nil {
		p.held = make(chan struct{})
	}
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// signal sends sig to the running process's group, if one runs.
func (p *process) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	}
}

// release lets a held process start again.
func (p *process) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
}

func (p *process) isStopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// runOnce starts the command and waits for it to exit.
func (p *process) runOnce() error {
	out, err := os.OpenFile(p.spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open container log: %w", err)
	}
	defer out.Close()

	cmd := exec.Command(p.spec.Path, p.spec.Args...)
	cmd.Env = p.spec.Env
	cmd.Dir = p.spec.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	// Own process group, so stop reaches the children of the container's
	// process too; Pdeathsig so a crashed runner does not leave it behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	// Pdeathsig fires when the thread that forked the child exits, not the
	// process; pin this goroutine to its thread for as long as the child runs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	p.mu.Lock()
	if p.stopping || p.held != nil {
		p.mu.Unlock()
		return nil
	}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("start %s: %w", p.spec.Path, err)
	}
	p.cmd = cmd
	p.starts++
	p.mu.Unlock()
	p.log.V(1).Info("Container started", "pid", cmd.Process.Pid)

	err = cmd.Wait()

	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
	// Whatever the leader left behind in its group goes with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return err
}

// stop ends the supervision: SIGTERM to the process group, SIGKILL after
// grace. It returns once the process has been reaped.
func (p *process) stop(grace time.Duration) {
	p.mu.Lock()
	if !p.stopping {
		p.stopping = true
		close(p.stopCh)
	}
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return
	case <-timer.C:
	}
	p.log.Info("Container did not stop in its grace period, killing it", "grace", grace)
	if cmd != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}
