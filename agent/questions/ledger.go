package questions

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/supportstack/supportstack/agent/internal/atomicfile"
)

// Delivery states of a question.
const (
	StateQueued    = "queued"
	StateDelivered = "delivered"
	StateRejected  = "rejected"
	StateUnknown   = "unknown"
)

// Entry is what the ledger knows of one question.
type Entry struct {
	Seq       uint64    `json:"seq"`
	Asked     time.Time `json:"asked"`
	Spooled   time.Time `json:"spooled"`
	Delivered time.Time `json:"delivered,omitzero"`
	// Rejected is the server's reason when it refused the question for good (the record is kept aside and
	// retried slowly; see the sender).
	Rejected string `json:"rejected,omitempty"`
}

// State is the entry's delivery state.
func (e Entry) State() string {
	switch {
	case !e.Delivered.IsZero():
		return StateDelivered
	case e.Rejected != "":
		return StateRejected
	}
	return StateQueued
}

// Ledger is the daemon's question ledger. Only the daemon writes it (it holds the spool's lock); readers use
// ReadLedger and always see a complete file.
type Ledger struct {
	path string
	mu   sync.Mutex
	m    map[string]Entry
}

// ReadLedger returns the ledger's entries; a missing file is an empty ledger.
func ReadLedger(path string) (map[string]Entry, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return map[string]Entry{}, nil
		}
		return nil, fmt.Errorf("read question ledger: %w", err)
	}
	var f struct {
		Questions map[string]Entry `json:"questions"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("decode question ledger %s: %w", path, err)
	}
	if f.Questions == nil {
		f.Questions = map[string]Entry{}
	}
	return f.Questions, nil
}

// OpenLedger loads the ledger for writing.
func OpenLedger(path string) (*Ledger, error) {
	m, err := ReadLedger(path)
	if err != nil {
		return nil, err
	}
	return &Ledger{path: path, m: m}, nil
}

// Get returns a question's entry.
func (l *Ledger) Get(id string) (Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[id]
	return e, ok
}

// Entries returns a copy of all entries.
func (l *Ledger) Entries() map[string]Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.m)
}

// Spooled records that a question is in the spool under seq.
func (l *Ledger) Spooled(id string, seq uint64, asked, at time.Time) error {
	return l.update(func(m map[string]Entry) bool {
		m[id] = Entry{Seq: seq, Asked: asked, Spooled: at}
		return true
	})
}

// Delivered records that the server acknowledged the questions.
func (l *Ledger) Delivered(ids []string, at time.Time) error {
	return l.update(func(m map[string]Entry) bool {
		changed := false
		for _, id := range ids {
			e := m[id]
			if !e.Delivered.IsZero() {
				continue
			}
			e.Delivered, e.Rejected = at, ""
			m[id] = e
			changed = true
		}
		return changed
	})
}

// Rejected records that the server refused a question for good.
func (l *Ledger) Rejected(id, reason string) error {
	return l.update(func(m map[string]Entry) bool {
		e, ok := m[id]
		if !ok || !e.Delivered.IsZero() || e.Rejected == reason {
			return false
		}
		e.Rejected = reason
		m[id] = e
		return true
	})
}

// Prune forgets delivered questions delivered before t; they can no longer come back from the inbox.
func (l *Ledger) Prune(t time.Time) error {
	return l.update(func(m map[string]Entry) bool {
		changed := false
		for id, e := range m {
			if !e.Delivered.IsZero() && e.Delivered.Before(t) {
				delete(m, id)
				changed = true
			}
		}
		return changed
	})
}

func (l *Ledger) update(f func(map[string]Entry) bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := maps.Clone(l.m)
	if !f(next) {
		return nil
	}
	raw, err := json.MarshalIndent(struct {
		Questions map[string]Entry `json:"questions"`
	}{next}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode question ledger: %w", err)
	}
	// Readable by users (IDs and times only, no text), so that "ask --wait" works for a root daemon.
	if err := atomicfile.Write(l.path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("save question ledger: %w", err)
	}
	l.m = next
	return nil
}

// Lookup tells a question's delivery state from the ledger at ledgerPath and the inbox. The inbox is looked
// at first: the daemon writes the ledger before it deletes an inbox file, so a question being taken in at the
// same moment is found in one place or the other.
func Lookup(ledgerPath, inboxDir, id string) (string, Entry, error) {
	inInbox := InInbox(inboxDir, id)
	entries, err := ReadLedger(ledgerPath)
	if err != nil {
		return StateUnknown, Entry{}, err
	}
	if e, ok := entries[id]; ok {
		return e.State(), e, nil
	}
	if inInbox {
		return StateQueued, Entry{}, nil
	}
	return StateUnknown, Entry{}, nil
}
