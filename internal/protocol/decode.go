package protocol

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sync"
)

// Limits bound what one batch request may hold. Each violation has its own status and code.
type Limits struct {
	// MaxBodyBytes is the request body as sent (compressed or not).
	MaxBodyBytes int64
	// MaxDecodedBytes is the body after decompression: a gzip bomb stops here.
	MaxDecodedBytes int64
	// MaxRecords per batch.
	MaxRecords int
	// MaxRecordBytes is the size of one record's data.
	MaxRecordBytes int
}

// DefaultLimits fit the agent's batches (at most ~1 MiB and 1000 records) with room to spare.
var DefaultLimits = Limits{MaxBodyBytes: 4 << 20, MaxDecodedBytes: 16 << 20, MaxRecords: 1000, MaxRecordBytes: 256 << 10}

// RequestError is a request the server refuses: Status is the HTTP status, Code the stable error code.
type RequestError struct {
	Status  int
	Code    string
	Message string
	// HighestSeq and Challenge go into the Error body (see there).
	HighestSeq uint64
	Challenge  string
	// RetryAfter, in seconds, goes into the Retry-After header when it is not 0.
	RetryAfter int
}

func (e *RequestError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Body returns the error as a response body.
func (e *RequestError) Body() Error {
	return Error{Code: e.Code, Message: e.Message, HighestSeq: e.HighestSeq, Challenge: e.Challenge}
}

// ReadError is the refusal of a request whose body could not be read: 408 when the client was too slow to
// send it, 413 when it was larger than the server takes, 400 otherwise.
func ReadError(err error) *RequestError {
	var ne net.Error
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return reject(http.StatusRequestTimeout, "body_timeout", "the request body did not arrive in time")
	case errors.As(err, &mbe):
		return reject(http.StatusRequestEntityTooLarge, "body_too_large", "body exceeds %d bytes", mbe.Limit)
	}
	return reject(http.StatusBadRequest, "unreadable_body", "read body: %v", err)
}

func reject(status int, code, format string, args ...any) *RequestError {
	return &RequestError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

var questionIDPattern = regexp.MustCompile(`^[0-9A-Za-z-]{8,64}$`)

// MaxQuestionBytes bounds a question's text.
const MaxQuestionBytes = 16 << 10

// gzipReaders are reused across requests: a reader's decompression tables are worth keeping.
var gzipReaders sync.Pool

// DecodeBatch reads and validates a batch body. contentEncoding is the request's Content-Encoding ("" or
// "gzip"). Every error is a *RequestError.
func DecodeBatch(body io.Reader, contentEncoding string, l Limits) (*Batch, error) {
	raw, err := io.ReadAll(io.LimitReader(body, l.MaxBodyBytes+1))
	if err != nil {
		return nil, ReadError(err)
	}
	if int64(len(raw)) > l.MaxBodyBytes {
		return nil, reject(http.StatusRequestEntityTooLarge, "body_too_large", "body exceeds %d bytes: split the batch", l.MaxBodyBytes)
	}
	switch contentEncoding {
	case "", "identity":
	case "gzip":
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		if zr == nil {
			zr = new(gzip.Reader)
		}
		defer gzipReaders.Put(zr)
		if err := zr.Reset(bytes.NewReader(raw)); err != nil {
			return nil, reject(http.StatusBadRequest, "bad_gzip", "body is not gzip: %v", err)
		}
		raw, err = io.ReadAll(io.LimitReader(zr, l.MaxDecodedBytes+1))
		if err != nil {
			return nil, reject(http.StatusBadRequest, "bad_gzip", "decompress body: %v", err)
		}
		if int64(len(raw)) > l.MaxDecodedBytes {
			return nil, reject(http.StatusRequestEntityTooLarge, "decoded_too_large", "body decompresses to more than %d bytes: split the batch", l.MaxDecodedBytes)
		}
	default:
		return nil, reject(http.StatusUnsupportedMediaType, "unsupported_encoding", "Content-Encoding %q is not supported: use gzip or none", contentEncoding)
	}

	if err := StrictJSON(raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var b Batch
	if err := dec.Decode(&b); err != nil {
		return nil, reject(http.StatusBadRequest, "malformed_json", "decode batch: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, reject(http.StatusBadRequest, "malformed_json", "trailing data after the batch")
	}
	if err := validate(&b, l); err != nil {
		return nil, err
	}
	return &b, nil
}

func validate(b *Batch, l Limits) error {
	if !ValidDeviceID(b.DeviceID) {
		return reject(http.StatusBadRequest, "invalid_device_id", "deviceId %q is not a device ID", truncate(b.DeviceID))
	}
	switch {
	case len(b.Records) == 0:
		return reject(http.StatusBadRequest, "empty_batch", "batch has no records")
	case len(b.Records) > l.MaxRecords:
		return reject(http.StatusRequestEntityTooLarge, "too_many_records", "batch has %d records, at most %d: split the batch", len(b.Records), l.MaxRecords)
	}
	var prev uint64
	for i, r := range b.Records {
		switch {
		case r.Seq == 0:
			return reject(http.StatusBadRequest, "invalid_seq", "record %d: seq must be at least 1", i)
		case r.Seq <= prev:
			return reject(http.StatusBadRequest, "seq_regression", "record %d: seq %d does not follow %d", i, r.Seq, prev)
		case !r.Kind.Valid():
			return reject(http.StatusBadRequest, "unknown_kind", "record %d: unknown kind %q", i, truncate(string(r.Kind)))
		case r.Time.IsZero():
			return reject(http.StatusBadRequest, "missing_time", "record %d: time is missing", i)
		case len(r.Data) > l.MaxRecordBytes:
			return reject(http.StatusRequestEntityTooLarge, "record_too_large", "record %d: data is %d bytes, at most %d", i, len(r.Data), l.MaxRecordBytes)
		case len(r.Data) == 0 || !json.Valid(r.Data) || r.Data[0] != '{':
			return reject(http.StatusBadRequest, "invalid_data", "record %d: data must be a JSON object", i)
		}
		if r.Kind == KindQuestion {
			if err := validateQuestion(r.Data); err != nil {
				return reject(http.StatusBadRequest, "invalid_question", "record %d: %v", i, err)
			}
		}
		prev = r.Seq
	}
	return nil
}

// ParseQuestion reads a question record's data.
func ParseQuestion(data json.RawMessage) (Question, error) {
	var q Question
	if err := json.Unmarshal(data, &q); err != nil {
		return q, fmt.Errorf("decode question: %w", err)
	}
	return q, validateQuestionFields(q)
}

func validateQuestion(data json.RawMessage) error {
	_, err := ParseQuestion(data)
	return err
}

func validateQuestionFields(q Question) error {
	switch {
	case !questionIDPattern.MatchString(q.ID):
		return errors.New("question id must be 8 to 64 letters, digits or '-'")
	case q.Text == "":
		return errors.New("question text is empty")
	case len(q.Text) > MaxQuestionBytes:
		return fmt.Errorf("question text exceeds %d bytes", MaxQuestionBytes)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
