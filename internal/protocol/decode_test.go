package protocol

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const testDevice = "0123456789abcdef0123456789abcdef"

func record(seq uint64, kind Kind, data string) Record {
	return Record{Seq: seq, Kind: kind, Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), Data: json.RawMessage(data)}
}

func encode(t testing.TB, b any) []byte {
	t.Helper()
	data, err := json.Marshal(b)
	require.NoError(t, err)
	return data
}

func gzipped(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestDecodeBatchAcceptsAGoodBatch(t *testing.T) {
	b := Batch{DeviceID: testDevice, Records: []Record{
		record(3, KindQuestion, `{"id":"q-12345678","text":"why is my PC slow?"}`),
		record(7, KindPerf, `{"cpu":12.5}`),
		record(8, KindInventory, `{"os":"linux"}`),
	}}
	for _, enc := range []string{"", "gzip"} {
		body := encode(t, b)
		if enc == "gzip" {
			body = gzipped(t, body)
		}
		got, err := DecodeBatch(bytes.NewReader(body), enc, DefaultLimits)
		require.NoError(t, err, enc)
		require.Equal(t, uint64(3), got.FirstSeq())
		require.Equal(t, uint64(8), got.LastSeq())
		require.Len(t, got.Records, 3)
	}
}

func TestDecodeBatchRejects(t *testing.T) {
	small := Limits{MaxBodyBytes: 4096, MaxDecodedBytes: 8192, MaxRecords: 3, MaxRecordBytes: 64}
	good := func(recs ...Record) []byte { return encode(t, Batch{DeviceID: testDevice, Records: recs}) }
	perf := func(seq uint64) Record { return record(seq, KindPerf, `{"cpu":1}`) }
	bomb := func() []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write([]byte(`{"deviceId":"` + testDevice + `","records":[`))
		_, _ = zw.Write(bytes.Repeat([]byte(" "), 1<<20))
		_ = zw.Close()
		return buf.Bytes()
	}

	tests := map[string]struct {
		body     []byte
		encoding string
		status   int
		code     string
	}{
		"malformed JSON":        {[]byte(`{"deviceId":`), "", http.StatusBadRequest, "malformed_json"},
		"not an object":         {[]byte(`[1,2]`), "", http.StatusBadRequest, "malformed_json"},
		"unknown field":         {[]byte(`{"deviceId":"` + testDevice + `","records":[],"admin":true}`), "", http.StatusBadRequest, "malformed_json"},
		"trailing data":         {append(good(perf(1)), []byte(`{}`)...), "", http.StatusBadRequest, "malformed_json"},
		"bad device ID":         {encode(t, Batch{DeviceID: "../etc", Records: []Record{perf(1)}}), "", http.StatusBadRequest, "invalid_device_id"},
		"empty batch":           {good(), "", http.StatusBadRequest, "empty_batch"},
		"too many records":      {good(perf(1), perf(2), perf(3), perf(4)), "", http.StatusRequestEntityTooLarge, "too_many_records"},
		"seq zero":              {good(perf(0)), "", http.StatusBadRequest, "invalid_seq"},
		"seq regression":        {good(perf(5), perf(4)), "", http.StatusBadRequest, "seq_regression"},
		"duplicate seq":         {good(perf(5), perf(5)), "", http.StatusBadRequest, "seq_regression"},
		"unknown kind":          {good(record(1, "keylogger", `{}`)), "", http.StatusBadRequest, "unknown_kind"},
		"trailing bracket":      {append(good(perf(1)), ']'), "", http.StatusBadRequest, "malformed_json"},
		"missing time":          {good(Record{Seq: 1, Kind: KindPerf, Data: json.RawMessage(`{}`)}), "", http.StatusBadRequest, "missing_time"},
		"data not an object":    {good(record(1, KindPerf, `"x"`)), "", http.StatusBadRequest, "invalid_data"},
		"record too large":      {good(record(1, KindPerf, `{"x":"`+strings.Repeat("a", 100)+`"}`)), "", http.StatusRequestEntityTooLarge, "record_too_large"},
		"question without id":   {good(record(1, KindQuestion, `{"text":"hi"}`)), "", http.StatusBadRequest, "invalid_question"},
		"question without text": {good(record(1, KindQuestion, `{"id":"q-12345678"}`)), "", http.StatusBadRequest, "invalid_question"},
		"question bad id":       {good(record(1, KindQuestion, `{"id":"../../x","text":"hi"}`)), "", http.StatusBadRequest, "invalid_question"},
		"body too large":        {bytes.Repeat([]byte(" "), 5000), "", http.StatusRequestEntityTooLarge, "body_too_large"},
		"gzip bomb":             {bomb(), "gzip", http.StatusRequestEntityTooLarge, "decoded_too_large"},
		"not gzip":              {good(perf(1)), "gzip", http.StatusBadRequest, "bad_gzip"},
		"unsupported encoding":  {good(perf(1)), "br", http.StatusUnsupportedMediaType, "unsupported_encoding"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeBatch(bytes.NewReader(tc.body), tc.encoding, small)
			var re *RequestError
			require.True(t, errors.As(err, &re), "got %v", err)
			require.Equal(t, tc.status, re.Status, re.Error())
			require.Equal(t, tc.code, re.Code, re.Error())
			require.NotEmpty(t, re.Message)
		})
	}
}

func TestBatchKeyIsDeterministicAndSorted(t *testing.T) {
	t1 := time.Date(2026, 1, 2, 23, 59, 0, 0, time.FixedZone("CET", 3600))
	require.Equal(t, "devices/"+testDevice+"/records/2026/01/02/00000000000000000009-00000000000000000010.ndjson.gz",
		BatchKey(testDevice, t1, 9, 10))
	require.Less(t, BatchKey(testDevice, t1, 9, 10), BatchKey(testDevice, t1, 10, 11), "keys sort by seq")
	// A PC clock gone wild is clamped, not refused.
	require.Contains(t, BatchKey(testDevice, time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC), 1, 1), "/records/2000/01/01/")
	require.Contains(t, BatchKey(testDevice, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 1, 1), "/records/2199/12/31/")
}

// FuzzDecodeBatch: no input may panic the decoder, and whatever it accepts satisfies the batch invariants.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(encode(f, Batch{DeviceID: testDevice, Records: []Record{record(1, KindPerf, `{"cpu":1}`)}}), "")
	f.Add(encode(f, Batch{DeviceID: testDevice, Records: []Record{
		record(2, KindQuestion, `{"id":"q-12345678","text":"hello"}`), record(9, KindGap, `{"class":"telemetry"}`)}}), "")
	f.Add(gzipped(f, encode(f, Batch{DeviceID: testDevice, Records: []Record{record(1, KindInventory, `{}`)}})), "gzip")
	f.Add([]byte(`{"deviceId":"x","records":[{"seq":1}]}`), "")
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00}, "gzip")
	limits := Limits{MaxBodyBytes: 1 << 16, MaxDecodedBytes: 1 << 18, MaxRecords: 50, MaxRecordBytes: 1 << 12}
	f.Fuzz(func(t *testing.T, body []byte, encoding string) {
		b, err := DecodeBatch(bytes.NewReader(body), encoding, limits)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Status < 400 || re.Status > 499 || re.Code == "" {
				t.Fatalf("error is not a 4xx RequestError: %v", err)
			}
			return
		}
		if !ValidDeviceID(b.DeviceID) || len(b.Records) == 0 || len(b.Records) > limits.MaxRecords {
			t.Fatalf("accepted an invalid batch: %+v", b)
		}
		var prev uint64
		for i, r := range b.Records {
			if r.Seq <= prev || !r.Kind.Valid() || r.Time.IsZero() || len(r.Data) > limits.MaxRecordBytes {
				t.Fatalf("record %d breaks the invariants: %+v", i, r)
			}
			prev = r.Seq
		}
		// What was accepted survives a round trip unchanged.
		again, err := DecodeBatch(bytes.NewReader(encode(t, b)), "", limits)
		if err != nil {
			t.Fatalf("re-encoded batch rejected: %v", err)
		}
		if fmt.Sprint(again.Records) != fmt.Sprint(b.Records) {
			t.Fatalf("round trip changed the batch")
		}
	})
}
