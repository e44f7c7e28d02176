// Package collect reads the PC's technical data with gopsutil and turns it into record data
// (protocol.Record.Data) for the spool:
//
//   - inventory (KindInventory): OS, platform, kernel, hostname, CPU model and cores, installed memory, disks
//     with sizes. Read every InventoryCheckInterval, sent when its hash changed or InventoryInterval passed.
//   - performance samples (KindPerf): CPU %, memory used %, disk usage % per mount, disk IO and network
//     bytes since the previous sample, uptime, load average, every PerfInterval.
//   - boot events (KindEvent, {"type":"boot"}): when the boot time differs from the one remembered in the
//     state file, including on the first run.
//
// Every metric is best effort: what the OS cannot tell is left out of the record rather than failing it.
package collect
