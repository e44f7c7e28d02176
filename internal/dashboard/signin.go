package dashboard

import (
	"net/http"
	"net/url"
	"time"

	"github.com/supportstack/supportstack/internal/websession"
)

// loginPage is what the sign-in page shows.
type loginPage struct {
	DisplayName, Next, CSRF, Error string
}

// signedIn wraps a page that needs a session: without one the browser is sent to the sign-in page.
func (a *auth) signedIn(next func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		websession.SecurityHeaders(w.Header())
		s, ok := a.session(r)
		if !ok {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next(w, r, s)
	}
}

// showLogin renders the sign-in form with a new form token, bound to a cookie of its own.
func (a *auth) showLogin(w http.ResponseWriter, r *http.Request, displayName, next, message string, code int) {
	websession.SecurityHeaders(w.Header())
	token := websession.RandomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: token, Path: "/login", HttpOnly: true, Secure: websession.SecureRequest(r),
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = pages.ExecuteTemplate(w, "login.html", loginPage{DisplayName: displayName, Next: websession.LocalPath(next), CSRF: token, Error: message})
}

// loginHandlers serves GET and POST /login and POST /logout.
func (a *auth) loginHandlers(mux *http.ServeMux, displayName string) {
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.session(r); ok {
			http.Redirect(w, r, websession.LocalPath(r.URL.Query().Get("next")), http.StatusSeeOther)
			return
		}
		a.showLogin(w, r, displayName, r.URL.Query().Get("next"), "", http.StatusOK)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
		if err := r.ParseForm(); err != nil {
			a.showLogin(w, r, displayName, "/", "The sign-in form could not be read.", http.StatusBadRequest)
			return
		}
		next := r.PostForm.Get("next")
		c, err := r.Cookie(loginCookie)
		if err != nil || !websession.Equal(c.Value, r.PostForm.Get("csrf")) {
			a.showLogin(w, r, displayName, next, "The sign-in form expired or did not come from this page: please sign in again.", http.StatusForbidden)
			return
		}
		user, addr := r.PostForm.Get("user"), clientAddr(r)
		if wait := a.locked(user, addr); wait > 0 {
			w.Header().Set("Retry-After", retryAfter(wait))
			a.showLogin(w, r, displayName, next, "Too many failed sign-ins: try again in "+wait.Round(time.Second).String()+".", http.StatusTooManyRequests)
			return
		}
		if !a.check(user, r.PostForm.Get("password")) {
			a.failed(user, addr)
			a.showLogin(w, r, displayName, next, "Wrong name or password.", http.StatusUnauthorized)
			return
		}
		cookie, _ := a.issue(user, websession.SecureRequest(r))
		http.SetCookie(w, cookie)
		http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: "/login", MaxAge: -1})
		http.Redirect(w, r, websession.LocalPath(next), http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", a.signedIn(func(w http.ResponseWriter, r *http.Request, s session) {
		r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
		if err := r.ParseForm(); err != nil || !websession.Equal(r.PostForm.Get("csrf"), a.csrf(s)) {
			http.Error(w, "This request did not come from the dashboard's own form (CSRF token missing or wrong): nothing was changed.", http.StatusForbidden)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	}))
}
