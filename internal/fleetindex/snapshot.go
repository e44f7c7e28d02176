package fleetindex

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// A snapshot of the index lets a dashboard that starts (a new replica, a restart, a pod moved by a failover) show
// the whole fleet within seconds instead of reading every device's objects again: it loads the snapshot, then its
// first scan reads only what is newer. The snapshot is derived from the bucket alone and stored in it under
// protocol.IndexPrefix (unversioned, each copy its own); a missing, unreadable or outdated one only means a full
// read.

// SnapshotKey is where the snapshot is kept.
const SnapshotKey = protocol.IndexPrefix + "snapshot.gob.gz"

// snapshotVersion changes whenever what a snapshot holds changes meaning; another version is not loaded.
const snapshotVersion = 1

// maxSnapshotBytes bounds a snapshot as read.
const maxSnapshotBytes = 512 << 20

type snapshot struct {
	Version   int
	At        time.Time
	Window    time.Duration
	Devices   []*device
	Questions []*Question
	Answers   []string
	Staff     map[string]staffEntry
	Tokens    map[string]tokenEntry
	Bad       map[string]string
}

// Writer stores an object (a *storagepool.Pool).
type Writer interface {
	Write(ctx context.Context, key string, data []byte, o storagepool.WriteOptions) (string, string, error)
}

// SaveSnapshot stores the index's state; it does nothing before the index is built.
func (x *Index) SaveSnapshot(ctx context.Context, w Writer) error {
	x.mu.RLock()
	if !x.built {
		x.mu.RUnlock()
		return nil
	}
	s := snapshot{Version: snapshotVersion, At: x.opts.Now().UTC(), Window: x.opts.Window, Staff: maps.Clone(x.staff),
		Tokens: maps.Clone(x.tokens), Bad: maps.Clone(x.bad)}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, d := range x.devices {
		s.Devices = append(s.Devices, d)
	}
	for _, q := range x.questions {
		s.Questions = append(s.Questions, q)
	}
	for k := range x.answers {
		s.Answers = append(s.Answers, k)
	}
	// Encoded under the read lock: the devices are shared with the scan, which writes under the write lock.
	err := gob.NewEncoder(zw).Encode(&s)
	x.mu.RUnlock()
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return fmt.Errorf("encode the index snapshot: %w", err)
	}
	if _, _, err := w.Write(ctx, SnapshotKey, buf.Bytes(), storagepool.WriteOptions{ContentType: "application/gzip"}); err != nil {
		return fmt.Errorf("store the index snapshot: %w", err)
	}
	return nil
}

// LoadSnapshot fills an index that has not scanned yet from the stored snapshot. It reports whether it loaded
// one; a missing snapshot is no error.
func (x *Index) LoadSnapshot(ctx context.Context) (bool, error) {
	data, err := x.store.Get(ctx, SnapshotKey, maxSnapshotBytes)
	if errors.Is(err, storagepool.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return false, fmt.Errorf("index snapshot: %w", err)
	}
	var s snapshot
	if err := gob.NewDecoder(io.LimitReader(zr, 4*maxSnapshotBytes)).Decode(&s); err != nil {
		return false, fmt.Errorf("index snapshot: %w", err)
	}
	if s.Version != snapshotVersion || s.Window != x.opts.Window {
		return false, nil // made for another index: a full read builds this one
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.built || len(x.devices) > 0 {
		return false, nil
	}
	for _, d := range s.Devices {
		if d.Batches == nil {
			d.Batches = map[string]time.Time{}
		}
		if d.Memory == nil {
			d.Memory = map[int64]Sum{}
		}
		if d.Startups == nil {
			d.Startups = map[int64]uint64{}
		}
		x.devices[d.ID] = d
	}
	for _, q := range s.Questions {
		x.questions[q.DeviceID+"/"+q.ID] = q
	}
	for _, k := range s.Answers {
		x.answers[k] = true
	}
	maps.Copy(x.staff, s.Staff)
	maps.Copy(x.tokens, s.Tokens)
	maps.Copy(x.bad, s.Bad)
	x.pruneLocked(x.opts.Now().Add(-x.opts.Window).UTC().Truncate(24 * time.Hour))
	x.countQuestionsLocked()
	x.log.Info("Index loaded from its snapshot", "snapshotAt", s.At, "devices", len(s.Devices), "questions", len(s.Questions))
	return true, nil
}
