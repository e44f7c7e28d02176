package collect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/mem"
)

// Inventory is the data of an inventory record. It holds only slowly changing facts, so that its hash changes
// only when the PC does.
type Inventory struct {
	Hostname        string  `json:"hostname"`
	OS              string  `json:"os"`
	Arch            string  `json:"arch"`
	Platform        string  `json:"platform,omitempty"`
	PlatformFamily  string  `json:"platformFamily,omitempty"`
	PlatformVersion string  `json:"platformVersion,omitempty"`
	KernelVersion   string  `json:"kernelVersion,omitempty"`
	KernelArch      string  `json:"kernelArch,omitempty"`
	Virtualization  string  `json:"virtualization,omitempty"`
	CPU             CPUInfo `json:"cpu"`
	MemoryBytes     uint64  `json:"memoryBytes,omitempty"`
	Disks           []Disk  `json:"disks"`
	// AgentVersion is filled in by the caller.
	AgentVersion string `json:"agentVersion,omitempty"`
}

// CPUInfo is the processor.
type CPUInfo struct {
	Model         string `json:"model,omitempty"`
	Vendor        string `json:"vendor,omitempty"`
	Sockets       int    `json:"sockets,omitempty"`
	PhysicalCores int    `json:"physicalCores,omitempty"`
	LogicalCores  int    `json:"logicalCores,omitempty"`
}

// Disk is one mounted file system.
type Disk struct {
	Device     string `json:"device"`
	Mount      string `json:"mount"`
	FSType     string `json:"fsType"`
	TotalBytes uint64 `json:"totalBytes"`
}

// maxDisks bounds the disks listed in one record.
const maxDisks = 32

// Hash identifies the inventory's content.
func (inv Inventory) Hash() string {
	raw, _ := json.Marshal(inv) // plain structs: cannot fail
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// ReadInventory reads the inventory. cpuInfo is read once per process by the caller (it cannot change without a
// reboot and is slow on Windows); pass nil to read it here.
func ReadInventory(ctx context.Context, cpuInfo *CPUInfo) (Inventory, error) {
	inv := Inventory{OS: runtime.GOOS, Arch: runtime.GOARCH}
	var errs []error
	var err error
	if inv.Hostname, err = os.Hostname(); err != nil {
		errs = append(errs, fmt.Errorf("hostname: %w", err))
	}
	if inv.Platform, inv.PlatformFamily, inv.PlatformVersion, err = host.PlatformInformationWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("platform: %w", err))
	}
	if inv.KernelVersion, err = host.KernelVersionWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("kernel version: %w", err))
	}
	if inv.KernelArch, err = host.KernelArch(); err != nil {
		errs = append(errs, fmt.Errorf("kernel arch: %w", err))
	}
	if system, role, err := host.VirtualizationWithContext(ctx); err == nil && role == "guest" {
		inv.Virtualization = system
	}
	if cpuInfo == nil {
		c := ReadCPUInfo(ctx)
		cpuInfo = &c
	}
	inv.CPU = *cpuInfo
	if vm, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("memory: %w", err))
	} else {
		inv.MemoryBytes = vm.Total
	}
	inv.Disks, err = readDisks(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	if inv.Hostname == "" && inv.MemoryBytes == 0 && len(inv.Disks) == 0 {
		return inv, fmt.Errorf("read inventory: %w", errors.Join(errs...))
	}
	return inv, nil
}

// ReadCPUInfo reads the processor's model and core counts.
func ReadCPUInfo(ctx context.Context) CPUInfo {
	var c CPUInfo
	if infos, err := cpu.InfoWithContext(ctx); err == nil && len(infos) > 0 {
		c.Model = strings.TrimSpace(infos[0].ModelName)
		c.Vendor = infos[0].VendorID
		sockets := map[string]bool{}
		for _, i := range infos {
			sockets[i.PhysicalID] = true
		}
		c.Sockets = len(sockets)
	}
	if n, err := cpu.CountsWithContext(ctx, false); err == nil {
		c.PhysicalCores = n
	}
	if n, err := cpu.CountsWithContext(ctx, true); err == nil {
		c.LogicalCores = n
	}
	if c.LogicalCores == 0 {
		c.LogicalCores = runtime.NumCPU()
	}
	return c
}

// mounts returns the real file systems, one mount per device, without loop-mounted images.
func mounts(ctx context.Context) ([]disk.PartitionStat, error) {
	parts, err := disk.PartitionsWithContext(ctx, false)
	if err != nil && len(parts) == 0 {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	seen := map[string]bool{}
	var out []disk.PartitionStat
	for _, p := range parts {
		switch {
		case p.Fstype == "squashfs", strings.HasPrefix(p.Device, "/dev/loop"), seen[p.Device] && p.Device != "":
			continue
		}
		seen[p.Device] = true
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mountpoint < out[j].Mountpoint })
	return out, nil
}

func readDisks(ctx context.Context) ([]Disk, error) {
	parts, err := mounts(ctx)
	if err != nil {
		return nil, err
	}
	disks := []Disk{}
	for _, p := range parts {
		u, err := disk.UsageWithContext(ctx, p.Mountpoint)
		if err != nil || u.Total == 0 {
			continue // an empty drive, a vanished mount
		}
		disks = append(disks, Disk{Device: p.Device, Mount: p.Mountpoint, FSType: p.Fstype, TotalBytes: u.Total})
		if len(disks) == maxDisks {
			break
		}
	}
	return disks, nil
}
