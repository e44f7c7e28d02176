package localrunner

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// ipPool hands out loopback addresses in 127.42.0.0/16, one per running pod.
//
// Addresses are unique within the process (several Runners, e.g. one per
// envtest control plane, share defaultIPs) and across processes: every
// address in use is held by an flock on a file in lockDir, which the kernel
// releases when the holder exits, so parallel test binaries never hand out
// the same address and a crashed one leaks nothing.
type ipPool struct {
	lockDir string

	mu   sync.Mutex
	held map[netip.Addr]*os.File
	next uint16 // round-robin cursor, so a stopped pod's address is not reused at once
}

// poolSize is the number of usable addresses: 127.42.x.y with y in 1..254.
const poolSize = 256 * 254

var defaultIPs = newIPPool(filepath.Join(os.TempDir(), "supportstack-localrunner-ips"))

func newIPPool(lockDir string) *ipPool {
	return &ipPool{
		lockDir: lockDir,
		held:    map[netip.Addr]*os.File{},
		// A random start makes concurrent processes rarely contend for the same locks.
		next: uint16(rand.IntN(poolSize)),
	}
}

func poolAddr(i uint16) netip.Addr {
	i %= poolSize
	return netip.AddrFrom4([4]byte{127, 42, byte(i / 254), byte(i%254 + 1)})
}

// allocate returns a free address and holds it until release.
func (p *ipPool) allocate() (netip.Addr, error) {
	if err := os.MkdirAll(p.lockDir, 0o777); err != nil {
		return netip.Addr{}, fmt.Errorf("create address lock dir: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for range poolSize {
		addr := poolAddr(p.next)
		p.next = (p.next + 1) % poolSize
		if _, ok := p.held[addr]; ok {
			continue
		}
		f, err := p.lock(addr)
		if err != nil {
			return netip.Addr{}, err
		}
		if f == nil {
			continue // held by another process
		}
		p.held[addr] = f
		return addr, nil
	}
	return netip.Addr{}, errors.New("no free loopback address in 127.42.0.0/16")
}

// lock takes the address's lock file; nil, nil means another holder has it.
func (p *ipPool) lock(addr netip.Addr) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(p.lockDir, addr.String()), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open address lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock address %s: %w", addr, err)
	}
	return f, nil
}

// release gives addr back; closing the file drops the lock.
func (p *ipPool) release(addr netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.held[addr]; ok {
		_ = f.Close()
		delete(p.held, addr)
	}
}
