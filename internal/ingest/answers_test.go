package ingest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

func TestAnswersAreTheDevicesOwn(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	a := h.enroll(protocol.EnrollRequest{Hostname: "pc-a"})
	b := h.enroll(protocol.EnrollRequest{Hostname: "pc-b"})
	quiet := h.enroll(protocol.EnrollRequest{Hostname: "pc-quiet"})
	ack(t, h.postBatch(a.Credential, protocol.Batch{DeviceID: a.DeviceID, Records: []protocol.Record{
		question(1, "qa-00000001", "why is my PC slow?"), question(2, "qa-00000002", "where is my printer?")}}))
	ack(t, h.postBatch(b.Credential, protocol.Batch{DeviceID: b.DeviceID, Records: []protocol.Record{
		question(1, "qb-00000001", "is this a virus?")}}))

	// Support staff answer through the dashboard, which writes answers like these.
	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	answer := func(device, qid, aid, text string, at time.Time) protocol.Answer {
		an := protocol.Answer{ID: aid, QuestionID: qid, Text: text, Author: "support@acme.example", Time: at}
		_, err := siteClient(t, site).PutObject(context.Background(), testBucket, protocol.AnswerKey(device, qid, aid),
			strings.NewReader(string(mustJSON(t, an))), -1, minio.PutObjectOptions{ContentType: "application/json"})
		require.NoError(t, err)
		return an
	}
	a2 := answer(a.DeviceID, "qa-00000001", "an-2", "close some browser tabs", t0.Add(2*time.Minute))
	a1 := answer(a.DeviceID, "qa-00000001", "an-1", "let me look", t0)
	a3 := answer(a.DeviceID, "qa-00000002", "an-3", "it is offline", t0.Add(time.Minute))
	answer(b.DeviceID, "qb-00000001", "bn-1", "no", t0)
	// Device b asks a question with the same ID as one of a's: it still gets none of a's answers.
	ack(t, h.postBatch(b.Credential, protocol.Batch{DeviceID: b.DeviceID, Records: []protocol.Record{
		question(2, "qa-00000001", "copycat")}}))
	_, err := siteClient(t, site).PutObject(context.Background(), testBucket, protocol.AnswerKey(a.DeviceID, "qa-00000002", "garbage"),
		strings.NewReader("not json"), -1, minio.PutObjectOptions{})
	require.NoError(t, err)

	get := func(cred string) []protocol.Answer {
		t.Helper()
		r := h.do(http.MethodGet, protocol.PathAnswers, cred, nil, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
		var out protocol.AnswersResponse
		require.NoError(t, json.Unmarshal(r.body, &out))
		return out.Answers
	}
	normalize := func(as []protocol.Answer) []protocol.Answer {
		for i := range as {
			as[i].Time = as[i].Time.UTC()
		}
		return as
	}
	require.Equal(t, []protocol.Answer{a1, a3, a2}, normalize(get(a.Credential)), "own answers, oldest first, garbage skipped")
	require.Len(t, get(b.Credential), 1)
	require.Equal(t, "bn-1", get(b.Credential)[0].ID)

	r := h.do(http.MethodGet, protocol.PathAnswers, quiet.Credential, nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"answers":[]}`, string(r.body))

	site.Stop()
	r = h.do(http.MethodGet, protocol.PathAnswers, a.Credential, nil, nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Equal(t, "storage_unavailable", r.errorCode(t))
	require.NotEmpty(t, r.header.Get("Retry-After"))
}

func TestHealthAndMetrics(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/healthz", "", nil, nil).status)
	require.Equal(t, http.StatusOK, h.do(http.MethodGet, "/readyz", "", nil, nil).status)
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1"})
	ack(t, h.postBatch(dev.Credential, protocol.Batch{DeviceID: dev.DeviceID, Records: telemetry(1, 7)}))

	resp, err := http.Get(h.url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, want := range []string{
		`supportstack_ingest_requests_total{code="200",route="batches"} 1`,
		`supportstack_ingest_requests_total{code="200",route="enroll"} 1`,
		`supportstack_ingest_records_acked_total 7`,
		`supportstack_ingest_stored_bytes_total{object="device"}`,
		`supportstack_ingest_storage_write_seconds_bucket{object="batch",result="ok",le="10"} 1`,
		`supportstack_storage_breaker_state{endpoint="` + site.URL + `",state="closed"} 1`,
		// the device record, the ledger, the batch
		`supportstack_storage_attempts_total{endpoint="` + site.URL + `",op="put"} 3`,
		`go_goroutines`,
	} {
		require.Contains(t, string(body), want)
	}
	require.NotContains(t, string(body), testSecretKey)
	require.NotContains(t, string(body), dev.Credential)
}

// A server that has not finished a health round is not ready yet: it does not know whether it can store.
func TestNotReadyBeforeTheFirstHealthCheck(t *testing.T) {
	site := startSite(t)
	s, err := New(testConfig(site), nil)
	require.NoError(t, err)
	require.False(t, s.Pool().Ready())
	s.Pool().CheckHealth(context.Background())
	require.True(t, s.Pool().Ready(), "after one health round: %+v", s.Pool().State())
}
