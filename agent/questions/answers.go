package questions

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/supportstack/supportstack/agent/internal/atomicfile"
	"github.com/supportstack/supportstack/internal/protocol"
)

// Asked is a question's text as the user asked it.
type Asked struct {
	Text  string    `json:"text"`
	Asked time.Time `json:"asked"`
}

// answersFile is the content of the answers file.
type answersFile struct {
	// Answers are oldest first.
	Answers []protocol.Answer `json:"answers"`
	// Questions are the texts of the questions asked here, by ID. The ledger holds no text (every local user may
	// read it), and the inbox forgets a question once it is in the spool, so without them an answer could not be
	// shown with its question.
	Questions map[string]Asked `json:"questions"`
}

// Answers are the answers support staff gave to this PC's questions, kept in one file (mode 0600: answers and
// questions may be personal) that the daemon writes and "status" reads. The daemon merges every response of
// GET /v1/answers into it: the server bounds its response, so an answer it returned once stays here even when it
// no longer returns it. Safe for concurrent use.
type Answers struct {
	path string

	mu    sync.Mutex
	f     answersFile
	dirty bool // changed since loaded or saved
}

// LoadAnswers reads the answers file at path; a missing file holds no answers.
func LoadAnswers(path string) (*Answers, error) {
	a := NewAnswers(path)
	raw, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return a, nil
		}
		return nil, fmt.Errorf("read answers: %w", err)
	}
	if err := json.Unmarshal(raw, &a.f); err != nil {
		return nil, fmt.Errorf("decode answers %s: %w", path, err)
	}
	if a.f.Questions == nil {
		a.f.Questions = map[string]Asked{}
	}
	return a, nil
}

// NewAnswers returns an empty store that saves to path.
func NewAnswers(path string) *Answers {
	return &Answers{path: path, f: answersFile{Answers: []protocol.Answer{}, Questions: map[string]Asked{}}}
}

// answerKey names an answer: answer IDs are chosen per question (protocol.AnswerKey).
func answerKey(a protocol.Answer) string { return a.QuestionID + "/" + a.ID }

// Merge adds the answers not yet known and takes the server's version of those that changed; answers missing
// from in are kept. It returns how many answers were added or changed.
func (a *Answers) Merge(in []protocol.Answer) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	index := make(map[string]int, len(a.f.Answers))
	for i, x := range a.f.Answers {
		index[answerKey(x)] = i
	}
	n := 0
	for _, x := range in {
		if x.ID == "" || x.QuestionID == "" {
			continue // cannot be told apart from another answer
		}
		x.Time = x.Time.UTC()
		i, ok := index[answerKey(x)]
		switch {
		case !ok:
			index[answerKey(x)] = len(a.f.Answers)
			a.f.Answers = append(a.f.Answers, x)
		case !sameAnswer(a.f.Answers[i], x):
			a.f.Answers[i] = x
		default:
			continue
		}
		n++
	}
	if n > 0 {
		slices.SortStableFunc(a.f.Answers, compareAnswers)
		a.dirty = true
	}
	return n
}

// compareAnswers orders answers oldest first, as the server does.
func compareAnswers(x, y protocol.Answer) int {
	return cmp.Or(x.Time.Compare(y.Time), strings.Compare(x.QuestionID, y.QuestionID), strings.Compare(x.ID, y.ID))
}

func sameAnswer(x, y protocol.Answer) bool {
	return x.ID == y.ID && x.QuestionID == y.QuestionID && x.Text == y.Text && x.Author == y.Author && x.Time.Equal(y.Time)
}

// Asked remembers a question's text, so that its answers can be shown with it.
func (a *Answers) Asked(id, text string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := Asked{Text: text, Asked: at.UTC()}
	if a.f.Questions[id] == q {
		return
	}
	a.f.Questions[id] = q
	a.dirty = true
}

// PruneQuestions forgets the texts of questions asked before t that have no answer. A question answered later
// is shown without its text.
func (a *Answers) PruneQuestions(t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	answered := map[string]bool{}
	for _, x := range a.f.Answers {
		answered[x.QuestionID] = true
	}
	for id, q := range a.f.Questions {
		if !answered[id] && q.Asked.Before(t) {
			delete(a.f.Questions, id)
			a.dirty = true
		}
	}
}

// List returns the answers, oldest first.
func (a *Answers) List() []protocol.Answer {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.f.Answers)
}

// Question returns a question's text, if it is known.
func (a *Answers) Question(id string) (Asked, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	q, ok := a.f.Questions[id]
	return q, ok
}

// Save writes the file if anything changed since it was loaded or last saved; a failed save is tried again by
// the next one.
func (a *Answers) Save() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.dirty {
		return nil
	}
	raw, err := json.MarshalIndent(a.f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode answers: %w", err)
	}
	if err := atomicfile.Write(a.path, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("save answers: %w", err)
	}
	a.dirty = false
	return nil
}
