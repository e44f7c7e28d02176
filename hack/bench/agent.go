package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/supportstack/supportstack/agent/spool"
	"github.com/supportstack/supportstack/internal/protocol"
)

// backlog is how many records the drain measurement puts in the agent's spool: a day of one-minute samples
// from about 35 PCs, or an outage of several days for one.
const backlog = 50000

// agentFigures enrolls a real agent, fills its spool with a backlog, and measures the drain rate and the
// agent's resident memory while draining and while idle afterwards.
func agentFigures(ctx context.Context, o options, ingestURL, work string) error {
	state := filepath.Join(work, "agent")
	enroll := exec.CommandContext(ctx, o.agent, "enroll", "--state-dir", state, "--url", ingestURL, "--token", "bench-token")
	if out, err := enroll.CombinedOutput(); err != nil {
		return fmt.Errorf("agent enroll: %v: %s", err, out)
	}

	// The backlog goes in while the agent is stopped, as after a long outage.
	s, _, err := spool.Open(spool.Options{Dir: filepath.Join(state, "spool"), TelemetrySyncInterval: spool.DefaultTelemetrySyncInterval})
	if err != nil {
		return fmt.Errorf("open the agent's spool: %w", err)
	}
	start := time.Now().Add(-backlog * time.Minute)
	for i := range backlog {
		if _, err := s.Append(spool.Telemetry, protocol.KindPerf, start.Add(time.Duration(i)*time.Minute), perfRecord(uint64(i+1), start).Data); err != nil {
			return err
		}
	}
	if err := s.Close(); err != nil {
		return err
	}

	before, err := ackedRecords(ingestURL)
	if err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(work, "agent.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	run := exec.Command(o.agent, "run", "--state-dir", state)
	run.Stdout, run.Stderr = log, log
	run.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	began := time.Now()
	if err := run.Start(); err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	defer func() { _ = run.Process.Signal(syscall.SIGTERM); _ = run.Wait() }()

	var drainPeak int64
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if rss, err := residentKiB(run.Process.Pid); err == nil && rss > drainPeak {
			drainPeak = rss
		}
		n, err := ackedRecords(ingestURL)
		if err == nil && n-before >= backlog {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent drained %d of %d records in 5 minutes (log: %s)", n-before, backlog, log.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	drain := float64(backlog) / time.Since(began).Seconds()

	// Idle: nothing pending, collectors on their normal intervals.
	var idlePeak int64
	idleUntil := time.Now().Add(10 * time.Second)
	for time.Now().Before(idleUntil) {
		if rss, err := residentKiB(run.Process.Pid); err == nil && rss > idlePeak {
			idlePeak = rss
		}
		time.Sleep(250 * time.Millisecond)
	}
	fmt.Println("Agent (real supportstack-agent process, real ingest, no drain limit)")
	fmt.Printf("  backlog drain rate (%d records):          %8.0f records/s\n", backlog, drain)
	fmt.Printf("  RSS while draining (peak):                    %8.1f MB\n", float64(drainPeak)/1024)
	fmt.Printf("  RSS while idle (peak over 10 s):              %8.1f MB   target < 25 MB\n", float64(idlePeak)/1024)
	return nil
}

// residentKiB reads a process's resident set size from /proc.
func residentKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// ackedRecords reads the ingest's count of acknowledged records from its metrics.
func ackedRecords(url string) (int64, error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "supportstack_ingest_records_acked_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, nil
}
