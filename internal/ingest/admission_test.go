package ingest

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

// When more requests arrive than ingest lets do storage work at once, the surplus waits briefly and is then
// refused with 429 overloaded and a Retry-After drawn from a window that grows with the queue, so the herd
// returns spread out. A refused batch stores nothing and is taken when sent again.
func TestAdmissionSpreadsTheHerd(t *testing.T) {
	site := startSite(t)
	cfg := testConfig(site)
	cfg.MaxConcurrentRequests, cfg.AdmissionWait = 1, 5*time.Millisecond
	h := newHarness(t, cfg)
	const agents = 40
	devs := make([]protocol.EnrollResponse, agents)
	for i := range devs {
		// One at a time: enrollments are admitted like batches.
		require.Eventually(t, func() bool {
			r := h.do(http.MethodPost, protocol.PathEnroll, testEnrollmentToken, mustJSON(t, protocol.EnrollRequest{Hostname: fmt.Sprint("pc-", i)}), nil)
			if r.status != http.StatusOK {
				return false
			}
			devs[i] = enrolled(t, r)
			return true
		}, 10*time.Second, 10*time.Millisecond)
	}

	results := make([]response, agents)
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Go(func() {
			results[i] = h.postBatch(d.Credential, protocol.Batch{DeviceID: d.DeviceID, Records: telemetry(1, 50)})
		})
	}
	wg.Wait()
	retryAfters := map[int]int{}
	var refused []int
	for i, r := range results {
		switch r.status {
		case http.StatusOK:
			continue
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("agent %d: status %d: %s", i, r.status, r.body)
		}
		require.Equal(t, "overloaded", r.errorCode(t))
		secs, err := strconv.Atoi(r.header.Get("Retry-After"))
		require.NoError(t, err)
		require.GreaterOrEqual(t, secs, 1)
		require.LessOrEqual(t, secs, maxRetryAfterSeconds)
		retryAfters[secs]++
		refused = append(refused, i)
		_, stored := read(t, site, protocol.BatchKey(devs[i].DeviceID, telemetry(1, 1)[0].Time, 1, 50))
		require.False(t, stored, "a refused batch was stored")
	}
	require.GreaterOrEqual(t, len(refused), agents/4, "one slot and a 5 ms wait should refuse most of %d concurrent batches", agents)
	require.GreaterOrEqual(t, len(retryAfters), 3, "Retry-After is spread, got %v", retryAfters)
	t.Logf("%d of %d refused; Retry-After seconds: %v", len(refused), agents, retryAfters)

	for _, i := range refused {
		require.Eventually(t, func() bool {
			r := h.postBatch(devs[i].Credential, protocol.Batch{DeviceID: devs[i].DeviceID, Records: telemetry(1, 50)})
			return r.status == http.StatusOK
		}, 10*time.Second, 10*time.Millisecond)
	}
}
