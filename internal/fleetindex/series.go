package fleetindex

import (
	"container/list"
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// Series is a device's performance over a period, for its chart.
type Series struct {
	From, To time.Time
	// Points are the samples, averaged into at most the points asked for (Disk: the fullest).
	Points []Point
	// Samples is how many samples the points summarise.
	Samples int
	Boots   []Boot
	Gaps    []Gap
}

// hourlyAbove is the period from which charts are drawn from hourly aggregates rather than the samples.
const hourlyAbove = 48 * time.Hour

// Series reads the device's samples between from and to. Batches are immutable, so each is read once and kept in
// a cache: the samples of recently charted batches, bounded by samples, and each batch's hourly aggregates, which
// charts of more than two days draw from and which are 60 times smaller. A chart lists only the device's days it
// covers, never the bucket.
func (x *Index) Series(ctx context.Context, deviceID string, from, to time.Time, points int) (Series, error) {
	from, to = from.UTC(), to.UTC()
	s := Series{From: from, To: to}
	keys, err := x.batchKeys(ctx, deviceID, from, to)
	if err != nil {
		return s, err
	}
	hourly := to.Sub(from) > hourlyAbove
	batches, err := x.batches(ctx, keys, hourly)
	if err != nil {
		return s, err
	}
	var all []Point
	for _, b := range batches {
		ps := b.points
		if hourly {
			ps = b.hours
		}
		for _, p := range ps {
			if !p.Time.Before(from) && !p.Time.After(to) {
				all = append(all, p)
			}
		}
		for _, bt := range b.boots {
			if !bt.Time.Before(from) && !bt.Time.After(to) {
				s.Boots = append(s.Boots, bt)
			}
		}
		for _, g := range b.gaps {
			if !g.At.Before(from) && !g.At.After(to) {
				s.Gaps = append(s.Gaps, g)
			}
		}
	}
	slices.SortFunc(all, func(a, b Point) int { return a.Time.Compare(b.Time) })
	for _, p := range all {
		s.Samples += p.weight()
	}
	s.Points = downsample(all, from, to, points)
	return s, nil
}

// batchKeys lists the device's batches that may hold samples between from and to, in pages of one listing: a
// batch is dated by its first record, so those of the day before the period may reach into it.
func (x *Index) batchKeys(ctx context.Context, deviceID string, from, to time.Time) ([]string, error) {
	prefix := protocol.RecordsPrefix(deviceID)
	after := protocol.RecordsDatePrefix(deviceID, from.AddDate(0, 0, -1))
	end := protocol.RecordsDatePrefix(deviceID, to.AddDate(0, 0, 1))
	var keys []string
	for {
		objs, err := x.store.ListInfo(ctx, storagepool.ListOptions{Prefix: prefix, StartAfter: after, Recursive: true, Limit: listPage})
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if o.Key >= end {
				return keys, nil
			}
			keys = append(keys, o.Key)
		}
		if len(objs) < listPage {
			return keys, nil
		}
		after = objs[len(objs)-1].Key
	}
}

// batches returns the parsed batches, from the caches or read in parallel; with hourly, only their hourly
// aggregates (and boots and gaps) are needed.
func (x *Index) batches(ctx context.Context, keys []string, hourly bool) ([]batch, error) {
	out := make([]batch, len(keys))
	var reads []read
	for i, k := range keys {
		if hourly {
			if b, ok := x.hourly.get(k); ok {
				out[i] = b
				continue
			}
		}
		if b, ok := x.series.get(k); ok {
			out[i] = b
			continue
		}
		reads = append(reads, read{key: k, limit: maxBatchBytes, apply: func(data []byte) {
			b, err := parseBatch(data)
			if err != nil {
				x.log.Warn("Skipping an unreadable batch", "key", k, "error", err)
			}
			x.cache(k, b, !hourly)
			out[i] = b
		}})
	}
	if err := x.readAll(ctx, reads); err != nil {
		return nil, err
	}
	return out, nil
}

// cache keeps a parsed batch's hourly aggregates and, with samples, its samples.
func (x *Index) cache(key string, b batch, samples bool) {
	stripped := b
	stripped.points = nil
	x.hourly.put(key, stripped)
	if samples {
		x.series.put(key, b)
	}
}

// downsample averages the points into at most n buckets of equal length across the period; a bucket's disk is
// its fullest sample, so that a short spike stays visible.
func downsample(all []Point, from, to time.Time, n int) []Point {
	if n <= 0 || len(all) <= n {
		return all
	}
	width := to.Sub(from) / time.Duration(n)
	if width <= 0 {
		return all
	}
	var out []Point
	i := 0
	for i < len(all) {
		// A sample at to itself (or in the remainder of the division) belongs to the last bucket.
		bucket := min(all[i].Time.Sub(from)/width, time.Duration(n-1))
		end := from.Add((bucket + 1) * width)
		if bucket == time.Duration(n-1) {
			end = to.Add(1)
		}
		var cpu, mem avg
		disk := math.NaN()
		var last Point
		n := 0
		for ; i < len(all) && all[i].Time.Before(end); i++ {
			p := all[i]
			cpu.addN(p.CPU, p.weight())
			mem.addN(p.Mem, p.weight())
			n += p.weight()
			if !isNaN(p.Disk) && (isNaN(disk) || p.Disk > disk) {
				disk = p.Disk
			}
			last = p
		}
		out = append(out, Point{Time: last.Time, CPU: cpu.value(), Mem: mem.value(), Disk: disk, Samples: n})
	}
	return out
}

type avg struct {
	sum float64
	n   int
}

func (a *avg) add(v float64) { a.addN(v, 1) }

// addN adds v as the average of n samples.
func (a *avg) addN(v float64, n int) {
	if !isNaN(v) {
		a.sum += v * float64(n)
		a.n += n
	}
}

func (a avg) value() float64 {
	if a.n == 0 {
		return math.NaN()
	}
	return a.sum / float64(a.n)
}

// seriesCache keeps parsed batches, least recently used dropped first, bounded by their samples.
type seriesCache struct {
	mu    sync.Mutex
	limit int
	size  int
	lru   *list.List // of *cached, most recent at the front
	byKey map[string]*list.Element
}

type cached struct {
	key string
	b   batch
}

func newSeriesCache(limit int) *seriesCache {
	return &seriesCache{limit: limit, lru: list.New(), byKey: map[string]*list.Element{}}
}

func (c *seriesCache) get(key string) (batch, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return batch{}, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cached).b, true
}

func (c *seriesCache) put(key string, b batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[key]; ok {
		return
	}
	c.byKey[key] = c.lru.PushFront(&cached{key: key, b: b})
	c.size += cost(b)
	for c.size > c.limit && c.lru.Len() > 1 {
		e := c.lru.Back()
		old := e.Value.(*cached)
		c.lru.Remove(e)
		delete(c.byKey, old.key)
		c.size -= cost(old.b)
	}
}

func cost(b batch) int { return len(b.points) + len(b.hours) + len(b.boots) + len(b.gaps) + 1 }
