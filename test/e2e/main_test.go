// Package e2e_test runs the product across two real control planes, east and west, each with its operator and
// its local workload runner (internal/harness/planes): a replicated tenant made in east gets a standby in west,
// both run MinIO, ingest and dashboard as their operators rendered them, and their buckets replicate both ways.
// The planes start once for the package; each test works in namespaces of its own.
package e2e_test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/controllers/replication"
	"github.com/supportstack/supportstack/internal/harness/localbin"
	"github.com/supportstack/supportstack/internal/harness/planes"
)

var (
	env                       *planes.Env
	east, west                *planes.Plane
	supportstackBin, agentBin string
)

// Operator settings on test time scales.
const (
	resyncPeriod      = 2 * time.Second
	heartbeatInterval = 500 * time.Millisecond
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

// operatorOptions are every plane's operator settings: production logic on test time scales.
var operatorOptions = controllers.Options{
	ResyncPeriod:      resyncPeriod,
	SiteCheckInterval: time.Second,
	SiteRetryInterval: 500 * time.Millisecond,
	PeerInterval:      time.Second,
	Replication: replication.MonitorOptions{
		HeartbeatInterval: heartbeatInterval,
		ProbeInterval:     100 * time.Millisecond,
		CheckInterval:     time.Second,
		RetryInterval:     time.Second,
		SetupInterval:     2 * time.Second,
	},
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		return 0
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
		return 1
	}
	root, err := localbin.RepoRoot()
	if err != nil {
		return fail("%v", err)
	}
	dir, err := os.MkdirTemp("", "supportstack-e2e-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(dir)
	supportstackBin, agentBin = filepath.Join(dir, "supportstack"), filepath.Join(dir, "supportstack-agent")
	for bin, pkg := range map[string]string{supportstackBin: "./cmd/supportstack", agentBin: "./cmd/supportstack-agent"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fail("build %s: %v", pkg, err)
		}
	}
	env, err = planes.Start(planes.Options{
		SupportstackBin: supportstackBin,
		Dir:             filepath.Join(dir, "planes"),
		Operator:        operatorOptions,
	}, "east", "west")
	if err != nil {
		return fail("%v", err)
	}
	east, west = env.Plane("east"), env.Plane("west")
	code := m.Run()
	if err := env.Stop(); err != nil {
		return fail("%v", err)
	}
	return code
}
