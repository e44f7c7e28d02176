package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/supportstack/supportstack/agent/config"
	"github.com/supportstack/supportstack/agent/internal/atomicfile"
	"github.com/supportstack/supportstack/agent/sender"
	"github.com/supportstack/supportstack/agent/spool"
)

// Snapshot is the daemon's state as the "status" command reads it while the daemon holds the spool.
type Snapshot struct {
	PID       int           `json:"pid"`
	Version   string        `json:"version"`
	Running   bool          `json:"running"`
	WrittenAt time.Time     `json:"writtenAt"`
	Spool     SpoolStats    `json:"spool"`
	Sender    sender.Status `json:"sender"`
	// Enrolling is set while the daemon enrolls the device by itself (it is not enrolled yet): why it is not
	// yet. The sender's status is empty until then.
	Enrolling *EnrollingStatus `json:"enrolling,omitempty"`
}

// SpoolStats is spool.Stats as JSON.
type SpoolStats struct {
	PendingRecords map[string]int   `json:"pendingRecords"`
	PendingBytes   map[string]int64 `json:"pendingBytes"`
	OldestUnsent   time.Time        `json:"oldestUnsent,omitzero"`
	LastAck        time.Time        `json:"lastAck,omitzero"`
	LastAckedSeq   uint64           `json:"lastAckedSeq"`
	NextSeq        uint64           `json:"nextSeq"`
	Dropped        uint64           `json:"dropped"`
}

// StatsOf converts spool statistics.
func StatsOf(s spool.Stats) SpoolStats {
	out := SpoolStats{PendingRecords: map[string]int{}, PendingBytes: map[string]int64{}, OldestUnsent: s.OldestUnsent,
		LastAck: s.LastAck, LastAckedSeq: s.LastAckedSeq, NextSeq: s.NextSeq, Dropped: s.Dropped}
	for c, n := range s.PendingRecords {
		out.PendingRecords[string(c)] = n
	}
	for c, n := range s.PendingBytes {
		out.PendingBytes[string(c)] = n
	}
	return out
}

// ReadSnapshot reads the daemon's last snapshot.
func ReadSnapshot(path string) (Snapshot, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Snapshot{}, fmt.Errorf("read status snapshot: %w", err)
	}
	var s Snapshot
	if err := json.Unmarshal(raw, &s); err != nil {
		return Snapshot{}, fmt.Errorf("decode status snapshot: %w", err)
	}
	return s, nil
}

// snapshots writes the status snapshot when it changed. write is used by one goroutine at a time.
type snapshots struct {
	lay     config.Layout
	version string
	sp      *spool.Spool
	snd     *atomic.Pointer[sender.Sender] // holds nil until the device is enrolled
	enr     *enroller                      // nil when the daemon started enrolled
	log     *slog.Logger
	last    []byte        // content last written, without WrittenAt
	kicks   chan struct{} // asks the loop for a snapshot now; buffered (1)
}

// kick asks the loop to write a snapshot now (the device just enrolled); it never blocks.
func (w *snapshots) kick() {
	select {
	case w.kicks <- struct{}{}:
	default:
	}
}

func (w *snapshots) write(running bool) {
	s := Snapshot{PID: pid, Version: w.version, Running: running, Spool: StatsOf(w.sp.Stats())}
	if snd := w.snd.Load(); snd != nil {
		s.Sender = snd.Status()
	}
	if w.enr != nil {
		s.Enrolling = w.enr.Status()
	}
	body, _ := json.Marshal(s)
	if bytes.Equal(body, w.last) {
		return // unchanged: no disk write
	}
	s.WrittenAt = time.Now().UTC()
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return
	}
	// Readable by users: no secrets in it (endpoints, counts, times, server error codes).
	if err := atomicfile.Write(w.lay.Status(), append(raw, '\n'), 0o644); err != nil {
		w.log.Warn("Cannot write the status snapshot", "err", err)
		return
	}
	w.last = body
}

func (w *snapshots) loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		w.write(true)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kicks:
		}
	}
}
