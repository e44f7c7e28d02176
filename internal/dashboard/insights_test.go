package dashboard

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/fleetindex"
	"github.com/supportstack/supportstack/internal/protocol"
)

// The fleet's insights are stored in the bucket under aggregates/insights/ with a timestamped key, computed from
// the devices' records, and the page shows the same figures.
func TestInsightsAreStoredInTheBucket(t *testing.T) {
	srv := startStorage(t)
	mc := storageClient(t, srv)
	now := time.Now().UTC()
	for i, mem := range []float64{97, 40} {
		id := []string{"dev-full", "dev-calm"}[i]
		putJSON(t, mc, protocol.DeviceKey(id), map[string]any{"deviceId": id, "hostname": id, "enrolledAt": now, "lastEnrolledAt": now})
		putBatch(t, mc, id, []protocol.Record{testRecord(t, 1, protocol.KindPerf, now.Add(-time.Minute), map[string]any{"cpuPercent": 10, "memUsedPercent": mem})})
	}
	cfg := testConfig(srv)
	cfg.InsightsInterval = time.Second
	started := time.Now().UTC().Truncate(time.Second)
	d := serve(t, cfg)

	var keys []string
	require.Eventually(t, func() bool { keys = bucketKeys(t, mc, InsightsPrefix); return len(keys) > 0 }, 20*time.Second, 100*time.Millisecond,
		"no insights were stored")
	at, err := time.Parse("20060102T150405Z", strings.TrimSuffix(strings.TrimPrefix(keys[0], InsightsPrefix), ".json"))
	require.NoError(t, err, "the key is the computation's UTC time: %s", keys[0])
	require.False(t, at.Before(started), "the key's time %s is not before the dashboard started (%s)", at, started)
	var in fleetindex.Insights
	readJSON(t, mc, keys[0], &in)
	require.Equal(t, 2, in.Devices)
	require.NotEmpty(t, in.MemoryPressure)
	require.Equal(t, "dev-full", in.MemoryPressure[0].DeviceID, "the fullest memory ranks first")
	require.InDelta(t, 97, in.MemoryPressure[0].Value, 0.01)

	signedIn(t, d)
	page := waitFor(t, d, "/insights", "Stored in the workspace's storage as <code>"+InsightsPrefix)
	require.Contains(t, page, "97.0 %")
}
