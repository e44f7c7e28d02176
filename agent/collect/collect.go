package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/shirou/gopsutil/v4/host"

	"github.com/supportstack/supportstack/agent/internal/atomicfile"
	"github.com/supportstack/supportstack/internal/protocol"
)

// Sink takes a collected record; the daemon appends it to the spool's telemetry class.
type Sink func(kind protocol.Kind, t time.Time, data json.RawMessage) error

// Options configure Run. Zero intervals take the defaults: inventory hourly, checked every 5 minutes,
// performance every minute.
type Options struct {
	// StatePath is the collectors' memory between runs (boot time, inventory hash).
	StatePath              string
	InventoryInterval      time.Duration
	InventoryCheckInterval time.Duration
	PerfInterval           time.Duration
	AgentVersion           string
	Sink                   Sink
	Log                    *slog.Logger
	Now                    func() time.Time
	// ReadInventory and ReadBootTime default to the real ones; tests replace them to simulate a changed PC.
	ReadInventory func(ctx context.Context) (Inventory, error)
	ReadBootTime  func(ctx context.Context) (time.Time, error)
}

// State is what the collectors remember between runs.
type State struct {
	BootTime        time.Time `json:"bootTime,omitzero"`
	InventoryHash   string    `json:"inventoryHash,omitempty"`
	InventorySentAt time.Time `json:"inventorySentAt,omitzero"`
}

// BootEvent is the data of a boot event record.
type BootEvent struct {
	Type             string    `json:"type"` // "boot"
	BootTime         time.Time `json:"bootTime"`
	PreviousBootTime time.Time `json:"previousBootTime,omitzero"`
}

// bootTolerance absorbs the jitter of boot times computed from uptime (Windows): a real reboot moves the boot
// time by at least the length of the previous session.
const bootTolerance = 10 * time.Second

// ReadBootTime returns when the OS booted.
func ReadBootTime(ctx context.Context) (time.Time, error) {
	s, err := host.BootTimeWithContext(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	return time.Unix(int64(s), 0).UTC(), nil
}

// LoadState reads the collectors' state; a missing or unreadable file is a fresh start.
func LoadState(path string) State {
	var s State
	if raw, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

func saveState(path string, s State) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode collector state: %w", err)
	}
	return atomicfile.Write(path, raw, 0o600)
}

type runner struct {
	o       Options
	state   State
	cpu     *CPUInfo
	perf    PerfSampler
	bootDue bool // a boot event could not be handed to the sink yet
}

// Run collects until ctx is done, then returns ctx's error.
func Run(ctx context.Context, o Options) error {
	if o.Sink == nil {
		return errors.New("collect: no sink")
	}
	if o.InventoryInterval <= 0 {
		o.InventoryInterval = time.Hour
	}
	if o.InventoryCheckInterval <= 0 {
		o.InventoryCheckInterval = 5 * time.Minute
	}
	o.InventoryCheckInterval = min(o.InventoryCheckInterval, o.InventoryInterval)
	if o.PerfInterval <= 0 {
		o.PerfInterval = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ReadBootTime == nil {
		o.ReadBootTime = ReadBootTime
	}
	r := &runner{o: o, state: LoadState(o.StatePath)}
	if o.ReadInventory == nil {
		r.o.ReadInventory = func(ctx context.Context) (Inventory, error) {
			if r.cpu == nil {
				c := ReadCPUInfo(ctx)
				r.cpu = &c
			}
			return ReadInventory(ctx, r.cpu)
		}
	}

	r.checkBoot(ctx)
	r.perf.Prime(ctx, o.Now())
	r.checkInventory(ctx)

	perf := time.NewTicker(o.PerfInterval)
	defer perf.Stop()
	inv := time.NewTicker(o.InventoryCheckInterval)
	defer inv.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-perf.C:
			r.samplePerf(ctx)
		case <-inv.C:
			if r.bootDue {
				r.checkBoot(ctx)
			}
			r.checkInventory(ctx)
		}
	}
}

func (r *runner) emit(kind protocol.Kind, t time.Time, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", kind, err)
	}
	return r.o.Sink(kind, t, data)
}

func (r *runner) save() {
	if err := saveState(r.o.StatePath, r.state); err != nil {
		r.o.Log.Warn("Cannot save collector state", "err", err)
	}
}

// checkBoot sends a boot event when the boot time is not the one remembered.
func (r *runner) checkBoot(ctx context.Context) {
	bt, err := r.o.ReadBootTime(ctx)
	if err != nil {
		r.o.Log.Warn("Cannot read the boot time", "err", err)
		return
	}
	prev := r.state.BootTime
	if d := bt.Sub(prev); !prev.IsZero() && d < bootTolerance && d > -bootTolerance {
		r.bootDue = false
		return
	}
	if err := r.emit(protocol.KindEvent, bt, BootEvent{Type: "boot", BootTime: bt, PreviousBootTime: prev}); err != nil {
		r.o.Log.Warn("Cannot record the boot event", "err", err)
		r.bootDue = true
		return
	}
	r.bootDue = false
	r.state.BootTime = bt
	r.save()
}

// checkInventory sends the inventory when it changed or is due.
func (r *runner) checkInventory(ctx context.Context) {
	inv, err := r.o.ReadInventory(ctx)
	if err != nil {
		r.o.Log.Warn("Cannot read the inventory", "err", err)
		return
	}
	inv.AgentVersion = r.o.AgentVersion
	hash := inv.Hash()
	now := r.o.Now()
	if hash == r.state.InventoryHash && now.Sub(r.state.InventorySentAt) < r.o.InventoryInterval {
		return
	}
	if err := r.emit(protocol.KindInventory, now, inv); err != nil {
		r.o.Log.Warn("Cannot record the inventory", "err", err)
		return
	}
	if hash != r.state.InventoryHash && r.state.InventoryHash != "" {
		r.o.Log.Info("Inventory changed")
	}
	r.state.InventoryHash, r.state.InventorySentAt = hash, now
	r.save()
}

func (r *runner) samplePerf(ctx context.Context) {
	now := r.o.Now()
	if err := r.emit(protocol.KindPerf, now, r.perf.Sample(ctx, now)); err != nil {
		r.o.Log.Warn("Cannot record a performance sample", "err", err)
	}
}
