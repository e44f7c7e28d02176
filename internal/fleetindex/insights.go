package fleetindex

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Insights summarise the fleet from its devices' records: counts and rankings of measured values only.
type Insights struct {
	At time.Time `json:"at"`
	// Window is the period the sample-based figures cover.
	WindowHours float64 `json:"windowHours"`
	Devices     int     `json:"devices"`
	// OS and hardware distribution (from the newest inventories).
	OS     []Count `json:"os"`
	CPU    []Count `json:"cpu"`
	Memory []Count `json:"memory"`
	// SlowestStartup ranks devices by the median time from boot to the agent's first sample over the boots in
	// the window (boots after which the agent started within 30 minutes: it runs as a service).
	SlowestStartup []Ranked `json:"slowestStartup"`
	// MemoryPressure ranks devices by their average memory use over the last 24 hours.
	MemoryPressure []Ranked `json:"memoryPressure"`
	// DiskPressure ranks devices by their fullest disk in their newest sample.
	DiskPressure []Ranked `json:"diskPressure"`
	// Words recur in questions asked within the window: in how many questions each occurs.
	Words []Count `json:"words"`
	// NotSeen lists devices not seen for NotSeenDays, longest first; NotSeenCount counts them all.
	NotSeenDays  int      `json:"notSeenDays"`
	NotSeenCount int      `json:"notSeenCount"`
	NotSeen      []Ranked `json:"notSeen"`
}

// Count is a value and how many have it.
type Count struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// Ranked is a device and its measured value (Unit says of what), with how many samples or boots it rests on.
type Ranked struct {
	DeviceID string  `json:"deviceId"`
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Basis    int     `json:"basis"`
}

// Bounds of the insights.
const (
	topN        = 10
	topWords    = 20
	NotSeenDays = 7
)

// Insights computes the fleet's insights now.
func (x *Index) Insights() Insights {
	now := x.opts.Now().UTC()
	in := Insights{At: now, WindowHours: x.opts.Window.Hours(), NotSeenDays: NotSeenDays}
	os, cpus, mem := map[string]int{}, map[string]int{}, map[string]int{}
	dayAgo := now.Add(-24 * time.Hour).Unix()
	x.mu.RLock()
	in.Devices = len(x.devices)
	for _, d := range x.devices {
		os[cmp.Or(d.OSName(), "unknown")]++
		if d.Inventory != nil {
			cpus[cmp.Or(strings.TrimSpace(d.Inventory.CPU.Model), "unknown")]++
			mem[memoryClass(d.Inventory.MemoryBytes)]++
		}
		if s := d.startupSeconds(); s.Basis > 0 {
			s.DeviceID, s.Name = d.ID, d.Name()
			in.SlowestStartup = append(in.SlowestStartup, s)
		}
		var m avg
		n := 0
		for h, sum := range d.Memory {
			if h*3600+3600 > dayAgo {
				m.sum += sum.Total
				m.n += sum.N
				n += sum.N
			}
		}
		if m.n > 0 {
			in.MemoryPressure = append(in.MemoryPressure, Ranked{DeviceID: d.ID, Name: d.Name(), Value: round1(m.value()), Unit: "%", Basis: n})
		}
		if d.Latest != nil && !isNaN(d.Latest.Disk) {
			in.DiskPressure = append(in.DiskPressure, Ranked{DeviceID: d.ID, Name: d.Name(), Value: round1(d.Latest.Disk), Unit: "%", Basis: 1})
		}
		if days := now.Sub(d.LastSeen).Hours() / 24; days >= NotSeenDays {
			in.NotSeenCount++
			in.NotSeen = append(in.NotSeen, Ranked{DeviceID: d.ID, Name: d.Name(), Value: round1(days), Unit: "days"})
		}
	}
	words := map[string]int{}
	windowStart := now.Add(-x.opts.Window)
	for _, q := range x.questions {
		if q.Text != "" && q.StoredAt.After(windowStart) {
			for w := range distinctWords(q.Text) {
				words[w]++
			}
		}
	}
	x.mu.RUnlock()

	in.OS, in.CPU, in.Memory = counts(os, 0), counts(cpus, topN), counts(mem, 0)
	in.Words = counts(words, topWords)
	for len(in.Words) > 0 && in.Words[len(in.Words)-1].Count < 2 {
		in.Words = in.Words[:len(in.Words)-1] // a word in one question does not recur
	}
	for _, r := range []*[]Ranked{&in.SlowestStartup, &in.MemoryPressure, &in.DiskPressure, &in.NotSeen} {
		slices.SortFunc(*r, func(a, b Ranked) int { return cmp.Or(cmp.Compare(b.Value, a.Value), cmp.Compare(a.Name, b.Name)) })
		if len(*r) > topN {
			*r = (*r)[:topN]
		}
	}
	return in
}

// startupSeconds is the median time from boot to the agent's first sample over the device's boots.
func (d *device) startupSeconds() Ranked {
	var v []float64
	for _, u := range d.Startups {
		v = append(v, float64(u))
	}
	if len(v) == 0 {
		return Ranked{}
	}
	slices.Sort(v)
	median := v[len(v)/2]
	if len(v)%2 == 0 {
		median = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return Ranked{Value: round1(median), Unit: "s", Basis: len(v)}
}

func memoryClass(b uint64) string {
	if b == 0 {
		return "unknown"
	}
	gib := float64(b) / (1 << 30)
	for _, c := range []float64{2, 4, 8, 16, 32, 64} {
		if gib <= c*1.05 {
			return fmt.Sprintf("≤ %g GiB", c)
		}
	}
	return "> 64 GiB"
}

func counts(m map[string]int, limit int) []Count {
	out := make([]Count, 0, len(m))
	for v, n := range m {
		out = append(out, Count{Value: v, Count: n})
	}
	slices.SortFunc(out, func(a, b Count) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Value, b.Value)) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// stopWords are words too common to tell what questions are about.
var stopWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a about after again all also am an and any are as at be because been before being
	but by can cannot could did do does doing don done each even every for from get gets getting got had has have
	having he her here hers him his how i if in into is it its itself just keep keeps let like me more most my no
	nor not now of off on once only or other our out over own please same she should so some still such than that
	the their them then there these they this those through to too under until up very want was we were what when
	where which while who whom why will with won would you your yours hello hi thanks thank help anyone`) {
		stopWords[w] = true
	}
}

// distinctWords are the words of a question worth counting, each once.
func distinctWords(text string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' }) {
		w = strings.Trim(w, "'")
		if len([]rune(w)) >= 3 && !stopWords[w] {
			out[w] = true
		}
	}
	return out
}
