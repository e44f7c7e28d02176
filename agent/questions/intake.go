package questions

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ErrRefused is returned (wrapped) by an AppendFunc when the spool will never take the question; Intake then
// sets its inbox file aside instead of trying again forever.
var ErrRefused = errors.New("question refused by the spool")

// AppendFunc puts a question record into the spool and returns its seq; the record must be durable when it
// returns.
type AppendFunc func(t time.Time, data json.RawMessage) (uint64, error)

// Intake moves the inbox's questions into the spool, oldest first, and returns the IDs it appended. A question
// already in the ledger is not appended again; its file is only deleted. On an append error (a full spool)
// it stops and leaves the remaining files in the inbox for the next call.
func Intake(dir string, l *Ledger, appendQ AppendFunc, now time.Time, log *slog.Logger) ([]string, error) {
	qs, bad, err := List(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range bad {
		log.Warn("Setting aside unreadable inbox file", "file", name)
		if err := SetAside(dir, name); err != nil {
			log.Error("Cannot set aside inbox file", "file", name, "err", err)
		}
	}
	var taken []string
	for _, q := range qs {
		if _, ok := l.Get(q.ID); !ok {
			data, err := q.Data()
			if err != nil {
				return taken, fmt.Errorf("encode question %s: %w", q.ID, err)
			}
			seq, err := appendQ(q.Time, data)
			if errors.Is(err, ErrRefused) {
				log.Error("Question refused by the spool; inbox file set aside", "questionId", q.ID, "err", err)
				if err := SetAside(dir, q.ID+".json"); err != nil {
					return taken, err
				}
				continue
			}
			if err != nil {
				return taken, fmt.Errorf("spool question %s: %w", q.ID, err)
			}
			// A crash right here appends the question again on restart; the server stores a question under
			// its ID, so the duplicate overwrites the same object.
			if err := l.Spooled(q.ID, seq, q.Time, now); err != nil {
				return taken, err
			}
			taken = append(taken, q.ID)
		}
		if err := Remove(dir, q.ID); err != nil {
			return taken, err
		}
	}
	return taken, nil
}
