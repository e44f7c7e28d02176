// Package client makes the agent's HTTP calls to an ingest endpoint (see internal/protocol): enroll, send a
// batch, fetch the endpoint list, fetch the answers to the device's questions. It knows nothing of retries or
// failover; its errors say what happened so that the caller (the sender, the daemon's answer poller) can decide.
package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
)

// Client talks to ingest endpoints.
type Client struct {
	HTTP      *http.Client
	UserAgent string
}

// NewHTTPClient returns an HTTP client with the agent's timeouts: connecting (TCP and TLS) within connect,
// the whole request within request.
func NewHTTPClient(connect, request time.Duration) *http.Client {
	d := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   connect,
		ResponseHeaderTimeout: request,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   2,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: request}
}

// StatusError is a response other than 200.
type StatusError struct {
	Status int
	// Code and Message come from the protocol.Error body when there is one.
	Code    string
	Message string
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
	// HighestSeq (with seq_reused) and Challenge (with proof_required) come from the protocol.Error body.
	HighestSeq uint64
	Challenge  string
}

func (e *StatusError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d", e.Status)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// AsStatus returns the StatusError in err's chain, or nil.
func AsStatus(err error) *StatusError {
	var se *StatusError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

// Enroll posts an enrollment with the tenant's enrollment token.
func (c *Client) Enroll(ctx context.Context, baseURL, token string, req protocol.EnrollRequest) (protocol.EnrollResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return protocol.EnrollResponse{}, fmt.Errorf("encode enroll request: %w", err)
	}
	var resp protocol.EnrollResponse
	if err := c.do(ctx, http.MethodPost, baseURL, protocol.PathEnroll, token, body, "", maxResponse, &resp); err != nil {
		return resp, err
	}
	if !protocol.ValidDeviceID(resp.DeviceID) || resp.Credential == "" {
		return resp, fmt.Errorf("enroll at %s: response lacks a device ID or credential", baseURL)
	}
	if len(resp.Endpoints) == 0 {
		// A server that advertises no endpoints is reached where the device enrolled.
		resp.Endpoints = []string{baseURL}
	}
	if err := ValidateEndpoints(resp.Endpoints); err != nil {
		return resp, fmt.Errorf("enroll at %s: %w", baseURL, err)
	}
	return resp, nil
}

// Endpoints fetches the ordered endpoint list and the drain rate. An empty list means "keep the endpoints you
// have" (the ingest service has none configured).
func (c *Client) Endpoints(ctx context.Context, baseURL, credential string) (protocol.EndpointsResponse, error) {
	var resp protocol.EndpointsResponse
	if err := c.do(ctx, http.MethodGet, baseURL, protocol.PathEndpoints, credential, nil, "", maxResponse, &resp); err != nil {
		return resp, err
	}
	if len(resp.Endpoints) == 0 {
		return resp, nil
	}
	if err := ValidateEndpoints(resp.Endpoints); err != nil {
		return resp, fmt.Errorf("endpoints from %s: %w", baseURL, err)
	}
	return resp, nil
}

// SendBatch posts a gzipped batch and returns the server's ack.
func (c *Client) SendBatch(ctx context.Context, baseURL, credential string, b *protocol.Batch) (protocol.Ack, error) {
	body, err := EncodeBatch(b)
	if err != nil {
		return protocol.Ack{}, err
	}
	var ack protocol.Ack
	err = c.do(ctx, http.MethodPost, baseURL, protocol.PathBatches, credential, body, "gzip", maxResponse, &ack)
	return ack, err
}

// Answers fetches the answers support staff gave to the device's questions, oldest first. The server bounds
// the list, so it may leave out answers it returned before.
func (c *Client) Answers(ctx context.Context, baseURL, credential string) ([]protocol.Answer, error) {
	var resp protocol.AnswersResponse
	if err := c.do(ctx, http.MethodGet, baseURL, protocol.PathAnswers, credential, nil, "", maxAnswersResponse, &resp); err != nil {
		return nil, err
	}
	return resp.Answers, nil
}

// EncodeBatch returns the gzipped JSON of b.
func EncodeBatch(b *protocol.Batch) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(b); err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress batch: %w", err)
	}
	return buf.Bytes(), nil
}

// ValidateEndpoints checks that an endpoint list is usable: not empty, absolute http(s) URLs.
func ValidateEndpoints(eps []string) error {
	if len(eps) == 0 {
		return errors.New("no endpoints")
	}
	for _, e := range eps {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("endpoint %q is not an http(s) URL", e)
		}
	}
	return nil
}

// Bounds of a response body.
const (
	// maxResponse bounds the responses to enroll, batches and endpoints: a few hundred bytes from a well-behaved
	// server.
	maxResponse = 1 << 20
	// maxAnswersResponse bounds GET /v1/answers: internal/ingest returns at most 500 answers of at most 64 KiB
	// each.
	maxAnswersResponse = 500*(64<<10) + 1<<20
)

// do makes one request and decodes a 200's JSON body into out; a body longer than limit is an error.
func (c *Client) do(ctx context.Context, method, baseURL, path, bearer string, body []byte, encoding string, limit int64, out any) error {
	u := strings.TrimSuffix(baseURL, "/") + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The URL holds no secret (the credential travels in a header), so the error may name it.
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		se := &StatusError{Status: resp.StatusCode, RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		var pe protocol.Error
		if json.Unmarshal(raw, &pe) == nil {
			se.Code, se.Message, se.HighestSeq, se.Challenge = pe.Code, pe.Message, pe.HighestSeq, pe.Challenge
		}
		return fmt.Errorf("%s %s: %w", method, u, se)
	}
	if int64(len(raw)) > limit {
		// Cut short, the body would only fail to decode; say why.
		return fmt.Errorf("%s %s: response larger than %d bytes", method, u, limit)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, u, err)
	}
	return nil
}

// ParseRetryAfter reads a Retry-After header: seconds or an HTTP date. Absent or unreadable is zero; the
// result is capped at one hour so that a wrong header cannot silence the agent for days.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > 3600 {
			n = 3600
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d < 0 {
		return 0
	}
	return min(d, time.Hour)
}
