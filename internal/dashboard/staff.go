package dashboard

import (
	"encoding/json"
	"net/http"
	"regexp"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/supportstack/supportstack/internal/fleetindex"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// Staff accounts besides the admin are managed by the admin from the dashboard and stored in the tenant's bucket
// (fleetindex.StaffKey) with their bcrypt hash, so that they replicate and both clusters' dashboards take them.

var staffName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,62}$`)

const minPasswordLength = 12

type staffPage struct {
	base
	Accounts []fleetindex.StaffAccount
}

// adminOnly refuses a page to everybody but the admin.
func adminOnly(next func(http.ResponseWriter, *http.Request, session)) func(http.ResponseWriter, *http.Request, session) {
	return func(w http.ResponseWriter, r *http.Request, s session) {
		if s.User != AdminUser {
			http.Error(w, "Only the workspace's admin manages staff accounts.", http.StatusForbidden)
			return
		}
		next(w, r, s)
	}
}

func (d *dashboard) staff(w http.ResponseWriter, r *http.Request, s session) {
	p := staffPage{base: d.base(r, s, "Staff", "staff")}
	for _, a := range d.index.Staff() {
		if !a.Removed {
			p.Accounts = append(p.Accounts, a)
		}
	}
	render(w, http.StatusOK, "staff.html", p)
}

// saveStaff adds an account or sets a new password for one.
func (d *dashboard) saveStaff(w http.ResponseWriter, r *http.Request, s session) {
	name, password := r.PostForm.Get("name"), r.PostForm.Get("password")
	switch {
	case !staffName.MatchString(name) || name == AdminUser:
		redirect(w, r, "/staff", "staff-bad-name")
		return
	case len(password) < minPasswordLength || len(password) > 72:
		redirect(w, r, "/staff", "staff-bad-pass")
		return
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		redirect(w, r, "/staff", "staff-bad-pass")
		return
	}
	d.storeStaff(w, r, fleetindex.StaffAccount{Name: name, Hash: string(hash), CreatedBy: s.User, CreatedAt: time.Now().UTC()}, "staff-saved")
}

// removeStaff keeps the account as a removed record: a deletion would not reach the other copy the same way.
func (d *dashboard) removeStaff(w http.ResponseWriter, r *http.Request, s session) {
	a, _, ok := d.index.StaffAccount(r.PathValue("name"))
	if !ok || a.Removed {
		redirect(w, r, "/staff", "staff-not-found")
		return
	}
	d.storeStaff(w, r, fleetindex.StaffAccount{Name: a.Name, CreatedBy: s.User, CreatedAt: time.Now().UTC(), Removed: true}, "staff-removed")
}

func (d *dashboard) storeStaff(w http.ResponseWriter, r *http.Request, a fleetindex.StaffAccount, notice string) {
	data, err := json.Marshal(a)
	var etag string
	if err == nil {
		_, etag, err = d.pool.Write(r.Context(), fleetindex.StaffKey(a.Name), data, storagepool.WriteOptions{ContentType: "application/json"})
	}
	if err != nil {
		redirect(w, r, "/staff", "staff-failed")
		return
	}
	d.index.NoteStaff(a, etag)
	redirect(w, r, "/staff", notice)
}
