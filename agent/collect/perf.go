package collect

import (
	"context"
	"net"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	psnet "github.com/shirou/gopsutil/v4/net"
)

// Perf is the data of a performance record. Deltas cover IntervalSeconds, the time since the previous sample.
type Perf struct {
	IntervalSeconds float64       `json:"intervalSeconds"`
	CPUPercent      *float64      `json:"cpuPercent,omitempty"`
	MemUsedPercent  *float64      `json:"memUsedPercent,omitempty"`
	MemUsedBytes    uint64        `json:"memUsedBytes,omitempty"`
	MemTotalBytes   uint64        `json:"memTotalBytes,omitempty"`
	UptimeSeconds   uint64        `json:"uptimeSeconds,omitempty"`
	Load            *load.AvgStat `json:"load,omitempty"`
	Disks           []DiskUsage   `json:"disks,omitempty"`
	DiskIO          []DiskIO      `json:"diskIO,omitempty"`
	Net             *NetIO        `json:"net,omitempty"`
}

// DiskUsage is the fill level of one mount.
type DiskUsage struct {
	Mount       string  `json:"mount"`
	UsedPercent float64 `json:"usedPercent"`
	UsedBytes   uint64  `json:"usedBytes"`
	TotalBytes  uint64  `json:"totalBytes"`
}

// DiskIO is one block device's IO since the previous sample.
type DiskIO struct {
	Device     string `json:"device"`
	ReadBytes  uint64 `json:"readBytes"`
	WriteBytes uint64 `json:"writeBytes"`
	Reads      uint64 `json:"reads"`
	Writes     uint64 `json:"writes"`
}

// NetIO is the traffic of all non-loopback interfaces since the previous sample.
type NetIO struct {
	BytesSent uint64 `json:"bytesSent"`
	BytesRecv uint64 `json:"bytesRecv"`
}

const maxDiskIO = 32

type counters struct {
	at         time.Time
	cpu        *cpu.TimesStat
	disk       map[string]disk.IOCountersStat
	net        bool
	sent, recv uint64
}

// PerfSampler takes performance samples; each one reports the deltas since the one before. It is not safe
// for concurrent use.
type PerfSampler struct {
	prev *counters
}

// Prime reads the counters the first sample is measured against.
func (p *PerfSampler) Prime(ctx context.Context, now time.Time) {
	p.prev = readCounters(ctx, now)
}

// Sample returns a performance sample taken at now.
func (p *PerfSampler) Sample(ctx context.Context, now time.Time) Perf {
	cur := readCounters(ctx, now)
	prev := p.prev
	p.prev = cur
	var out Perf
	if prev != nil {
		out.IntervalSeconds = round(cur.at.Sub(prev.at).Seconds(), 3)
		if prev.cpu != nil && cur.cpu != nil {
			if pct, ok := cpuPercent(*prev.cpu, *cur.cpu); ok {
				out.CPUPercent = &pct
			}
		}
		out.DiskIO = diskDeltas(prev.disk, cur.disk)
		if prev.net && cur.net {
			out.Net = &NetIO{BytesSent: delta(prev.sent, cur.sent), BytesRecv: delta(prev.recv, cur.recv)}
		}
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		pct := round(vm.UsedPercent, 2)
		out.MemUsedPercent, out.MemUsedBytes, out.MemTotalBytes = &pct, vm.Used, vm.Total
	}
	if up, err := host.UptimeWithContext(ctx); err == nil {
		out.UptimeSeconds = up
	}
	if runtime.GOOS != "windows" { // Windows has no load average
		if avg, err := load.AvgWithContext(ctx); err == nil {
			out.Load = avg
		}
	}
	if parts, err := mounts(ctx); err == nil {
		for _, m := range parts {
			u, err := disk.UsageWithContext(ctx, m.Mountpoint)
			if err != nil || u.Total == 0 {
				continue
			}
			out.Disks = append(out.Disks, DiskUsage{Mount: m.Mountpoint, UsedPercent: round(u.UsedPercent, 2), UsedBytes: u.Used, TotalBytes: u.Total})
			if len(out.Disks) == maxDisks {
				break
			}
		}
	}
	return out
}

func readCounters(ctx context.Context, now time.Time) *counters {
	c := &counters{at: now}
	if ts, err := cpu.TimesWithContext(ctx, false); err == nil && len(ts) > 0 {
		c.cpu = &ts[0]
	}
	if io, err := disk.IOCountersWithContext(ctx); err == nil {
		c.disk = io
	}
	if nics, err := psnet.IOCountersWithContext(ctx, true); err == nil {
		loop := loopbacks()
		for _, n := range nics {
			if loop[n.Name] || n.Name == "lo" || strings.HasPrefix(n.Name, "lo0") || strings.HasPrefix(n.Name, "Loopback") {
				continue
			}
			c.sent += n.BytesSent
			c.recv += n.BytesRecv
		}
		c.net = true
	}
	return c
}

func loopbacks() map[string]bool {
	m := map[string]bool{}
	ifs, err := net.Interfaces()
	if err != nil {
		return m
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			m[i.Name] = true
		}
	}
	return m
}

// cpuPercent is the busy share of CPU time between two readings.
func cpuPercent(a, b cpu.TimesStat) (float64, bool) {
	ta, ba := busy(a)
	tb, bb := busy(b)
	if tb <= ta {
		return 0, false
	}
	pct := (bb - ba) / (tb - ta) * 100
	return round(min(max(pct, 0), 100), 2), true
}

func busy(t cpu.TimesStat) (total, busy float64) {
	total = t.Total()
	if runtime.GOOS == "linux" {
		total -= t.Guest + t.GuestNice // already counted in user and nice
	}
	return total, total - t.Idle - t.Iowait
}

func diskDeltas(prev, cur map[string]disk.IOCountersStat) []DiskIO {
	var out []DiskIO
	for name, c := range cur {
		if skipBlockDevice(name) {
			continue
		}
		p, ok := prev[name]
		if !ok {
			continue
		}
		out = append(out, DiskIO{
			Device:     name,
			ReadBytes:  delta(p.ReadBytes, c.ReadBytes),
			WriteBytes: delta(p.WriteBytes, c.WriteBytes),
			Reads:      delta(p.ReadCount, c.ReadCount),
			Writes:     delta(p.WriteCount, c.WriteCount),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	if len(out) > maxDiskIO {
		out = out[:maxDiskIO]
	}
	return out
}

func skipBlockDevice(name string) bool {
	for _, p := range []string{"loop", "ram", "zram", "sr", "fd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// delta is b-a for a counter; a counter that went back (reset, wrap) counts as no traffic.
func delta(a, b uint64) uint64 {
	if b < a {
		return 0
	}
	return b - a
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}
