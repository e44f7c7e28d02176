package localrunner

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeClient is shared by all HTTP probes. Like the kubelet it does not
// verify certificates and does not follow redirects (3xx counts as success);
// it keeps no idle connections to the containers.
var probeClient = &http.Client{
	Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet semantics for probes
		DisableKeepAlives: true,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// errUnsupportedProbe marks probe handlers the runner cannot execute; such a
// container counts as ready once it runs.
var errUnsupportedProbe = errors.New("unsupported probe handler")

// probe runs one readiness check of container c in a pod at ip.
func probe(ctx context.Context, c *corev1.Container, ip netip.Addr) error {
	pr := c.ReadinessProbe
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case pr.HTTPGet != nil:
		return probeHTTP(ctx, c, pr.HTTPGet, ip)
	case pr.TCPSocket != nil:
		port, err := containerPort(c, pr.TCPSocket.Port)
		if err != nil {
			return err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(ip, uint16(port)).String())
		if err != nil {
			return err
		}
		return conn.Close()
	default:
		return errUnsupportedProbe
	}
}

func probeHTTP(ctx context.Context, c *corev1.Container, g *corev1.HTTPGetAction, ip netip.Addr) error {
	port, err := containerPort(c, g.Port)
	if err != nil {
		return err
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + netip.AddrPortFrom(ip, uint16(port)).String() + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build probe request: %w", err)
	}
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("probe %s: status %d", path, resp.StatusCode)
	}
	return nil
}

// containerPort resolves a numeric or named port of container c.
func containerPort(c *corev1.Container, p intstr.IntOrString) (int32, error) {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port %d", p.IntVal)
		}
		return p.IntVal, nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, nil
		}
	}
	// Like the kubelet, accept a number written as a string.
	if n, err := strconv.Atoi(p.StrVal); err == nil && n > 0 && n <= 65535 {
		return int32(n), nil
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, p.StrVal)
}

// readiness tracks one container's readiness across probe results with the
// probe's success and failure thresholds.
type readiness struct {
	starts    int // process start count the state belongs to
	ready     bool
	successes int32
	failures  int32
}

// observe folds one probe outcome (or a not-running process) into r and
// returns the container's readiness. A restarted process starts unready.
func (r *readiness) observe(pr *corev1.Probe, running bool, starts int, err error) bool {
	if !running || starts != r.starts {
		*r = readiness{starts: starts}
	}
	if !running {
		return false
	}
	if pr == nil || errors.Is(err, errUnsupportedProbe) {
		r.ready = true
		return true
	}
	if err == nil {
		r.failures = 0
		r.successes++
		if r.successes >= max(pr.SuccessThreshold, 1) {
			r.ready = true
		}
	} else {
		r.successes = 0
		r.failures++
		if r.failures >= failureThreshold(pr) {
			r.ready = false
		}
	}
	return r.ready
}

func failureThreshold(pr *corev1.Probe) int32 {
	if pr.FailureThreshold > 0 {
		return pr.FailureThreshold
	}
	return 3
}

// probePeriod is how often a probe runs: its periodSeconds, but no slower
// than max, so local runs react quickly.
func probePeriod(pr *corev1.Probe, maxPeriod time.Duration) time.Duration {
	if pr == nil || pr.PeriodSeconds <= 0 {
		return maxPeriod
	}
	return min(time.Duration(pr.PeriodSeconds)*time.Second, maxPeriod)
}
