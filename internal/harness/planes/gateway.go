package planes

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// gateway stands in for what publishes one cluster's Services to another (an ingress, a gateway, a load
// balancer): a TCP listener per peer Service on its own port, forwarding each connection to a ready pod behind
// the Service, looked up when the connection comes. Its addresses stay the same while the pods behind them come
// and go, and two MinIO servers never see each other on their own port (which MinIO refuses as a replication
// target identical to itself). Cut stops the traffic to a plane, as a network partition between the clusters
// would, without touching the plane itself.
type gateway struct {
	mu      sync.Mutex
	proxies map[string]*proxy // by plane/namespace/service/port
	cut     map[string]bool   // planes whose traffic is cut
	closed  bool
}

type proxy struct {
	ln    net.Listener
	plane string
	// target resolves the Service to a pod's address.
	target func() (string, error)
	conns  sync.WaitGroup
	mu     sync.Mutex
	open   map[net.Conn]bool
}

func newGateway() *gateway {
	return &gateway{proxies: map[string]*proxy{}, cut: map[string]bool{}}
}

// address returns the gateway's address for a Service of a plane, opening a listener on first use.
func (g *gateway) address(p *Plane, namespace, service string, port int32) (string, error) {
	key := fmt.Sprintf("%s/%s/%s/%d", p.Name, namespace, service, port)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return "", errors.New("gateway closed")
	}
	if px, ok := g.proxies[key]; ok {
		return px.ln.Addr().String(), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("gateway for %s: %w", key, err)
	}
	px := &proxy{ln: ln, plane: p.Name, open: map[net.Conn]bool{}, target: func() (string, error) {
		return p.Runner.ServiceAddress(namespace, service, port)
	}}
	g.proxies[key] = px
	go px.serve(g)
	return ln.Addr().String(), nil
}

func (g *gateway) isCut(plane string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cut[plane]
}

// setCut cuts or restores the traffic to a plane; cutting also drops the connections under way.
func (g *gateway) setCut(plane string, cut bool) {
	g.mu.Lock()
	g.cut[plane] = cut
	var affected []*proxy
	for _, px := range g.proxies {
		if px.plane == plane {
			affected = append(affected, px)
		}
	}
	g.mu.Unlock()
	if cut {
		for _, px := range affected {
			px.dropAll()
		}
	}
}

func (px *proxy) serve(g *gateway) {
	for {
		in, err := px.ln.Accept()
		if err != nil {
			return
		}
		if g.isCut(px.plane) {
			in.Close()
			continue
		}
		px.conns.Add(1)
		go func() {
			defer px.conns.Done()
			px.forward(in)
		}()
	}
}

// forward copies one connection to a pod behind the Service and back.
func (px *proxy) forward(in net.Conn) {
	defer in.Close()
	addr, err := px.target()
	if err != nil {
		return // no ready pod: the client sees its connection closed, as with a Service without endpoints
	}
	out, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer out.Close()
	px.track(in, true)
	px.track(out, true)
	defer px.track(in, false)
	defer px.track(out, false)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); closeWrite(out); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); closeWrite(in); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

func (px *proxy) track(c net.Conn, open bool) {
	px.mu.Lock()
	defer px.mu.Unlock()
	if open {
		px.open[c] = true
	} else {
		delete(px.open, c)
	}
}

func (px *proxy) dropAll() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for c := range px.open {
		_ = c.Close()
	}
}

// close stops every listener and drops every connection.
func (g *gateway) close() {
	g.mu.Lock()
	g.closed = true
	proxies := g.proxies
	g.proxies = map[string]*proxy{}
	g.mu.Unlock()
	for _, px := range proxies {
		_ = px.ln.Close()
		px.dropAll()
		px.conns.Wait()
	}
}
