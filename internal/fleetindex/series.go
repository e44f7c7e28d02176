package fleetindex

import (
	"container/list"
	"context"
	"errors"
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

// maxBatchesPerDay bounds the batches listed for one day of one device.
const maxBatchesPerDay = 10_000

// Series reads the device's samples between from and to. Batches are immutable, so each is read once and kept
// in a cache bounded by samples; a chart lists only the device's days it covers, never the bucket.
func (x *Index) Series(ctx context.Context, deviceID string, from, to time.Time, points int) (Series, error) {
	from, to = from.UTC(), to.UTC()
	s := Series{From: from, To: to}
	// A batch is dated by its first record, so the day before the period may hold some of its samples.
	var keys []string
	for day := from.Truncate(24*time.Hour).AddDate(0, 0, -1); !day.After(to); day = day.AddDate(0, 0, 1) {
		objs, err := x.store.ListInfo(ctx, storagepool.ListOptions{Prefix: protocol.RecordsDatePrefix(deviceID, day),
			Recursive: true, Limit: maxBatchesPerDay})
		if err != nil {
			return s, err
		}
		for _, o := range objs {
			keys = append(keys, o.Key)
		}
	}
	batches, err := x.batches(ctx, keys)
	if err != nil {
		return s, err
	}
	var all []Point
	for _, b := range batches {
		for _, p := range b.points {
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
	s.Samples = len(all)
	s.Points = downsample(all, from, to, points)
	return s, nil
}

// batches returns the parsed batches, from the cache or read in parallel.
func (x *Index) batches(ctx context.Context, keys []string) ([]batch, error) {
	out := make([]batch, len(keys))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, readConcurrency)
	)
	for i, k := range keys {
		if b, ok := x.series.get(k); ok {
			out[i] = b
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			data, err := x.store.Get(ctx, k, maxBatchBytes)
			if errors.Is(err, storagepool.ErrNotFound) || errors.Is(err, storagepool.ErrTooLarge) {
				return
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			b, err := parseBatch(data)
			if err != nil {
				x.log.Warn("Skipping an unreadable batch", "key", k, "error", err)
			}
			x.series.put(k, b)
			out[i] = b
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return out, nil
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
		bucket := all[i].Time.Sub(from) / width
		end := from.Add((bucket + 1) * width)
		var cpu, mem avg
		disk := math.NaN()
		var last Point
		for ; i < len(all) && all[i].Time.Before(end); i++ {
			p := all[i]
			cpu.add(p.CPU)
			mem.add(p.Mem)
			if !isNaN(p.Disk) && (isNaN(disk) || p.Disk > disk) {
				disk = p.Disk
			}
			last = p
		}
		out = append(out, Point{Time: last.Time, CPU: cpu.value(), Mem: mem.value(), Disk: disk})
	}
	return out
}

type avg struct {
	sum float64
	n   int
}

func (a *avg) add(v float64) {
	if !isNaN(v) {
		a.sum += v
		a.n++
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

func cost(b batch) int { return len(b.points) + len(b.boots) + len(b.gaps) + 1 }
