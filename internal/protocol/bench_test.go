package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// benchBatch is a 50-record batch of typical performance samples, as JSON.
func benchBatch(b *testing.B) []byte {
	recs := make([]Record, 50)
	for i := range recs {
		recs[i] = Record{Seq: uint64(i + 1), Kind: KindPerf, Time: time.Now(), Data: json.RawMessage(fmt.Sprintf(
			`{"cpuPercent":%d.5,"memUsedPercent":61.2,"load1":0.42,"uptime":%d,"disks":[{"mount":"/","usedPercent":48.1,"readBytes":123456,"writeBytes":654321}],"net":{"rxBytes":%d,"txBytes":%d}}`,
			i, i*60, i*1500, i*900))}
	}
	raw, err := json.Marshal(Batch{DeviceID: "0123456789abcdef0123456789abcdef", Records: recs})
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkStrictJSON is the cost of the strict JSON check on a batch, next to BenchmarkDecodeBatch (which
// includes it).
func BenchmarkStrictJSON(b *testing.B) {
	raw := benchBatch(b)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := StrictJSON(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBatch(b *testing.B) {
	raw := benchBatch(b)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := DecodeBatch(bytes.NewReader(raw), "", DefaultLimits); err != nil {
			b.Fatal(err)
		}
	}
}
