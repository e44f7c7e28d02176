package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/supportstack/supportstack/internal/fleetindex"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"ago":   ago,
	"pct":   pct,
	"bytes": humanBytes,
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	// query returns the query with key set to value (and the page reset), for links that change one choice.
	"query": func(q url.Values, kv ...string) string {
		out := url.Values{}
		for k, v := range q {
			out[k] = v
		}
		out.Del("page")
		out.Del("notice")
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				out.Del(kv[i])
			} else {
				out.Set(kv[i], kv[i+1])
			}
		}
		return "?" + out.Encode()
	},
	"page": func(q url.Values, n int) string {
		out := url.Values{}
		for k, v := range q {
			out[k] = v
		}
		out.Del("notice")
		out.Set("page", strconv.Itoa(n))
		return "?" + out.Encode()
	},
	"add": func(a, b int) int { return a + b },
	// measure shows a ranked value in its unit.
	"measure": func(v float64, unit string) string {
		switch unit {
		case "s":
			return (time.Duration(v*10) * time.Second / 10).String()
		case "%":
			return fmt.Sprintf("%.1f %%", v)
		}
		return fmt.Sprintf("%g %s", v, unit)
	},
	"questionView": func(q fleetindex.Question, csrf, back string, now time.Time) questionView {
		return questionView{Q: q, CSRF: csrf, Back: back, Now: now}
	},
	"inboxView": func(item fleetindex.InboxItem, csrf, back string, now time.Time) questionView {
		return questionView{Q: item.Question, DeviceName: item.DeviceName, CSRF: csrf, Back: back, Now: now}
	},
	// columns pairs column keys with labels.
	"columns": func(kv ...string) []column {
		var out []column
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, column{Key: kv[i], Label: kv[i+1], Numeric: kv[i] == "cpu" || kv[i] == "memory" || kv[i] == "disk" || kv[i] == "questions"})
		}
		return out
	},
	"cond": func(ok bool, a, b string) string {
		if ok {
			return a
		}
		return b
	},
}

// questionView is a question with its answer form.
type questionView struct {
	Q fleetindex.Question
	// DeviceName is set where the page lists several devices' questions.
	DeviceName, CSRF, Back string
	Now                    time.Time
}

// column is a sortable column of the device list.
type column struct {
	Key, Label string
	Numeric    bool
}

// ago says how long before now t was, coarsely.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f %%", v)
}

func humanBytes(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
