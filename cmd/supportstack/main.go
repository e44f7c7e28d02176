// Command supportstack is the one binary of the supportstack image. Its subcommands are the operator
// (manager), a tenant's ingest service and dashboard, the self-service portal, and a local demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"manager":   {"run the operator", runManager},
	"ingest":    {"run a tenant's ingest service", runIngest},
	"dashboard": {"run a tenant's dashboard", runDashboard},
	"portal":    {"run the self-service portal where customers create workspaces", runPortal},
	"invite":    {"issue a portal invitation for a customer", runInvite},
	"demo":      {"run a local control plane, MinIO and a sample tenant", runDemo},
	"version":   {"print the version", func(context.Context, []string) error { fmt.Println(version); return nil }},
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: supportstack <command> [flags]\n\ncommands:\n")
	for _, name := range []string{"manager", "ingest", "dashboard", "portal", "invite", "demo", "version"} {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", name, commands[name].summary)
	}
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "supportstack: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "supportstack %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// parse parses a subcommand's flags; flag errors are printed by the flag package.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return nil
}
