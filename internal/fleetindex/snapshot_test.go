package fleetindex_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/fleetindex"
)

// An index started from the stored snapshot knows the fleet before its first scan, and that scan reads only
// what came after the snapshot.
func TestSnapshotSparesTheFullRead(t *testing.T) {
	f := newFleet(t)
	ctx := context.Background()
	first := f.x // built by a full scan
	require.NoError(t, first.SaveSnapshot(ctx, f.b.pool))
	want := first.Devices(fleetindex.Query{})
	wantInbox, wantUnanswered := first.Inbox(false, 0)

	log := &readLog{Store: f.b.pool}
	second := fleetindex.New(log, fleetindex.Options{Now: f.clock.now})
	loaded, err := second.LoadSnapshot(ctx)
	require.NoError(t, err)
	require.True(t, loaded)
	require.Equal(t, []string{fleetindex.SnapshotKey}, log.take(), "loading reads the snapshot only")
	require.Equal(t, want, second.Devices(fleetindex.Query{}), "the devices are known before any scan")
	inbox, unanswered := second.Inbox(false, 0)
	require.Equal(t, wantInbox, inbox)
	require.Equal(t, wantUnanswered, unanswered)

	require.NoError(t, second.Scan(ctx))
	require.Empty(t, log.take(), "nothing is newer than the snapshot: the scan reads no object")
	require.Equal(t, want, second.Devices(fleetindex.Query{}))
}

// Without a snapshot an index reads the bucket; an unreadable snapshot is an error and the index stays empty.
func TestMissingOrBrokenSnapshot(t *testing.T) {
	f := newFleet(t)
	ctx := context.Background()
	x := fleetindex.New(f.b.pool, fleetindex.Options{Now: f.clock.now})
	loaded, err := x.LoadSnapshot(ctx)
	require.NoError(t, err)
	require.False(t, loaded)

	f.b.put(fleetindex.SnapshotKey, []byte("not a snapshot"))
	loaded, err = x.LoadSnapshot(ctx)
	require.Error(t, err)
	require.False(t, loaded)
	require.Zero(t, x.Devices(fleetindex.Query{}).Fleet)
}
