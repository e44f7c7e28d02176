package objectstore

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"

	"github.com/supportstack/supportstack/internal/protocol"
)

// ReadSwitches reads the data plane's records of moving its writes to another copy (protocol.StorageSwitch)
// whose key sorts after startAfter, oldest first, at most limit. A record that does not parse is skipped: it
// measures a failover, it holds no data.
func ReadSwitches(ctx context.Context, c *minio.Client, bucket, startAfter string, limit int) ([]protocol.StorageSwitch, error) {
	var out []protocol.StorageSwitch
	for obj := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: protocol.SwitchPrefix, StartAfter: startAfter}) {
		if obj.Err != nil {
			return out, fmt.Errorf("list storage switches: %w", obj.Err)
		}
		r, err := c.GetObject(ctx, bucket, obj.Key, minio.GetObjectOptions{})
		if err != nil {
			return out, fmt.Errorf("read %s: %w", obj.Key, err)
		}
		body, err := io.ReadAll(io.LimitReader(r, 4096))
		r.Close()
		if err != nil {
			return out, fmt.Errorf("read %s: %w", obj.Key, err)
		}
		var s protocol.StorageSwitch
		if json.Unmarshal(body, &s) == nil && !s.FailedAt.IsZero() && !s.ResumedAt.IsZero() {
			out = append(out, s)
		}
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}
