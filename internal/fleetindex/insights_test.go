package fleetindex

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A question's words worth counting: lower-cased, split at punctuation and digits, without stop words and
// words under three letters, each once.
func TestDistinctWords(t *testing.T) {
	got := distinctWords(`Why does my PRINTER keep printing blank pages?? The printer, the PRINTER! 'Outlook' crashes; ` +
		`PC ok, Wi-Fi error 0x80070005. Der Drucker ist größer`)
	require.Equal(t, []string{"blank", "crashes", "der", "drucker", "error", "größer", "ist", "outlook", "pages", "printer", "printing"},
		slices.Sorted(maps.Keys(got)))
	require.Empty(t, distinctWords("Hi, can you help? Thanks!"), "only stop words")
	require.Empty(t, distinctWords(""))
}

// index is an index with no storage, for the insights' arithmetic; now is its time.
func index(now time.Time) *Index {
	return New(nil, Options{Now: func() time.Time { return now }})
}

// Only words that occur in at least two questions of the window are listed, counted once per question, most
// frequent first; questions stored before the window and answers without their question do not count.
func TestInsightsWordsRecur(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	x := index(now)
	for id, q := range map[string]Question{
		"d1/q1": {DeviceID: "d1", ID: "q1", Text: "Printer offline", StoredAt: now.Add(-time.Hour)},
		"d2/q2": {DeviceID: "d2", ID: "q2", Text: "printer jammed, PRINTER offline, printer!", StoredAt: now.Add(-2 * time.Hour)},
		"d3/q3": {DeviceID: "d3", ID: "q3", Text: "Printer offline and Outlook slow", StoredAt: now.Add(-3 * time.Hour)},
		"d1/q4": {DeviceID: "d1", ID: "q4", Text: "Outlook is slow", StoredAt: now.Add(-8 * 24 * time.Hour)}, // before the window
		"d2/q5": {DeviceID: "d2", ID: "q5"},                                                                  // an answer's placeholder
	} {
		x.questions[id] = &q
	}
	require.Equal(t, []Count{{"offline", 3}, {"printer", 3}}, x.Insights().Words,
		"outlook and slow occur in one question of the window, jammed in one")

	x.questions["d4/q6"] = &Question{DeviceID: "d4", ID: "q6", Text: "Outlook: slow, slow, slow", StoredAt: now}
	require.Equal(t, []Count{{"offline", 3}, {"printer", 3}, {"outlook", 2}, {"slow", 2}}, x.Insights().Words)
}

// Memory sizes are classed by the power of two they are sold as, with 5 % of slack for what firmware reserves.
func TestMemoryClass(t *testing.T) {
	const gib, mib = 1 << 30, 1 << 20
	for b, want := range map[uint64]string{
		0:               "unknown",
		1 * gib:         "≤ 2 GiB",
		2 * gib:         "≤ 2 GiB",
		2*gib + 200*mib: "≤ 4 GiB",
		7800 * mib:      "≤ 8 GiB", // 8 GiB less what the firmware keeps
		8 * gib:         "≤ 8 GiB",
		8*gib + 400*mib: "≤ 8 GiB", // within 5 %
		8*gib + 512*mib: "≤ 16 GiB",
		16 * gib:        "≤ 16 GiB",
		64 * gib:        "≤ 64 GiB",
		68 * gib:        "> 64 GiB",
		128 * gib:       "> 64 GiB",
	} {
		require.Equal(t, want, memoryClass(b), "%d bytes", b)
	}
}

// A device's start-up time is the median over its boots of the smallest uptime sampled after each boot; a boot
// seen a second apart through rounding is one boot. Devices rank slowest first, with how many boots they rest on.
func TestInsightsStartupMedian(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	x := index(now)
	at := func(boot time.Time, uptime int) Point {
		return Point{Time: boot.Add(time.Duration(uptime) * time.Second), CPU: 5, Mem: 40, Disk: 50, Uptime: uint64(uptime)}
	}
	a := x.deviceLocked("a")
	a.Hostname = "alpha"
	boot1, boot2, boot3 := now.Add(-3*time.Hour), now.Add(-2*time.Hour), now.Add(-time.Hour)
	a.fold(at(boot1, 105))
	a.fold(at(boot1, 45)) // the first sample after boot 1, folded late
	// A sample whose uptime says the PC booted a second earlier, in the minute before: the same boot.
	a.fold(Point{Time: boot1.Add(200 * time.Second), Uptime: 201})
	a.fold(at(boot2, 70))
	a.fold(at(boot2, 130))
	a.fold(at(boot3, 50))
	a.fold(at(boot3, 110))

	b := x.deviceLocked("b")
	b.Hostname = "bravo"
	b.fold(at(boot1, 30))
	b.fold(at(boot2, 90))

	c := x.deviceLocked("c") // samples without uptime: no start-up
	c.fold(Point{Time: now, CPU: 1, Mem: 1, Disk: 1})

	require.Equal(t, []Ranked{
		{DeviceID: "b", Name: "bravo", Value: 60, Unit: "s", Basis: 2}, // the mean of the middle two
		{DeviceID: "a", Name: "alpha", Value: 50, Unit: "s", Basis: 3}, // of 45, 70, 50
	}, x.Insights().SlowestStartup)
}

// Devices not seen for NotSeenDays or more are counted, all of them, and the ten seen longest ago listed.
func TestInsightsNotSeen(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	x := index(now)
	for i := range 12 {
		d := x.deviceLocked(string(rune('a' + i)))
		d.LastSeen = now.Add(-time.Duration(NotSeenDays+i) * 24 * time.Hour) // 7 to 18 days ago
	}
	x.deviceLocked("recent").LastSeen = now.Add(-NotSeenDays*24*time.Hour + time.Minute)
	in := x.Insights()
	require.Equal(t, 13, in.Devices)
	require.Equal(t, NotSeenDays, in.NotSeenDays)
	require.Equal(t, 12, in.NotSeenCount, "exactly seven days counts; a minute less does not")
	require.Len(t, in.NotSeen, 10)
	require.Equal(t, Ranked{DeviceID: "l", Name: "l", Value: 18, Unit: "days"}, in.NotSeen[0], "the longest unseen first")
	require.Equal(t, 9.0, in.NotSeen[9].Value)
	for _, r := range in.NotSeen {
		require.NotEqual(t, "recent", r.DeviceID)
	}
}
