package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

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
//
// A ledger is rewritten with every batch, so it is not versioned (objectstore.UnversionedPrefixes) and therefore
// not replicated: each site keeps its own, and the batches are the truth it is rebuilt from. When a site reads a
// ledger it has no copy of (a device new to this site: its agents came here in a failover, or the ledger
// predates this version), or one it has not claimed in for a while (the device's agents may have sent to the
// other site meanwhile), it first folds in the seq ranges named by the device's stored batch keys, which
// replication brought from either site. Folding a key's whole range is conservative: a seq inside it that was
// never acknowledged is refused as reused, and the agent delivers that record under a new seq.

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
	// relistAfter is how long a ledger is trusted without folding in batches stored since: a device whose
	// agents sent to the other site meanwhile has claims there this site's ledger lacks.
	relistAfter = 5 * time.Minute
	// rebuildWindow is how far back a site without a ledger for a device looks for its stored batches.
	rebuildWindow = 7 * 24 * time.Hour
	// maxFoldKeys bounds one fold; the next load goes on from where it stopped.
	maxFoldKeys = 20_000
)

// ledger is what a device's ledger object holds.
type ledger struct {
	DeviceID string     `json:"deviceId"`
	Acked    seqset.Set `json:"acked"`
	// Recent are the latest batches that claimed seqs, newest last.
	Recent []claimRef `json:"recent,omitempty"`
	// ListedThrough is the greatest stored batch key folded into Acked.
	ListedThrough string `json:"listedThrough,omitempty"`
	// ClaimedAt is when this site last claimed seqs for the device.
	ClaimedAt time.Time `json:"claimedAt,omitzero"`
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
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]cachedLedger
}

type cachedLedger struct {
	l    ledger
	etag string // "" for a ledger that does not exist yet
	// at is when the ledger was read or written; a cached copy older than relistAfter is read again.
	at time.Time
}

func newLedgers(pool *storagepool.Pool, now func() time.Time) *ledgers {
	return &ledgers{pool: pool, now: now, cache: map[string]cachedLedger{}}
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
		next := ledger{DeviceID: device, Acked: cur.l.Acked.Add(seqs).Bounded(ledgerMaxRanges),
			ListedThrough: cur.l.ListedThrough, ClaimedAt: ls.now().UTC()}
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
		ls.put(device, cachedLedger{l: next, etag: etag, at: ls.now()})
		return claimed, next.Acked.Max(), nil
	}
	return 0, 0, fmt.Errorf("claim seqs in the ledger of %s: %w: %d writers in a row got there first",
		device, storagepool.ErrUnavailable, ledgerWriteAttempts)
}

// load returns the device's ledger: the cached one unless fresh is set or it is old, else the stored one with
// the batches stored since it was last claimed in folded in.
func (ls *ledgers) load(ctx context.Context, device string, fresh bool) (cachedLedger, error) {
	now := ls.now()
	if !fresh {
		ls.mu.Lock()
		c, ok := ls.cache[device]
		ls.mu.Unlock()
		if ok && now.Sub(c.at) < relistAfter {
			return c, nil
		}
	}
	c := cachedLedger{l: ledger{DeviceID: device}, at: now}
	obj, err := ls.pool.Read(ctx, protocol.LedgerKey(device), maxLedgerBytes)
	switch {
	case errors.Is(err, storagepool.ErrNotFound):
	case err != nil:
		return cachedLedger{}, err
	default:
		if err := json.Unmarshal(obj.Data, &c.l); err != nil || !c.l.Acked.Valid() || c.l.DeviceID != device {
			// Nothing but this service writes ledgers; one that cannot be read must not be overwritten with an
			// empty one, which would let every seq of the device be reused.
			return cachedLedger{}, fmt.Errorf("ledger of device %s is unreadable: %v", device, err)
		}
		c.etag = obj.ETag
	}
	if c.etag == "" || now.Sub(c.l.ClaimedAt) >= relistAfter {
		if err := ls.fold(ctx, &c.l, now); err != nil {
			return cachedLedger{}, err
		}
	}
	ls.put(device, c)
	return c, nil
}

// fold adds the seq ranges of the device's batches stored after the ledger's ListedThrough (or, for a ledger
// that never listed, within rebuildWindow) to its acknowledged set.
func (ls *ledgers) fold(ctx context.Context, l *ledger, now time.Time) error {
	after := l.ListedThrough
	if after == "" {
		after = protocol.RecordsDatePrefix(l.DeviceID, now.Add(-rebuildWindow))
	}
	keys, err := ls.pool.List(ctx, storagepool.ListOptions{Prefix: protocol.RecordsPrefix(l.DeviceID), StartAfter: after, Recursive: true, Limit: maxFoldKeys})
	if err != nil {
		return err
	}
	var ranges seqset.Set
	for _, k := range keys {
		if first, last, ok := protocol.ParseBatchKey(l.DeviceID, k); ok {
			ranges = append(ranges, seqset.Range{From: first, To: last})
		}
		l.ListedThrough = max(l.ListedThrough, k)
	}
	l.Acked = l.Acked.Union(ranges).Bounded(ledgerMaxRanges)
	return nil
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
