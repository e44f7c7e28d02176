package localrunner

import (
	"path"
	"regexp"
	"strconv"
	"strings"
)

// serviceRef is a Service named in a string, with the port the string
// connects to: explicit (host:port), implied by an http:// or https:// URL,
// or 0 when the string gives none.
type serviceRef struct {
	Name      string
	Namespace string
	Port      int32
}

// serviceHost matches <svc>.<ns>.svc or <svc>.<ns>.svc.cluster.local with an
// optional :port. Boundaries are checked by hand (Go's regexp has no
// lookaround) so that a longer name such as <pod>.<svc>.<ns>.svc or
// <svc>.<ns>.svc.example.com is left alone.
var serviceHost = hostPattern(`svc(?:\.cluster\.local)?`)

// hostPattern matches <svc>.<ns>.<suffix> with an optional :port.
func hostPattern(suffix string) *regexp.Regexp {
	return regexp.MustCompile(dnsLabel + `\.` + dnsLabel + `\.` + suffix + `(?::([0-9]{1,5}))?`)
}

// dnsLabel is one label of a name (RFC 1123), captured.
const dnsLabel = `([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)`

// hostBoundaries reports whether s[start:end] is a whole name: not the tail of a longer name before it, nor
// the head of one after it.
func hostBoundaries(s string, start, end int) bool {
	if start > 0 && isHostByte(s[start-1]) {
		return false
	}
	return end >= len(s) || !(isLabelByte(s[end]) || s[end] == '.' && end+1 < len(s) && isLabelByte(s[end+1]))
}

// rewriteServices replaces every in-cluster Service name in s by what resolve
// returns for it (a loopback host, with the target port when the reference had
// a port). It returns s
// unchanged and no error when s names no Service.
func rewriteServices(s string, resolve func(serviceRef) (string, error)) (string, error) {
	if !strings.Contains(s, ".svc") {
		return s, nil
	}
	return rewriteHosts(s, serviceHost, resolve)
}

// rewritePeerServices replaces every name <svc>.<ns>.<suffix> in s, where suffix names a peer plane (see
// Runner.AddPeer), by what resolve returns for the Service in that plane.
func rewritePeerServices(s, suffix string, resolve func(serviceRef) (string, error)) (string, error) {
	if !strings.Contains(s, "."+suffix) {
		return s, nil
	}
	return rewriteHosts(s, hostPattern(regexp.QuoteMeta(suffix)), resolve)
}

// rewriteHosts replaces every match of re (a hostPattern) in s by what resolve returns for it.
func rewriteHosts(s string, re *regexp.Regexp, resolve func(serviceRef) (string, error)) (string, error) {
	var b strings.Builder
	last := 0
	for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
		start, end := m[0], m[1]
		if !hostBoundaries(s, start, end) {
			continue
		}
		ref := serviceRef{Name: s[m[2]:m[3]], Namespace: s[m[4]:m[5]]}
		if m[6] >= 0 {
			p, err := strconv.ParseUint(s[m[6]:m[7]], 10, 16)
			if err != nil || p == 0 {
				continue
			}
			ref.Port = int32(p)
		} else {
			switch {
			case strings.HasSuffix(s[:start], "http://"):
				ref.Port = 80
			case strings.HasSuffix(s[:start], "https://"):
				ref.Port = 443
			}
		}
		repl, err := resolve(ref)
		if err != nil {
			return "", err
		}
		b.WriteString(s[last:start])
		b.WriteString(repl)
		last = end
	}
	if last == 0 {
		return s, nil
	}
	b.WriteString(s[last:])
	return b.String(), nil
}

func isLabelByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c >= 'A' && c <= 'Z'
}

func isHostByte(c byte) bool { return isLabelByte(c) || c == '.' }

// mount is a container mountPath and the local path that stands in for it.
type mount struct {
	Path  string
	Local string
}

// rewritePath maps s to the local stand-in of the longest mountPath that s
// equals or lies under ("/data" or "/data/x" for mountPath "/data"). A
// "--flag=/data/x" or "KEY=/data/x" form is rewritten after its first "=",
// since that is how most programs take paths. Anything else is returned as is.
func rewritePath(s string, mounts []mount) string {
	if p, ok := localPath(s, mounts); ok {
		return p
	}
	if i := strings.IndexByte(s, '='); i > 0 {
		if p, ok := localPath(s[i+1:], mounts); ok {
			return s[:i+1] + p
		}
	}
	return s
}

func localPath(s string, mounts []mount) (string, bool) {
	best := -1
	for i, m := range mounts {
		mp := strings.TrimSuffix(m.Path, "/")
		if mp == "" {
			continue // a mount at / would swallow every absolute path
		}
		if s != mp && !strings.HasPrefix(s, mp+"/") {
			continue
		}
		if best < 0 || len(mp) > len(strings.TrimSuffix(mounts[best].Path, "/")) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	mp := strings.TrimSuffix(mounts[best].Path, "/")
	rest := strings.TrimPrefix(s, mp)
	if rest == "" {
		return mounts[best].Local, true
	}
	return path.Join(mounts[best].Local, rest) + trailingSlash(rest), true
}

// trailingSlash keeps a trailing "/" that path.Join would drop, because some
// programs (and rsync-like tools) treat "dir/" and "dir" differently.
func trailingSlash(s string) string {
	if strings.HasSuffix(s, "/") {
		return "/"
	}
	return ""
}
