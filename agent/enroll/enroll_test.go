package enroll_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/ingesttest"
)

func TestEnrollSaveLoad(t *testing.T) {
	srv := ingesttest.New(t, "tok")
	path := filepath.Join(t.TempDir(), "enrollment.json")
	if _, err := enroll.Load(path); !errors.Is(err, enroll.ErrNotEnrolled) {
		t.Fatalf("Load of nothing = %v", err)
	}
	st, err := enroll.Enroll(context.Background(), &client.Client{}, srv.URL, "tok", nil, "v1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := enroll.Save(path, st); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", info.Mode().Perm())
	}
	got, err := enroll.Load(path)
	if err != nil || got.DeviceID != st.DeviceID || got.Credential != st.Credential || got.Token != "tok" || got.URL != srv.URL {
		t.Errorf("round trip: %v", err)
	}
	// Enrolling again keeps the device ID.
	again, err := enroll.Enroll(context.Background(), &client.Client{}, srv.URL, "tok", &got, "v1", time.Now())
	if err != nil || again.DeviceID != st.DeviceID {
		t.Errorf("re-enrollment: %v, device %s", err, again.DeviceID)
	}
	if _, err := enroll.Enroll(context.Background(), &client.Client{}, srv.URL, "wrong", nil, "v1", time.Now()); client.AsStatus(err) == nil || client.AsStatus(err).Status != 401 {
		t.Errorf("wrong token: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}
