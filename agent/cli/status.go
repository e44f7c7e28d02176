package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/supportstack/supportstack/agent/config"
	"github.com/supportstack/supportstack/agent/daemon"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/questions"
	"github.com/supportstack/supportstack/agent/sender"
	"github.com/supportstack/supportstack/agent/spool"
)

// Report is the output of "status --json".
type Report struct {
	StateDir   string          `json:"stateDir"`
	Enrollment *EnrollmentInfo `json:"enrollment,omitempty"`
	// EnrollmentError says why the enrollment could not be read ("not enrolled", permission denied), or, while
	// the daemon enrolls the device by itself, why it is not enrolled yet ("not enrolled yet: <reason>").
	EnrollmentError string `json:"enrollmentError,omitempty"`
	// EnrollmentNextAttempt is when the running daemon tries to enroll again.
	EnrollmentNextAttempt time.Time `json:"enrollmentNextAttempt,omitzero"`
	// Daemon is "running", "stopped" or "unknown" (the spool could not be inspected).
	Daemon    string `json:"daemon"`
	DaemonPID int    `json:"daemonPid,omitempty"`
	// SnapshotAt is when the daemon's figures below were written; zero when they were read from the spool now.
	SnapshotAt time.Time             `json:"snapshotAt,omitzero"`
	Spool      *daemon.SpoolStats    `json:"spool,omitempty"`
	Sender     *sender.Status        `json:"sender,omitempty"`
	Rejected   []sender.RejectedInfo `json:"rejected,omitempty"`
	// Questions are those not yet delivered.
	Questions []QuestionInfo `json:"questions"`
	// Answers are support staff's answers to this PC's questions, newest last.
	Answers []AnswerInfo `json:"answers"`
	// AnswersError says why the answers could not be read (a user reading the answers of a daemon that runs as
	// root: they are for root only).
	AnswersError string `json:"answersError,omitempty"`
}

// EnrollmentInfo is the enrollment without its secrets.
type EnrollmentInfo struct {
	DeviceID            string    `json:"deviceId"`
	ExpiresAt           time.Time `json:"credentialExpiresAt"`
	Endpoints           []string  `json:"endpoints"`
	EnrolledAt          time.Time `json:"enrolledAt"`
	MaxRecordsPerSecond int       `json:"maxRecordsPerSecond,omitempty"`
}

// AnswerInfo is one answer to a question of this PC's user. The texts are as support staff wrote them; the text
// output makes them safe to print.
type AnswerInfo struct {
	ID         string `json:"id"`
	QuestionID string `json:"questionId"`
	// Question is the question's text, when the agent still knows it.
	Question string    `json:"question,omitempty"`
	Text     string    `json:"text"`
	Author   string    `json:"author"`
	Time     time.Time `json:"time"`
}

// QuestionInfo is one question not yet delivered.
type QuestionInfo struct {
	ID       string    `json:"id"`
	State    string    `json:"state"`
	Asked    time.Time `json:"asked"`
	Seq      uint64    `json:"seq,omitempty"`
	Rejected string    `json:"rejected,omitempty"`
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs, c := newFlagSet("status", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	r, err := c.resolve(stderr, true)
	if err != nil {
		return err
	}
	rep, err := collectStatus(r)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printStatus(stdout, rep, time.Now())
	return nil
}

func collectStatus(r resolved) (Report, error) {
	lay := config.Layout{Root: r.stateDir}
	rep := Report{StateDir: r.stateDir, Daemon: "unknown", Questions: []QuestionInfo{}, Answers: []AnswerInfo{}}
	st, loadErr := enroll.Load(lay.Enrollment())
	if err := loadErr; err != nil {
		if errors.Is(err, enroll.ErrNotEnrolled) {
			rep.EnrollmentError = "not enrolled"
		} else {
			rep.EnrollmentError = err.Error()
		}
	} else {
		rep.Enrollment = &EnrollmentInfo{DeviceID: st.DeviceID, ExpiresAt: st.ExpiresAt, Endpoints: st.Endpoints, EnrolledAt: st.EnrolledAt, MaxRecordsPerSecond: st.MaxRecordsPerSecond}
	}

	snap, snapErr := daemon.ReadSnapshot(lay.Status())
	if _, err := os.Stat(lay.Spool()); err != nil {
		rep.Daemon = "stopped" // never ran here
		rep.Spool = &daemon.SpoolStats{PendingRecords: map[string]int{}, PendingBytes: map[string]int64{}}
	} else if sp, _, err := spool.Open(spool.Options{Dir: lay.Spool(), MaxQuestionBytes: r.cfg.SpoolMaxQuestionBytes, MaxTelemetryBytes: r.cfg.SpoolMaxTelemetryBytes, SegmentBytes: r.cfg.SpoolSegmentBytes}); err == nil {
		rep.Daemon = "stopped"
		stats := daemon.StatsOf(sp.Stats())
		rep.Spool = &stats
		sp.Close()
	} else if errors.Is(err, spool.ErrLocked) {
		rep.Daemon = "running"
	}
	if snapErr == nil {
		if rep.Spool == nil {
			rep.Spool, rep.SnapshotAt = &snap.Spool, snap.WrittenAt
		}
		if rep.Daemon == "running" {
			rep.DaemonPID = snap.PID
		}
		if e := snap.Enrolling; e != nil {
			// The daemon enrolls the device by itself and has not yet: no sender ran, but there is a reason.
			if errors.Is(loadErr, enroll.ErrNotEnrolled) {
				rep.EnrollmentError = "not enrolled yet: " + e.Reason
				if rep.Daemon == "running" {
					rep.EnrollmentNextAttempt = e.NextAttempt
				}
			}
		} else {
			s := snap.Sender
			rep.Sender = &s
			rep.Rejected = s.Rejected
		}
	}
	if rs, err := sender.ReadRejected(lay.Rejected()); err == nil {
		rep.Rejected = nil
		for _, x := range rs {
			rep.Rejected = append(rep.Rejected, sender.RejectedInfo{Seq: x.Record.Seq, Kind: x.Record.Kind, Status: x.Status, Code: x.Code, Message: x.Message, RejectedAt: x.RejectedAt, Attempts: x.Attempts})
		}
	}

	entries, err := questions.ReadLedger(lay.Questions())
	if err != nil {
		return rep, err
	}
	queued, _, _ := questions.List(lay.Inbox())
	for _, q := range queued {
		if _, ok := entries[q.ID]; !ok {
			rep.Questions = append(rep.Questions, QuestionInfo{ID: q.ID, State: questions.StateQueued, Asked: q.Time})
		}
	}
	for id, e := range entries {
		if e.State() != questions.StateDelivered {
			rep.Questions = append(rep.Questions, QuestionInfo{ID: id, State: e.State(), Asked: e.Asked, Seq: e.Seq, Rejected: e.Rejected})
		}
	}
	sort.Slice(rep.Questions, func(i, j int) bool { return rep.Questions[i].Asked.Before(rep.Questions[j].Asked) })

	stored, err := questions.LoadAnswers(lay.Answers())
	if err != nil {
		rep.AnswersError = err.Error()
		return rep, nil
	}
	for _, a := range stored.List() {
		info := AnswerInfo{ID: a.ID, QuestionID: a.QuestionID, Text: a.Text, Author: a.Author, Time: a.Time}
		if q, ok := stored.Question(a.QuestionID); ok {
			info.Question = q.Text
		}
		rep.Answers = append(rep.Answers, info)
	}
	return rep, nil
}

func printStatus(w io.Writer, rep Report, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(f, a...)) }
	row("State directory", "%s", rep.StateDir)
	if e := rep.Enrollment; e != nil {
		row("Device", "%s", e.DeviceID)
		row("Credential", "valid until %s", when(e.ExpiresAt, now))
		eps := make([]string, len(e.Endpoints))
		for i, ep := range e.Endpoints {
			eps[i] = ep
			if rep.Sender != nil && rep.Sender.Endpoint == ep && rep.Daemon == "running" {
				eps[i] += " (in use)"
			}
		}
		row("Endpoints", "%s", strings.Join(eps, ", "))
		if e.MaxRecordsPerSecond > 0 {
			row("Drain rate", "at most %d records/s", e.MaxRecordsPerSecond)
		}
	} else {
		row("Device", "%s", inertLine(rep.EnrollmentError))
		if !rep.EnrollmentNextAttempt.IsZero() {
			row("Next enrollment attempt", "%s", when(rep.EnrollmentNextAttempt, now))
		}
	}
	switch {
	case rep.Daemon == "running" && rep.DaemonPID != 0:
		row("Agent", "running (pid %d)", rep.DaemonPID)
	default:
		row("Agent", "%s", rep.Daemon)
	}
	if s := rep.Spool; s != nil {
		prefix := ""
		if !rep.SnapshotAt.IsZero() {
			prefix = fmt.Sprintf("as of %s: ", when(rep.SnapshotAt, now))
		}
		row("Spool", "%squestions %d (%s), telemetry %d (%s), %d pending", prefix,
			s.PendingRecords[string(spool.Questions)], bytesText(s.PendingBytes[string(spool.Questions)]),
			s.PendingRecords[string(spool.Telemetry)], bytesText(s.PendingBytes[string(spool.Telemetry)]),
			s.PendingRecords[string(spool.Questions)]+s.PendingRecords[string(spool.Telemetry)])
		if s.OldestUnsent.IsZero() {
			row("Oldest unsent", "none")
		} else {
			row("Oldest unsent", "%s", when(s.OldestUnsent, now))
		}
		if s.LastAck.IsZero() {
			row("Last ack", "never")
		} else {
			row("Last ack", "%s (through seq %d)", when(s.LastAck, now), s.LastAckedSeq)
		}
		if s.Dropped > 0 {
			row("Dropped telemetry", "%d records (spool full)", s.Dropped)
		}
	}
	if snd := rep.Sender; snd != nil {
		if snd.LastError != "" {
			row("Last error", "%s (%s)", inertLine(snd.LastError), when(snd.LastErrorAt, now))
		}
		if !snd.NextAttempt.IsZero() && rep.Daemon == "running" {
			row("Next attempt", "%s", when(snd.NextAttempt, now))
		}
		if b := snd.Blocked; b != nil {
			row("Rejected batch", "seq %d-%d (%d records) refused by the server since %s: HTTP %d %s %s; kept in the spool, retried every few minutes",
				b.FirstSeq, b.LastSeq, b.Records, when(b.Since, now), b.Status, inertLine(b.Code), inertLine(b.Message))
		}
	}
	if len(rep.Rejected) == 0 {
		row("Rejected records", "none")
	} else {
		row("Rejected records", "%d kept aside and retried", len(rep.Rejected))
		for _, x := range rep.Rejected {
			fmt.Fprintf(tw, "\tseq %d %s: HTTP %d %s, %d attempts since %s\n", x.Seq, x.Kind, x.Status, inertLine(x.Code), x.Attempts, when(x.RejectedAt, now))
		}
	}
	row("Questions not yet delivered", "%d", len(rep.Questions))
	for _, q := range rep.Questions {
		state := q.State
		if q.Rejected != "" {
			state += " (" + inertLine(q.Rejected) + ")"
		}
		fmt.Fprintf(tw, "\t%s %s, asked %s\n", q.ID, state, when(q.Asked, now))
	}
	switch {
	case rep.AnswersError != "":
		row("Answers", "cannot be read: %s", inertLine(rep.AnswersError))
	case len(rep.Answers) == 0:
		row("Answers", "none")
	default:
		row("Answers", "%d", len(rep.Answers))
	}
	tw.Flush()
	// Below the table: answers run over several lines and may hold tabs, which would upset its columns.
	for _, a := range rep.Answers {
		q := "question " + inertLine(a.QuestionID)
		if a.Question != "" {
			q = `"` + summary(a.Question, 72) + `"`
		}
		fmt.Fprintf(w, "\n  To %s\n  %s, %s:\n", q, inertLine(a.Author), when(a.Time, now))
		fmt.Fprintf(w, "    %s\n", strings.ReplaceAll(inert(strings.TrimRight(a.Text, "\r\n")), "\n", "\n    "))
	}
}

// inert makes text from elsewhere (support staff, the server) harmless to print on a terminal. Control
// characters could move the cursor, rewrite or clear the screen, set the window title or write the clipboard
// (escape sequences begin with ESC or a C1 control); they are shown escaped (\x1b) instead. So are the
// bidirectional controls, which can make text read other than it is. Newlines and tabs stay, CR LF becomes LF, and
// invalid UTF-8 (a lone byte such as 0x9b, CSI to an 8-bit terminal) becomes U+FFFD.
func inert(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var b strings.Builder
	for _, r := range s { // an invalid byte comes as utf8.RuneError, U+FFFD
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e || r == 0x200f, r == 0x061c:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// inertLine is inert text on one line: for a cell of the table, where a newline or tab would break it.
func inertLine(s string) string {
	return strings.NewReplacer("\n", " ", "\t", " ").Replace(inert(s))
}

// summary is the first line of s, made inert and cut to at most n characters, at a space if there is one in
// its second half.
func summary(s string, n int) string {
	line, _, more := strings.Cut(strings.TrimSpace(s), "\n")
	out := []rune(inertLine(strings.TrimSpace(line)))
	if len(out) > n {
		cut := n - 1
		for i := cut; i > n/2; i-- {
			if out[i] == ' ' {
				cut = i
				break
			}
		}
		return strings.TrimRight(string(out[:cut]), " ") + "…"
	}
	if more {
		return string(out) + " …"
	}
	return string(out)
}

func when(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	rel := d.String() + " ago"
	if d < 0 {
		rel = "in " + (-d).String()
	}
	if d > 48*time.Hour || d < -48*time.Hour {
		rel = fmt.Sprintf("%d days", int(d.Hours()/24))
		if d < 0 {
			rel = fmt.Sprintf("in %d days", int(-d.Hours()/24))
		} else {
			rel += " ago"
		}
	}
	return fmt.Sprintf("%s (%s)", t.UTC().Format("2006-01-02 15:04:05 UTC"), rel)
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
