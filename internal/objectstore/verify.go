package objectstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// Proving both copies equal (FAILOVER.md): list the versions on both sides and merge-join them. Replication keeps
// version IDs, so two copies hold the same data exactly when they list the same (key, version, ETag, size, delete
// marker) for every version old enough to have been replicated. Heartbeats change every few seconds and the
// ingest service's ledgers are each site's own (not versioned, not replicated): both are left out.

// Version is one version as a listing shows it.
type Version struct {
	Key          string
	VersionID    string
	ETag         string
	Size         int64
	DeleteMarker bool
	LastModified time.Time
}

func (v Version) String() string {
	if v.DeleteMarker {
		return v.Key + "@" + v.VersionID + " (delete marker)"
	}
	return fmt.Sprintf("%s@%s (%d bytes, etag %s)", v.Key, v.VersionID, v.Size, v.ETag)
}

// ListVersions lists every replicated version of the bucket, sorted by key and version ID.
func ListVersions(ctx context.Context, c *minio.Client, bucket string) ([]Version, error) {
	var out []Version
	for o := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list versions of bucket %s: %w", bucket, o.Err)
		}
		if !replicated(o.Key) {
			continue
		}
		out = append(out, Version{Key: o.Key, VersionID: o.VersionID, ETag: strings.Trim(o.ETag, `"`), Size: o.Size,
			DeleteMarker: o.IsDeleteMarker, LastModified: o.LastModified})
	}
	slices.SortFunc(out, compareVersions)
	return out, nil
}

// replicated reports whether versions of key are replicated and so must be equal on both sides.
func replicated(key string) bool {
	if isHeartbeat(key) {
		return false
	}
	for _, p := range UnversionedPrefixes {
		if strings.HasPrefix(key, p) {
			return false
		}
	}
	return true
}

func compareVersions(a, b Version) int {
	return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.VersionID, b.VersionID))
}

// VersionDiff is what two listings disagree on.
type VersionDiff struct {
	// OnlyA and OnlyB are versions one side lacks; Differ are versions both have with other contents.
	OnlyA, OnlyB []Version
	Differ       [][2]Version
	// Compared counts the versions older than the cutoff that both listings were checked for.
	Compared int
}

// Empty reports whether the listings agree.
func (d VersionDiff) Empty() bool {
	return len(d.OnlyA) == 0 && len(d.OnlyB) == 0 && len(d.Differ) == 0
}

// String summarises the diff for a log line.
func (d VersionDiff) String() string { return d.Describe("A", "B") }

// Describe summarises the diff for a condition or a log line, naming the listings a and b.
func (d VersionDiff) Describe(a, b string) string {
	if d.Empty() {
		return fmt.Sprintf("%d versions equal", d.Compared)
	}
	var parts []string
	for _, v := range firstN(d.OnlyA, 3) {
		parts = append(parts, "only "+a+": "+v.String())
	}
	for _, v := range firstN(d.OnlyB, 3) {
		parts = append(parts, "only "+b+": "+v.String())
	}
	for _, p := range firstN(d.Differ, 3) {
		parts = append(parts, "differs: "+p[0].String()+" vs "+p[1].String())
	}
	return fmt.Sprintf("%d versions only %s, %d only %s, %d differ (e.g. %s)", len(d.OnlyA), a, len(d.OnlyB), b,
		len(d.Differ), strings.Join(parts, "; "))
}

func firstN[T any](s []T, n int) []T { return s[:min(len(s), n)] }

// DiffVersions merge-joins two sorted listings and reports the versions last modified before cutoff on which they
// disagree. Newer versions may still be on their way and are not compared.
func DiffVersions(a, b []Version, cutoff time.Time) VersionDiff {
	var d VersionDiff
	old := func(v Version) bool { return v.LastModified.Before(cutoff) }
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && compareVersions(a[i], b[j]) < 0:
			if old(a[i]) {
				d.OnlyA = append(d.OnlyA, a[i])
			}
			i++
		case i == len(a) || compareVersions(a[i], b[j]) > 0:
			if old(b[j]) {
				d.OnlyB = append(d.OnlyB, b[j])
			}
			j++
		default:
			if old(a[i]) || old(b[j]) {
				d.Compared++
				if a[i].ETag != b[j].ETag || a[i].Size != b[j].Size || a[i].DeleteMarker != b[j].DeleteMarker {
					d.Differ = append(d.Differ, [2]Version{a[i], b[j]})
				}
			}
			i, j = i+1, j+1
		}
	}
	return d
}
