// Package questions carries a user's question from the "ask" command to the spool and records its delivery.
//
// "ask" writes the question to the inbox directory (one file per question, written atomically), which works
// whether or not the daemon runs. The daemon takes inbox files into the spool and keeps a ledger (question ID
// → spool seq, delivery time) that "ask --wait" and "status" read. The ledger makes taking a file idempotent:
// a file whose question is already in the ledger is only deleted, never appended twice.
package questions

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/supportstack/supportstack/agent/internal/atomicfile"
	"github.com/supportstack/supportstack/internal/protocol"
)

// Queued is a question as the inbox holds it.
type Queued struct {
	ID   string    `json:"id"`
	Text string    `json:"text"`
	Time time.Time `json:"time"`
}

// Data is the record data the question travels as (protocol.Question).
func (q Queued) Data() (json.RawMessage, error) {
	return json.Marshal(protocol.Question{ID: q.ID, Text: q.Text})
}

var idPattern = regexp.MustCompile(`^[0-9A-Za-z-]{8,64}$`)

// ValidID reports whether id may name a question (the protocol's rule).
func ValidID(id string) bool { return idPattern.MatchString(id) }

// NewID returns a random version-4 UUID.
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate question ID: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// CheckText validates a question's text the way the server will.
func CheckText(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return errors.New("the question is empty")
	case len(text) > protocol.MaxQuestionBytes:
		return fmt.Errorf("the question is longer than %d bytes", protocol.MaxQuestionBytes)
	case !utf8.ValidString(text):
		return errors.New("the question is not valid UTF-8")
	}
	return nil
}

// PrepareInbox creates the inbox directory. When shared, it is world-writable with the sticky bit (like
// /tmp), so that users may queue questions for a daemon running as root.
func PrepareInbox(dir string, shared bool) error {
	mode := os.FileMode(0o700)
	if shared {
		mode = 0o777 | os.ModeSticky
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return fmt.Errorf("create inbox: %w", err)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("set inbox mode: %w", err)
		}
	}
	return nil
}

// Enqueue writes a new question to the inbox durably and returns it. The file is complete when it appears
// under its final name.
func Enqueue(dir, text string, now time.Time) (Queued, error) {
	if err := CheckText(text); err != nil {
		return Queued{}, err
	}
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := PrepareInbox(dir, false); err != nil {
			return Queued{}, err
		}
	}
	id, err := NewID()
	if err != nil {
		return Queued{}, err
	}
	q := Queued{ID: id, Text: text, Time: now.UTC()}
	raw, err := json.Marshal(q)
	if err != nil {
		return Queued{}, fmt.Errorf("encode question: %w", err)
	}
	if err := atomicfile.Write(inboxPath(dir, id), raw, 0o600); err != nil {
		return Queued{}, fmt.Errorf("queue question: %w", err)
	}
	return q, nil
}

func inboxPath(dir, id string) string { return filepath.Join(dir, id+".json") }

// InInbox reports whether the question's inbox file still exists.
func InInbox(dir, id string) bool {
	_, err := os.Stat(inboxPath(dir, id))
	return err == nil
}

// List returns the questions in the inbox, oldest first. Files that cannot be read as questions are returned
// as bad (their names), so that the caller can set them aside.
func List(dir string) (qs []Queued, bad []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("read inbox: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			bad = append(bad, name)
			continue
		}
		var q Queued
		if json.Unmarshal(raw, &q) != nil || !ValidID(q.ID) || q.ID+".json" != name || CheckText(q.Text) != nil {
			bad = append(bad, name)
			continue
		}
		if q.Time.IsZero() {
			if info, err := e.Info(); err == nil {
				q.Time = info.ModTime().UTC()
			}
		}
		qs = append(qs, q)
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].Time.Before(qs[j].Time) })
	return qs, bad, nil
}

// SetAside renames an unreadable inbox file to "<name>.bad", out of the way of List but kept for a human.
func SetAside(dir, name string) error {
	p := filepath.Join(dir, name)
	if err := os.Rename(p, p+".bad"); err != nil {
		return fmt.Errorf("set aside inbox file: %w", err)
	}
	return atomicfile.SyncDir(dir)
}

// Remove deletes a question's inbox file.
func Remove(dir, id string) error { return atomicfile.Remove(inboxPath(dir, id)) }
