package ingest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// BenchmarkIngestBatches sends 50-record batches (gzip, as the agent sends them) from parallel devices through
// the real HTTP stack to one real MinIO server, and reports acknowledged records per second. Every batch must
// be acknowledged.
//
//	go test -run '^$' -bench IngestBatches -benchtime 400x ./internal/ingest
func BenchmarkIngestBatches(b *testing.B) {
	site := startSite(b)
	h := newHarness(b, testConfig(site))
	const perBatch = 50
	devices := make([]protocol.EnrollResponse, 4*runtime.GOMAXPROCS(0))
	for i := range devices {
		devices[i] = h.enroll(protocol.EnrollRequest{Hostname: fmt.Sprintf("bench-%d", i)})
	}
	var next, records atomic.Int64
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		dev := devices[next.Add(1)-1]
		seq := uint64(1)
		for pb.Next() {
			body := gzipped(b, mustJSON(b, protocol.Batch{DeviceID: dev.DeviceID, Records: telemetry(seq, perBatch)}))
			if err := postOK(h, dev.Credential, body); err != nil {
				b.Error(err)
				return
			}
			seq += perBatch
			records.Add(perBatch)
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(records.Load())/elapsed.Seconds(), "records/s")
}

// postOK posts a gzip batch and wants a 200; it is safe in RunParallel's goroutines.
func postOK(h *harness, credential string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, h.url+protocol.PathBatches, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+credential)
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("batch: %d %s", resp.StatusCode, b)
	}
	return nil
}
