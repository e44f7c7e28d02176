package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// writeConcurrency bounds the parallel object writes of one request.
const writeConcurrency = 8

// digestMetadata is the user metadata that holds a batch object's digest, the SHA-256 of its uncompressed
// records: what tells a retry of the batch from another batch under the same key.
const digestMetadata = "Records-Sha256"

// batches answers POST /v1/batches: authenticate, decode and validate, rate-limit, claim the seqs in the
// device's ledger, write every object, and only when all writes succeeded acknowledge the batch's last seq.
func (s *Server) batches(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	claims, rerr := s.authenticate(r)
	if rerr != nil {
		s.refuseUnread(w, info, rerr)
		return
	}
	info.device = claims.DeviceID
	if !s.pool.Available() {
		// Nothing could be stored: say so before reading a body that would only be thrown away.
		s.closeAfter(w)
		s.unavailable(w, info, storagepool.ErrUnavailable)
		return
	}
	encoding := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	batch, err := protocol.DecodeBatch(r.Body, encoding, s.limits)
	if err != nil {
		var re *protocol.RequestError
		if !errors.As(err, &re) {
			re = &protocol.RequestError{Status: http.StatusBadRequest, Code: "bad_request", Message: err.Error()}
		}
		s.fail(w, info, re)
		return
	}
	if batch.DeviceID != claims.DeviceID {
		s.fail(w, info, &protocol.RequestError{Status: http.StatusForbidden, Code: "wrong_device",
			Message: "the batch's deviceId is not the credential's device"})
		return
	}
	n := len(batch.Records)
	info.records, info.firstSeq, info.lastSeq = n, batch.FirstSeq(), batch.LastSeq()
	// A slot is taken once the body is in: it bounds the storage work done at once, and a slow sender must not
	// hold one while it trickles.
	release, rerr := s.admission.enter(r.Context())
	if rerr != nil {
		s.fail(w, info, rerr)
		return
	}
	defer release()

	if ok, wait := s.limiter.take(claims.DeviceID, n, s.now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
		s.fail(w, info, &protocol.RequestError{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: fmt.Sprintf("more than %g records per second from this device: retry later", s.cfg.MaxRecordsPerSecond)})
		return
	}
	if rerr, err := s.store(r.Context(), batch); rerr != nil || err != nil {
		s.limiter.refund(claims.DeviceID, n) // a batch that was not stored is not extra load when retried
		if err != nil {
			s.unavailable(w, info, err)
			return
		}
		s.fail(w, info, rerr)
		return
	}
	s.metrics.recordsAcked.Add(float64(n))
	s.ok(w, info, protocol.Ack{AckedThroughSeq: batch.LastSeq()})
}

// store claims the batch's seqs and writes its objects. A refusal (reuse of an acknowledged seq or question ID)
// comes back as a RequestError, with nothing stored; a storage failure as an error.
func (s *Server) store(ctx context.Context, batch *protocol.Batch) (*protocol.RequestError, error) {
	objs, ref, err := batchObjects(batch)
	if err != nil {
		return nil, err
	}
	if rerr, err := s.checkQuestions(ctx, objs); rerr != nil || err != nil {
		return rerr, err
	}
	seqs := make([]uint64, len(batch.Records))
	for i, r := range batch.Records {
		seqs[i] = r.Seq
	}
	v, highest, err := s.ledgers.claim(ctx, batch.DeviceID, seqs, batch.Records[0].Time, ref)
	if err != nil {
		return nil, err
	}
	if v == ambiguous {
		// Claimed by a batch the ledger no longer names: a retry if the stored batch is this one.
		stored, err := s.pool.Stat(ctx, ref.Key)
		switch {
		case err == nil && stored.Metadata[digestMetadata] == ref.Digest:
			v = retried
		case err == nil || errors.Is(err, storagepool.ErrNotFound):
			v = reused
		default:
			return nil, err
		}
	}
	if v == reused {
		return seqReused(batch, highest), nil
	}
	// The batch object first: it holds the records. Only once it is stored do the views of them (questions,
	// the latest inventory) follow, so that a batch refused here leaves nothing behind.
	batchObj, views := objs[len(objs)-1], objs[:len(objs)-1]
	if err := s.put(ctx, batchObj); err != nil {
		if errors.Is(err, errDiffers) {
			// Only another batch under the same key, claimed in a ledger this one could not see (the other
			// site's, its batch not replicated here yet), gets here.
			return seqReused(batch, highest), nil
		}
		return nil, err
	}
	if v == retried {
		// The latest inventory is a view: a retry of an old batch must not roll it back.
		views = slices.DeleteFunc(views, func(o object) bool { return o.kind == "inventory" })
	}
	if err := s.putAll(ctx, views); err != nil {
		if !errors.Is(err, errDiffers) {
			return nil, err
		}
		// A question with other text took the ID between the check and the write (two clients racing with one
		// question ID). The records are stored in the batch; the question's own object keeps the first text.
		s.log.Warn("A question ID was taken by another text while the batch was stored", "deviceId", batch.DeviceID, "error", err.Error())
	}
	return nil, nil
}

func seqReused(b *protocol.Batch, highest uint64) *protocol.RequestError {
	return &protocol.RequestError{Status: http.StatusConflict, Code: "seq_reused", HighestSeq: highest,
		Message: fmt.Sprintf("seqs of this batch (%d-%d) were acknowledged before with other records: number the records above %d and send them again",
			b.FirstSeq(), b.LastSeq(), highest)}
}

// checkQuestions refuses a batch that would give an existing question ID other content: a question is stored
// once, under its ID.
func (s *Server) checkQuestions(ctx context.Context, objs []object) (*protocol.RequestError, error) {
	for _, o := range objs {
		if o.kind != "question" {
			continue
		}
		stored, err := s.pool.Read(ctx, o.key, maxQuestionObjectBytes)
		switch {
		case errors.Is(err, storagepool.ErrNotFound):
			continue
		case err != nil:
			return nil, err
		case !o.same(stored):
			return &protocol.RequestError{Status: http.StatusConflict, Code: "question_exists",
				Message: "a question with this ID and other text was stored before: give the question a new ID"}, nil
		}
	}
	return nil, nil
}

// maxQuestionObjectBytes bounds a stored question as read back.
const maxQuestionObjectBytes = 2 * protocol.MaxQuestionBytes

// object is one write to storage.
type object struct {
	key         string
	data        []byte
	contentType string
	metadata    map[string]string
	// kind labels metrics: batch, question, inventory, device.
	kind string
	// same, when set, makes the object write-once: it is written only where nothing is stored, and an object
	// already there must be the same by this test (a retry), or the write fails with errDiffers.
	same func(stored storagepool.Object) bool
	// stat says that same needs only the stored object's metadata, not its content.
	stat bool
}

// errDiffers means that a write-once object exists with other content.
var errDiffers = errors.New("a different object is stored under this key")

// gzipWriters are reused: a compressor's state is most of a megabyte, and allocating (and clearing) one per
// batch costs more than the compression. The fastest level, because ingest's CPU, not the objects' size,
// limits how many agents one replica serves.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // cannot fail for a valid level
	return zw
}}

// batchObjects maps a batch to the objects it is stored as, all under deterministic keys, and names the batch
// for the ledger (its key and digest):
//
//   - the whole batch as gzip NDJSON (one protocol.Record per line) at protocol.BatchKey, write-once, with the
//     SHA-256 of the NDJSON in its metadata;
//   - each question record, as protocol.Record JSON, at protocol.QuestionKey, write-once (a question ID that
//     occurs twice in the batch is stored once, from its last record);
//   - the batch's newest inventory record, as protocol.Record JSON, at protocol.InventoryKey, write-once: keys
//     sort by the record's time, so readers find the newest inventory as the last key, and no site overwrites
//     another's.
func batchObjects(b *protocol.Batch) ([]object, claimRef, error) {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	digest := sha256.New()
	enc := json.NewEncoder(io.MultiWriter(zw, digest)) // one JSON value and "\n" per record
	var inventory *protocol.Record
	questions := map[string]int{} // question ID -> index into objs
	var objs []object
	for i := range b.Records {
		rec := &b.Records[i]
		if err := enc.Encode(rec); err != nil {
			return nil, claimRef{}, fmt.Errorf("encode record %d: %w", rec.Seq, err)
		}
		switch rec.Kind {
		case protocol.KindInventory:
			inventory = rec
		case protocol.KindQuestion:
			q, err := protocol.ParseQuestion(rec.Data) // validated by DecodeBatch already
			if err != nil {
				return nil, claimRef{}, fmt.Errorf("record %d: %w", rec.Seq, err)
			}
			data, err := json.Marshal(rec)
			if err != nil {
				return nil, claimRef{}, fmt.Errorf("encode question %d: %w", rec.Seq, err)
			}
			o := object{key: protocol.QuestionKey(b.DeviceID, q.ID), data: data, contentType: "application/json",
				kind: "question", same: sameQuestion(q)}
			if j, dup := questions[q.ID]; dup {
				objs[j] = o
				continue
			}
			questions[q.ID] = len(objs)
			objs = append(objs, o)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, claimRef{}, fmt.Errorf("compress batch: %w", err)
	}
	if inventory != nil {
		data, err := json.Marshal(inventory)
		if err != nil {
			return nil, claimRef{}, fmt.Errorf("encode inventory %d: %w", inventory.Seq, err)
		}
		objs = append(objs, object{key: protocol.InventoryKey(b.DeviceID, inventory.Time, inventory.Seq), data: data,
			contentType: "application/json", kind: "inventory",
			same: func(stored storagepool.Object) bool { return bytes.Equal(stored.Data, data) }})
	}
	ref := claimRef{Key: protocol.BatchKey(b.DeviceID, b.Records[0].Time, b.FirstSeq(), b.LastSeq()),
		Digest: hex.EncodeToString(digest.Sum(nil))}
	objs = append(objs, object{
		key:         ref.Key,
		data:        buf.Bytes(),
		contentType: "application/gzip",
		metadata:    map[string]string{digestMetadata: ref.Digest},
		kind:        "batch",
		stat:        true,
		same:        func(stored storagepool.Object) bool { return stored.Metadata[digestMetadata] == ref.Digest },
	})
	return objs, ref, nil
}

// sameQuestion tells whether a stored question record is q: the same ID and text. Its seq and time may differ,
// since an agent that renumbered its records (seq_reused) sends the question again under a new seq.
func sameQuestion(q protocol.Question) func(storagepool.Object) bool {
	return func(stored storagepool.Object) bool {
		var rec protocol.Record
		if json.Unmarshal(stored.Data, &rec) != nil || rec.Kind != protocol.KindQuestion {
			return false
		}
		got, err := protocol.ParseQuestion(rec.Data)
		return err == nil && got == q
	}
}

// putAll writes the objects in parallel and returns the first failure's error (all are attempted); a storage
// failure wins over errDiffers, since a retry can cure it.
func (s *Server) putAll(ctx context.Context, objs []object) error {
	sem := make(chan struct{}, writeConcurrency)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, o := range objs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.put(ctx, o); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, errDiffers) {
			return fmt.Errorf("%d of %d writes failed: %w", len(errs), len(objs), err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d writes failed: %w", len(errs), len(objs), errs[0])
	}
	return nil
}

// put writes one object through the storage pool and records its latency and size. A write-once object that is
// stored already is fine when it is the same object (a retry) and errDiffers otherwise.
func (s *Server) put(ctx context.Context, o object) error {
	start := time.Now()
	_, _, err := s.pool.Write(ctx, o.key, o.data, storagepool.WriteOptions{ContentType: o.contentType,
		Metadata: o.metadata, IfAbsent: o.same != nil})
	if errors.Is(err, storagepool.ErrPrecondition) {
		err = s.compareStored(ctx, o)
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.metrics.writeSeconds.WithLabelValues(o.kind, result).Observe(time.Since(start).Seconds())
	if err == nil {
		s.metrics.bytesStored.WithLabelValues(o.kind).Add(float64(len(o.data)))
	}
	return err
}

// compareStored checks a write-once object found at its key against the one to be written.
func (s *Server) compareStored(ctx context.Context, o object) error {
	var stored storagepool.Object
	var err error
	if o.stat {
		stored, err = s.pool.Stat(ctx, o.key)
	} else {
		stored, err = s.pool.Read(ctx, o.key, int64(len(o.data))*2+4096)
	}
	switch {
	case errors.Is(err, storagepool.ErrTooLarge):
		return fmt.Errorf("%s: %w", o.key, errDiffers)
	case err != nil:
		return err
	case !o.same(stored):
		return fmt.Errorf("%s: %w", o.key, errDiffers)
	}
	return nil
}
