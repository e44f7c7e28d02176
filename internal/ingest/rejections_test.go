package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

// gzipBomb is 100 MiB of zeros, compressed on the fly to about 100 KiB.
func gzipBomb(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	require.NoError(t, err)
	zeros := make([]byte, 1<<20)
	for range 100 {
		_, err := zw.Write(zeros)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.Less(t, buf.Len(), 1<<20)
	return buf.Bytes()
}

// Every malformed or hostile request is refused with its own status and code, gets a protocol.Error body, and
// leaves the bucket exactly as it was.
func TestRejectedRequestsStoreNothing(t *testing.T) {
	site := startSite(t)
	h := newHarness(t, testConfig(site))
	dev := h.enroll(protocol.EnrollRequest{Hostname: "pc-1", OS: "Windows 11", AgentVersion: "1.0.0"})
	id, cred := dev.DeviceID, dev.Credential
	baseline := objects(t, site)
	require.Equal(t, map[string]int{protocol.DeviceKey(id): 1}, baseline)

	issue := func(s protocol.Signer, device string) string {
		c, _, err := s.Issue(device)
		require.NoError(t, err)
		return c
	}
	otherID, err := protocol.NewDeviceID()
	require.NoError(t, err)
	forged := cred[:len(cred)-4] + "AAAA"
	if forged == cred {
		forged = cred[:len(cred)-4] + "BBBB"
	}
	otherTenant := issue(protocol.Signer{Tenant: "globex", Key: []byte("globex-signing-key-0123456789")}, id)
	sameKeyOtherTenant := issue(protocol.Signer{Tenant: "globex", Key: []byte(testSigningKey)}, id)
	expired := issue(protocol.Signer{Tenant: testTenant, Key: []byte(testSigningKey), TTL: time.Hour,
		Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}, id)
	otherDevice := issue(protocol.Signer{Tenant: testTenant, Key: []byte(testSigningKey)}, otherID)

	good := telemetry(1, 3)
	batch := func(records ...protocol.Record) []byte {
		return mustJSON(t, protocol.Batch{DeviceID: id, Records: records})
	}
	withSeq := func(seqs ...uint64) []byte {
		var rs []protocol.Record
		for _, s := range seqs {
			rs = append(rs, telemetry(s, 1)[0])
		}
		return batch(rs...)
	}
	withRecord := func(mut func(*protocol.Record)) []byte {
		r := telemetry(1, 1)[0]
		mut(&r)
		return batch(r)
	}
	bigData := json.RawMessage(`{"blob":"` + strings.Repeat("x", protocol.DefaultLimits.MaxRecordBytes) + `"}`)
	oversized := []byte(`{"deviceId":"` + id + `","records":[],"pad":"` + strings.Repeat("x", int(protocol.DefaultLimits.MaxBodyBytes)) + `"}`)
	tooMany := batch(telemetry(1, protocol.DefaultLimits.MaxRecords+1)...)
	// Raw batches for what encoding/json would let through: each record is written by hand.
	rawBatch := func(records ...string) []byte {
		return []byte(`{"deviceId":"` + id + `","records":[` + strings.Join(records, ",") + `]}`)
	}
	rawRecord := func(data string) string {
		return `{"seq":1,"kind":"perf","time":"2026-11-24T10:00:00Z","data":` + data + `}`
	}
	// The signature of a credential is 32 bytes: 43 base64 characters whose last one carries 2 unused bits.
	// Flipping them spells the same bytes another way.
	slack := func(c string) string {
		last := c[len(c)-1]
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, last)
		return c[:len(c)-1] + string(alphabet[i^1])
	}
	gz := map[string]string{"Content-Encoding": "gzip"}

	type req struct {
		method, path, auth string
		body               []byte
		header             map[string]string
	}
	post := func(auth string, body []byte) req { return req{http.MethodPost, protocol.PathBatches, auth, body, nil} }
	enroll := func(auth string, body []byte) req { return req{http.MethodPost, protocol.PathEnroll, auth, body, nil} }
	enrollBody := mustJSON(t, protocol.EnrollRequest{Hostname: "pc-9"})

	tests := map[string]struct {
		req    req
		status int
		code   string
	}{
		"missing credential":             {post("", batch(good...)), 401, "missing_credential"},
		"garbage credential":             {post("not-a-credential", batch(good...)), 401, "malformed_credential"},
		"forged signature":               {post(forged, batch(good...)), 401, "bad_signature"},
		"other tenant's credential":      {post(otherTenant, batch(good...)), 401, "bad_signature"},
		"other tenant name, same key":    {post(sameKeyOtherTenant, batch(good...)), 401, "wrong_tenant"},
		"expired credential":             {post(expired, batch(good...)), 401, "expired_credential"},
		"enrollment token as credential": {post(testEnrollmentToken, batch(good...)), 401, "malformed_credential"},
		"another device's batch":         {post(otherDevice, batch(good...)), 403, "wrong_device"},
		"malformed JSON":                 {post(cred, []byte(`{"deviceId":"`+id+`","records":[`)), 400, "malformed_json"},
		"unknown field":                  {post(cred, []byte(`{"deviceId":"`+id+`","records":[],"extra":1}`)), 400, "malformed_json"},
		"trailing data":                  {post(cred, append(batch(good...), []byte(` {"x":1}`)...)), 400, "malformed_json"},
		"invalid device ID":              {post(cred, mustJSON(t, protocol.Batch{DeviceID: "../" + id, Records: good})), 400, "invalid_device_id"},
		"unknown kind":                   {post(cred, withRecord(func(r *protocol.Record) { r.Kind = "keystrokes" })), 400, "unknown_kind"},
		"seq regression":                 {post(cred, withSeq(5, 3)), 400, "seq_regression"},
		"duplicate seq":                  {post(cred, withSeq(5, 5)), 400, "seq_regression"},
		"seq 0":                          {post(cred, withSeq(0, 1)), 400, "invalid_seq"},
		"missing time":                   {post(cred, withRecord(func(r *protocol.Record) { r.Time = time.Time{} })), 400, "missing_time"},
		"data not an object":             {post(cred, withRecord(func(r *protocol.Record) { r.Data = json.RawMessage(`[1,2]`) })), 400, "invalid_data"},
		"empty batch":                    {post(cred, batch()), 400, "empty_batch"},
		"too many records":               {post(cred, tooMany), 413, "too_many_records"},
		"oversized body":                 {post(cred, oversized), 413, "body_too_large"},
		"oversized record":               {post(cred, withRecord(func(r *protocol.Record) { r.Data = bigData })), 413, "record_too_large"},
		"gzip bomb":                      {req{http.MethodPost, protocol.PathBatches, cred, gzipBomb(t), gz}, 413, "decoded_too_large"},
		"invalid gzip":                   {req{http.MethodPost, protocol.PathBatches, cred, batch(good...), gz}, 400, "bad_gzip"},
		"truncated gzip": {req{http.MethodPost, protocol.PathBatches, cred,
			func() []byte { b := gzipped(t, batch(good...)); return b[:len(b)/2] }(), gz}, 400, "bad_gzip"},
		"unsupported encoding": {req{http.MethodPost, protocol.PathBatches, cred, batch(good...),
			map[string]string{"Content-Encoding": "br"}}, 415, "unsupported_encoding"},
		"question without text": {post(cred, batch(protocol.Record{Seq: 1, Kind: protocol.KindQuestion, Time: baseTime,
			Data: json.RawMessage(`{"id":"q-0000000001","text":""}`)})), 400, "invalid_question"},
		"question ID with a path":               {post(cred, batch(question(1, "../../devices/x", "why?"))), 400, "invalid_question"},
		"wrong method":                          {req{http.MethodGet, protocol.PathBatches, cred, nil, nil}, 405, "method_not_allowed"},
		"unknown path":                          {req{http.MethodPost, "/v1/records", cred, batch(good...), nil}, 404, "not_found"},
		"answers, forged":                       {req{http.MethodGet, protocol.PathAnswers, forged, nil, nil}, 401, "bad_signature"},
		"endpoints, expired":                    {req{http.MethodGet, protocol.PathEndpoints, expired, nil, nil}, 401, "expired_credential"},
		"wrong enrollment token":                {enroll("not-the-token", enrollBody), 401, "invalid_enrollment_token"},
		"missing enrollment token":              {enroll("", enrollBody), 401, "invalid_enrollment_token"},
		"device credential as enrollment token": {enroll(cred, enrollBody), 401, "invalid_enrollment_token"},
		"enroll, unknown field":                 {enroll(testEnrollmentToken, []byte(`{"hostname":"pc","admin":true}`)), 400, "malformed_json"},
		"enroll, malformed JSON":                {enroll(testEnrollmentToken, []byte(`{"hostname":`)), 400, "malformed_json"},
		"enroll, two objects":                   {enroll(testEnrollmentToken, []byte(`{"hostname":"a"}{"hostname":"b"}`)), 400, "malformed_json"},
		"enroll, oversized":                     {enroll(testEnrollmentToken, []byte(`{"hostname":"`+strings.Repeat("x", 1<<20)+`"}`)), 413, "body_too_large"},
		"enroll, long hostname":                 {enroll(testEnrollmentToken, mustJSON(t, protocol.EnrollRequest{Hostname: strings.Repeat("h", 300)})), 400, "invalid_enrollment"},
		"enroll, control characters":            {enroll(testEnrollmentToken, mustJSON(t, protocol.EnrollRequest{Hostname: "pc\n{\"forged\":1}"})), 400, "invalid_enrollment"},
		"enroll, gzip":                          {req{http.MethodPost, protocol.PathEnroll, testEnrollmentToken, gzipped(t, enrollBody), gz}, 415, "unsupported_encoding"},
		"credential spelt with slack bits":      {post(slack(cred), batch(good...)), 401, "malformed_credential"},
		"duplicate name in record data": {post(cred, rawBatch(rawRecord(`{"id":"q-1","text":"a"}`),
			`{"seq":2,"kind":"question","time":"2026-11-24T10:00:00Z","data":{"id":"q-11111111","text":"one","id":"q-22222222"}}`)), 400, "duplicate_name"},
		"duplicate seq name in a record": {post(cred, rawBatch(`{"seq":1,"seq":2,"kind":"perf","time":"2026-11-24T10:00:00Z","data":{}}`)), 400, "duplicate_name"},
		"duplicate deviceId":             {post(cred, []byte(`{"deviceId":"`+id+`","deviceId":"`+otherID+`","records":[`+rawRecord(`{}`)+`]}`)), 400, "duplicate_name"},
		"number beyond float64":          {post(cred, rawBatch(rawRecord(`{"cpu":1e999}`))), 400, "number_out_of_range"},
		"negative number beyond float64": {post(cred, rawBatch(rawRecord(`{"cpu":-1e400}`))), 400, "number_out_of_range"},
		"integer beyond 64 bits":         {post(cred, rawBatch(rawRecord(`{"bytes":184467440737095516160}`))), 400, "number_out_of_range"},
		"NaN":                            {post(cred, rawBatch(rawRecord(`{"cpu":NaN}`))), 400, "malformed_json"},
		"invalid UTF-8":                  {post(cred, rawBatch(rawRecord("{\"name\":\"\xff\xfe\"}"))), 400, "invalid_utf8"},
		"enroll, duplicate name":         {enroll(testEnrollmentToken, []byte(`{"hostname":"a","hostname":"b"}`)), 400, "duplicate_name"},
		"enroll, malformed public key":   {enroll(testEnrollmentToken, []byte(`{"hostname":"a","publicKey":"AAAA"}`)), 400, "invalid_public_key"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := h.do(tc.req.method, tc.req.path, tc.req.auth, tc.req.body, tc.req.header)
			require.Equal(t, tc.status, r.status, "body: %.300s", r.body)
			require.Equal(t, tc.code, r.errorCode(t))
			if tc.status == http.StatusUnauthorized {
				require.NotEmpty(t, r.header.Get("WWW-Authenticate"))
			}
			require.Equal(t, baseline, objects(t, site), "a refused request stored something")
		})
	}

	// Refusals are counted by code, and the request log names none of the secrets or payloads.
	require.Equal(t, 1.0, h.metric("supportstack_ingest_rejections_total", map[string]string{"route": "batches", "reason": "decoded_too_large"}))
	require.Equal(t, 3.0, h.metric("supportstack_ingest_requests_total", map[string]string{"route": "enroll", "code": "401"}))
	logs := h.logs.String()
	require.Contains(t, logs, `"code":"wrong_device"`)
	require.Empty(t, containsAny(logs, cred, forged, expired, otherDevice, testEnrollmentToken, testSigningKey, testSecretKey,
		`"cpu"`, "keystrokes", "forged"), "the log shows a secret or a payload")
	require.Equal(t, fmt.Sprint(len(tests)+1), fmt.Sprint(strings.Count(logs, `"msg":"Request"`)))
}
