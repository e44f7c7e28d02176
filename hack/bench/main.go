// Command bench measures supportstack's data path on this machine and prints the figures the README reports:
//
//   - ingest throughput: one `supportstack ingest` process against one local MinIO, many simulated agents
//     sending 50-record batches, next to two references measured in the same run on the same MinIO:
//     (a) the same objects written directly with minio-go — the overhead of ingest itself — and
//     (b) the storage limit: the same records as 2,000-record gzip objects from 8 writers; then the same three
//     over an erasure set of four MinIO servers, the storage of a tenant with storage.servers 4;
//   - the agent's spool append rate with the fsync policy the agent uses;
//   - the agent's memory while idle and while draining a backlog, and its drain rate (when the agent binary
//     is given);
//   - replication between two local clusters (replication.go): time to a replicated tenant, lag under load
//     next to what the product reports, and the catch-up of a backlog.
//
// Run it with `make bench`.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
)

const (
	bucket          = "supportstack"
	recordsPerBatch = 50
	bigObject       = 2000
	bigWriters      = 8
)

type options struct {
	supportstack string
	agent        string
	duration     time.Duration
	agents       int
	// The soak and the herd (soak.go, herd.go).
	soakAgents  int
	outage      time.Duration
	herdAgents  int
	herdOutage  time.Duration
	enrolls     int
	backlog     int
	lagDuration time.Duration
	// The failover runs (failover.go).
	failoverRuns       int
	failoverAgents     int
	failoverOutage     time.Duration
	failoverHealthyFor time.Duration
	failoverDrills     int
	failoverBacklog    int
	clusterLossRuns    int
	clusterLossAgents  int
	failoverInterval   time.Duration
	// The dashboard's figures (dashboard.go).
	dashDevices  int
	dashHistory  int
	dashRequests int
	// The operator at scale (scale.go).
	scaleTenants int
	scaleWorkers int
	scaleGOGC    string
	only         string
}

func main() {
	var o options
	flag.StringVar(&o.supportstack, "supportstack", "bin/supportstack", "the supportstack binary (runs ingest)")
	flag.StringVar(&o.agent, "agent", "bin/supportstack-agent", "the agent binary; empty skips the agent figures")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long each throughput phase runs")
	flag.IntVar(&o.agents, "agents", 32, "concurrent simulated agents")
	flag.IntVar(&o.soakAgents, "soak-agents", 20, "real agents in the storage-outage soak")
	flag.DurationVar(&o.outage, "outage", 3*time.Minute, "how long MinIO is down in the soak")
	flag.IntVar(&o.herdAgents, "herd-agents", 1000, "simulated agents returning after an outage")
	flag.DurationVar(&o.herdOutage, "herd-outage", 30*time.Second, "how long MinIO is down for the herd")
	flag.IntVar(&o.enrolls, "enrolls", 10000, "enrollments sent at once in the enrollment storm")
	flag.IntVar(&o.backlog, "backlog", 10000, "versions written while the peer is cut off, for the catch-up figures")
	flag.DurationVar(&o.lagDuration, "lag-duration", time.Minute, "how long the replication lag is measured under load")
	flag.IntVar(&o.failoverRuns, "failover-runs", 3, "storage outages in the failover figures")
	flag.IntVar(&o.failoverAgents, "failover-agents", 50, "simulated agents sending through the failover runs")
	flag.DurationVar(&o.failoverOutage, "failover-outage", 30*time.Second, "how long east's MinIO is down in each failover run")
	flag.DurationVar(&o.failoverInterval, "failover-interval", time.Second, "how often each agent sends a batch in the failover runs")
	flag.DurationVar(&o.failoverHealthyFor, "failover-healthy-for", 10*time.Second, "the tenant's failover.healthyFor in the failover runs")
	flag.IntVar(&o.failoverDrills, "failover-drills", 3, "drills run under the same load after the outages")
	flag.IntVar(&o.clusterLossRuns, "clusterloss-runs", 3, "whole-cluster losses, each on fresh clusters")
	flag.IntVar(&o.clusterLossAgents, "clusterloss-agents", 50, "real agents reporting through each whole-cluster loss")
	flag.IntVar(&o.failoverBacklog, "failover-backlog", 0, "objects written to west during a last outage of east, for the failback figure of a large backlog (0: none)")
	flag.StringVar(&o.only, "only", "", "run one part only: throughput, spool, agent, enrolls, soak, herd, replication, failover, clusterloss, dashboard or scale")
	flag.IntVar(&o.dashDevices, "dashboard-devices", 10_000, "devices in the dashboard's bucket")
	flag.IntVar(&o.dashHistory, "dashboard-history", 100, "devices with 30 days of per-minute samples")
	flag.IntVar(&o.dashRequests, "dashboard-requests", 300, "requests per measured page")
	flag.IntVar(&o.scaleTenants, "scale-tenants", 1000, "SupportTenants created at once by the scale part")
	flag.IntVar(&o.scaleWorkers, "scale-workers", 4, "the operator's --max-concurrent-reconciles in the scale part")
	flag.StringVar(&o.scaleGOGC, "scale-gogc", "", "GOGC of the operator in the scale part (the Go default when empty)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	work, err := os.MkdirTemp("", "supportstack-bench-")
	if err != nil {
		return err
	}
	if os.Getenv("BENCH_KEEP") == "" {
		defer os.RemoveAll(work)
	} else {
		fmt.Println("Keeping", work)
	}
	ctx := context.Background()
	srv, mc, err := startSite(ctx, work)
	if err != nil {
		return err
	}
	defer srv.Close()

	fmt.Printf("supportstack bench — %s\n\n", time.Now().UTC().Format("2006-01-02"))
	part := func(name string) bool { return o.only == "" || o.only == name }

	ingestURL, stopIngest, err := startIngest(o.supportstack, srv, work, "--max-records-per-second=0", "--drain-records-per-second=0")
	if err != nil {
		return err
	}
	defer stopIngest()

	if part("throughput") {
		if err := throughputFigures(ctx, o, "one single-drive MinIO", ingestURL, mc); err != nil {
			return err
		}
		if err := distributedThroughputFigures(ctx, o, filepath.Join(work, "set")); err != nil {
			return err
		}
	}
	if part("spool") {
		if err := spoolFigures(work); err != nil {
			return err
		}
	}
	if o.agent != "" && part("agent") {
		if err := agentFigures(ctx, o, ingestURL, work); err != nil {
			return err
		}
	}
	stopIngest()
	if part("enrolls") {
		if err := enrollStorm(ctx, o, work); err != nil {
			return err
		}
	}
	if o.agent != "" && part("soak") {
		if err := soakFigures(ctx, o, work); err != nil {
			return err
		}
	}
	if part("herd") {
		if err := herdFigures(ctx, o, work); err != nil {
			return err
		}
	}
	if part("replication") {
		if err := replicationFigures(ctx, o, work); err != nil {
			return err
		}
	}
	if part("failover") {
		if err := failoverFigures(ctx, o, work); err != nil {
			return err
		}
	}
	if o.only == "scale" { // not part of the default run: it takes its own control plane and minutes
		if err := scaleFigures(ctx, o, work); err != nil {
			return err
		}
	}
	if part("dashboard") {
		if err := dashboardFigures(ctx, o, work); err != nil {
			return err
		}
	}
	if o.agent != "" && part("clusterloss") {
		if err := clusterLossFigures(ctx, o, work); err != nil {
			return err
		}
	}
	return nil
}

// throughputFigures measures and prints ingest's throughput over storage mc next to the two references.
func throughputFigures(ctx context.Context, o options, storage, ingestURL string, mc *minio.Client) error {
	ingestRate, err := ingestThroughput(ctx, ingestURL, o)
	if err != nil {
		return err
	}
	direct, err := directThroughput(ctx, mc, o.agents, recordsPerBatch, o.duration)
	if err != nil {
		return err
	}
	limit, err := directThroughput(ctx, mc, bigWriters, bigObject, o.duration)
	if err != nil {
		return err
	}
	fmt.Printf("Ingest (one process, %s, %d agents sending 50-record gzip batches, %s a phase)\n", storage, o.agents, o.duration)
	fmt.Printf("  through ingest:                               %8.0f records/s\n", ingestRate)
	fmt.Printf("  (a) same objects directly with minio-go:      %8.0f records/s   ingest/(a) = %.2f\n", direct, ingestRate/direct)
	fmt.Printf("  (b) storage limit, 2000-record objects x8:    %8.0f records/s   ingest/(b) = %.2f\n\n", limit, ingestRate/limit)
	return nil
}

// distributedThroughputFigures measures the same over the storage of a tenant with storage.servers 4: one erasure
// set of four MinIO servers on this machine, each object split over the four drives (two of them parity).
func distributedThroughputFigures(ctx context.Context, o options, dir string) error {
	const servers = 4
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	set, err := miniotest.StartSet(miniotest.Options{}, servers, dir)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range set {
			s.Close()
		}
	}()
	srv := set[0] // ingest reaches the set through one server, as through the tenant's Service
	mc, err := objectstore.NewClient(objectstore.Endpoint{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		return err
	}
	if _, err := objectstore.EnsureBucket(ctx, mc, bucket, 365); err != nil {
		return err
	}
	ingestURL, stop, err := startIngest(o.supportstack, srv, dir, "--max-records-per-second=0", "--drain-records-per-second=0")
	if err != nil {
		return err
	}
	defer stop()
	return throughputFigures(ctx, o, fmt.Sprintf("an erasure set of %d MinIO servers", servers), ingestURL, mc)
}

// startSite starts a MinIO server with its data and log in dir and the bucket set up as the operator does it.
func startSite(ctx context.Context, dir string) (*miniotest.Server, *minio.Client, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	srv, err := miniotest.StartServer(miniotest.Options{DataDir: filepath.Join(dir, "minio")}, dir)
	if err != nil {
		return nil, nil, err
	}
	mc, err := objectstore.NewClient(objectstore.Endpoint{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err == nil {
		_, err = objectstore.EnsureBucket(ctx, mc, bucket, 365)
	}
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return srv, mc, nil
}

// startIngest runs `supportstack ingest` over srv with the bench's token and signing key and args added to its
// flags; it returns its URL once it is ready.
func startIngest(bin string, srv *miniotest.Server, work string, args ...string) (string, func(), error) {
	addr, err := freeLocalAddr()
	if err != nil {
		return "", nil, err
	}
	log, err := os.Create(filepath.Join(work, "ingest.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, append([]string{"ingest", "--listen-address=" + addr, "--tenant=bench", "--bucket=" + bucket,
		"--storage-endpoints=" + srv.URL}, args...)...)
	cmd.Env = append(os.Environ(), "STORAGE_ACCESS_KEY="+srv.AccessKey, "STORAGE_SECRET_KEY="+srv.SecretKey,
		"ENROLLMENT_TOKEN=bench-token", "SIGNING_KEY=bench-signing-key-0123456789abcdef")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start ingest: %w", err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); log.Close() }) }
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("ingest not ready after 30s (log: %s)", log.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// perfRecord is a typical one-minute performance sample.
func perfRecord(seq uint64, t time.Time) protocol.Record {
	data := fmt.Sprintf(`{"cpuPercent":%d.5,"memUsedPercent":61.2,"load1":0.42,"uptime":%d,"disks":[{"mount":"/","usedPercent":48.1,"readBytes":123456,"writeBytes":654321}],"net":{"rxBytes":%d,"txBytes":%d}}`,
		seq%100, seq*60, seq*1500, seq*900)
	return protocol.Record{Seq: seq, Kind: protocol.KindPerf, Time: t, Data: json.RawMessage(data)}
}

func enrollDevice(ctx context.Context, url, token string) (protocol.EnrollResponse, error) {
	var er protocol.EnrollResponse
	body, _ := json.Marshal(protocol.EnrollRequest{Hostname: "bench", OS: "linux", AgentVersion: "bench"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+protocol.PathEnroll, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return er, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return er, fmt.Errorf("enroll: %s: %s", resp.Status, b)
	}
	return er, json.NewDecoder(resp.Body).Decode(&er)
}

// gzipWriters keep the simulated agents' compressors: a real agent has one, not one per batch.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

func gzipJSON(v any) []byte {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	_ = json.NewEncoder(zw).Encode(v)
	_ = zw.Close()
	return buf.Bytes()
}

// ingestThroughput runs o.agents simulated agents, each sending 50-record batches one after another, and
// returns acknowledged records per second.
func ingestThroughput(ctx context.Context, url string, o options) (float64, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.agents}}
	var acked atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	deadline := time.Now().Add(o.duration)
	start := time.Now()
	for range o.agents {
		er, err := enrollDevice(ctx, url, "bench-token")
		if err != nil {
			return 0, err
		}
		wg.Go(func() {
			seq := uint64(1)
			for time.Now().Before(deadline) {
				recs := make([]protocol.Record, recordsPerBatch)
				now := time.Now().UTC()
				for i := range recs {
					recs[i] = perfRecord(seq, now)
					seq++
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+protocol.PathBatches,
					bytes.NewReader(gzipJSON(protocol.Batch{DeviceID: er.DeviceID, Records: recs})))
				req.Header.Set("Authorization", "Bearer "+er.Credential)
				req.Header.Set("Content-Encoding", "gzip")
				resp, err := hc.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("batch: %s", resp.Status)
					}
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				acked.Add(recordsPerBatch)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(acked.Load()) / time.Since(start).Seconds(), nil
}

// directThroughput writes gzip NDJSON objects of perObject records from writers goroutines straight to MinIO
// and returns records per second.
func directThroughput(ctx context.Context, mc *minio.Client, writers, perObject int, d time.Duration) (float64, error) {
	var written atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			device := fmt.Sprintf("%032x", w+1<<20)
			seq := uint64(1)
			for time.Now().Before(deadline) {
				var buf bytes.Buffer
				zw := gzipWriters.Get().(*gzip.Writer)
				zw.Reset(&buf)
				enc := json.NewEncoder(zw)
				now := time.Now().UTC()
				first := seq
				for range perObject {
					_ = enc.Encode(perfRecord(seq, now))
					seq++
				}
				_ = zw.Close()
				gzipWriters.Put(zw)
				key := protocol.BatchKey(device, now, first, seq-1)
				_, err := mc.PutObject(ctx, bucket, key, &buf, int64(buf.Len()), minio.PutObjectOptions{ContentType: "application/gzip"})
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				written.Add(int64(perObject))
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(written.Load()) / time.Since(start).Seconds(), nil
}

// freeLocalAddr is a free local TCP address.
func freeLocalAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
