package collect_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/collect"
	"github.com/supportstack/supportstack/internal/protocol"
)

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, timeout, 5*time.Millisecond, "waiting for %s", what)
}

// The real collectors on this machine: every record is a JSON object with the expected facts.
func TestReadInventory(t *testing.T) {
	inv, err := collect.ReadInventory(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Hostname == "" || inv.OS == "" || inv.Arch == "" || inv.KernelVersion == "" {
		t.Errorf("inventory lacks basics: %+v", inv)
	}
	if inv.CPU.LogicalCores < 1 || inv.MemoryBytes == 0 {
		t.Errorf("inventory lacks CPU or memory: %+v", inv)
	}
	for _, d := range inv.Disks {
		if d.Mount == "" || d.TotalBytes == 0 {
			t.Errorf("disk without mount or size: %+v", d)
		}
	}
	again, err := collect.ReadInventory(context.Background(), &inv.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if again.Hash() != inv.Hash() {
		t.Errorf("inventory hash changed between two reads of an unchanged PC:\n%+v\n%+v", inv, again)
	}
	t.Logf("inventory: %s %s %s, %s, %d cores, %d MiB, %d disks", inv.OS, inv.Platform, inv.KernelVersion, inv.CPU.Model, inv.CPU.LogicalCores, inv.MemoryBytes>>20, len(inv.Disks))
}

func TestPerfSample(t *testing.T) {
	var p collect.PerfSampler
	ctx := context.Background()
	p.Prime(ctx, time.Now())
	// CPU time advances in ticks: burn a little CPU until a sample can measure it.
	var s collect.Perf
	waitFor(t, 10*time.Second, "a sample with CPU usage", func() bool {
		x := 0
		for i := range 5_000_000 {
			x += i
		}
		_ = x
		s = p.Sample(ctx, time.Now())
		return s.CPUPercent != nil
	})
	if *s.CPUPercent < 0 || *s.CPUPercent > 100 {
		t.Errorf("cpuPercent = %v", *s.CPUPercent)
	}
	if s.IntervalSeconds <= 0 || s.MemUsedPercent == nil || s.MemTotalBytes == 0 || s.UptimeSeconds == 0 || s.Load == nil || s.Net == nil {
		t.Errorf("sample lacks fields: %+v", s)
	}
	raw, err := json.Marshal(s)
	if err != nil || raw[0] != '{' || len(raw) > protocol.DefaultLimits.MaxRecordBytes {
		t.Errorf("sample JSON (%d bytes): %v", len(raw), err)
	}
	t.Logf("perf sample: %s", raw)
}

type sink struct {
	mu   sync.Mutex
	recs []protocol.Record
}

func (s *sink) put(kind protocol.Kind, at time.Time, data json.RawMessage) error {
	if !json.Valid(data) || data[0] != '{' {
		return errors.New("not a JSON object")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, protocol.Record{Kind: kind, Time: at, Data: data})
	return nil
}

func (s *sink) count(kind protocol.Kind) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.recs {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

func (s *sink) of(kind protocol.Kind) []protocol.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []protocol.Record
	for _, r := range s.recs {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// fakePC is a PC whose inventory and boot time the test changes.
type fakePC struct {
	mu   sync.Mutex
	inv  collect.Inventory
	boot time.Time
}

func (p *fakePC) inventory(context.Context) (collect.Inventory, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inv, nil
}

func (p *fakePC) bootTime(context.Context) (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.boot, nil
}

func (p *fakePC) set(f func(*fakePC)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func runCollect(t *testing.T, o collect.Options) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- collect.Run(ctx, o) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Boot events on the first run and after a reboot only; inventory when it changed or is due; perf samples on
// their period.
func TestRunSchedules(t *testing.T) {
	state := filepath.Join(t.TempDir(), "collect.json")
	boot1 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	pc := &fakePC{inv: collect.Inventory{Hostname: "pc1", OS: "linux", MemoryBytes: 8 << 30}, boot: boot1}
	s := &sink{}
	opts := collect.Options{
		StatePath:              state,
		InventoryInterval:      time.Hour,
		InventoryCheckInterval: 10 * time.Millisecond,
		PerfInterval:           20 * time.Millisecond,
		AgentVersion:           "v-test",
		Sink:                   s.put,
		ReadInventory:          pc.inventory,
		ReadBootTime:           pc.bootTime,
	}
	stop := runCollect(t, opts)
	waitFor(t, 10*time.Second, "three perf samples", func() bool { return s.count(protocol.KindPerf) >= 3 })
	if n := s.count(protocol.KindInventory); n != 1 {
		t.Fatalf("%d inventory records for an unchanged PC, want 1", n)
	}
	boots := s.of(protocol.KindEvent)
	if len(boots) != 1 {
		t.Fatalf("%d boot events on the first run, want 1", len(boots))
	}
	var ev collect.BootEvent
	if err := json.Unmarshal(boots[0].Data, &ev); err != nil || ev.Type != "boot" || !ev.BootTime.Equal(boot1) || !boots[0].Time.Equal(boot1) {
		t.Errorf("boot event %s at %v", boots[0].Data, boots[0].Time)
	}
	var inv collect.Inventory
	if err := json.Unmarshal(s.of(protocol.KindInventory)[0].Data, &inv); err != nil || inv.AgentVersion != "v-test" || inv.Hostname != "pc1" {
		t.Errorf("inventory record %s", s.of(protocol.KindInventory)[0].Data)
	}

	pc.set(func(p *fakePC) { p.inv.MemoryBytes = 16 << 30 }) // memory upgrade
	waitFor(t, 10*time.Second, "inventory after the change", func() bool { return s.count(protocol.KindInventory) == 2 })
	stop()

	// Same boot, same inventory: a restart sends neither.
	s2 := &sink{}
	opts.Sink = s2.put
	stop = runCollect(t, opts)
	waitFor(t, 10*time.Second, "perf samples after restart", func() bool { return s2.count(protocol.KindPerf) >= 3 })
	if n, m := s2.count(protocol.KindEvent), s2.count(protocol.KindInventory); n != 0 || m != 0 {
		t.Errorf("restart without reboot sent %d boot events and %d inventories, want none", n, m)
	}
	stop()

	// A reboot: one boot event naming the previous boot.
	boot2 := boot1.Add(26 * time.Hour)
	pc.set(func(p *fakePC) { p.boot = boot2 })
	s3 := &sink{}
	opts.Sink = s3.put
	stop = runCollect(t, opts)
	waitFor(t, 10*time.Second, "boot event after reboot", func() bool { return s3.count(protocol.KindEvent) == 1 })
	if err := json.Unmarshal(s3.of(protocol.KindEvent)[0].Data, &ev); err != nil || !ev.BootTime.Equal(boot2) || !ev.PreviousBootTime.Equal(boot1) {
		t.Errorf("boot event after reboot: %s", s3.of(protocol.KindEvent)[0].Data)
	}
	stop()
}

// An unchanged inventory is sent again once InventoryInterval passed.
func TestInventoryResentWhenDue(t *testing.T) {
	pc := &fakePC{inv: collect.Inventory{Hostname: "pc1"}, boot: time.Unix(1_700_000_000, 0)}
	s := &sink{}
	runCollect(t, collect.Options{
		StatePath:              filepath.Join(t.TempDir(), "collect.json"),
		InventoryInterval:      30 * time.Millisecond,
		InventoryCheckInterval: 5 * time.Millisecond,
		PerfInterval:           time.Hour,
		Sink:                   s.put,
		ReadInventory:          pc.inventory,
		ReadBootTime:           pc.bootTime,
	})
	waitFor(t, 10*time.Second, "three inventories", func() bool { return s.count(protocol.KindInventory) >= 3 })
}

// The real readers through Run: boot event, inventory and perf records from this machine.
func TestRunWithRealCollectors(t *testing.T) {
	s := &sink{}
	runCollect(t, collect.Options{
		StatePath:    filepath.Join(t.TempDir(), "collect.json"),
		PerfInterval: 50 * time.Millisecond,
		Sink:         s.put,
	})
	waitFor(t, 20*time.Second, "real records", func() bool {
		return s.count(protocol.KindEvent) == 1 && s.count(protocol.KindInventory) == 1 && s.count(protocol.KindPerf) >= 2
	})
}
