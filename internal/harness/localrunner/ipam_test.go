package localrunner

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIPPoolUnique(t *testing.T) {
	p := newIPPool(t.TempDir())
	seen := map[netip.Addr]bool{}
	for range 600 {
		addr, err := p.allocate()
		require.NoError(t, err)
		require.False(t, seen[addr], "address %s handed out twice", addr)
		require.True(t, netip.MustParsePrefix("127.42.0.0/16").Contains(addr), "address %s outside 127.42.0.0/16", addr)
		b := addr.As4()
		require.NotContains(t, []byte{0, 255}, b[3], "address %s has a network or broadcast-looking last octet", addr)
		seen[addr] = true
	}
}

func TestIPPoolAcrossProcesses(t *testing.T) {
	// Two pools on one lock directory stand for two processes: flock locks
	// of separate opens conflict even within one process.
	dir := t.TempDir()
	a, b := newIPPool(dir), newIPPool(dir)
	b.next = a.next // make them contend for the same addresses
	fromA := map[netip.Addr]bool{}
	for range 50 {
		addr, err := a.allocate()
		require.NoError(t, err)
		fromA[addr] = true
	}
	for range 50 {
		addr, err := b.allocate()
		require.NoError(t, err)
		require.False(t, fromA[addr], "address %s held by both pools", addr)
	}
}

func TestIPPoolRelease(t *testing.T) {
	dir := t.TempDir()
	a, b := newIPPool(dir), newIPPool(dir)
	b.next = a.next
	addr, err := a.allocate()
	require.NoError(t, err)
	a.release(addr)
	// Once released, the address is free for another holder.
	got, err := b.allocate()
	require.NoError(t, err)
	assert.Equal(t, addr, got)
}

func TestPoolAddrCoversRange(t *testing.T) {
	assert.Equal(t, netip.MustParseAddr("127.42.0.1"), poolAddr(0))
	assert.Equal(t, netip.MustParseAddr("127.42.0.254"), poolAddr(253))
	assert.Equal(t, netip.MustParseAddr("127.42.1.1"), poolAddr(254))
	assert.Equal(t, netip.MustParseAddr("127.42.255.254"), poolAddr(poolSize-1))
	assert.Equal(t, poolAddr(0), poolAddr(poolSize), "wraps around")
}
