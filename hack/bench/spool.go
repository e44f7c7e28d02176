package main

import (
	"fmt"
	"os"
	"time"

	"github.com/supportstack/supportstack/agent/spool"
	"github.com/supportstack/supportstack/internal/protocol"
)

// spoolFigures measures how fast the agent's spool takes records with the fsync policy the agent runs with:
// telemetry with group commit, questions fsynced one by one before Append returns.
func spoolFigures(work string) error {
	dir, err := os.MkdirTemp(work, "spool-")
	if err != nil {
		return err
	}
	s, _, err := spool.Open(spool.Options{Dir: dir, TelemetrySyncInterval: spool.DefaultTelemetrySyncInterval})
	if err != nil {
		return err
	}
	defer s.Close()
	rate := func(class spool.Class, kind protocol.Kind, data func(i int) []byte, d time.Duration) (float64, error) {
		start := time.Now()
		n := 0
		for time.Since(start) < d {
			if _, err := s.Append(class, kind, time.Now(), data(n)); err != nil {
				return 0, err
			}
			n++
		}
		return float64(n) / time.Since(start).Seconds(), nil
	}
	telemetry, err := rate(spool.Telemetry, protocol.KindPerf, func(i int) []byte {
		return perfRecord(uint64(i+1), time.Now()).Data
	}, 3*time.Second)
	if err != nil {
		return err
	}
	questions, err := rate(spool.Questions, protocol.KindQuestion, func(i int) []byte {
		return []byte(fmt.Sprintf(`{"id":"bench-%08d","text":"why is my PC slow?"}`, i))
	}, 3*time.Second)
	if err != nil {
		return err
	}
	fmt.Println("Agent spool (this machine's disk)")
	fmt.Printf("  telemetry appends, group commit every %s:   %8.0f records/s\n", spool.DefaultTelemetrySyncInterval, telemetry)
	fmt.Printf("  question appends, fsync before returning:     %8.0f records/s\n\n", questions)
	return nil
}
