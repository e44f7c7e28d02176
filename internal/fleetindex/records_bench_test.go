package fleetindex

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// BenchmarkParseBatch reads a 1,000-sample batch as an agent sends a backlog: what a chart's first view costs
// per batch it has not cached.
func BenchmarkParseBatch(b *testing.B) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	enc := json.NewEncoder(zw)
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		data := fmt.Sprintf(`{"intervalSeconds":60,"cpuPercent":%d.5,"memUsedPercent":61.2,"memUsedBytes":5000000000,"memTotalBytes":8000000000,"uptimeSeconds":%d,"load":{"load1":0.4,"load5":0.3,"load15":0.2},"disks":[{"mount":"/","usedPercent":48.1,"usedBytes":1,"totalBytes":2}],"net":{"bytesSent":1,"bytesRecv":2}}`, i%100, i*60)
		_ = enc.Encode(protocol.Record{Seq: uint64(i + 1), Kind: protocol.KindPerf, Time: start.Add(time.Duration(i) * time.Minute), Data: json.RawMessage(data)})
	}
	_ = zw.Close()
	data := buf.Bytes()
	b.ReportAllocs()
	for b.Loop() {
		batch, err := parseBatch(data)
		if err != nil || len(batch.points) != 1000 {
			b.Fatalf("%d points, %v", len(batch.points), err)
		}
	}
}
