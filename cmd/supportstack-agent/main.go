// Command supportstack-agent is the agent on a supported PC: it enrolls with the tenant's ingest service,
// collects inventory, performance samples and boot events, queues the user's questions, and delivers all of it
// through a durable spool. See agent/cli for the commands.
package main

import (
	"os"

	"github.com/supportstack/supportstack/agent/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
