package questions_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/supportstack/supportstack/agent/questions"
	"github.com/supportstack/supportstack/internal/protocol"
)

type appender struct {
	next uint64
	got  []protocol.Question
	fail error
}

func (a *appender) append(_ time.Time, data json.RawMessage) (uint64, error) {
	if a.fail != nil {
		return 0, a.fail
	}
	q, err := protocol.ParseQuestion(data)
	if err != nil {
		return 0, err
	}
	a.got = append(a.got, q)
	a.next++
	return a.next, nil
}

func setup(t *testing.T) (inbox string, l *questions.Ledger, ledgerPath string) {
	dir := t.TempDir()
	inbox, ledgerPath = filepath.Join(dir, "inbox"), filepath.Join(dir, "questions.json")
	l, err := questions.OpenLedger(ledgerPath)
	if err != nil {
		t.Fatal(err)
	}
	return inbox, l, ledgerPath
}

func TestNewIDMatchesProtocol(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := questions.NewID()
		if err != nil || !questions.ValidID(id) || len(id) != 36 || seen[id] {
			t.Fatalf("NewID = %q, %v", id, err)
		}
		seen[id] = true
	}
}

func TestIntakeAppendsOnceInOrder(t *testing.T) {
	inbox, l, ledgerPath := setup(t)
	t0 := time.Now()
	a1, err := questions.Enqueue(inbox, "first", t0)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := questions.Enqueue(inbox, "second", t0.Add(time.Second))
	if st, _, _ := questions.Lookup(ledgerPath, inbox, a1.ID); st != questions.StateQueued {
		t.Errorf("state before intake = %s", st)
	}
	app := &appender{}
	taken, err := questions.Intake(inbox, l, app.append, t0, slog.New(slog.DiscardHandler))
	if err != nil || len(taken) != 2 || app.got[0].ID != a1.ID || app.got[1].ID != a2.ID || app.got[0].Text != "first" {
		t.Fatalf("intake: %v %v %+v", taken, err, app.got)
	}
	if entries, _ := os.ReadDir(inbox); len(entries) != 0 {
		t.Errorf("inbox not emptied: %v", entries)
	}
	st, e, _ := questions.Lookup(ledgerPath, inbox, a2.ID)
	if st != questions.StateQueued || e.Seq != 2 {
		t.Errorf("after intake: %s %+v", st, e)
	}
	if err := l.Delivered([]string{a2.ID}, t0); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := questions.Lookup(ledgerPath, inbox, a2.ID); st != questions.StateDelivered {
		t.Errorf("after delivery: %s", st)
	}
}

// A crash after the ledger was written but before the inbox file was deleted: the file is taken again and only
// deleted, not appended a second time.
func TestIntakeIsIdempotent(t *testing.T) {
	inbox, l, _ := setup(t)
	q, _ := questions.Enqueue(inbox, "once only", time.Now())
	if err := l.Spooled(q.ID, 41, q.Time, time.Now()); err != nil {
		t.Fatal(err)
	}
	app := &appender{}
	taken, err := questions.Intake(inbox, l, app.append, time.Now(), slog.New(slog.DiscardHandler))
	if err != nil || len(taken) != 0 || len(app.got) != 0 {
		t.Fatalf("re-taken question appended again: %v %v %v", taken, err, app.got)
	}
	if questions.InInbox(inbox, q.ID) {
		t.Error("inbox file kept")
	}
	if e, _ := l.Get(q.ID); e.Seq != 41 {
		t.Errorf("ledger entry changed: %+v", e)
	}
}

// A full spool leaves the question in the inbox.
func TestIntakeKeepsQuestionWhenSpoolFull(t *testing.T) {
	inbox, l, _ := setup(t)
	q, _ := questions.Enqueue(inbox, "keep me", time.Now())
	app := &appender{fail: errors.New("spool is full")}
	if _, err := questions.Intake(inbox, l, app.append, time.Now(), slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("no error from a failing append")
	}
	if !questions.InInbox(inbox, q.ID) {
		t.Fatal("question lost from the inbox")
	}
	if _, ok := l.Get(q.ID); ok {
		t.Error("ledger records a question that is not in the spool")
	}
}

func TestIntakeSetsAsideUnreadableFiles(t *testing.T) {
	inbox, l, _ := setup(t)
	questions.Enqueue(inbox, "good", time.Now())
	os.WriteFile(filepath.Join(inbox, "junk.json"), []byte("{not json"), 0o600)
	app := &appender{}
	if _, err := questions.Intake(inbox, l, app.append, time.Now(), slog.New(slog.DiscardHandler)); err != nil || len(app.got) != 1 {
		t.Fatalf("intake: %v, %d appended", err, len(app.got))
	}
	if _, err := os.Stat(filepath.Join(inbox, "junk.json.bad")); err != nil {
		t.Errorf("junk not set aside: %v", err)
	}
}

func TestCheckText(t *testing.T) {
	tests := map[string]struct {
		text string
		ok   bool
	}{
		"plain":     {"why is my PC slow?", true},
		"empty":     {"", false},
		"blank":     {" \n\t", false},
		"too long":  {string(make([]byte, protocol.MaxQuestionBytes+1)), false},
		"bad utf-8": {"\xff\xfe", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := questions.CheckText(tc.text); (err == nil) != tc.ok {
				t.Errorf("CheckText = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
