package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/miniotest"
	"github.com/supportstack/supportstack/internal/protocol"
)

// refusedAsReuse checks a 409 seq_reused answer and returns the highest seq the server says it holds.
func refusedAsReuse(t *testing.T, r response) uint64 {
	t.Helper()
	require.Equal(t, http.StatusConflict, r.status, "body: %s", r.body)
	require.Equal(t, "seq_reused", r.errorCode(t))
	var e protocol.Error
	require.NoError(t, json.Unmarshal(r.body, &e))
	return e.HighestSeq
}

// otherData returns records with the same seqs as recs and other content.
func otherData(recs []protocol.Record) []protocol.Record {
	out := make([]protocol.Record, len(recs))
	for i, r := range recs {
		r.Data = json.RawMessage(fmt.Sprintf(`{"cpu":99,"forged":%d}`, r.Seq))
		out[i] = r
	}
	return out
}

// After a batch is acknowledged, (device, seq) names its records forever: a retry of the very same batch is an
// idempotent 200 that stores nothing new, and every other batch that reuses one of its seqs is refused with
// 409 seq_reused, the server's highest seq, and nothing stored.
func TestAcknowledgedRecordsCannotBeReplaced(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1"})
	batch := func(recs []protocol.Record) protocol.Batch {
		return protocol.Batch{DeviceID: dev.DeviceID, Records: recs}
	}

	first := telemetry(1, 10)
	require.Equal(t, uint64(10), ack(t, h.postBatch(dev.Credential, batch(first))))
	firstKey := protocol.BatchKey(dev.DeviceID, first[0].Time, 1, 10)
	stored := mustRead(t, site, firstKey)
	baseline := objects(t, site)

	laterDay := telemetry(1, 1)
	laterDay[0].Time = laterDay[0].Time.Add(72 * time.Hour)
	tests := map[string][]protocol.Record{
		"seqs 5-7 with other data":              otherData(telemetry(5, 3)),
		"seqs 5-7, same data, another grouping": telemetry(5, 3),
		"seqs 8-12, overlapping the end":        telemetry(8, 5),
		"seqs 1-10 with other data, same key":   otherData(first),
		"seq 1 dated days later, another key":   laterDay,
		"one acknowledged seq among new ones":   append(telemetry(10, 1), telemetry(20, 3)...),
	}
	for name, recs := range tests {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, uint64(10), refusedAsReuse(t, h.postBatch(dev.Credential, batch(recs))))
			require.Equal(t, baseline, objects(t, site), "a refused batch stored something")
			require.Equal(t, stored, mustRead(t, site, firstKey), "the acknowledged batch changed")
		})
	}

	// The very same batch again (its ack was lost): acknowledged, and not even a new version is written.
	require.Equal(t, uint64(10), ack(t, h.postBatch(dev.Credential, batch(first))))
	require.Equal(t, baseline, objects(t, site), "a retry wrote something")

	// New seqs go on as before.
	require.Equal(t, uint64(15), ack(t, h.postBatch(dev.Credential, batch(telemetry(11, 5)))))
	// A retry long after, when its claim is no longer among the ledger's recent ones, is recognised by the
	// stored batch's digest.
	for i := range ledgerRecentClaims {
		seq := uint64(16 + i)
		require.Equal(t, seq, ack(t, h.postBatch(dev.Credential, batch(telemetry(seq, 1)))))
	}
	before := objects(t, site)
	require.Equal(t, uint64(10), ack(t, h.postBatch(dev.Credential, batch(first))))
	require.Equal(t, before, objects(t, site), "a late retry wrote something")
	require.Equal(t, float64(len(tests)), h.metric("supportstack_ingest_rejections_total", map[string]string{"route": "batches", "reason": "seq_reused"}),
		"every reuse but the identical retry is counted")
}

// The legitimate ways of sending seqs out of order still work: a question that travelled ahead of older
// telemetry, and a record the server once refused for good that is sent again alone, fill the holes they left.
func TestHolesAreFilledLater(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1"})
	post := func(recs ...protocol.Record) response {
		return h.postBatch(dev.Credential, protocol.Batch{DeviceID: dev.DeviceID, Records: recs})
	}
	// The question (seq 6) goes first, telemetry 1-5 and 7-9 after it; seq 3 is refused for good, so the agent
	// narrowed the batch down to it and sends it alone later.
	require.Equal(t, uint64(6), ack(t, post(question(6, "q-66666666", "why?"))))
	require.Equal(t, uint64(2), ack(t, post(telemetry(1, 2)...)))
	require.Equal(t, uint64(9), ack(t, post(append(telemetry(4, 2), telemetry(7, 3)...)...)))
	require.Equal(t, uint64(3), ack(t, post(telemetry(3, 1)...)), "the record refused once is delivered later")
	require.Equal(t, uint64(9), refusedAsReuse(t, post(otherData(telemetry(3, 1))...)), "and then it is taken")
}

// A PC whose spool was wiped (or restored from an old backup) while it kept its identity starts its seqs low
// again. The server refuses the reuse and names its highest seq, and the same records numbered above it are
// delivered: nothing is refused for ever, and nothing is taken for a duplicate.
func TestWipedSpoolResumesAboveTheHighestSeq(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1"})
	post := func(recs []protocol.Record) response {
		return h.postBatch(dev.Credential, protocol.Batch{DeviceID: dev.DeviceID, Records: recs})
	}
	require.Equal(t, uint64(40), ack(t, post(telemetry(1, 40))))

	fresh := otherData(telemetry(1, 5)) // the wiped spool's first records
	highest := refusedAsReuse(t, post(fresh))
	require.Equal(t, uint64(40), highest)
	renumbered := make([]protocol.Record, len(fresh))
	for i, r := range fresh {
		r.Seq += highest
		renumbered[i] = r
	}
	require.Equal(t, uint64(45), ack(t, post(renumbered)))
	got := decodeBatchObject(t, mustRead(t, site, protocol.BatchKey(dev.DeviceID, renumbered[0].Time, 41, 45)))
	require.Len(t, got, 5)
	requireSameRecord(t, renumbered[0], got[0])
}

// A question is stored once under its ID: a batch that would give a stored question other text is refused
// (question_exists) with nothing stored, while the same question sent again under a new seq (after the agent
// renumbered) is fine.
func TestQuestionIDsAreWrittenOnce(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1"})
	post := func(recs ...protocol.Record) response {
		return h.postBatch(dev.Credential, protocol.Batch{DeviceID: dev.DeviceID, Records: recs})
	}
	q := question(1, "q-12345678", "why is my PC slow?")
	require.Equal(t, uint64(1), ack(t, post(q)))
	key := protocol.QuestionKey(dev.DeviceID, "q-12345678")
	stored := mustRead(t, site, key)
	baseline := objects(t, site)

	r := post(question(2, "q-12345678", "please wipe my disk"))
	require.Equal(t, http.StatusConflict, r.status, "%s", r.body)
	require.Equal(t, "question_exists", r.errorCode(t))
	require.Equal(t, baseline, objects(t, site))

	again := q
	again.Seq = 7
	require.Equal(t, uint64(7), ack(t, post(again)))
	require.Equal(t, stored, mustRead(t, site, key), "the question keeps its first record")
}

// Two ingest replicas (or two clusters' ingests on one storage) racing with overlapping batches of one device:
// the ledger's conditional write lets exactly one win, the other is refused, and the bucket holds one record
// per seq. The same race on one key with different data: one object, never replaced.
func TestReplicasRacingCannotBothStore(t *testing.T) {
	site := startSite(t)
	a := newHarness(t, testConfig(site))
	b := newHarness(t, testConfig(site))
	for round := range 8 {
		dev := a.enroll(protocol.EnrollRequest{Hostname: fmt.Sprintf("pc-%d", round)})
		one := telemetry(1, 10)
		other := otherData(telemetry(5, 10))
		if round%2 == 1 {
			other = otherData(one) // the same key
		}
		var wg sync.WaitGroup
		var ra, rb response
		wg.Go(func() { ra = a.postBatch(dev.Credential, protocol.Batch{DeviceID: dev.DeviceID, Records: one}) })
		wg.Go(func() { rb = b.postBatch(dev.Credential, protocol.Batch{DeviceID: dev.DeviceID, Records: other}) })
		wg.Wait()
		statuses := []int{ra.status, rb.status}
		require.ElementsMatch(t, []int{http.StatusOK, http.StatusConflict}, statuses, "round %d: %s / %s", round, ra.body, rb.body)

		winner := one
		if rb.status == http.StatusOK {
			winner = other
		}
		var batches []string
		for _, k := range keys(t, site) {
			if len(k) > len(protocol.RecordsPrefix(dev.DeviceID)) && k[:len(protocol.RecordsPrefix(dev.DeviceID))] == protocol.RecordsPrefix(dev.DeviceID) {
				batches = append(batches, k)
			}
		}
		require.Len(t, batches, 1, "round %d: one batch stored", round)
		got := decodeBatchObject(t, mustRead(t, site, batches[0]))
		require.Len(t, got, len(winner))
		for i := range got {
			requireSameRecord(t, winner[i], got[i])
		}
		require.Equal(t, 1, objects(t, site)[batches[0]], "round %d: one version", round)
	}
}

// storeAsReplicated puts a batch object straight into a site's bucket, as replication brings one the other
// site's ingest stored: this site's ledger knows nothing of it.
func storeAsReplicated(t *testing.T, site *miniotest.Server, device string, recs []protocol.Record) {
	t.Helper()
	objs, _, err := batchObjects(&protocol.Batch{DeviceID: device, Records: recs})
	require.NoError(t, err)
	o := objs[len(objs)-1]
	_, err = siteClient(t, site).PutObject(context.Background(), testBucket, o.key, bytes.NewReader(o.data), int64(len(o.data)),
		minio.PutObjectOptions{ContentType: o.contentType, UserMetadata: o.metadata})
	require.NoError(t, err)
}

// storeAsReplicatedAt is storeAsReplicated with the batch dated t.
func storeAsReplicatedAt(t *testing.T, site *miniotest.Server, device string, first uint64, n int, at time.Time) {
	t.Helper()
	recs := telemetry(first, n)
	for i := range recs {
		recs[i].Time = at
	}
	storeAsReplicated(t, site, device, recs)
}

// Ledgers are each site's own (not versioned, not replicated); the stored batches, which replication brings from
// either site, are what a ledger is completed from. A site that has no ledger for a device (its agents came here
// in a failover) takes every seq up to the highest stored one as claimed, whatever the batches' dates (months
// old, clamped to 2199 by a PC whose clock ran ahead, stored out of date order), so a wiped spool's reuse is
// refused here too; and a site whose ledger sees a device come back above what it knows (it sent to the other
// site meanwhile) folds in what the other site stored.
func TestLedgersAreCompletedFromStoredBatches(t *testing.T) {
	site := startSite(t)
	clock := &manualClock{now: time.Now()}
	cfg := testConfig(site)
	cfg.Now = clock.Now
	h := newHarness(t, cfg)
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1"})
	post := func(h *harness, recs []protocol.Record) response {
		return h.postBatch(dev.Credential, protocol.Batch{DeviceID: dev.DeviceID, Records: recs})
	}
	require.Equal(t, uint64(10), ack(t, post(h, telemetry(1, 10))))
	require.Equal(t, uint64(20), ack(t, post(h, telemetry(11, 10))))
	require.Equal(t, 1, objects(t, site)[protocol.LedgerKey(dev.DeviceID)], "a ledger is overwritten in place, not versioned")

	// The other site stored 21-30 meanwhile (the device's agent sent there); replication brought the batch.
	storeAsReplicated(t, site, dev.DeviceID, telemetry(21, 10))
	clock.Advance(foldInterval)
	require.Equal(t, uint64(33), ack(t, post(h, telemetry(31, 3))), "the agent comes back above what this site knew")
	require.Equal(t, uint64(33), refusedAsReuse(t, post(h, otherData(telemetry(25, 3)))), "the other site's seqs are taken")

	// A site that never had this device's ledger, with batches dated far ahead (a clock that ran ahead) and
	// then, with the highest seqs, months back (the clock was set back, and still is).
	require.NoError(t, siteClient(t, site).RemoveObject(context.Background(), testBucket, protocol.LedgerKey(dev.DeviceID), minio.RemoveObjectOptions{}))
	storeAsReplicatedAt(t, site, dev.DeviceID, 40, 5, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC))
	setBack := clock.Now().Add(-200 * 24 * time.Hour)
	storeAsReplicatedAt(t, site, dev.DeviceID, 50, 5, setBack)
	fresh := newHarness(t, cfg)
	wiped := otherData(telemetry(1, 3))
	for i := range wiped {
		wiped[i].Time = setBack.Add(time.Hour)
	}
	require.Equal(t, uint64(54), refusedAsReuse(t, post(fresh, wiped)), "a wiped spool restarting at seq 1")
	require.Equal(t, uint64(54), refusedAsReuse(t, post(fresh, otherData(telemetry(45, 2)))))
	require.Equal(t, uint64(33), ack(t, post(fresh, telemetry(31, 3))), "the same batch again is still a retry")
	require.Equal(t, uint64(57), ack(t, post(fresh, telemetry(55, 3))))
}

// The highest stored seq of a device is found without listing all its batches, also in a day with more batches
// than one listing page holds.
func TestHighestStoredSeqInABusyDay(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	const device = "0123456789abcdef0123456789abcdef"
	mc := siteClient(t, site)
	day := time.Now().Add(-48 * time.Hour)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	const n = 2*listPage + 137
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			first := uint64(1 + 3*i)
			_, err := mc.PutObject(context.Background(), testBucket, protocol.BatchKey(device, day, first, first+1),
				bytes.NewReader(nil), 0, minio.PutObjectOptions{})
			require.NoError(t, err)
		})
	}
	wg.Wait()
	got, err := h.server.ledgers.highestStoredSeq(context.Background(), device, time.Now())
	require.NoError(t, err)
	require.Equal(t, uint64(3*(n-1)+2), got)
}
