package sender_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/ingesttest"
	"github.com/supportstack/supportstack/agent/sender"
	"github.com/supportstack/supportstack/agent/spool"
	"github.com/supportstack/supportstack/internal/harness/stored"
	"github.com/supportstack/supportstack/internal/ingest"
	"github.com/supportstack/supportstack/internal/protocol"
)

// realIngest is the real ingest service, in this process, over a real MinIO server.
type realIngest struct{ *ingesttest.Real }

func startRealIngest(t *testing.T) *realIngest { return &realIngest{ingesttest.StartReal(t, token)} }

// device reads a device's enrollment record from the bucket.
func (ri *realIngest) device(t *testing.T, id string) ingest.Device {
	t.Helper()
	obj, err := ri.Storage.GetObject(context.Background(), ingesttest.RealBucket, protocol.DeviceKey(id), minio.GetObjectOptions{})
	require.NoError(t, err)
	defer obj.Close()
	var d ingest.Device
	require.NoError(t, json.NewDecoder(obj).Decode(&d))
	return d
}

// storedSeqs reads every stored batch of the device and counts its records by seq.
func (ri *realIngest) storedSeqs(t *testing.T, id string) map[uint64]int {
	t.Helper()
	out, err := stored.Seqs(context.Background(), ri.Storage, ingesttest.RealBucket, id)
	require.NoError(t, err)
	return out
}

// While storage is out, ingest answers 503 with a Retry-After of a few seconds. The agent is paced by it, not by
// a backoff of its own that grows to minutes: every wait stays within the Retry-After and its jitter, so the
// agent is back within seconds of storage returning, and then delivers everything.
func TestStorageOutagePacedByTheServer(t *testing.T) {
	ri := startRealIngest(t)
	st, err := enroll.Enroll(context.Background(), &client.Client{}, ri.URL, token, nil, "test", time.Now())
	require.NoError(t, err)
	st.EndpointsRefreshedAt = time.Now()
	ri.Site.Stop()

	h := start(t, sender.Options{State: st, Rand: func() float64 { return 0.99 }})
	h.appendN(spool.Telemetry, 10, "outage")
	waitFor(t, 30*time.Second, "40 refused attempts", func() bool { return len(h.clock.Sleeps()) >= 40 })
	for i, d := range h.clock.Sleeps() {
		// Retry-After is 1 to 5 s during an outage; the jitter adds at most a quarter. Never less than told:
		// the agent must not hammer a server that asked it to wait.
		require.GreaterOrEqual(t, d, time.Second, "wait %d: %s (all: %v)", i, d, h.clock.Sleeps())
		require.LessOrEqual(t, d, 5*time.Second*5/4, "wait %d: %s (all: %v)", i, d, h.clock.Sleeps())
	}
	require.NoError(t, ri.Site.Restart())
	waitFor(t, 30*time.Second, "the backlog delivered", func() bool { return pending(h.sp) == 0 })
	stored := ri.storedSeqs(t, st.DeviceID)
	require.Len(t, stored, 10)
	for seq := uint64(1); seq <= 10; seq++ {
		require.Equal(t, 1, stored[seq], "seq %d", seq)
	}
}

// When no endpoint can be reached at all, the wait grows exponentially, past the cap of server-paced waits, up
// to BackoffMax.
func TestUnreachableEndpointsBackOffExponentially(t *testing.T) {
	st := enroll.State{DeviceID: "0123456789abcdef0123456789abcdef", Credential: "st1.x.y", Token: token,
		Endpoints: []string{deadURL(t)}, URL: deadURL(t), EndpointsRefreshedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour * 24 * 365)}
	require.NoError(t, enroll.EnsureKey(&st))
	h := start(t, sender.Options{State: st, BackoffMax: 4 * time.Minute})
	h.appendN(spool.Telemetry, 1, "x")
	waitFor(t, 10*time.Second, "8 rounds", func() bool { return len(h.clock.Sleeps()) >= 8 })
	// Two endpoints (the list and the enrollment URL) make a round; Rand is 0.5: half of 1s, 2s, 4s, ...
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, 64 * time.Second}
	require.Equal(t, want, h.clock.Sleeps()[:8])
}

// A server that advertises endpoints the device cannot reach (an in-cluster name, a typo) cannot strand it: the
// URL it enrolled through stays its last resort.
func TestEnrollmentURLIsTheLastResort(t *testing.T) {
	srv := ingesttest.New(t, token)
	dead := []string{deadURL(t), deadURL(t)}
	srv.SetEndpoints(dead, 0)
	st := enrolled(t, srv)
	require.Equal(t, dead, st.Endpoints)
	h := start(t, sender.Options{State: st})
	h.appendN(spool.Telemetry, 5, "x")
	waitFor(t, 10*time.Second, "records accepted", func() bool { return srv.Accepted() == 5 && pending(h.sp) == 0 })
	require.Equal(t, srv.URL, h.snd.Status().Endpoint)
	require.Equal(t, append(slices.Clone(dead), srv.URL), h.snd.Status().Endpoints)
}

// A PC whose spool was wiped while it kept its identity starts its seqs at 1 again. The server refuses them as
// reused and names its highest seq; the agent numbers its records above it and delivers them, every one, none
// taken for a duplicate.
func TestWipedSpoolIsRenumberedAndDelivered(t *testing.T) {
	ri := startRealIngest(t)
	st, err := enroll.Enroll(context.Background(), &client.Client{}, ri.URL, token, nil, "test", time.Now())
	require.NoError(t, err)
	st.EndpointsRefreshedAt = time.Now()

	first := start(t, sender.Options{State: st})
	first.appendN(spool.Telemetry, 20, "before")
	waitFor(t, 20*time.Second, "the first spool delivered", func() bool { return pending(first.sp) == 0 })
	first.stop()

	wiped, _, err := spool.Open(spool.Options{Dir: filepath.Join(t.TempDir(), "spool")})
	require.NoError(t, err)
	t.Cleanup(func() { wiped.Close() })
	second := start(t, sender.Options{State: st, Spool: wiped})
	second.appendN(spool.Telemetry, 5, "after")
	second.appendN(spool.Questions, 1, "after")
	waitFor(t, 20*time.Second, "the wiped spool delivered", func() bool { return pending(wiped) == 0 })
	require.Equal(t, uint64(20), wiped.Stats().Offset)
	acked := second.ackedSeqs()
	slices.Sort(acked)
	require.Equal(t, []uint64{21, 22, 23, 24, 25, 26}, acked)
	stored := ri.storedSeqs(t, st.DeviceID)
	require.Len(t, stored, 26, "seqs 1-26, each once")
	for seq, n := range stored {
		require.Equal(t, 1, n, "seq %d stored %d times", seq, n)
		require.True(t, seq >= 1 && seq <= 26, "seq %d", seq)
	}
}

// An agent upgraded from a version without device keys keeps its identity: it makes a key, saves it, and binds it
// by presenting its credential; the server then holds its key.
func TestUpgradedAgentBindsAKeyAndKeepsItsID(t *testing.T) {
	ri := startRealIngest(t)
	// Enrolled by an old agent: no key.
	resp, err := (&client.Client{}).Enroll(context.Background(), ri.URL, token, protocol.EnrollRequest{Hostname: "old-pc"})
	require.NoError(t, err)
	legacy := enroll.State{DeviceID: resp.DeviceID, Credential: resp.Credential, ExpiresAt: resp.ExpiresAt,
		Endpoints: []string{ri.URL}, Token: token, URL: ri.URL, EnrolledAt: time.Now(), EndpointsRefreshedAt: time.Now()}
	require.Empty(t, ri.device(t, legacy.DeviceID).PublicKey)

	h := start(t, sender.Options{State: legacy})
	h.appendN(spool.Telemetry, 3, "x")
	waitFor(t, 20*time.Second, "records delivered", func() bool { return pending(h.sp) == 0 })
	waitFor(t, 10*time.Second, "the key bound on the server", func() bool { return ri.device(t, legacy.DeviceID).PublicKey != "" })
	// The key was saved before it was sent, and the new enrollment after it: the last save has both.
	var saved enroll.State
	waitFor(t, 10*time.Second, "the enrollment saved", func() bool {
		for {
			select {
			case saved = <-h.saved:
				continue
			default:
			}
			return saved.HasKey() && saved.EnrolledAt.After(legacy.EnrolledAt)
		}
	})
	require.Equal(t, legacy.DeviceID, saved.DeviceID)
	key, err := protocol.ParsePrivateKey(saved.PrivateKey)
	require.NoError(t, err)
	require.Equal(t, protocol.EncodeKey(key.Public().(ed25519.PublicKey)), ri.device(t, legacy.DeviceID).PublicKey)

	// And from then on it enrolls again by proving the key.
	again, err := enroll.Enroll(context.Background(), &client.Client{}, ri.URL, token, &saved, "test", time.Now())
	require.NoError(t, err)
	require.Equal(t, legacy.DeviceID, again.DeviceID)
}
