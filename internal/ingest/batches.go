package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// bodyReadTimeout bounds how long a client may take to send a batch body.
const bodyReadTimeout = 30 * time.Second

// writeConcurrency bounds the parallel object writes of one request.
const writeConcurrency = 8

// batches answers POST /v1/batches: authenticate, decode and validate, rate-limit, write every object, and only
// when all writes succeeded acknowledge the batch's last seq.
func (s *Server) batches(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	claims, rerr := s.authenticate(r)
	if rerr != nil {
		s.fail(w, info, rerr)
		return
	}
	info.device = claims.DeviceID
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))

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

	if ok, wait := s.limiter.take(claims.DeviceID, n, s.now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
		s.fail(w, info, &protocol.RequestError{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: fmt.Sprintf("more than %g records per second from this device: retry later", s.cfg.MaxRecordsPerSecond)})
		return
	}

	objects, err := batchObjects(batch)
	if err != nil {
		info.err = err
		s.fail(w, info, &protocol.RequestError{Status: http.StatusInternalServerError, Code: "internal", Message: "cannot encode the batch"})
		return
	}
	if err := s.putAll(r.Context(), objects); err != nil {
		s.limiter.refund(claims.DeviceID, n) // the retry of a batch that was not stored is not extra load
		s.unavailable(w, info, err)
		return
	}
	s.metrics.recordsAcked.Add(float64(n))
	s.ok(w, info, protocol.Ack{AckedThroughSeq: batch.LastSeq()})
}

// object is one write to storage.
type object struct {
	key         string
	data        []byte
	contentType string
	// kind labels metrics: batch, question, inventory, device.
	kind string
}

// gzipWriters are reused: a compressor's state is most of a megabyte, and allocating (and clearing) one per
// batch costs more than the compression. The fastest level, because ingest's CPU, not the objects' size,
// limits how many agents one replica serves.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // cannot fail for a valid level
	return zw
}}

// batchObjects maps a batch to the objects it is stored as, all under deterministic keys, so that a retried
// batch overwrites the same objects:
//
//   - the whole batch as gzip NDJSON (one protocol.Record per line) at protocol.BatchKey;
//   - each question record, as protocol.Record JSON, at protocol.QuestionKey (a question ID that occurs twice in
//     the batch is stored once, from its last record);
//   - the batch's newest inventory record, as protocol.Record JSON, at protocol.InventoryKey.
func batchObjects(b *protocol.Batch) ([]object, error) {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	enc := json.NewEncoder(zw) // one JSON value and "\n" per record
	var inventory *protocol.Record
	questions := map[string]int{} // question ID -> index into objs
	var objs []object
	for i := range b.Records {
		rec := &b.Records[i]
		if err := enc.Encode(rec); err != nil {
			return nil, fmt.Errorf("encode record %d: %w", rec.Seq, err)
		}
		switch rec.Kind {
		case protocol.KindInventory:
			inventory = rec
		case protocol.KindQuestion:
			q, err := protocol.ParseQuestion(rec.Data) // validated by DecodeBatch already
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", rec.Seq, err)
			}
			data, err := json.Marshal(rec)
			if err != nil {
				return nil, fmt.Errorf("encode question %d: %w", rec.Seq, err)
			}
			o := object{key: protocol.QuestionKey(b.DeviceID, q.ID), data: data, contentType: "application/json", kind: "question"}
			if j, dup := questions[q.ID]; dup {
				objs[j] = o
				continue
			}
			questions[q.ID] = len(objs)
			objs = append(objs, o)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress batch: %w", err)
	}
	if inventory != nil {
		data, err := json.Marshal(inventory)
		if err != nil {
			return nil, fmt.Errorf("encode inventory %d: %w", inventory.Seq, err)
		}
		objs = append(objs, object{key: protocol.InventoryKey(b.DeviceID), data: data, contentType: "application/json", kind: "inventory"})
	}
	objs = append(objs, object{
		key:         protocol.BatchKey(b.DeviceID, b.Records[0].Time, b.FirstSeq(), b.LastSeq()),
		data:        buf.Bytes(),
		contentType: "application/gzip",
		kind:        "batch",
	})
	return objs, nil
}

// putAll writes the objects in parallel and returns the first failure's error (all are attempted).
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
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d writes failed: %w", len(errs), len(objs), errs[0])
	}
	return nil
}

// put writes one object through the storage pool and records its latency and size.
func (s *Server) put(ctx context.Context, o object) error {
	start := time.Now()
	_, err := s.pool.Put(ctx, o.key, o.data, o.contentType)
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
