package spool

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// perfSample is a realistic telemetry record of about 200 bytes.
var perfSample = json.RawMessage(`{"cpu":37.5,"memUsedBytes":6442450944,"memTotalBytes":17179869184,"diskQueue":0.4,"netRxBps":125000,"netTxBps":48000,"topProcess":"chrome.exe","uptimeSeconds":86400}`)

// BenchmarkAppendTelemetry measures telemetry appends with the default group commit (fsync at most every second).
func BenchmarkAppendTelemetry(b *testing.B) {
	s, _ := openT(b, Options{Dir: b.TempDir(), TelemetrySyncInterval: DefaultTelemetrySyncInterval})
	now := time.Now()
	for b.Loop() {
		if _, err := s.Append(Telemetry, protocol.KindPerf, now, perfSample); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppendQuestion measures question appends, each fsynced before Append returns.
func BenchmarkAppendQuestion(b *testing.B) {
	s, _ := openT(b, Options{Dir: b.TempDir(), MaxQuestionBytes: 1 << 40})
	now := time.Now()
	text := strings.Repeat("my PC is slow since the update ", 4)
	i := 0
	for b.Loop() {
		i++
		data, _ := json.Marshal(protocol.Question{ID: fmt.Sprintf("bench-question-%08d", i), Text: text})
		if _, err := s.Append(Questions, protocol.KindQuestion, now, data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}
