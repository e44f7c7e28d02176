// Package stored reads what the data plane stored for a device, the way tests count it (every record of every
// batch object), and writes batch objects as ingest lays them out, for tests and benchmarks that fill a bucket
// without it.
package stored

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/supportstack/supportstack/internal/protocol"
)

// Seqs reads every batch object of a device in one copy and counts each seq: a count above one is a record
// stored twice.
func Seqs(ctx context.Context, mc *minio.Client, bucket, device string) (map[uint64]int, error) {
	records, err := Records(ctx, mc, bucket, device)
	if err != nil {
		return nil, err
	}
	seen := map[uint64]int{}
	for _, r := range records {
		seen[r.Seq]++
	}
	return seen, nil
}

// Records reads every record of every batch object of a device in one copy, in the order of the objects' keys.
// Listings and reads are of this copy only (MinIO proxies neither a listing nor, with proxying off, a read).
func Records(ctx context.Context, mc *minio.Client, bucket, device string) ([]protocol.Record, error) {
	var out []protocol.Record
	for obj := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: protocol.RecordsPrefix(device), Recursive: true}) {
		if obj.Err != nil {
			return nil, obj.Err
		}
		opts := minio.GetObjectOptions{}
		opts.Internal.ReplicationProxyRequest = "false"
		o, err := mc.GetObject(ctx, bucket, obj.Key, opts)
		if err != nil {
			return nil, err
		}
		raw, err := io.ReadAll(o)
		o.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", obj.Key, err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", obj.Key, err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r protocol.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return nil, fmt.Errorf("%s: %w", obj.Key, err)
			}
			out = append(out, r)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", obj.Key, err)
		}
	}
	return out, nil
}

// Batch is records as ingest stores a batch: the key (protocol.BatchKey of the first and last record) and the
// object, gzip NDJSON of protocol.Record.
func Batch(device string, recs []protocol.Record) (key string, data []byte, err error) {
	if len(recs) == 0 {
		return "", nil, fmt.Errorf("a batch of device %s without records", device)
	}
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	enc := json.NewEncoder(zw)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return "", nil, fmt.Errorf("encode record %d: %w", r.Seq, err)
		}
	}
	if err := zw.Close(); err != nil {
		return "", nil, err
	}
	return protocol.BatchKey(device, recs[0].Time, recs[0].Seq, recs[len(recs)-1].Seq), buf.Bytes(), nil
}

// gzipWriters are reused: a benchmark filling a bucket writes tens of thousands of batches.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
