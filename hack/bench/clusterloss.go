package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/agent/daemon"
	"github.com/supportstack/supportstack/controllers"
	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/naming"
)

// clusterLossFigures loses a whole cluster under real agents, --clusterloss-runs times on fresh clusters: east's
// API server, operator, ingest and MinIO stop at once while --clusterloss-agents real agents (a sample a second,
// the agent's default retry settings) report to east's ingest through its public address. It measures, per agent,
// how long after the loss its next batch was acknowledged — by west's ingest, the only one left: the RTO of a
// whole-cluster loss as agents see it.
func clusterLossFigures(ctx context.Context, o options, work string) error {
	fmt.Printf("Whole-cluster loss (two local clusters; all of east stopped at once while %d real agents report to "+
		"east's ingest, %d runs)\n", o.clusterLossAgents, o.clusterLossRuns)
	if err := logOperatorsTo(work); err != nil {
		return err
	}
	var all []float64
	for run := range o.clusterLossRuns {
		waits, err := clusterLossRun(ctx, o, filepath.Join(work, fmt.Sprintf("clusterloss-%d", run)))
		if err != nil {
			return err
		}
		fmt.Printf("  run %d: next acknowledgement after the loss per agent p50 %.2f s, max %.2f s\n", run+1,
			quantile(waits, 0.5), quantile(waits, 1))
		all = append(all, waits...)
	}
	slices.Sort(all)
	fmt.Printf("  RTO of a whole-cluster loss as agents see it (%d agents × %d runs):  p50 %.2f s  max %.2f s  (goal ≤ 15 s)\n\n",
		o.clusterLossAgents, o.clusterLossRuns, quantile(all, 0.5), quantile(all, 1))
	return nil
}

func clusterLossRun(ctx context.Context, o options, dir string) ([]float64, error) {
	env, err := planes.Start(planes.Options{SupportstackBin: o.supportstack, Dir: filepath.Join(dir, "planes"),
		Operator: controllers.Options{}}, "east", "west")
	if err != nil {
		return nil, err
	}
	defer env.Stop()
	east, west := env.Plane("east"), env.Plane("west")
	key, _, err := applyReplicated(ctx, east, west, "loss")
	if err != nil {
		return nil, err
	}
	url, err := env.PublicURL("east", key.Namespace, naming.Ingest(key.Name), 80)
	if err != nil {
		return nil, err
	}
	shared := &corev1.Secret{}
	if err := east.Admin.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: naming.SharedSecret(key.Name)}, shared); err != nil {
		return nil, err
	}
	agents := make([]*soakAgent, o.clusterLossAgents)
	defer func() {
		for _, a := range agents {
			if a != nil {
				a.stop(syscall.SIGKILL)
			}
		}
	}()
	for i := range agents {
		a := &soakAgent{state: filepath.Join(dir, fmt.Sprintf("agent-%02d", i))}
		if err := a.enroll(ctx, o.agent, url, string(shared.Data[naming.SecretKeyEnrollmentToken])); err != nil {
			return nil, err
		}
		if err := a.start(o.agent); err != nil {
			return nil, err
		}
		agents[i] = a
	}
	// Every agent reporting before the loss.
	if err := waitAgents(agents, time.Minute, func(s daemon.Snapshot) bool { return !s.Spool.LastAck.IsZero() }); err != nil {
		return nil, fmt.Errorf("agents reporting before the loss: %w", err)
	}
	if err := env.StopPlane("east"); err != nil {
		return nil, err
	}
	lost := time.Now()
	waits := make([]float64, len(agents))
	err = waitAgents(agents, 2*time.Minute, func(s daemon.Snapshot) bool { return s.Spool.LastAck.After(lost) })
	for i, a := range agents {
		if s, rerr := daemon.ReadSnapshot(filepath.Join(a.state, "status.json")); rerr == nil && s.Spool.LastAck.After(lost) {
			waits[i] = s.Spool.LastAck.Sub(lost).Seconds()
		}
	}
	slices.Sort(waits)
	return waits, err
}

// waitAgents waits until every agent's status snapshot satisfies ok.
func waitAgents(agents []*soakAgent, timeout time.Duration, ok func(daemon.Snapshot) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		pending := 0
		for _, a := range agents {
			s, err := daemon.ReadSnapshot(filepath.Join(a.state, "status.json"))
			if err != nil || !ok(s) {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d agents not there after %s", pending, len(agents), timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
