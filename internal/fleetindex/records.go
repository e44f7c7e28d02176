package fleetindex

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// The record data the index reads. The agent (agent/collect) defines the full shapes; the index decodes only the
// fields it shows, so that an agent adding a field never breaks the dashboard.

// Inventory is the part of a device's inventory record the dashboard shows.
type Inventory struct {
	Hostname        string `json:"hostname"`
	OS              string `json:"os"`
	Arch            string `json:"arch"`
	Platform        string `json:"platform"`
	PlatformVersion string `json:"platformVersion"`
	KernelVersion   string `json:"kernelVersion"`
	CPU             struct {
		Model        string `json:"model"`
		LogicalCores int    `json:"logicalCores"`
	} `json:"cpu"`
	MemoryBytes uint64 `json:"memoryBytes"`
	Disks       []struct {
		Mount      string `json:"mount"`
		FSType     string `json:"fsType"`
		TotalBytes uint64 `json:"totalBytes"`
	} `json:"disks"`
	AgentVersion string `json:"agentVersion"`
}

// OSName is the operating system as people name it: "ubuntu 24.04" rather than "linux" when the agent knows.
func (inv *Inventory) OSName() string {
	if inv.Platform != "" {
		if inv.PlatformVersion != "" {
			return inv.Platform + " " + inv.PlatformVersion
		}
		return inv.Platform
	}
	return inv.OS
}

type perfData struct {
	CPUPercent     *float64 `json:"cpuPercent"`
	MemUsedPercent *float64 `json:"memUsedPercent"`
	UptimeSeconds  uint64   `json:"uptimeSeconds"`
	Disks          []struct {
		UsedPercent float64 `json:"usedPercent"`
	} `json:"disks"`
}

type bootData struct {
	Type     string    `json:"type"`
	BootTime time.Time `json:"bootTime"`
}

// Point is one performance sample: CPU and memory use and the fullest disk, in percent; NaN where the sample
// has no value. Uptime is the PC's uptime when sampled. A point that aggregates samples (an hour's, or a chart's
// bucket) holds their average CPU and memory, their fullest disk, and how many they were in Samples.
type Point struct {
	Time           time.Time
	CPU, Mem, Disk float64
	Uptime         uint64
	Samples        int
}

// weight is how many samples the point stands for.
func (p Point) weight() int { return max(p.Samples, 1) }

// Boot is a boot the agent reported.
type Boot struct {
	Time time.Time `json:"time"`
}

// Gap is telemetry or questions the PC dropped (a full spool, a corrupt spool file), as its agent reported.
type Gap struct {
	At time.Time `json:"at"`
	protocol.Gap
}

// batch is what a batch object holds for the dashboard.
type batch struct {
	points []Point
	// hours aggregate the points by hour (Time: the hour's start).
	hours []Point
	boots []Boot
	gaps  []Gap
}

// maxBatchBytes bounds a batch object as read (ingest stores at most its decoded limit, gzip-compressed).
const maxBatchBytes = 32 << 20

// parseBatch reads a batch object (gzip NDJSON of protocol.Record). Records the dashboard does not show, and
// records it cannot decode, are skipped: one odd record must not hide a device's others.
func parseBatch(data []byte) (batch, error) {
	var b batch
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return b, fmt.Errorf("not a gzip batch: %w", err)
	}
	sc := bufio.NewScanner(io.LimitReader(zr, maxBatchBytes))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// One pass: the data of every kind the dashboard shows decodes into one value (their fields differ).
		var rec struct {
			Kind protocol.Kind `json:"kind"`
			Time time.Time     `json:"time"`
			Data struct {
				perfData
				bootData
				protocol.Gap
			} `json:"data"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		switch d := &rec.Data; rec.Kind {
		case protocol.KindPerf:
			b.points = append(b.points, d.perfData.point(rec.Time))
		case protocol.KindEvent:
			if d.Type == "boot" && !d.BootTime.IsZero() {
				b.boots = append(b.boots, Boot{Time: d.BootTime.UTC()})
			}
		case protocol.KindGap:
			b.gaps = append(b.gaps, Gap{At: rec.Time.UTC(), Gap: d.Gap})
		}
	}
	b.hours = hourly(b.points)
	if err := sc.Err(); err != nil {
		return b, fmt.Errorf("read batch: %w", err)
	}
	return b, nil
}

// hourly aggregates points by the hour they fall in.
func hourly(points []Point) []Point {
	type agg struct {
		cpu, mem avg
		disk     float64
		n        int
	}
	byHour := map[int64]*agg{}
	for _, p := range points {
		h := p.Time.Unix() / 3600
		a := byHour[h]
		if a == nil {
			a = &agg{disk: math.NaN()}
			byHour[h] = a
		}
		a.cpu.add(p.CPU)
		a.mem.add(p.Mem)
		if !isNaN(p.Disk) && (isNaN(a.disk) || p.Disk > a.disk) {
			a.disk = p.Disk
		}
		a.n++
	}
	out := make([]Point, 0, len(byHour))
	for h, a := range byHour {
		out = append(out, Point{Time: time.Unix(h*3600, 0).UTC(), CPU: a.cpu.value(), Mem: a.mem.value(), Disk: a.disk, Samples: a.n})
	}
	slices.SortFunc(out, func(a, b Point) int { return a.Time.Compare(b.Time) })
	return out
}

func (d perfData) point(t time.Time) Point {
	p := Point{Time: t.UTC(), CPU: math.NaN(), Mem: math.NaN(), Disk: math.NaN(), Uptime: d.UptimeSeconds}
	if d.CPUPercent != nil {
		p.CPU = *d.CPUPercent
	}
	if d.MemUsedPercent != nil {
		p.Mem = *d.MemUsedPercent
	}
	for _, disk := range d.Disks {
		if math.IsNaN(p.Disk) || disk.UsedPercent > p.Disk {
			p.Disk = disk.UsedPercent
		}
	}
	return p
}
