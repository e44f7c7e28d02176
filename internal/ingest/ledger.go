package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/seqset"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// The seq ledger makes "(device, seq) identifies one record forever" hold in storage, not only in the agent's
// good manners. Per device it keeps, at protocol.LedgerKey, the set of seqs the service has claimed for
// acknowledged batches, and the digests of the last few batches. A batch first claims its seqs in the ledger
// with a conditional write (If-Match on the ledger's ETag, or If-None-Match for the first one, always at the
// endpoint the ledger was read from), so of two replicas racing with overlapping batches exactly one wins; only
// then are its objects written, each write-once. A batch whose seqs are claimed already is a retry when it is
// the batch that claimed them (same key, same digest: in the recent list, or as stored) and a reuse otherwise.
//
// Claiming before writing means a crash in between leaves seqs claimed with no object; the retry of that very
// batch finds its digest among the recent claims and writes the objects. The agent retries the in-flight batch
// until it is acknowledged, so the recent list needs only a few entries.
//
// A ledger is rewritten with every batch, so it is not versioned (objectstore.UnversionedPrefixes) and therefore
// not replicated: each storage site keeps its own, and the stored batches, which replication brings from either
// site, are the truth it is completed from. A device's seqs only grow, so the ledger takes every seq up to the
// highest one stored as claimed ("folds" it in) when it cannot know better: when the site has no ledger for the
// device (its agents came here in a failover; a ledger from before this version), and when a batch starts above
// what the ledger knows (its agents may have sent to the other site meanwhile). Folding is conservative: a record
// sent later into a hole below that seq is refused as reused, and the agent delivers it under a new seq.

// Bounds of a ledger.
const (
	// ledgerRecentClaims is how many batch digests a ledger keeps.
	ledgerRecentClaims = 8
	// ledgerMaxRanges bounds the acknowledged set; beyond it the oldest holes are filled (see seqset.Bounded).
	ledgerMaxRanges = 512
	// maxLedgerBytes bounds a ledger object as read.
	maxLedgerBytes = 256 << 10
	// ledgerWriteAttempts bounds the retries of a claim that lost a race or an endpoint.
	ledgerWriteAttempts = 8
	// ledgerCacheSize bounds the ledgers kept in memory; when full, half are dropped.
	ledgerCacheSize = 50_000
	// foldInterval is how often at most a device's stored batches are looked at for a batch that starts above
	// what the ledger knows (evicted telemetry leaves such gaps too; they need no look every time).
	foldInterval = time.Minute
)

// ledger is what a device's ledger object holds.
type ledger struct {
	DeviceID string     `json:"deviceId"`
	Acked    seqset.Set `json:"acked"`
	// Recent are the latest batches that claimed seqs, newest last.
	Recent []claimRef `json:"recent,omitempty"`
	// FoldedAt is when the device's stored batches were last folded in.
	FoldedAt time.Time `json:"foldedAt,omitzero"`
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

// ledgers reads and claims seqs in the devices' ledgers, keeping the latest of each in memory with its ETag and
// endpoint. The cache only saves reads: a claim is a conditional write, which fails when the copy is stale.
type ledgers struct {
	pool *storagepool.Pool
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]cachedLedger
}

type cachedLedger struct {
	l ledger
	// etag is "" for a ledger that does not exist yet at endpoint, the storage endpoint it was read from.
	etag     string
	endpoint string
}

func newLedgers(pool *storagepool.Pool, now func() time.Time) *ledgers {
	return &ledgers{pool: pool, now: now, cache: map[string]cachedLedger{}}
}

// claim decides about a batch of a device, dated by its first record, and claims its seqs when they are free.
// highest is the highest seq claimed for the device (for a reuse, what the agent must number above).
func (ls *ledgers) claim(ctx context.Context, device string, seqs []uint64, dated time.Time, ref claimRef) (v verdict, highest uint64, err error) {
	var skip []string // endpoints whose write failed in this claim
	fresh := false
	for range ledgerWriteAttempts {
		cur, err := ls.load(ctx, device, fresh, skip)
		if err != nil {
			return 0, 0, err
		}
		fresh = true
		folded := ls.mustFold(cur, seqs[0])
		if folded {
			if err := ls.fold(ctx, &cur.l, dated); err != nil {
				return 0, 0, err
			}
		}
		if v := decide(cur.l, seqs, ref); v != claimed {
			if folded {
				// What the fold learned is kept even when the batch is refused: the next batch may be dated so
				// that a fold would not look where this one found the highest seq.
				ls.keep(ctx, cur)
			}
			return v, cur.l.Acked.Max(), nil
		}
		next := ledger{DeviceID: device, Acked: cur.l.Acked.Add(seqs).Bounded(ledgerMaxRanges), FoldedAt: cur.l.FoldedAt}
		next.Recent = append(next.Recent, cur.l.Recent[max(0, len(cur.l.Recent)-ledgerRecentClaims+1):]...)
		next.Recent = append(next.Recent, ref)
		data, err := json.Marshal(next)
		if err != nil {
			return 0, 0, fmt.Errorf("encode ledger: %w", err)
		}
		// The ETag is the read endpoint's: the write goes there and nowhere else.
		opts := storagepool.WriteOptions{ContentType: "application/json", IfMatch: cur.etag, IfAbsent: cur.etag == "",
			Endpoint: cur.endpoint}
		_, etag, err := ls.pool.Write(ctx, protocol.LedgerKey(device), data, opts)
		switch {
		case errors.Is(err, storagepool.ErrPrecondition):
			continue // another writer got there first: read again and decide again
		case errors.Is(err, storagepool.ErrUnavailable):
			// That endpoint takes no writes now (a full disk serves reads): decide again on the next one's
			// ledger.
			skip = append(skip, cur.endpoint)
			continue
		case err != nil:
			return 0, 0, err
		}
		cur = cachedLedger{l: next, etag: etag, endpoint: cur.endpoint}
		ls.put(device, cur)
		return claimed, next.Acked.Max(), nil
	}
	return 0, 0, fmt.Errorf("claim seqs in the ledger of %s: %w: gave up after %d attempts (endpoints failing: %v)",
		device, storagepool.ErrUnavailable, ledgerWriteAttempts, skip)
}

// decide says what the ledger makes of a batch: claimed means its seqs are free.
func decide(l ledger, seqs []uint64, ref claimRef) verdict {
	switch n := l.Acked.Count(seqs); {
	case n == len(seqs) && slices.Contains(l.Recent, ref):
		return retried
	case n == len(seqs):
		return ambiguous
	case n > 0:
		return reused
	}
	return claimed
}

// keep writes a ledger that a fold completed. It is best effort: a writer that got there first wrote a ledger
// that a fold also completed, or will.
func (ls *ledgers) keep(ctx context.Context, folded cachedLedger) {
	data, err := json.Marshal(folded.l)
	if err != nil {
		return
	}
	_, etag, err := ls.pool.Write(ctx, protocol.LedgerKey(folded.l.DeviceID), data, storagepool.WriteOptions{
		ContentType: "application/json", IfMatch: folded.etag, IfAbsent: folded.etag == "", Endpoint: folded.endpoint})
	if err == nil {
		folded.etag = etag
		ls.put(folded.l.DeviceID, folded)
	}
}

// mustFold says whether the device's stored batches must be folded in before deciding on a batch starting at
// first: the site has no ledger for it, or the batch starts above what the ledger knows and the last fold is a
// while ago.
func (ls *ledgers) mustFold(c cachedLedger, first uint64) bool {
	if c.etag == "" {
		return true
	}
	return first > c.l.Acked.Max()+1 && ls.now().Sub(c.l.FoldedAt) >= foldInterval
}

// load returns the device's ledger: the cached one unless fresh is set or it came from an endpoint in skip,
// else the one stored at the first endpoint not in skip that answers.
func (ls *ledgers) load(ctx context.Context, device string, fresh bool, skip []string) (cachedLedger, error) {
	if !fresh {
		ls.mu.Lock()
		c, ok := ls.cache[device]
		ls.mu.Unlock()
		if ok && !slices.Contains(skip, c.endpoint) {
			return c, nil
		}
	}
	c := cachedLedger{l: ledger{DeviceID: device}}
	obj, err := ls.pool.Read(ctx, protocol.LedgerKey(device), maxLedgerBytes, skip...)
	c.endpoint = obj.Endpoint
	switch {
	case errors.Is(err, storagepool.ErrNotFound):
	case err != nil:
		return cachedLedger{}, err
	default:
		if err := json.Unmarshal(obj.Data, &c.l); err != nil || !c.l.Acked.Valid() || c.l.DeviceID != device {
			// Nothing but this service writes ledgers; one that cannot be read must not be overwritten with an
			// empty one, which would let every seq of the device be reused.
			return cachedLedger{}, fmt.Errorf("ledger of device %s at %s is unreadable: %v", device, obj.Endpoint, err)
		}
		c.etag = obj.ETag
	}
	ls.put(device, c)
	return c, nil
}

// fold takes every seq up to the highest one stored for the device as claimed; dated is the date of the batch
// being decided on.
func (ls *ledgers) fold(ctx context.Context, l *ledger, dated time.Time) error {
	highest, err := ls.highestStoredSeq(ctx, l.DeviceID, dated)
	if err != nil {
		return err
	}
	if highest > 0 {
		l.Acked = l.Acked.Union(seqset.Set{{From: 1, To: highest}})
	}
	l.FoldedAt = ls.now().UTC()
	return nil
}

// listPage bounds one listing of the fold.
const listPage = 1000

// highestStoredSeq finds the highest seq among the device's stored batches without listing them all. Batch keys
// sort by the date of their first record and then by seq, and a device's seqs grow with time, so the newest
// date folder holds its highest seqs, unless its clock jumped. It reads the newest day folder (walking down the
// year, month and day folders), the folders of today and yesterday (a clock that once ran ahead leaves a newest
// folder that is not the latest written), the day of the batch being decided on and the day before (a clock set
// back dates the device's latest batches like the one arriving), and the folders that clamped dates fall into.
func (ls *ledgers) highestStoredSeq(ctx context.Context, device string, dated time.Time) (uint64, error) {
	newest := protocol.RecordsPrefix(device)
	for range 3 { // year, month, day
		sub, err := ls.pool.List(ctx, storagepool.ListOptions{Prefix: newest, Limit: 100_000})
		if err != nil {
			return 0, err
		}
		var dirs []string
		for _, k := range sub {
			if strings.HasSuffix(k, "/") {
				dirs = append(dirs, k)
			}
		}
		if len(dirs) == 0 {
			return 0, nil // no batches stored
		}
		newest = slices.Max(dirs)
	}
	now := ls.now()
	days := []string{newest}
	for _, t := range []time.Time{now, now.Add(-24 * time.Hour), dated, dated.Add(-24 * time.Hour), protocol.EarliestKeyTime, protocol.LatestKeyTime} {
		if d := protocol.RecordsDatePrefix(device, protocol.ClampKeyTime(t)); !slices.Contains(days, d) {
			days = append(days, d)
		}
	}
	var highest uint64
	for _, day := range days {
		seq, err := ls.highestInDay(ctx, device, day)
		if err != nil {
			return 0, err
		}
		highest = max(highest, seq)
	}
	return highest, nil
}

// highestInDay finds the highest last seq among the batches in one day folder. Their names are zero-padded seq
// ranges in seq order, so the last key holds it; a folder with more keys than a page is searched by listing
// after ever larger first seqs.
func (ls *ledgers) highestInDay(ctx context.Context, device, day string) (uint64, error) {
	last := func(after string) (string, bool, error) {
		keys, err := ls.pool.List(ctx, storagepool.ListOptions{Prefix: day, StartAfter: after, Recursive: true, Limit: listPage})
		if err != nil || len(keys) == 0 {
			return "", false, err
		}
		return keys[len(keys)-1], len(keys) == listPage, nil
	}
	key, more, err := last("")
	if err != nil || key == "" {
		return 0, err
	}
	// Gallop: find the largest first seq from which keys still follow, doubling the step, then halving it.
	first, _, _ := protocol.ParseBatchKey(device, key)
	for step := uint64(listPage); more && step > 0; {
		probe := fmt.Sprintf("%s%020d", day, first+step)
		k, m, err := last(probe)
		switch {
		case err != nil:
			return 0, err
		case k != "":
			key, more = k, m
			first, _, _ = protocol.ParseBatchKey(device, k)
			step *= 2
		default:
			step /= 2
		}
	}
	_, lastSeq, _ := protocol.ParseBatchKey(device, key)
	return lastSeq, nil
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
