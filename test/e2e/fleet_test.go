package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/supportstack/supportstack/internal/harness/planes"
	"github.com/supportstack/supportstack/internal/harness/stored"
	"github.com/supportstack/supportstack/internal/naming"
	"github.com/supportstack/supportstack/internal/protocol"
)

// fleetSize is how many real agents report continuously in a fleet scenario.
const fleetSize = 50

// fleet is real agents, each its own process, enrolled with east's ingest of a tenant through its stable public
// address and reporting every second. Its questions are what it asked, by device.
type fleet struct {
	agents    []agent
	devices   []string
	stops     []func()
	questions map[string][]string
}

// startFleet enrolls n agents with east's ingest, starts them and waits until each has reported.
func startFleet(t *testing.T, key client.ObjectKey, n int) *fleet {
	t.Helper()
	return startFleetOn(t, env, east, key, n)
}

// startFleetOn enrolls n agents with a plane's ingest, starts them and waits until each has reported there.
func startFleetOn(t *testing.T, e *planes.Env, p *planes.Plane, key client.ObjectKey, n int) *fleet {
	t.Helper()
	public, err := e.PublicURL(p.Name, key.Namespace, naming.Ingest(key.Name), 80)
	require.NoError(t, err)
	// A replicated tenant's token is the one both sides hold; another's is in its own credentials.
	secret := naming.CredentialsSecret(key.Name)
	if get(t, p, key).Spec.Replication != nil {
		secret = naming.SharedSecret(key.Name)
	}
	token := string(secretData(t, p, key.Namespace, secret)[naming.SecretKeyEnrollmentToken])
	f := &fleet{agents: make([]agent, n), devices: make([]string, n), questions: map[string][]string{}}
	for i := range f.agents {
		f.agents[i] = agent{state: t.TempDir()}
	}
	require.NoError(t, parallel(n, func(i int) error {
		_, err := agentOutput(f.agents[i], "enroll", "--url", public, "--token", token)
		return err
	}))
	for i, a := range f.agents {
		f.devices[i] = a.deviceID(t)
		f.stops = append(f.stops, a.run(t))
	}
	f.waitReporting(t, storage(t, p, key))
	return f
}

// ask has every agent queue a question and returns when all are queued.
func (f *fleet) ask(t *testing.T, text string) {
	t.Helper()
	ids := make([]string, len(f.agents))
	require.NoError(t, parallel(len(f.agents), func(i int) error {
		out, err := agentOutput(f.agents[i], "ask", fmt.Sprintf("%s (agent %d)", text, i))
		id, state, ok := strings.Cut(strings.TrimSpace(out), " ")
		if err == nil && (!ok || state != "queued") {
			err = fmt.Errorf("ask printed %q", out)
		}
		ids[i] = id
		return err
	}))
	for i, id := range ids {
		f.questions[f.devices[i]] = append(f.questions[f.devices[i]], id)
	}
}

// waitReporting waits until every agent has a batch stored in mc.
func (f *fleet) waitReporting(t *testing.T, mc *minio.Client) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, d := range f.devices {
			found := false
			for obj := range mc.ListObjects(context.Background(), naming.BucketName,
				minio.ListObjectsOptions{Prefix: protocol.RecordsPrefix(d), Recursive: true, MaxKeys: 1}) {
				found = found || obj.Err == nil
				break
			}
			if !assert.True(c, found, "device %s has stored nothing yet", d) {
				return
			}
		}
	}, time.Minute, 500*time.Millisecond)
}

// requireQuestionsIn waits until one copy holds every question the fleet asked.
func (f *fleet) requireQuestionsIn(t *testing.T, mc *minio.Client, timeout time.Duration) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for d, qs := range f.questions {
			for _, q := range qs {
				_, err := readLocal(mc, protocol.QuestionKey(d, q))
				if !assert.NoError(c, err, "question %s of device %s", q, d) {
					return
				}
			}
		}
	}, timeout, 200*time.Millisecond)
}

// agentStatus is the part of `supportstack-agent status --json` a fleet's accounting needs.
type agentStatus struct {
	Spool struct {
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

func (s agentStatus) drained() bool {
	for _, n := range s.Spool.PendingRecords {
		if n > 0 {
			return false
		}
	}
	for _, q := range s.Questions {
		if q.State != "delivered" {
			return false
		}
	}
	return true
}

// drain stops every agent, restarts it with its collectors quiet until it has delivered everything it holds,
// stops it again and returns its final status: from then on, what each agent produced is fixed.
func (f *fleet) drain(t *testing.T) []agentStatus {
	t.Helper()
	var wg sync.WaitGroup
	for _, stop := range f.stops {
		wg.Go(stop)
	}
	wg.Wait()
	f.stops = nil
	for _, a := range f.agents {
		f.stops = append(f.stops, a.run(t, "--perf-interval=1h", "--inventory-interval=1h", "--inventory-check-interval=1h"))
	}
	statuses := make([]agentStatus, len(f.agents))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NoError(c, parallel(len(f.agents), func(i int) error {
			if statuses[i].drained() && statuses[i].Spool.NextSeq > 0 {
				return nil
			}
			out, err := agentOutput(f.agents[i], "status", "--json")
			if err != nil {
				return err
			}
			var s agentStatus
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				return err
			}
			statuses[i] = s
			if !s.drained() {
				return fmt.Errorf("agent %d still holds %v and questions %v", i, s.Spool.PendingRecords, s.Questions)
			}
			return nil
		}))
	}, 2*time.Minute, time.Second)
	for _, stop := range f.stops {
		wg.Go(stop)
	}
	wg.Wait()
	for i, a := range f.agents {
		out, err := agentOutput(a, "status", "--json")
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal([]byte(out), &statuses[i]))
	}
	return statuses
}

// requireAllDelivered drains the fleet, then checks each copy as requireAllStored does.
func (f *fleet) requireAllDelivered(t *testing.T, copies map[string]*minio.Client) {
	t.Helper()
	f.requireAllStored(t, f.drain(t), copies)
}

// requireAllStored checks, in each copy, that every record every agent produced is stored exactly once by
// (device, seq) — nothing lost, nothing twice — and that every question is there. Replication gets a deadline to
// bring the last of them across.
func (f *fleet) requireAllStored(t *testing.T, statuses []agentStatus, copies map[string]*minio.Client) {
	t.Helper()
	f.checkStored(t, statuses, copies, nil)
}

// requireStoredAfterLoss checks the copy that survives a cluster lost with its storage. A record the lost cluster
// acknowledged may not have reached this copy before the loss (replication is asynchronous: that is the RPO of a
// whole-cluster loss); acked holds each agent's last acknowledged seq read right after the loss, and only records
// up to it may be missing. Every other record must be there exactly once, and none twice.
func (f *fleet) requireStoredAfterLoss(t *testing.T, statuses []agentStatus, name string, mc *minio.Client, acked []uint64) {
	t.Helper()
	f.checkStored(t, statuses, map[string]*minio.Client{name: mc}, acked)
}

// lastAcked reads each agent's last acknowledged seq.
func (f *fleet) lastAcked(t *testing.T) []uint64 {
	t.Helper()
	acked := make([]uint64, len(f.agents))
	require.NoError(t, parallel(len(f.agents), func(i int) error {
		out, err := agentOutput(f.agents[i], "status", "--json")
		if err != nil {
			return err
		}
		var s agentStatus
		err = json.Unmarshal([]byte(out), &s)
		acked[i] = s.Spool.LastAckedSeq
		return err
	}))
	return acked
}

func (f *fleet) checkStored(t *testing.T, statuses []agentStatus, copies map[string]*minio.Client, acked []uint64) {
	t.Helper()
	ctx := context.Background()
	lost := make([]int, len(f.devices))
	for name, mc := range copies {
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			assert.NoError(c, parallel(len(f.devices), func(i int) error {
				d, s := f.devices[i], statuses[i]
				seqs, err := stored.Seqs(ctx, mc, naming.BucketName, d)
				if err != nil {
					return err
				}
				for seq, n := range seqs {
					if n != 1 {
						return fmt.Errorf("%s: device %s seq %d is stored %d times", name, d, seq, n)
					}
					if seq == 0 || seq >= s.Spool.NextSeq {
						return fmt.Errorf("%s: device %s has seq %d stored, which it never produced", name, d, seq)
					}
				}
				if s.Spool.NextSeq <= 1 {
					return fmt.Errorf("device %s produced nothing: the scenario ran without traffic", d)
				}
				missing, lostHere := 0, 0
				for seq := uint64(1); seq < s.Spool.NextSeq; seq++ {
					switch {
					case seqs[seq] > 0:
					case acked != nil && seq <= acked[i]:
						lostHere++
					default:
						missing++
					}
				}
				lost[i] = lostHere
				// The agent may have evicted telemetry it could not deliver (Dropped); nothing else may be missing.
				if uint64(missing) > s.Spool.Dropped {
					return fmt.Errorf("%s: device %s lacks %d of the %d records it produced (%d evicted by the agent)",
						name, d, missing, s.Spool.NextSeq-1, s.Spool.Dropped)
				}
				for _, q := range f.questions[d] {
					if _, err := readLocal(mc, protocol.QuestionKey(d, q)); err != nil {
						return fmt.Errorf("%s: question %s of device %s: %w", name, q, d, err)
					}
				}
				return nil
			}))
		}, 2*time.Minute, 2*time.Second)
	}
	var records uint64
	for _, s := range statuses {
		records += s.Spool.NextSeq - 1 - s.Spool.Dropped
	}
	t.Logf("%d agents' %d records and %d questions are each stored exactly once in %d copies", len(f.devices), records,
		len(f.devices)*len(f.questions[f.devices[0]]), len(copies))
	if acked != nil {
		n := 0
		for _, l := range lost {
			n += l
		}
		t.Logf("%d records acknowledged by the lost cluster had not reached the surviving copy (the loss's RPO)", n)
	}
}

// agentOutput runs the agent's CLI without failing the test from another goroutine.
func agentOutput(a agent, args ...string) (string, error) {
	out, err := exec.Command(agentBin, append(args, "--state-dir", a.state)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("supportstack-agent %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// parallel runs fn for 0..n-1, four at a time (two cores), and joins their errors.
func parallel(n int, fn func(int) error) error {
	sem := make(chan struct{}, 4)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
