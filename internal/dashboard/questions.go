package dashboard

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/supportstack/supportstack/internal/fleetindex"
	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"

	"github.com/supportstack/supportstack/internal/websession"
)

// maxAnswerBytes bounds an answer's text; ingest serves answer objects of up to 64 KiB to the agents.
const maxAnswerBytes = 16 << 10

// inboxLimit bounds the questions the inbox shows at once.
const inboxLimit = 500

type questionsPage struct {
	base
	Items      []fleetindex.InboxItem
	Unanswered int
	All        bool
	Now        time.Time
}

func (d *dashboard) questions(w http.ResponseWriter, r *http.Request, s session) {
	all := r.URL.Query().Get("show") == "all"
	p := questionsPage{base: d.base(r, s, "Questions", "questions"), All: all, Now: time.Now()}
	p.Items, p.Unanswered = d.index.Inbox(!all, inboxLimit)
	render(w, http.StatusOK, "questions.html", p)
}

// answer stores a staff member's answer where ingest serves it to the asking device (GET /v1/answers).
func (d *dashboard) answer(w http.ResponseWriter, r *http.Request, s session) {
	deviceID, qid := r.PathValue("id"), r.PathValue("qid")
	back := r.PostForm.Get("back")
	if back == "" {
		back = "/devices/" + deviceID
	}
	q, ok := d.index.Question(deviceID, qid)
	if !ok {
		http.Error(w, "No such question on this device: nothing was stored.", http.StatusNotFound)
		return
	}
	text := strings.TrimSpace(strings.ReplaceAll(r.PostForm.Get("answer"), "\r\n", "\n"))
	switch {
	case text == "":
		redirect(w, r, back, "empty-answer")
		return
	case len(text) > maxAnswerBytes || !utf8.ValidString(text):
		redirect(w, r, back, "bad-answer")
		return
	}
	a := protocol.Answer{ID: websession.RandomToken(), QuestionID: q.ID, Text: text, Author: s.User, Time: time.Now().UTC()}
	data, err := json.Marshal(a)
	if err == nil {
		_, _, err = d.pool.Write(r.Context(), protocol.AnswerKey(deviceID, q.ID, a.ID), data,
			storagepool.WriteOptions{ContentType: "application/json", IfAbsent: true})
	}
	if err != nil {
		notice := "answer-failed"
		if errors.Is(err, storagepool.ErrUnavailable) {
			notice = "no-storage"
		}
		redirect(w, r, back, notice)
		return
	}
	d.index.NoteAnswer(deviceID, a)
	redirect(w, r, back, "answered")
}
