package sender

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/internal/atomicfile"
	"github.com/supportstack/supportstack/internal/protocol"
)

// RejectedRecord is a record the server refused for good, as kept in RejectedDir.
type RejectedRecord struct {
	Record      protocol.Record `json:"record"`
	Status      int             `json:"status"`
	Code        string          `json:"code"`
	Message     string          `json:"message"`
	RejectedAt  time.Time       `json:"rejectedAt"`
	LastAttempt time.Time       `json:"lastAttempt"`
	Attempts    int             `json:"attempts"`
}

// Reason is the server's refusal in short.
func (r RejectedRecord) Reason() string { return fmt.Sprintf("%d %s", r.Status, r.Code) }

func rejectedName(seq uint64) string { return fmt.Sprintf("%020d.json", seq) }

// ReadRejected returns the records kept in dir, by seq.
func ReadRejected(dir string) ([]RejectedRecord, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read rejected records: %w", err)
	}
	var out []RejectedRecord
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return out, fmt.Errorf("read rejected record: %w", err)
		}
		var r RejectedRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return out, fmt.Errorf("decode rejected record %s: %w", e.Name(), err)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Record.Seq < out[j].Record.Seq })
	return out, nil
}

func (s *Sender) writeRejected(r RejectedRecord) error {
	if err := os.MkdirAll(s.o.RejectedDir, 0o700); err != nil {
		return fmt.Errorf("create rejected directory: %w", err)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode rejected record: %w", err)
	}
	return atomicfile.Write(filepath.Join(s.o.RejectedDir, rejectedName(r.Record.Seq)), raw, 0o600)
}

// reject moves a lone record the server refused for good out of the spool into RejectedDir. If it cannot be
// kept there, the batch blocks instead: a record is never dropped.
func (s *Sender) reject(ctx context.Context, rec protocol.Record, se *client.StatusError) error {
	now := s.o.Clock.Now()
	r := RejectedRecord{Record: rec, Status: se.Status, Code: se.Code, Message: se.Message, RejectedAt: now, LastAttempt: now, Attempts: 1}
	if s.o.RejectedDir == "" {
		return s.block(ctx, []protocol.Record{rec}, se)
	}
	if err := s.writeRejected(r); err != nil {
		s.o.Log.Error("Cannot keep a rejected record aside", "seq", rec.Seq, "err", err)
		return s.block(ctx, []protocol.Record{rec}, se)
	}
	if err := s.o.Spool.Ack(rec.Seq); err != nil {
		s.o.Log.Error("Cannot ack the spool", "lastSeq", rec.Seq, "err", err)
		return s.pause(ctx, s.o.BackoffMax)
	}
	s.o.Log.Error("Server refused a record for good; kept aside and retried later", "seq", rec.Seq, "kind", rec.Kind, "status", se.Status, "code", se.Code)
	s.rejected++
	if s.nextRejected.IsZero() {
		s.nextRejected = now.Add(s.o.RejectedRetryInterval)
	}
	if s.o.OnReject != nil {
		s.o.OnReject(rec, r.Reason())
	}
	s.refreshRejectedStatus()
	return nil
}

// block keeps a batch the server refused as a whole in the spool and tries it again after
// RejectedRetryInterval.
func (s *Sender) block(ctx context.Context, recs []protocol.Record, se *client.StatusError) error {
	b := &Blocked{FirstSeq: recs[0].Seq, LastSeq: recs[len(recs)-1].Seq, Records: len(recs), Since: s.o.Clock.Now()}
	if se != nil {
		b.Status, b.Code, b.Message = se.Status, se.Code, se.Message
	}
	s.mu.Lock()
	prev := s.status.Blocked
	if prev != nil && prev.FirstSeq == b.FirstSeq && prev.Code == b.Code {
		b.Since = prev.Since
	}
	s.status.Blocked = b
	s.mu.Unlock()
	if prev == nil || prev.FirstSeq != b.FirstSeq || prev.Code != b.Code {
		s.o.Log.Error("Server refused a batch; it stays in the spool and is retried later", "status", b.Status, "code", b.Code, "firstSeq", b.FirstSeq, "lastSeq", b.LastSeq, "retryIn", s.o.RejectedRetryInterval)
	}
	s.blocked = true
	s.setError(fmt.Errorf("batch %d-%d refused: HTTP %d %s", b.FirstSeq, b.LastSeq, b.Status, b.Code))
	return s.pause(ctx, s.o.RejectedRetryInterval)
}

func (s *Sender) loadRejected() {
	if s.o.RejectedDir == "" {
		return
	}
	rs, err := ReadRejected(s.o.RejectedDir)
	if err != nil {
		s.o.Log.Error("Cannot read rejected records", "err", err)
	}
	s.rejected = len(rs)
	if s.rejected > 0 {
		s.nextRejected = s.o.Clock.Now().Add(s.o.RejectedRetryInterval)
	}
	s.refreshRejectedStatus()
}

func (s *Sender) rejectedDue() time.Time {
	if s.rejected == 0 {
		return time.Time{}
	}
	return s.nextRejected
}

// retryRejected sends each kept record again on its own; accepted ones leave RejectedDir.
func (s *Sender) retryRejected(ctx context.Context) {
	now := s.o.Clock.Now()
	s.nextRejected = now.Add(s.o.RejectedRetryInterval)
	rs, err := ReadRejected(s.o.RejectedDir)
	if err != nil {
		s.o.Log.Error("Cannot read rejected records", "err", err)
	}
	defer s.refreshRejectedStatus()
	for _, r := range rs {
		ep := s.endpoint()
		batch := &protocol.Batch{DeviceID: s.state.DeviceID, Records: []protocol.Record{r.Record}}
		ack, err := s.o.Client.SendBatch(ctx, ep, s.state.Credential, batch)
		if err == nil && ack.AckedThroughSeq == r.Record.Seq {
			if err := atomicfile.Remove(filepath.Join(s.o.RejectedDir, rejectedName(r.Record.Seq))); err != nil {
				s.o.Log.Error("Cannot remove an accepted rejected record", "seq", r.Record.Seq, "err", err)
				continue
			}
			s.rejected--
			s.o.Log.Warn("Server accepted a record it had refused", "seq", r.Record.Seq, "kind", r.Record.Kind)
			if s.o.OnAck != nil {
				s.o.OnAck([]protocol.Record{r.Record}, s.o.Clock.Now())
			}
			continue
		}
		se := client.AsStatus(err)
		if err == nil || se == nil || se.Status >= 500 || se.Status == http.StatusTooManyRequests || se.Status == http.StatusRequestTimeout {
			return // the server is not in a state to tell; next round
		}
		if se.Status == http.StatusConflict && se.Code == "seq_reused" {
			// Its seq now names another record on the server: it goes back into the spool under a new one.
			if err := s.requeueRejected(r); err != nil {
				s.o.Log.Error("Cannot put a rejected record back into the spool", "seq", r.Record.Seq, "err", err)
			}
			continue
		}
		if se.Status == http.StatusUnauthorized {
			if err := s.reenroll(ctx); err != nil {
				s.o.Log.Warn("Cannot enroll again", "err", err)
			}
			return
		}
		r.Status, r.Code, r.Message, r.LastAttempt = se.Status, se.Code, se.Message, now
		r.Attempts++
		if err := s.writeRejected(r); err != nil {
			s.o.Log.Error("Cannot update a rejected record", "seq", r.Record.Seq, "err", err)
		}
	}
}

// requeueRejected moves a kept record back into the spool; the spool has it before the kept copy goes.
func (s *Sender) requeueRejected(r RejectedRecord) error {
	seq, err := s.o.Spool.Requeue(r.Record)
	if err != nil {
		return err
	}
	if err := atomicfile.Remove(filepath.Join(s.o.RejectedDir, rejectedName(r.Record.Seq))); err != nil {
		return err
	}
	s.rejected--
	s.o.Log.Warn("A record refused once goes back into the spool under a new seq", "oldSeq", r.Record.Seq, "seq", seq, "kind", r.Record.Kind)
	return nil
}

func (s *Sender) refreshRejectedStatus() {
	if s.o.RejectedDir == "" {
		return
	}
	rs, _ := ReadRejected(s.o.RejectedDir)
	infos := make([]RejectedInfo, 0, len(rs))
	for _, r := range rs {
		infos = append(infos, RejectedInfo{Seq: r.Record.Seq, Kind: r.Record.Kind, Status: r.Status, Code: r.Code, Message: r.Message, RejectedAt: r.RejectedAt, Attempts: r.Attempts})
	}
	s.update(func(st *Status) { st.Rejected = infos })
}
