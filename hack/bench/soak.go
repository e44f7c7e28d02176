package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/supportstack/supportstack/agent/daemon"
	"github.com/supportstack/supportstack/internal/protocol"
)

// soakAgent is one real supportstack-agent process of the soak.
type soakAgent struct {
	state string
	cmd   *exec.Cmd
	log   *os.File
	id    string
	// resumed and drained are how long after storage returned the agent's first batch was acknowledged and its
	// backlog (everything recorded before storage returned) was gone; zero until then.
	resumed, drained time.Duration
}

// soakFigures runs real agents through a storage outage, as the product promises to survive it: the agents keep
// recording (a performance sample every second) and their users keep asking, MinIO is stopped for the outage,
// and some agents are killed with SIGKILL and restarted twice during it. After MinIO returns it measures, per
// agent, when its first batch was acknowledged again and when its backlog was gone, and then checks the bucket:
// every acknowledged seq of every device stored exactly once, every question stored.
func soakFigures(ctx context.Context, o options, work string) error {
	dir := filepath.Join(work, "soak")
	srv, mc, err := startSite(ctx, dir)
	if err != nil {
		return err
	}
	defer srv.Close()
	ingestURL, stopIngest, err := startIngest(o.supportstack, srv, dir)
	if err != nil {
		return err
	}
	defer stopIngest()

	agents := make([]*soakAgent, o.soakAgents)
	for i := range agents {
		a := &soakAgent{state: filepath.Join(dir, fmt.Sprintf("agent-%02d", i))}
		agents[i] = a
		if err := a.enroll(ctx, o.agent, ingestURL, "bench-token"); err != nil {
			return err
		}
		if err := a.start(o.agent); err != nil {
			return err
		}
		defer a.stop(syscall.SIGTERM)
	}
	time.Sleep(15 * time.Second) // a steady state before the outage

	fmt.Printf("Soak (%d real agents, a sample a second each, real ingest, MinIO stopped for %s, agents killed twice)\n", len(agents), o.outage)
	srv.Stop()
	for i, a := range agents {
		if err := a.ask(ctx, o.agent, fmt.Sprintf("Question %d asked during the outage: why is my PC slow?", i)); err != nil {
			return err
		}
	}
	for round := range 2 {
		time.Sleep(o.outage / 3)
		for _, a := range agents[round*len(agents)/4 : (round+1)*len(agents)/4] {
			a.stop(syscall.SIGKILL)
			if err := a.start(o.agent); err != nil {
				return err
			}
		}
	}
	time.Sleep(o.outage - 2*(o.outage/3))
	if err := srv.Restart(); err != nil {
		return err
	}
	back := time.Now()

	deadline := back.Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		done := true
		for _, a := range agents {
			a.observe(back)
			done = done && a.drained > 0
		}
		if done {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	var resumed, drained []time.Duration
	for i, a := range agents {
		if a.drained == 0 {
			return fmt.Errorf("agent %d had not drained its backlog 5 minutes after storage returned (log: %s)", i, a.log.Name())
		}
		resumed, drained = append(resumed, a.resumed), append(drained, a.drained)
	}
	for _, a := range agents {
		a.stop(syscall.SIGTERM)
	}
	dups, questions, err := checkBucket(ctx, mc, agents)
	if err != nil {
		return err
	}
	fmt.Printf("  resumed after storage returned:  median %5.1f s, max %5.1f s   target: every agent within 15 s\n", median(resumed), slices.Max(resumed).Seconds())
	fmt.Printf("  backlog drained:                 median %5.1f s, max %5.1f s   target: all within 60 s\n", median(drained), slices.Max(drained).Seconds())
	fmt.Printf("  records stored twice:            %d; questions stored: %d of %d\n\n", dups, questions, len(agents))
	return nil
}

func median(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Seconds()
}

// soakConfig makes the agent sample every second and write its status snapshot every second; everything else
// (backoff, retries, batch sizes) is the agent's default.
const soakConfig = "perf_interval = 1s\nstatus_interval = 1s\ninbox_poll_interval = 1s\n"

func (a *soakAgent) enroll(ctx context.Context, bin, url, token string) error {
	if err := os.MkdirAll(a.state, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(a.state, "agent.conf"), []byte(soakConfig), 0o644); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, bin, "enroll", "--config", filepath.Join(a.state, "agent.conf"),
		"--state-dir", a.state, "--url", url, "--token", token).CombinedOutput()
	if err != nil {
		return fmt.Errorf("agent enroll: %v: %s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(a.state, "enrollment.json"))
	if err != nil {
		return err
	}
	var st struct {
		DeviceID string `json:"deviceId"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	a.id = st.DeviceID
	return nil
}

func (a *soakAgent) start(bin string) error {
	log, err := os.OpenFile(filepath.Join(a.state, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	a.log = log
	a.cmd = exec.Command(bin, "run", "--config", filepath.Join(a.state, "agent.conf"), "--state-dir", a.state)
	a.cmd.Stdout, a.cmd.Stderr = log, log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	return nil
}

func (a *soakAgent) stop(sig syscall.Signal) {
	if a.cmd == nil || a.cmd.ProcessState != nil {
		return
	}
	_ = a.cmd.Process.Signal(sig)
	_ = a.cmd.Wait()
	a.log.Close()
}

func (a *soakAgent) ask(ctx context.Context, bin, question string) error {
	out, err := exec.CommandContext(ctx, bin, "ask", "--config", filepath.Join(a.state, "agent.conf"),
		"--state-dir", a.state, question).CombinedOutput()
	if err != nil {
		return fmt.Errorf("agent ask: %v: %s", err, out)
	}
	return nil
}

// observe reads the agent's status snapshot and notes when it resumed and when its backlog was gone.
func (a *soakAgent) observe(back time.Time) {
	s, err := daemon.ReadSnapshot(filepath.Join(a.state, "status.json"))
	if err != nil {
		return
	}
	if a.resumed == 0 && s.Spool.LastAck.After(back) {
		a.resumed = s.Spool.LastAck.Sub(back)
	}
	if a.drained == 0 && s.Spool.LastAck.After(back) && (s.Spool.OldestUnsent.IsZero() || s.Spool.OldestUnsent.After(back)) {
		a.drained = s.WrittenAt.Sub(back)
	}
}

// checkBucket reads every batch the agents' devices stored and counts seqs stored more than once, and the
// questions stored.
func checkBucket(ctx context.Context, mc *minio.Client, agents []*soakAgent) (dups, questions int, err error) {
	for _, a := range agents {
		seen := map[uint64]bool{}
		for obj := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: protocol.RecordsPrefix(a.id), Recursive: true}) {
			if obj.Err != nil {
				return 0, 0, obj.Err
			}
			o, err := mc.GetObject(ctx, bucket, obj.Key, minio.GetObjectOptions{})
			if err != nil {
				return 0, 0, err
			}
			zr, err := gzip.NewReader(o)
			if err != nil {
				o.Close()
				return 0, 0, fmt.Errorf("%s: %w", obj.Key, err)
			}
			sc := bufio.NewScanner(zr)
			sc.Buffer(nil, 4<<20)
			for sc.Scan() {
				var r protocol.Record
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					o.Close()
					return 0, 0, fmt.Errorf("%s: %w", obj.Key, err)
				}
				if seen[r.Seq] {
					dups++
				}
				seen[r.Seq] = true
			}
			o.Close()
		}
		for obj := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: protocol.QuestionsPrefix(a.id), Recursive: true}) {
			if obj.Err == nil && strings.HasSuffix(obj.Key, ".json") {
				questions++
			}
		}
	}
	return dups, questions, nil
}
