package questions_test

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/supportstack/supportstack/agent/questions"
	"github.com/supportstack/supportstack/internal/protocol"
)

func TestAnswersMergeKeepsWhatTheServerNoLongerReturns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "answers.json")
	a, err := questions.LoadAnswers(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.List(); len(got) != 0 {
		t.Fatalf("a missing file holds answers: %v", got)
	}
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	first := protocol.Answer{ID: "an-1", QuestionID: "q-00000001", Text: "let me look", Author: "support@acme.example", Time: t0}
	second := protocol.Answer{ID: "an-2", QuestionID: "q-00000001", Text: "close some tabs", Author: "support@acme.example", Time: t0.Add(time.Minute)}
	// Answer IDs are per question: the same ID under another question is another answer.
	other := protocol.Answer{ID: "an-1", QuestionID: "q-00000002", Text: "it is offline", Author: "support@acme.example", Time: t0.Add(2 * time.Minute)}

	if n := a.Merge([]protocol.Answer{second, first}); n != 2 {
		t.Errorf("merged %d new answers, want 2", n)
	}
	a.Asked("q-00000001", "why is my PC slow?", t0.Add(-time.Hour))
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}
	if n := a.Merge([]protocol.Answer{other}); n != 1 {
		t.Errorf("merged %d new answers, want 1", n)
	}
	// The server returned fewer answers this time; those it returned before stay.
	if n := a.Merge([]protocol.Answer{first}); n != 0 {
		t.Errorf("an unchanged answer counted as new: %d", n)
	}
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}

	b, err := questions.LoadAnswers(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []protocol.Answer{first, second, other}; !reflect.DeepEqual(b.List(), want) {
		t.Errorf("stored answers\n%+v\nwant oldest first\n%+v", b.List(), want)
	}
	if q, ok := b.Question("q-00000001"); !ok || q.Text != "why is my PC slow?" {
		t.Errorf("question text %q %v", q.Text, ok)
	}
	if _, ok := b.Question("q-00000002"); ok {
		t.Error("a question never asked here has a text")
	}

	// An answer support staff edited is taken in its new version.
	edited := second
	edited.Text = "close some browser tabs"
	if n := b.Merge([]protocol.Answer{edited}); n != 1 {
		t.Errorf("an edited answer counted %d times, want 1", n)
	}
	if got := b.List()[1].Text; got != edited.Text {
		t.Errorf("edited answer kept as %q", got)
	}
	// Answers without IDs cannot be merged and are left out.
	b.Merge([]protocol.Answer{{Text: "no ID"}})
	if len(b.List()) != 3 {
		t.Errorf("an answer without ID was kept: %+v", b.List())
	}
}

// The file is written only when something changed, and is for its owner alone: answers and questions may be
// personal.
func TestAnswersSavedOnlyWhenChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "answers.json")
	a := questions.NewAnswers(path)
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("an unchanged store was written: %v", err)
	}
	ans := protocol.Answer{ID: "an-1", QuestionID: "q-00000001", Text: "hi", Time: time.Now()}
	a.Merge([]protocol.Answer{ans})
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Errorf("answers file mode %v, want 0600", info.Mode().Perm())
	}
	// Remove the file behind the store's back: a save with nothing new must not bring it back.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	a.Merge([]protocol.Answer{ans})
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("an unchanged merge wrote the file: %v", err)
	}
}

// A save that fails is tried again by the next one, even when nothing new arrived in between.
func TestAnswersFailedSaveIsRetried(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "answers.json")
	a := questions.NewAnswers(path)
	a.Merge([]protocol.Answer{{ID: "an-1", QuestionID: "q-00000001", Text: "hi", Time: time.Now()}})
	if err := a.Save(); err == nil {
		t.Fatal("saved into a directory that does not exist")
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}
	b, err := questions.LoadAnswers(path)
	if err != nil || len(b.List()) != 1 {
		t.Errorf("after the retry: %v %+v", err, b)
	}
}

func TestPruneQuestionsKeepsAnsweredOnes(t *testing.T) {
	a := questions.NewAnswers(filepath.Join(t.TempDir(), "answers.json"))
	old := time.Now().Add(-100 * 24 * time.Hour)
	a.Asked("q-answered", "answered long ago", old)
	a.Asked("q-unanswered", "never answered", old)
	a.Asked("q-recent", "asked today", time.Now())
	a.Merge([]protocol.Answer{{ID: "an-1", QuestionID: "q-answered", Text: "yes", Time: old}})
	a.PruneQuestions(time.Now().Add(-90 * 24 * time.Hour))
	for id, want := range map[string]bool{"q-answered": true, "q-unanswered": false, "q-recent": true} {
		if _, ok := a.Question(id); ok != want {
			t.Errorf("question %s kept: %v, want %v", id, ok, want)
		}
	}
}
