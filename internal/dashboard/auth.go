package dashboard

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/supportstack/supportstack/internal/websession"
)

// Sign-in. The tenant's support staff sign in with a name and a password; the operator generates the admin's
// password into the tenant's Secret (the shared one when replicated, so that both clusters' dashboards take it).
// A session is a signed cookie — no server state — so every replica of both clusters, which share the session
// key, accepts it, and a failover signs nobody out. Forms carry a CSRF token bound to the session (or, on the
// sign-in form, to a cookie of its own). Failed sign-ins are limited per client address and per name.

// Environment variables the dashboard reads its secrets from.
const (
	EnvAdminPassword = "DASHBOARD_ADMIN_PASSWORD"
	EnvSessionKey    = "DASHBOARD_SESSION_KEY"
)

// AdminUser is the name of the staff account the operator creates.
const AdminUser = "admin"

// Cookie names and limits.
const (
	sessionCookie = "ss_session"
	loginCookie   = "ss_login"
	// DefaultSessionTTL is how long a sign-in lasts.
	DefaultSessionTTL = 12 * time.Hour
	// maxFailures failed sign-ins within failureWindow lock the name and the client address for lockout.
	maxFailures   = 5
	failureWindow = 15 * time.Minute
	lockout       = 5 * time.Minute
)

// session is what a session cookie carries.
type session struct {
	Tenant  string `json:"t"`
	User    string `json:"u"`
	Expires int64  `json:"e"`
	// Nonce makes each session's CSRF token its own.
	Nonce string `json:"n"`
	// Version fingerprints the password the session was opened with: a new password ends older sessions.
	Version string `json:"v"`
}

// auth signs sessions and checks passwords for one tenant.
type auth struct {
	tenant    string
	signer    websession.Signer
	ttl       time.Duration
	adminHash []byte
	// adminVersion fingerprints the admin's password itself: its bcrypt hash is salted anew by every replica,
	// so a fingerprint of the hash would differ between replicas and sign the admin out of all but one.
	adminVersion string
	// staff returns a staff account's bcrypt hash; ok is false for no account or a removed one.
	staff func(name string) (hash []byte, ok bool)
	now   func() time.Time

	mu       sync.Mutex
	failures map[string][]time.Time // by "user:" + name and "addr:" + address
}

func newAuth(tenant, adminPassword, sessionKey string, staff func(string) ([]byte, bool)) (*auth, error) {
	if len(adminPassword) < 12 {
		return nil, fmt.Errorf("the admin password ($%s) must have at least 12 characters", EnvAdminPassword)
	}
	if len(sessionKey) < 32 {
		return nil, fmt.Errorf("the session key ($%s) must have at least 32 characters", EnvSessionKey)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("hash the admin password: %w", err)
	}
	if staff == nil {
		staff = func(string) ([]byte, bool) { return nil, false }
	}
	// The key is tenant-specific on its own; mixing the tenant in also keeps one tenant's cookie from being
	// taken by another that was (wrongly) given the same key.
	a := &auth{tenant: tenant, signer: websession.NewSigner(sessionKey, "supportstack-dashboard-session:"+tenant), ttl: DefaultSessionTTL, adminHash: hash, staff: staff, now: time.Now,
		failures: map[string][]time.Time{}}
	a.adminVersion = a.version([]byte("admin-password:" + adminPassword))
	return a, nil
}

// hash returns the user's password hash.
func (a *auth) hash(user string) ([]byte, bool) {
	if user == AdminUser {
		return a.adminHash, true
	}
	return a.staff(user)
}

// userVersion fingerprints the user's password for the sessions opened with it; ok is false for no such user.
func (a *auth) userVersion(user string) (string, bool) {
	if user == AdminUser {
		return a.adminVersion, true
	}
	hash, ok := a.staff(user)
	return a.version(hash), ok
}

// version fingerprints a password hash (the staff's, stored in the bucket and so the same on every replica).
func (a *auth) version(hash []byte) string { return a.signer.Token("version", string(hash))[:12] }

// issue returns a session cookie for user.
func (a *auth) issue(user string, secure bool) (*http.Cookie, session) {
	version, _ := a.userVersion(user)
	s := session{Tenant: a.tenant, User: user, Expires: a.now().Add(a.ttl).Unix(), Nonce: websession.RandomToken(), Version: version}
	payload, _ := json.Marshal(s)
	return &http.Cookie{Name: sessionCookie, Value: a.signer.Sign(payload), Path: "/", HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(a.ttl / time.Second)}, s
}

// session returns the request's valid session.
func (a *auth) session(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	payload, err := a.signer.Verify(c.Value)
	if err != nil {
		return session{}, false
	}
	var s session
	if json.Unmarshal(payload, &s) != nil || s.Tenant != a.tenant || s.User == "" || a.now().Unix() >= s.Expires {
		return session{}, false
	}
	// A removed account or a changed password ends the session.
	if version, ok := a.userVersion(s.User); !ok || !websession.Equal(s.Version, version) {
		return session{}, false
	}
	return s, true
}

// csrf is the CSRF token of a session: forms carry it, and a request without it changes nothing.
func (a *auth) csrf(s session) string { return a.signer.Token("csrf", s.Nonce) }

// locked reports how long the name or the client address stays locked out, zero when neither is.
func (a *auth) locked(user, addr string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	var wait time.Duration
	for _, k := range []string{"user:" + user, "addr:" + addr} {
		recent := a.recent(k, now)
		if len(recent) >= maxFailures {
			wait = max(wait, recent[len(recent)-1].Add(lockout).Sub(now))
		}
	}
	return wait
}

// recent drops failures older than the window and returns the rest; a.mu is held.
func (a *auth) recent(key string, now time.Time) []time.Time {
	kept := a.failures[key][:0]
	for _, t := range a.failures[key] {
		if now.Sub(t) < failureWindow {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		delete(a.failures, key)
		return nil
	}
	a.failures[key] = kept
	return kept
}

func (a *auth) failed(user, addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for _, k := range []string{"user:" + user, "addr:" + addr} {
		a.failures[k] = append(a.recent(k, now), now)
	}
}

// check verifies a name and password. A name that does not exist costs the same bcrypt comparison.
func (a *auth) check(user, password string) bool {
	hash, ok := a.hash(user)
	if !ok {
		hash = a.adminHash
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil && ok
}

// clientAddr is the request's client address (the connection's; a proxy in front makes all clients one, which
// only makes the limit stricter).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func retryAfter(d time.Duration) string { return strconv.Itoa(int(d.Seconds()) + 1) }
