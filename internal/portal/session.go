package portal

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/supportstack/supportstack/internal/websession"
)

// A session is a signed cookie, like the dashboard's: no server state, so every replica of the portal takes it.

const (
	sessionCookie = "ss_portal"
	// formCookie binds the invitation form to the browser that opened the link (against login CSRF).
	formCookie = "ss_portal_form"
)

type session struct {
	Email   string `json:"e"`
	Subject string `json:"s,omitempty"`
	Issuer  string `json:"i,omitempty"`
	Expires int64  `json:"x"`
	Nonce   string `json:"n"`
}

func (p *Portal) issue(w http.ResponseWriter, r *http.Request, id Identity) {
	s := session{Email: strings.ToLower(id.Email), Subject: id.Subject, Issuer: id.Issuer,
		Expires: p.now().Add(p.cfg.SessionTTL).Unix(), Nonce: websession.RandomToken()}
	payload, _ := json.Marshal(s)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: p.signer.Sign(payload), Path: "/", HttpOnly: true,
		Secure: websession.SecureRequest(r), SameSite: http.SameSiteStrictMode, MaxAge: int(p.cfg.SessionTTL / time.Second)})
}

func (p *Portal) session(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	payload, err := p.signer.Verify(c.Value)
	if err != nil {
		return session{}, false
	}
	var s session
	if json.Unmarshal(payload, &s) != nil || s.Email == "" || p.now().Unix() >= s.Expires {
		return session{}, false
	}
	return s, true
}

func (p *Portal) csrf(s session) string { return p.signer.Token("csrf", s.Nonce) }

// signedIn wraps a page that needs a session: without one the browser is sent to sign in.
func (p *Portal) signedIn(next func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return p.page(func(w http.ResponseWriter, r *http.Request) {
		s, ok := p.session(r)
		if !ok {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next(w, r, s)
	})
}

// form wraps a POST: a bounded form with the session's CSRF token, or nothing happens.
func (p *Portal) form(next func(http.ResponseWriter, *http.Request, session)) func(http.ResponseWriter, *http.Request, session) {
	return func(w http.ResponseWriter, r *http.Request, s session) {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			p.fail(w, r, http.StatusRequestEntityTooLarge, "The form could not be read: nothing was changed.")
			return
		}
		if !websession.Equal(r.PostForm.Get("csrf"), p.csrf(s)) {
			p.fail(w, r, http.StatusForbidden, "This request did not come from the portal's own form (CSRF token missing or wrong): nothing was changed.")
			return
		}
		next(w, r, s)
	}
}

type loginPage struct {
	base
	OIDC bool
	Next string
}

func (p *Portal) login(w http.ResponseWriter, r *http.Request) {
	render(w, http.StatusOK, "login.html", loginPage{base: base{Title: "Sign in"}, OIDC: p.oidc != nil,
		Next: websession.LocalPath(r.URL.Query().Get("next"))})
}

func (p *Portal) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if p.oidc == nil {
		p.fail(w, r, http.StatusNotFound, "This portal has no identity provider.")
		return
	}
	id, next, err := p.oidc.Finish(w, r)
	if err != nil {
		p.fail(w, r, http.StatusUnauthorized, "Sign-in failed: "+err.Error())
		return
	}
	p.issue(w, r, id)
	p.log.Info("Signed in", "owner", OwnerLabelValue(id.Email), "issuer", id.Issuer)
	http.Redirect(w, r, websession.LocalPath(next), http.StatusSeeOther)
}

type invitationPage struct {
	base
	Email, Token, Form string
}

// showInvitation says whom the link signs in, without using it up.
func (p *Portal) showInvitation(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	email, err := p.invitation(r.Context(), token, false)
	if err != nil {
		p.problem(w, r, err)
		return
	}
	form := websession.RandomToken()
	http.SetCookie(w, &http.Cookie{Name: formCookie, Value: form, Path: "/invite/", HttpOnly: true, Secure: websession.SecureRequest(r),
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	render(w, http.StatusOK, "invitation.html", invitationPage{base: base{Title: "Your invitation"}, Email: email, Token: token, Form: form})
}

// acceptInvitation uses the invitation up and signs its owner in.
func (p *Portal) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	c, err := r.Cookie(formCookie)
	if r.ParseForm() != nil || err != nil || !websession.Equal(c.Value, r.PostForm.Get("form")) {
		p.fail(w, r, http.StatusForbidden, "This form did not come from the invitation page in this browser: open the invitation link again.")
		return
	}
	email, err := p.invitation(r.Context(), r.PathValue("token"), true)
	if err != nil {
		p.problem(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: formCookie, Path: "/invite/", MaxAge: -1})
	p.issue(w, r, Identity{Email: email, Issuer: "invitation"})
	p.log.Info("Signed in with an invitation", "owner", OwnerLabelValue(email))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
