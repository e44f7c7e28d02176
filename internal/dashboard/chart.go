package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/supportstack/supportstack/internal/fleetindex"
)

// The device page's chart is SVG drawn here, on the server: the page needs no script and no CDN, and works with
// no internet. Its text alternative (title and description) says what it shows in figures.

const (
	chartWidth, chartHeight = 800, 260
	padLeft, padRight       = 44, 12
	padTop, padBottom       = 12, 28
)

type line struct {
	name, color string
	value       func(fleetindex.Point) float64
}

var chartLines = []line{
	{"CPU", "#1f5fbf", func(p fleetindex.Point) float64 { return p.CPU }},
	{"Memory", "#b35900", func(p fleetindex.Point) float64 { return p.Mem }},
	{"Fullest disk", "#177245", func(p fleetindex.Point) float64 { return p.Disk }},
}

// chart draws the series' CPU, memory and fullest-disk use in percent over its period.
func chart(s fleetindex.Series) template.HTML {
	var b strings.Builder
	span := s.To.Sub(s.From)
	if span <= 0 {
		span = time.Hour
	}
	x := func(t time.Time) float64 {
		return padLeft + float64(t.Sub(s.From))/float64(span)*(chartWidth-padLeft-padRight)
	}
	y := func(v float64) float64 {
		return padTop + (100-math.Max(0, math.Min(100, v)))/100*(chartHeight-padTop-padBottom)
	}
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="chart-title chart-desc" xmlns="http://www.w3.org/2000/svg">`, chartWidth, chartHeight)
	fmt.Fprintf(&b, `<title id="chart-title">CPU, memory and disk use, %s to %s (UTC)</title>`, s.From.Format("2006-01-02 15:04"), s.To.Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, `<desc id="chart-desc">%s</desc>`, template.HTMLEscapeString(describe(s)))
	for _, v := range []float64{0, 25, 50, 75, 100} {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#d5dae1" stroke-width="1"/>`, padLeft, chartWidth-padRight, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end" fill="#3b4654">%g%%</text>`, padLeft-6, y(v)+4, v)
	}
	for i := 0; i <= 4; i++ {
		t := s.From.Add(span * time.Duration(i) / 4)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="%s" fill="#3b4654">%s</text>`, x(t), chartHeight-8, anchor, tickLabel(t, span))
	}
	for _, bt := range s.Boots {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#6b2fa0" stroke-width="1" stroke-dasharray="3 3"><title>boot %s</title></line>`,
			x(bt.Time), x(bt.Time), padTop, chartHeight-padBottom, bt.Time.Format("2006-01-02 15:04"))
	}
	// A gap longer than a few sample intervals (the PC was off) breaks the line rather than bridging it.
	maxStep := span / 40
	for _, l := range chartLines {
		var path strings.Builder
		var prev time.Time
		for _, p := range s.Points {
			v := l.value(p)
			if math.IsNaN(v) {
				prev = time.Time{}
				continue
			}
			cmd := "L"
			if prev.IsZero() || p.Time.Sub(prev) > maxStep {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, x(p.Time), y(v))
			prev = p.Time
		}
		if path.Len() > 0 {
			fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.6"/>`, strings.TrimSpace(path.String()), l.color)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped text only
}

func tickLabel(t time.Time, span time.Duration) string {
	if span <= 24*time.Hour {
		return t.Format("15:04")
	}
	return t.Format("Jan 2 15:04")
}

// describe is the chart's text alternative: each line's average and peak.
func describe(s fleetindex.Series) string {
	if len(s.Points) == 0 {
		return "No samples in this period."
	}
	var parts []string
	for _, l := range chartLines {
		sum, n, peak := 0.0, 0, math.NaN()
		for _, p := range s.Points {
			if v := l.value(p); !math.IsNaN(v) {
				sum += v
				n++
				if math.IsNaN(peak) || v > peak {
					peak = v
				}
			}
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s averaged %.0f%%, peaked at %.0f%%", l.name, sum/float64(n), peak))
		}
	}
	return fmt.Sprintf("%d samples. %s.", s.Samples, strings.Join(parts, "; "))
}
