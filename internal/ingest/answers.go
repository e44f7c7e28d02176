package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/storagepool"
)

// Bounds of GET /v1/answers.
const (
	// maxAnswers is how many answers one response holds (the first in key order are read).
	maxAnswers = 500
	// maxAnswerBytes bounds one answer object.
	maxAnswerBytes = 64 << 10
	// readConcurrency bounds the parallel storage reads of one request.
	readConcurrency = 8
)

// answers answers GET /v1/answers: the answers to the credential's device's questions, oldest first.
func (s *Server) answers(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	claims, rerr := s.authenticate(r)
	if rerr != nil {
		s.refuseUnread(w, info, rerr)
		return
	}
	info.device = claims.DeviceID
	release, rerr := s.admission.enter(r.Context())
	if rerr != nil {
		s.fail(w, info, rerr)
		return
	}
	defer release()
	answers, err := s.readAnswers(r.Context(), claims.DeviceID)
	if err != nil {
		s.unavailable(w, info, err)
		return
	}
	s.ok(w, info, protocol.AnswersResponse{Answers: answers})
}

// readAnswers lists the answers under the device's own prefix and reads them. Answers sit under the device
// (protocol.AnswerKey), so one listing finds them all and no device can reach another's. An object that cannot
// be decoded, or whose key does not match its content, is skipped; a storage failure fails the whole read.
func (s *Server) readAnswers(ctx context.Context, deviceID string) ([]protocol.Answer, error) {
	keys, err := s.pool.List(ctx, storagepool.ListOptions{Prefix: protocol.DeviceAnswersPrefix(deviceID), Recursive: true, Limit: maxAnswers})
	if err != nil {
		return nil, err
	}
	var (
		mu      sync.Mutex
		answers = []protocol.Answer{}
		errs    []error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, readConcurrency)
	)
	for _, k := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			a, ok, err := s.readAnswer(ctx, deviceID, k)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				answers = append(answers, a)
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
	}
	sort.Slice(answers, func(i, j int) bool {
		if !answers[i].Time.Equal(answers[j].Time) {
			return answers[i].Time.Before(answers[j].Time)
		}
		return answers[i].ID < answers[j].ID
	})
	return answers, nil
}

// readAnswer reads one answer object; ok is false for an object to skip.
func (s *Server) readAnswer(ctx context.Context, deviceID, key string) (protocol.Answer, bool, error) {
	var a protocol.Answer
	// answers/<device>/<question>/<answer>.json
	rest := strings.TrimPrefix(key, protocol.DeviceAnswersPrefix(deviceID))
	qid, file, found := strings.Cut(rest, "/")
	if !found || strings.Contains(file, "/") {
		return a, false, nil
	}
	data, err := s.pool.Get(ctx, key, maxAnswerBytes)
	switch {
	case errors.Is(err, storagepool.ErrNotFound), errors.Is(err, storagepool.ErrTooLarge):
		return a, false, nil // deleted since the listing, or not an answer the agent could use
	case err != nil:
		return a, false, err
	}
	if err := json.Unmarshal(data, &a); err != nil {
		s.log.Warn("Skipping an undecodable answer", "key", key)
		return a, false, nil
	}
	if a.QuestionID == "" {
		a.QuestionID = qid
	}
	if a.ID == "" {
		a.ID = strings.TrimSuffix(file, ".json")
	}
	return a, a.QuestionID == qid, nil
}
