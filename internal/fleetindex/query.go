package fleetindex

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Health of a device, as the device list filters it.
const (
	HealthOK       = "ok"
	HealthPressure = "pressure" // memory or a disk at least PressurePercent full in the newest sample
	HealthStale    = "stale"    // not seen for StaleAfter
	HealthNoData   = "no data"  // no sample within the window
)

// PressurePercent is the memory or disk use from which a device is under pressure.
const PressurePercent = 90

// Health classifies a device at now.
func (d Device) Health(now time.Time, staleAfter time.Duration) string {
	switch {
	case now.Sub(d.LastSeen) > staleAfter:
		return HealthStale
	case d.Latest == nil:
		return HealthNoData
	case d.Latest.Mem >= PressurePercent || d.Latest.Disk >= PressurePercent:
		return HealthPressure
	}
	return HealthOK
}

// Name is how the dashboard names the device: its hostname, or its ID before it sent one.
func (d Device) Name() string { return cmp.Or(d.Hostname, d.ID) }

// OSName is the device's operating system as its newest inventory names it.
func (d Device) OSName() string {
	if d.Inventory != nil {
		if n := d.Inventory.OSName(); n != "" {
			return n
		}
	}
	return d.OS
}

// Query selects and orders devices for the device list.
type Query struct {
	// Search matches the name, ID, OS or CPU model, case-insensitively.
	Search string
	// OS is an exact OSName.
	OS string
	// Health is one of the Health values.
	Health string
	// SeenWithin keeps devices seen within it; NotSeenFor those not seen for it.
	SeenWithin, NotSeenFor time.Duration
	// Sort is "name" (default), "os", "seen", "cpu", "memory", "disk" or "questions"; Desc reverses it.
	Sort   string
	Desc   bool
	Offset int
	Limit  int
}

// Row is a device in the device list.
type Row struct {
	Device
	Health string
}

// Result is a page of the device list.
type Result struct {
	Rows []Row
	// Total is how many devices match; Fleet how many there are.
	Total, Fleet int
	// OSes are the fleet's operating systems, for the filter.
	OSes []string
}

// Devices answers a device list query.
func (x *Index) Devices(q Query) Result {
	now := x.opts.Now()
	search := strings.ToLower(strings.TrimSpace(q.Search))
	x.mu.RLock()
	var res Result
	oses := map[string]bool{}
	rows := make([]Row, 0, len(x.devices))
	for _, d := range x.devices {
		os := d.OSName()
		if os != "" {
			oses[os] = true
		}
		if q.OS != "" && os != q.OS {
			continue
		}
		health := d.Health(now, x.opts.StaleAfter)
		if q.Health != "" && health != q.Health {
			continue
		}
		seen := now.Sub(d.LastSeen)
		if (q.SeenWithin > 0 && seen > q.SeenWithin) || (q.NotSeenFor > 0 && seen < q.NotSeenFor) {
			continue
		}
		if search != "" && !d.matches(search) {
			continue
		}
		rows = append(rows, Row{Device: d.Device, Health: health})
	}
	res.Fleet = len(x.devices)
	x.mu.RUnlock()

	sortRows(rows, q.Sort, q.Desc)
	res.Total = len(rows)
	res.OSes = make([]string, 0, len(oses))
	for os := range oses {
		res.OSes = append(res.OSes, os)
	}
	sort.Strings(res.OSes)
	lo := min(max(q.Offset, 0), len(rows))
	hi := len(rows)
	if q.Limit > 0 {
		hi = min(lo+q.Limit, len(rows))
	}
	res.Rows = rows[lo:hi]
	return res
}

func (d *device) matches(search string) bool {
	fields := []string{d.Hostname, d.ID, d.OSName()}
	if d.Inventory != nil {
		fields = append(fields, d.Inventory.CPU.Model)
	}
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), search) {
			return true
		}
	}
	return false
}

// sortRows orders rows by the key, ties by name and ID; devices without a value sort last either way.
func sortRows(rows []Row, key string, desc bool) {
	value := func(r Row) float64 {
		if r.Latest == nil {
			return math.NaN()
		}
		switch key {
		case "cpu":
			return r.Latest.CPU
		case "memory":
			return r.Latest.Mem
		case "disk":
			return r.Latest.Disk
		}
		return math.NaN()
	}
	byName := func(a, b Row) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name()), strings.ToLower(b.Name())), cmp.Compare(a.ID, b.ID))
	}
	dir := func(c int) int {
		if desc {
			return -c
		}
		return c
	}
	slices.SortFunc(rows, func(a, b Row) int {
		var c int
		switch key {
		case "os":
			c = dir(cmp.Compare(a.OSName(), b.OSName()))
		case "seen":
			c = dir(a.LastSeen.Compare(b.LastSeen))
		case "questions":
			c = dir(cmp.Or(cmp.Compare(a.Unanswered, b.Unanswered), cmp.Compare(a.Questions, b.Questions)))
		case "cpu", "memory", "disk":
			va, vb := value(a), value(b)
			switch {
			case isNaN(va) && isNaN(vb):
			case isNaN(va):
				return 1
			case isNaN(vb):
				return -1
			default:
				c = dir(cmp.Compare(va, vb))
			}
		default:
			c = dir(byName(a, b))
		}
		return cmp.Or(c, byName(a, b))
	})
}

// DeviceDetail is a device with what its page shows besides the chart.
type DeviceDetail struct {
	Device
	Health    string
	Boots     []Boot
	Gaps      []Gap
	Questions []Question
}

// Device returns a device's detail; ok is false for a device the index does not know.
func (x *Index) Device(id string) (DeviceDetail, bool) {
	now := x.opts.Now()
	x.mu.RLock()
	defer x.mu.RUnlock()
	d := x.devices[id]
	if d == nil {
		return DeviceDetail{}, false
	}
	out := DeviceDetail{Device: d.Device, Health: d.Health(now, x.opts.StaleAfter),
		Boots: slices.Clone(d.Boots), Gaps: slices.Clone(d.Gaps)}
	for _, q := range x.questions {
		if q.DeviceID == id && q.Text != "" {
			out.Questions = append(out.Questions, *q)
		}
	}
	slices.SortFunc(out.Boots, func(a, b Boot) int { return b.Time.Compare(a.Time) })
	out.Boots = slices.CompactFunc(out.Boots, func(a, b Boot) bool { return a.Time.Equal(b.Time) })
	slices.SortFunc(out.Gaps, func(a, b Gap) int { return b.At.Compare(a.At) })
	sortInbox(out.Questions)
	return out, true
}

// InboxItem is a question in the inbox, with the name of the device that asked it.
type InboxItem struct {
	Question
	DeviceName string
}

// Inbox lists questions: unanswered first, oldest first (the longest waiting on top), then answered ones, most
// recently asked first. With unansweredOnly, only the first part.
func (x *Index) Inbox(unansweredOnly bool, limit int) (items []InboxItem, unanswered int) {
	x.mu.RLock()
	for _, q := range x.questions {
		if q.Text == "" {
			continue
		}
		if len(q.Answers) == 0 {
			unanswered++
		} else if unansweredOnly {
			continue
		}
		item := InboxItem{Question: *q, DeviceName: q.DeviceID}
		if d := x.devices[q.DeviceID]; d != nil {
			item.DeviceName = d.Name()
		}
		items = append(items, item)
	}
	x.mu.RUnlock()
	slices.SortFunc(items, func(a, b InboxItem) int { return compareInbox(a.Question, b.Question) })
	if limit > 0 && len(items) > limit {
		items = items[:limit]
	}
	return items, unanswered
}

func sortInbox(qs []Question) { slices.SortFunc(qs, compareInbox) }

func compareInbox(a, b Question) int {
	ua, ub := len(a.Answers) == 0, len(b.Answers) == 0
	switch {
	case ua && !ub:
		return -1
	case !ua && ub:
		return 1
	case ua:
		return cmp.Or(a.StoredAt.Compare(b.StoredAt), cmp.Compare(a.ID, b.ID))
	}
	return cmp.Or(b.StoredAt.Compare(a.StoredAt), cmp.Compare(a.ID, b.ID))
}

// Question returns one question.
func (x *Index) Question(deviceID, id string) (Question, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	q := x.questions[deviceID+"/"+id]
	if q == nil || q.Text == "" {
		return Question{}, false
	}
	return *q, true
}

// Summary counts what the front page shows.
type Summary struct {
	Devices, Stale, Pressure, Questions, Unanswered int
}

// Summary counts the fleet.
func (x *Index) Summary() Summary {
	now := x.opts.Now()
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := Summary{Devices: len(x.devices)}
	for _, d := range x.devices {
		switch d.Health(now, x.opts.StaleAfter) {
		case HealthStale:
			s.Stale++
		case HealthPressure:
			s.Pressure++
		}
	}
	for _, q := range x.questions {
		if q.Text != "" {
			s.Questions++
			if len(q.Answers) == 0 {
				s.Unanswered++
			}
		}
	}
	return s
}

// Staff returns the staff accounts, removed ones included, by name.
func (x *Index) Staff() []StaffAccount {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]StaffAccount, 0, len(x.staff))
	for _, e := range x.staff {
		out = append(out, e.Account)
	}
	slices.SortFunc(out, func(a, b StaffAccount) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// StaffAccount returns one staff account (it may be removed) and the ETag it was read with.
func (x *Index) StaffAccount(name string) (StaffAccount, string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.staff[StaffKey(name)]
	return e.Account, e.ETag, ok
}

// StaleAfter is the index's stale threshold.
func (x *Index) StaleAfter() time.Duration { return x.opts.StaleAfter }
