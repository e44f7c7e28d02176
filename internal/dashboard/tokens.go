package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/supportstack/supportstack/internal/enrolltoken"
	"github.com/supportstack/supportstack/internal/fleetindex"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// Enrollment tokens are made and revoked by the admin here (internal/enrolltoken); ingest takes them. A token is
// shown once, with the commands that install the agent with it on a PC.

type tokensPage struct {
	base
	Tokens []fleetindex.Token
	Now    time.Time
	// Created is set on the page that answers the creation: the token, shown this once, and how to use it.
	Created *createdToken
	Ingest  []string
}

type createdToken struct {
	fleetindex.Token
	Secret  string
	Install installCommands
}

// installCommands put the agent on a PC with a token.
type installCommands struct {
	Unix, Windows, Config string
}

func (d *dashboard) installCommands(token string) installCommands {
	base := "https://<your ingest address>"
	if len(d.cfg.IngestEndpoints) > 0 {
		base = d.cfg.IngestEndpoints[0]
	}
	return installCommands{
		Unix:    fmt.Sprintf("curl -fsSL %s/install.sh | sudo sh -s -- --token '%s'", base, token),
		Windows: fmt.Sprintf("powershell -ExecutionPolicy Bypass -Command \"& ([scriptblock]::Create((irm %s/install.ps1))) -Token '%s'\"", base, token),
		Config:  fmt.Sprintf("ingest_urls = %s\nenrollment_token = %s\n", strings.Join(d.cfg.IngestEndpoints, ","), token),
	}
}

func (d *dashboard) tokens(w http.ResponseWriter, r *http.Request, s session) {
	render(w, http.StatusOK, "tokens.html", tokensPage{base: d.base(r, s, "Enrollment tokens", "tokens"), Tokens: d.index.Tokens(),
		Now: time.Now(), Ingest: d.cfg.IngestEndpoints})
}

// Bounds of a new token.
const (
	maxTokenName     = 100
	maxTokenDays     = 3650
	maxTokenUses     = 1_000_000
	defaultTokenDays = 30
)

// createToken stores a new token and shows it once. The page is the answer to the POST (no redirect), so that
// the token never is in a URL or the browser's history.
func (d *dashboard) createToken(w http.ResponseWriter, r *http.Request, s session) {
	name := strings.TrimSpace(r.PostForm.Get("name"))
	days, err1 := strconv.Atoi(cmpOr(r.PostForm.Get("days"), strconv.Itoa(defaultTokenDays)))
	uses, err2 := strconv.Atoi(cmpOr(r.PostForm.Get("uses"), "0"))
	switch {
	case name == "" || utf8.RuneCountInString(name) > maxTokenName || !utf8.ValidString(name):
		redirect(w, r, "/tokens", "token-bad-name")
		return
	case err1 != nil || days < 0 || days > maxTokenDays || err2 != nil || uses < 0 || uses > maxTokenUses:
		redirect(w, r, "/tokens", "token-bad-limits")
		return
	}
	rec, token, err := enrolltoken.New(name, s.User, time.Now(), time.Duration(days)*24*time.Hour, uses)
	var etag string
	if err == nil {
		var data []byte
		if data, err = json.Marshal(rec); err == nil {
			_, etag, err = d.pool.Write(r.Context(), enrolltoken.Key(rec.ID), data, storagepool.WriteOptions{ContentType: "application/json", IfAbsent: true})
		}
	}
	if err != nil {
		redirect(w, r, "/tokens", "token-failed")
		return
	}
	d.index.NoteToken(rec, etag)
	p := tokensPage{base: d.base(r, s, "Enrollment tokens", "tokens"), Tokens: d.index.Tokens(), Now: time.Now(), Ingest: d.cfg.IngestEndpoints,
		Created: &createdToken{Token: fleetindex.Token{Record: rec}, Secret: token, Install: d.installCommands(token)}}
	render(w, http.StatusOK, "tokens.html", p)
}

// revokeToken stops a token from enrolling new PCs; the PCs it enrolled keep reporting.
func (d *dashboard) revokeToken(w http.ResponseWriter, r *http.Request, s session) {
	t, etag, ok := d.index.TokenByID(r.PathValue("id"))
	if !ok {
		redirect(w, r, "/tokens", "token-not-found")
		return
	}
	if !t.RevokedAt.IsZero() {
		redirect(w, r, "/tokens", "token-revoked")
		return
	}
	rec := t.Record
	rec.RevokedAt, rec.RevokedBy = time.Now().UTC(), s.User
	data, err := json.Marshal(rec)
	if err == nil {
		// Only over the record as listed: a revocation never undoes another replica's.
		_, etag, err = d.pool.Write(r.Context(), enrolltoken.Key(rec.ID), data, storagepool.WriteOptions{ContentType: "application/json", IfMatch: etag})
	}
	if err != nil {
		redirect(w, r, "/tokens", "token-failed")
		return
	}
	d.index.NoteToken(rec, etag)
	redirect(w, r, "/tokens", "token-revoked")
}

func cmpOr(v, def string) string {
	if strings.TrimSpace(v) == "" {
		return def
	}
	return strings.TrimSpace(v)
}
