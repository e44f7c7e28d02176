package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/sender"
	"github.com/supportstack/supportstack/agent/spool"
	"github.com/supportstack/supportstack/internal/protocol"
)

// herdAgent is a simulated agent: the agent's real sender and spool, in this process, with its own HTTP client.
type herdAgent struct {
	sp  *spool.Spool
	snd *sender.Sender
	st  enroll.State
}

// herdFigures returns many agents to ingest at once after a storage outage, each with the backlog the outage
// left: ingest admits them with 429 overloaded and spread Retry-After times rather than collapsing, and its
// cheap endpoints keep answering while they return. It measures when each agent resumed and drained, and the
// latency of a probe request during the return.
func herdFigures(ctx context.Context, o options, work string) error {
	dir := filepath.Join(work, "herd")
	srv, _, err := startSite(ctx, dir)
	if err != nil {
		return err
	}
	defer srv.Close()
	ingestURL, stopIngest, err := startIngest(o.supportstack, srv, dir)
	if err != nil {
		return err
	}
	defer stopIngest()

	agents, err := startHerd(ctx, o.herdAgents, ingestURL, dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		for _, a := range agents {
			a.sp.Close()
		}
	}()
	for _, a := range agents {
		wg.Go(func() { _ = a.snd.Run(ctx) })
		// A sample every 5 s, the agents out of step.
		wg.Go(func() { a.record(ctx, 5*time.Second) })
	}
	time.Sleep(10 * time.Second)

	srv.Stop()
	time.Sleep(o.herdOutage)
	if err := srv.Restart(); err != nil {
		return err
	}
	back := time.Now()

	// A probe asks ingest for the endpoint list (authenticated, no storage) ten times a second throughout.
	var probes []time.Duration
	var probeErrs int
	resumed := make([]time.Duration, len(agents))
	drained := make([]time.Duration, len(agents))
	deadline := back.Add(3 * time.Minute)
	hc := client.NewHTTPClient(5*time.Second, 10*time.Second)
	probe := &client.Client{HTTP: hc}
	for left := len(agents); left > 0 && time.Now().Before(deadline); {
		start := time.Now()
		if _, err := probe.Endpoints(ctx, ingestURL, agents[0].st.Credential); err != nil {
			probeErrs++
		} else {
			probes = append(probes, time.Since(start))
		}
		left = 0
		for i, a := range agents {
			st, stats := a.snd.Status(), a.sp.Stats()
			if resumed[i] == 0 && st.LastSuccess.After(back) {
				resumed[i] = time.Since(back)
			}
			if drained[i] == 0 && stats.LastAck.After(back) && (stats.OldestUnsent.IsZero() || stats.OldestUnsent.After(back)) {
				drained[i] = time.Since(back)
			}
			if drained[i] == 0 {
				left++
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range agents {
		if drained[i] == 0 {
			return fmt.Errorf("herd: agent %d had not drained 3 minutes after storage returned: %+v", i, agents[i].snd.Status())
		}
	}
	overloaded, unavailable, err := rejections(ingestURL)
	if err != nil {
		return err
	}
	slices.Sort(probes)
	fmt.Printf("Herd (%d simulated agents — the agent's sender and spool in one process — a sample every 5 s each, MinIO stopped for %s)\n", len(agents), o.herdOutage)
	fmt.Printf("  resumed after storage returned:  median %5.1f s, max %5.1f s\n", median(resumed), slices.Max(resumed).Seconds())
	fmt.Printf("  backlog drained:                 median %5.1f s, max %5.1f s\n", median(drained), slices.Max(drained).Seconds())
	fmt.Printf("  ingest probe while they return:  p50 %.0f ms, p99 %.0f ms, max %.0f ms, %d failed of %d\n",
		ms(probes[len(probes)/2]), ms(probes[len(probes)*99/100]), ms(probes[len(probes)-1]), probeErrs, len(probes)+probeErrs)
	fmt.Printf("  batches refused 429 overloaded:  %d; 503 storage unavailable (outage included): %d\n\n", overloaded, unavailable)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// startHerd enrolls n agents, each with its own spool and sender.
func startHerd(ctx context.Context, n int, url, dir string) ([]*herdAgent, error) {
	agents := make([]*herdAgent, n)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range agents {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			a, err := newHerdAgent(ctx, i, url, dir)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			agents[i] = a
		})
	}
	wg.Wait()
	return agents, firstErr
}

func newHerdAgent(ctx context.Context, i int, url, dir string) (*herdAgent, error) {
	c := &client.Client{HTTP: client.NewHTTPClient(5*time.Second, 30*time.Second)}
	var st enroll.State
	var err error
	for attempt := range 20 { // enrollment is admitted like everything else: retry a 429
		if st, err = enroll.Enroll(ctx, c, url, "bench-token", nil, "herd", time.Now()); err == nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("herd: enroll agent %d: %w", i, err)
	}
	st.EndpointsRefreshedAt = time.Now()
	sp, _, err := spool.Open(spool.Options{Dir: filepath.Join(dir, fmt.Sprintf("agent-%04d", i)), TelemetrySyncInterval: spool.DefaultTelemetrySyncInterval})
	if err != nil {
		return nil, err
	}
	snd := sender.New(sender.Options{Spool: sp, Client: c, State: st, AgentVersion: "herd", RejectedDir: filepath.Join(dir, fmt.Sprintf("agent-%04d", i), "rejected")})
	return &herdAgent{sp: sp, snd: snd, st: st}, nil
}

// record appends a performance sample every period, starting at a random point of the first one.
func (a *herdAgent) record(ctx context.Context, period time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(rand.Int64N(int64(period)))):
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for seq := uint64(1); ; seq++ {
		if _, err := a.sp.Append(spool.Telemetry, protocol.KindPerf, time.Now(), perfRecord(seq, time.Now()).Data); err == nil {
			a.snd.Notify()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rejections reads how many batches ingest refused as overloaded and as storage unavailable.
func rejections(url string) (overloaded, unavailable int64, err error) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, `supportstack_ingest_rejections_total{`) || !strings.Contains(line, `route="batches"`) {
			continue
		}
		fields := strings.Fields(line)
		v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
		switch {
		case strings.Contains(line, `reason="overloaded"`):
			overloaded += int64(v)
		case strings.Contains(line, `reason="storage_unavailable"`):
			unavailable += int64(v)
		}
	}
	return overloaded, unavailable, sc.Err()
}
