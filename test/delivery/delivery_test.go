// Package delivery_test checks the product's first promise end to end, with the real binaries: nothing an agent
// recorded is lost through a storage outage and an agent crash, and every record reaches the tenant's bucket
// exactly once by (device, seq).
package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/harness/procs"
	"github.com/supportstack/supportstack/internal/harness/stored"
	"github.com/supportstack/supportstack/internal/objectstore"
	"github.com/supportstack/supportstack/internal/protocol"
)

const (
	bucket          = "supportstack"
	enrollmentToken = "delivery-test-token"
)

var supportstackBin, agentBin string

func TestMain(m *testing.M) {
	var bins procs.Binaries
	os.Exit(procs.Main(m, &bins, func() { supportstackBin, agentBin = bins.Supportstack, bins.Agent }))
}

var (
	start    = procs.Start
	freeAddr = procs.FreeAddr
)

type process = procs.Process

// startStorage starts a MinIO server with the bucket set up as the operator does it.
func startStorage(t *testing.T) (*miniotest.Server, *minio.Client) {
	t.Helper()
	srv := miniotest.Start(t, miniotest.Options{})
	mc, err := objectstore.NewClient(objectstore.Endpoint{URL: srv.URL, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	require.NoError(t, err)
	_, err = objectstore.EnsureBucket(context.Background(), mc, bucket, 365)
	require.NoError(t, err)
	return srv, mc
}

// startIngest runs `supportstack ingest` as the operator renders it.
func startIngest(t *testing.T, storage ...*miniotest.Server) string {
	t.Helper()
	addr := freeAddr(t)
	var urls []string
	for _, s := range storage {
		urls = append(urls, s.URL)
	}
	start(t, "ingest", []string{"STORAGE_ACCESS_KEY=" + storage[0].AccessKey, "STORAGE_SECRET_KEY=" + storage[0].SecretKey,
		"ENROLLMENT_TOKEN=" + enrollmentToken, "SIGNING_KEY=delivery-test-signing-key-0123456789"},
		supportstackBin, "ingest", "--listen-address="+addr, "--tenant=acme", "--bucket="+bucket,
		"--storage-endpoints="+strings.Join(urls, ","), "--storage-health-interval=200ms", "--max-records-per-second=0")
	url := "http://" + addr
	procs.WaitReady(t, url)
	return url
}

// agent is one PC's agent: its state folder and, while it runs, its process.
type agent struct {
	state string
	run   *process
}

func agentCmd(t *testing.T, a *agent, args ...string) string {
	t.Helper()
	out, err := exec.Command(agentBin, append(args, "--state-dir", a.state)...).CombinedOutput()
	require.NoError(t, err, "supportstack-agent %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// fast makes the agent collect and retry on test time scales.
var fast = []string{"--perf-interval=100ms", "--inbox-poll-interval=100ms", "--status-interval=100ms",
	"--backoff-min=100ms", "--backoff-max=1s", "--spool-sync-interval=100ms"}

func (a *agent) start(t *testing.T, extra ...string) {
	t.Helper()
	args := append([]string{"run", "--state-dir", a.state}, fast...)
	a.run = start(t, "agent", nil, agentBin, append(args, extra...)...)
}

// ask queues a question and returns its ID.
func (a *agent) ask(t *testing.T, text string) string {
	t.Helper()
	out := agentCmd(t, a, "ask", text)
	id, state, ok := strings.Cut(strings.TrimSpace(out), " ")
	require.True(t, ok, "ask printed %q", out)
	require.Equal(t, "queued", state)
	return id
}

type status struct {
	Enrollment struct {
		DeviceID string `json:"deviceId"`
	} `json:"enrollment"`
	Daemon string `json:"daemon"`
	Spool  struct {
		PendingRecords map[string]int `json:"pendingRecords"`
		LastAckedSeq   uint64         `json:"lastAckedSeq"`
		NextSeq        uint64         `json:"nextSeq"`
		Dropped        uint64         `json:"dropped"`
	} `json:"spool"`
	Questions []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"questions"`
}

func (a *agent) status(t *testing.T) status {
	t.Helper()
	var s status
	require.NoError(t, json.Unmarshal([]byte(agentCmd(t, a, "status", "--json")), &s))
	return s
}

func (s status) pending() int {
	n := 0
	for _, c := range s.Spool.PendingRecords {
		n += c
	}
	return n
}

// storedSeqs reads every batch object of a device and counts each seq.
func storedSeqs(t *testing.T, mc *minio.Client, device string) map[uint64]int {
	t.Helper()
	seen, err := stored.Seqs(context.Background(), mc, bucket, device)
	require.NoError(t, err)
	return seen
}

func TestNothingIsLostThroughAStorageOutageAndAnAgentCrash(t *testing.T) {
	ctx := context.Background()
	srv, mc := startStorage(t)
	ingest := startIngest(t, srv)

	agents := make([]*agent, 3)
	questions := make([][]string, len(agents))
	for i := range agents {
		agents[i] = &agent{state: t.TempDir()}
		agentCmd(t, agents[i], "enroll", "--url", ingest, "--token", enrollmentToken)
		questions[i] = append(questions[i], agents[i].ask(t, fmt.Sprintf("PC %d: asked before the agent ran", i)))
		agents[i].start(t)
	}
	// Everyone is delivering.
	for _, a := range agents {
		require.Eventually(t, func() bool { return a.status(t).Spool.LastAckedSeq > 5 }, 30*time.Second, 100*time.Millisecond)
	}

	// The storage goes down. Agents keep recording, and users keep asking.
	srv.Stop()
	for i, a := range agents {
		questions[i] = append(questions[i], a.ask(t, fmt.Sprintf("PC %d: why is everything slow during the outage?", i)))
	}
	for _, a := range agents {
		require.Eventually(t, func() bool { return a.status(t).pending() >= 20 }, 30*time.Second, 100*time.Millisecond,
			"records must pile up in the spool while storage is down")
	}
	// One agent crashes in the middle of it and comes back.
	agents[0].run.Kill(syscall.SIGKILL)
	questions[0] = append(questions[0], agents[0].ask(t, "PC 0: asked while the agent was down"))
	agents[0].start(t)
	require.Eventually(t, func() bool { return agents[0].status(t).Daemon == "running" }, 60*time.Second, 500*time.Millisecond)

	require.NoError(t, srv.Restart())

	for i, a := range agents {
		s := drain(t, a)
		require.Zero(t, s.pending(), "agent %d", i)
		require.Zero(t, s.Spool.Dropped, "the spool had room: nothing may be evicted")
		device := s.Enrollment.DeviceID
		seen := storedSeqs(t, mc, device)
		// Every record the agent produced, 1 … NextSeq-1, is in the bucket exactly once.
		require.Greater(t, s.Spool.NextSeq, uint64(25), "agent %d produced too little to test anything", i)
		var missing, duplicated []uint64
		for seq := uint64(1); seq < s.Spool.NextSeq; seq++ {
			switch seen[seq] {
			case 0:
				missing = append(missing, seq)
			case 1:
			default:
				duplicated = append(duplicated, seq)
			}
		}
		require.Empty(t, missing, "agent %d: records lost", i)
		require.Empty(t, duplicated, "agent %d: records stored twice", i)
		require.Len(t, seen, int(s.Spool.NextSeq-1), "agent %d: records the agent never produced", i)
		for _, q := range questions[i] {
			_, err := mc.StatObject(ctx, bucket, protocol.QuestionKey(device, q), minio.StatObjectOptions{})
			require.NoError(t, err, "agent %d: question %s not stored", i, q)
		}
	}
}

func TestIngestFallsOverToThePeersStorage(t *testing.T) {
	ctx := context.Background()
	// Two sites with the same credentials, as the operator configures replication.
	local := miniotest.Start(t, miniotest.Options{})
	peer := miniotest.Start(t, miniotest.Options{AccessKey: local.AccessKey, SecretKey: local.SecretKey})
	clients := map[string]*minio.Client{}
	for name, s := range map[string]*miniotest.Server{"local": local, "peer": peer} {
		mc, err := objectstore.NewClient(objectstore.Endpoint{URL: s.URL, AccessKey: s.AccessKey, SecretKey: s.SecretKey})
		require.NoError(t, err)
		_, err = objectstore.EnsureBucket(ctx, mc, bucket, 365)
		require.NoError(t, err)
		clients[name] = mc
	}
	ingest := startIngest(t, local, peer)
	a := &agent{state: t.TempDir()}
	agentCmd(t, a, "enroll", "--url", ingest, "--token", enrollmentToken)
	a.start(t)
	device := a.status(t).Enrollment.DeviceID
	count := func(site string) int {
		return len(storedSeqs(t, clients[site], device))
	}
	require.Eventually(t, func() bool { return count("local") > 5 }, 30*time.Second, 200*time.Millisecond)

	local.Stop()
	outage := time.Now()
	require.Eventually(t, func() bool { return count("peer") > 5 }, 30*time.Second, 200*time.Millisecond,
		"writes did not move to the peer's storage")
	t.Logf("records reached the peer's storage %s after the local storage stopped", time.Since(outage).Round(10*time.Millisecond))
	q := a.ask(t, "asked while the local storage is down")
	require.Eventually(t, func() bool {
		_, err := clients["peer"].StatObject(ctx, bucket, protocol.QuestionKey(device, q), minio.StatObjectOptions{})
		return err == nil
	}, 30*time.Second, 200*time.Millisecond, "the question was not stored on the peer")

	require.NoError(t, local.Restart())
	before := count("local")
	require.Eventually(t, func() bool { return count("local") > before+5 }, 30*time.Second, 200*time.Millisecond,
		"writes did not move back to the local storage")
	// No record is missing from the two sites together; replication merges them later.
	s := drain(t, a)
	both := storedSeqs(t, clients["local"], device)
	for seq, n := range storedSeqs(t, clients["peer"], device) {
		both[seq] += n
	}
	for seq := uint64(1); seq < s.Spool.NextSeq; seq++ {
		require.Positive(t, both[seq], "record %d is on neither site", seq)
	}
}

// drain restarts the agent with collectors that stay quiet, waits until its spool is empty and no question is
// left undelivered, stops it and returns its final status.
func drain(t *testing.T, a *agent) status {
	t.Helper()
	a.run.Kill(syscall.SIGTERM)
	a.start(t, "--perf-interval=1h", "--inventory-interval=1h", "--inventory-check-interval=1h")
	require.Eventually(t, func() bool {
		s := a.status(t)
		if s.pending() > 0 {
			return false
		}
		for _, q := range s.Questions {
			if q.State != "delivered" {
				return false
			}
		}
		return true
	}, 60*time.Second, 200*time.Millisecond, "the agent did not drain: %+v", a.status(t))
	a.run.Kill(syscall.SIGTERM)
	return a.status(t)
}

// After a storage outage, agents with their default retry settings are back within seconds of the storage, not
// minutes: ingest answers 503 with a Retry-After throughout, and a reachable server paces the agents instead of
// their own exponential backoff. Every agent resumes within 15 s and its backlog is gone within 60 s.
func TestAgentsReturnWithinSecondsOfStorage(t *testing.T) {
	srv, _ := startStorage(t)
	ingest := startIngest(t, srv)

	agents := make([]*agent, 3)
	for i := range agents {
		agents[i] = &agent{state: t.TempDir()}
		agentCmd(t, agents[i], "enroll", "--url", ingest, "--token", enrollmentToken)
		// Records every 200 ms; backoff and Retry-After handling as shipped.
		agents[i].run = start(t, "agent", nil, agentBin, "run", "--state-dir", agents[i].state,
			"--perf-interval=200ms", "--status-interval=200ms", "--spool-sync-interval=200ms")
	}
	for _, a := range agents {
		require.Eventually(t, func() bool { return a.status(t).Spool.LastAckedSeq > 3 }, 30*time.Second, 100*time.Millisecond)
	}

	srv.Stop()
	time.Sleep(30 * time.Second)
	acked := make([]uint64, len(agents))
	for i, a := range agents {
		acked[i] = a.status(t).Spool.LastAckedSeq
	}
	require.NoError(t, srv.Restart())
	back := time.Now()

	resumed := make([]time.Duration, len(agents))
	require.Eventually(t, func() bool {
		done := true
		for i, a := range agents {
			if resumed[i] == 0 && a.status(t).Spool.LastAckedSeq > acked[i] {
				resumed[i] = time.Since(back)
			}
			done = done && resumed[i] > 0
		}
		return done
	}, 15*time.Second, 100*time.Millisecond, "not every agent resumed within 15 s of the storage: %v", resumed)
	t.Logf("agents resumed %v after the storage returned", resumed)
	for i, a := range agents {
		require.Eventually(t, func() bool { return a.status(t).pending() <= 10 }, 60*time.Second, 200*time.Millisecond,
			"agent %d did not drain its backlog within 60 s", i)
	}
}
