package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/supportstack/supportstack/internal/fleetindex"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// The fleet's insights are computed from the index and stored in the bucket under InsightsPrefix, one object per
// computation named by its time, so that they replicate like everything else and every replica of either
// cluster may write without overwriting another's.

// InsightsPrefix is where stored insights are kept.
const InsightsPrefix = "aggregates/insights/"

// DefaultInsightsInterval is how often the insights are computed and stored.
const DefaultInsightsInterval = 15 * time.Minute

// InsightsKey is where the insights computed at t are kept.
func InsightsKey(t time.Time) string {
	return InsightsPrefix + t.UTC().Format("20060102T150405Z") + ".json"
}

type insightsPage struct {
	base
	fleetindex.Insights
	StoredKey string
}

func (d *dashboard) insights(w http.ResponseWriter, r *http.Request, s session) {
	in, key := d.latestInsights()
	render(w, http.StatusOK, "insights.html", insightsPage{base: d.base(r, s, "Fleet insights", "insights"), Insights: in, StoredKey: key})
}

func (d *dashboard) insightsJSON(w http.ResponseWriter, _ *http.Request, _ session) {
	in, _ := d.latestInsights()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(in)
}

// latestInsights are those computed now when the index is built (they cost milliseconds), with the key of the
// newest stored ones.
func (d *dashboard) latestInsights() (fleetindex.Insights, string) {
	d.insightsMu.Lock()
	key := d.insightsKey
	d.insightsMu.Unlock()
	return d.index.Insights(), key
}

// writeInsights stores the insights every interval once the index is built, unless a replica stored some
// within the interval.
func (d *dashboard) writeInsights(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(min(interval, 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if built, _ := d.index.Built(); !built {
			continue
		}
		if key, err := d.storeInsights(ctx, interval); err != nil {
			d.cfg.Logger.Info("Could not store the fleet's insights; trying again later", "error", err)
		} else if key != "" {
			d.insightsMu.Lock()
			d.insightsKey = key
			d.insightsMu.Unlock()
		}
	}
}

// storeInsights stores the insights unless the newest stored ones are younger than interval; it returns the
// newest key.
func (d *dashboard) storeInsights(ctx context.Context, interval time.Duration) (string, error) {
	now := time.Now().UTC()
	recent, err := d.pool.ListInfo(ctx, storagepool.ListOptions{Prefix: InsightsPrefix, StartAfter: InsightsKey(now.Add(-interval)), Recursive: true, Limit: 100})
	if err != nil {
		return "", err
	}
	if len(recent) > 0 {
		return recent[len(recent)-1].Key, nil
	}
	in := d.index.Insights()
	data, err := json.Marshal(in)
	if err != nil {
		return "", err
	}
	key := InsightsKey(in.At)
	_, _, err = d.pool.Write(ctx, key, data, storagepool.WriteOptions{ContentType: "application/json", IfAbsent: true})
	if errors.Is(err, storagepool.ErrPrecondition) {
		err = nil // another replica stored the same second's
	}
	return key, err
}
