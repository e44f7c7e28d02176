package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/supportstack/supportstack/agent/daemon"
)

func cmdRun(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs, c := newFlagSet("run", stderr)
	c.addConfigFlags(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	r, err := c.resolve(stderr, false)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.stateDir, 0o755); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if isRoot() && runtime.GOOS != "windows" {
		// Users queue questions in the shared inbox and read the ledger and status snapshot: they must be able to
		// reach them. The secrets in the directory have modes of their own (0600 files, 0700 spool).
		if info, err := os.Stat(r.stateDir); err == nil && info.Mode().Perm()&0o055 != 0o055 {
			if err := os.Chmod(r.stateDir, info.Mode().Perm()|0o055); err != nil {
				return fmt.Errorf("open state directory to users: %w", err)
			}
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return daemon.Run(ctx, daemon.Options{
		Config:       r.cfg,
		StateDir:     r.stateDir,
		AgentVersion: version(),
		Log:          r.log,
		SharedInbox:  isRoot(),
	})
}
