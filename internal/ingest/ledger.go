package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/seqset"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// The seq ledger makes "(device, seq) identifies one record forever" hold in storage, not only in the agent's
// good manners. Per device it keeps, at protocol.LedgerKey, the set of seqs the service has claimed for
// acknowledged batches, and the digests of the last few batches. A batch first claims its seqs in the ledger
// with a conditional write (If-Match on the ledger's ETag, or If-None-Match for the first one), so of two
// replicas racing with overlapping batches exactly one wins; only then are its objects written, each
// write-once. A batch whose seqs are claimed already is a retry when it is the batch that claimed them (same
// key, same digest: in the recent list, or as stored) and a reuse otherwise.
//
// Claiming before writing means a crash in between leaves seqs claimed with no object; the retry of that very
// batch finds its digest among the recent claims and writes the objects. The agent retries the in-flight batch
// until it is acknowledged, so the recent list needs only a few entries.

// Bounds of a ledger.
const (
	// ledgerRecentClaims is how many batch digests a ledger keeps.
	ledgerRecentClaims = 8
	// ledgerMaxRanges bounds the acknowledged set; beyond it the oldest holes are filled (see seqset.Bounded).
	ledgerMaxRanges = 512
	// maxLedgerBytes bounds a ledger object as read.
	maxLedgerBytes = 256 << 10
	// ledgerWriteAttempts bounds the retries of a claim that lost a race.
	ledgerWriteAttempts = 8
	// ledgerCacheSize bounds the ledgers kept in memory; when full, half are dropped.
	ledgerCacheSize = 50_000
)

// ledger is what a device's ledger object holds.
type ledger struct {
	DeviceID string     `json:"deviceId"`
	Acked    seqset.Set `json:"acked"`
	// Recent are the latest batches that claimed seqs, newest last.
	Recent []claimRef `json:"recent,omitempty"`
}

// claimRef names a batch: its object key and the SHA-256 of its records.
type claimRef struct {
	Key    string `json:"key"`
	Digest string `json:"sha256"`
}

// verdict is what the ledger says about a batch.
type verdict int

const (
	// claimed: the batch's seqs were free and are now claimed by it.
	claimed verdict = iota
	// retried: the batch's seqs are claimed by this very batch.
	retried
	// ambiguous: the batch's seqs are all claimed, by a batch the ledger no longer names; the stored object
	// decides.
	ambiguous
	// reused: some of the batch's seqs are claimed by another batch.
	reused
)

// ledgers reads and claims seqs in the devices' ledgers, keeping the latest of each in memory with its ETag. The
// cache only saves reads: a claim is a conditional write, which fails when the cached copy is stale.
type ledgers struct {
	pool *storagepool.Pool

	mu    sync.Mutex
	cache map[string]cachedLedger
}

type cachedLedger struct {
	l    ledger
	etag string // "" for a ledger that does not exist yet
}

func newLedgers(pool *storagepool.Pool) *ledgers {
	return &ledgers{pool: pool, cache: map[string]cachedLedger{}}
}

// claim decides about a batch of a device and claims its seqs when they are free. highest is the highest seq
// claimed for the device (for a reuse, what the agent must number above).
func (ls *ledgers) claim(ctx context.Context, device string, seqs []uint64, ref claimRef) (v verdict, highest uint64, err error) {
	for attempt := range ledgerWriteAttempts {
		cur, err := ls.load(ctx, device, attempt > 0)
		if err != nil {
			return 0, 0, err
		}
		switch n := cur.l.Acked.Count(seqs); {
		case n == len(seqs) && slices.Contains(cur.l.Recent, ref):
			return retried, cur.l.Acked.Max(), nil
		case n == len(seqs):
			return ambiguous, cur.l.Acked.Max(), nil
		case n > 0:
			return reused, cur.l.Acked.Max(), nil
		}
		next := ledger{DeviceID: device, Acked: cur.l.Acked.Add(seqs).Bounded(ledgerMaxRanges)}
		next.Recent = append(next.Recent, cur.l.Recent[max(0, len(cur.l.Recent)-ledgerRecentClaims+1):]...)
		next.Recent = append(next.Recent, ref)
		data, err := json.Marshal(next)
		if err != nil {
			return 0, 0, fmt.Errorf("encode ledger: %w", err)
		}
		opts := storagepool.WriteOptions{ContentType: "application/json", IfMatch: cur.etag, IfAbsent: cur.etag == ""}
		_, etag, err := ls.pool.Write(ctx, protocol.LedgerKey(device), data, opts)
		if errors.Is(err, storagepool.ErrPrecondition) {
			continue // another writer got there first: read again and decide again
		}
		if err != nil {
			return 0, 0, err
		}
		ls.put(device, cachedLedger{l: next, etag: etag})
		return claimed, next.Acked.Max(), nil
	}
	return 0, 0, fmt.Errorf("claim seqs in the ledger of %s: %w: %d writers in a row got there first",
		device, storagepool.ErrUnavailable, ledgerWriteAttempts)
}

// load returns the device's ledger: the cached one unless fresh is set.
func (ls *ledgers) load(ctx context.Context, device string, fresh bool) (cachedLedger, error) {
	if !fresh {
		ls.mu.Lock()
		c, ok := ls.cache[device]
		ls.mu.Unlock()
		if ok {
			return c, nil
		}
	}
	obj, err := ls.pool.Read(ctx, protocol.LedgerKey(device), maxLedgerBytes)
	if errors.Is(err, storagepool.ErrNotFound) {
		return cachedLedger{l: ledger{DeviceID: device}}, nil
	}
	if err != nil {
		return cachedLedger{}, err
	}
	var l ledger
	if err := json.Unmarshal(obj.Data, &l); err != nil || !l.Acked.Valid() || l.DeviceID != device {
		// Nothing but this service writes ledgers; one that cannot be read must not be overwritten with an
		// empty one, which would let every seq of the device be reused.
		return cachedLedger{}, fmt.Errorf("ledger of device %s is unreadable: %v", device, err)
	}
	c := cachedLedger{l: l, etag: obj.ETag}
	ls.put(device, c)
	return c, nil
}

func (ls *ledgers) put(device string, c cachedLedger) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(ls.cache) >= ledgerCacheSize {
		n := 0
		for k := range ls.cache { // map order is random: this drops a random half
			delete(ls.cache, k)
			if n++; n >= ledgerCacheSize/2 {
				break
			}
		}
	}
	ls.cache[device] = c
}
