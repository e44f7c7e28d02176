package daemon

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/config"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/ingesttest"
	"github.com/supportstack/supportstack/internal/harness/syncbuf"
)

// testEnroller is an enroller whose waits are recorded instead of slept; stopAfter ends its context after that
// many waits.
func testEnroller(t *testing.T, cfg config.Config, stopAfter int) (*enroller, *[]time.Duration, *syncbuf.Buffer, context.Context) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logs := &syncbuf.Buffer{}
	e := newEnroller(cfg, config.Layout{Root: t.TempDir()}, &client.Client{HTTP: client.NewHTTPClient(time.Second, 5*time.Second)}, "test",
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	e.rand = func() float64 { return 0.5 }
	var waits []time.Duration
	e.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		if len(waits) >= stopAfter {
			cancel()
		}
		return ctx.Err()
	}
	return e, &waits, logs, ctx
}

func enrollConfig(token string, urls ...string) config.Config {
	cfg := config.Default()
	cfg.IngestURLs, cfg.EnrollmentToken = urls, config.Secret(token)
	return cfg
}

// A refused token is tried again only every refused_enrollment_retry_interval (with a little jitter) and logged
// at warn once per reason; when the server takes it, the enrollment is saved as "enroll" saves it.
func TestEnrollerRefusedTokenRetriedSlowly(t *testing.T) {
	srv := ingesttest.New(t, token)
	srv.SetEnrollHook(func(n int) *ingesttest.Reply {
		switch {
		case n <= 2:
			return &ingesttest.Reply{Status: 401, Code: "invalid_enrollment_token"}
		case n == 3:
			return &ingesttest.Reply{Status: 403, Code: "enrollment_token_revoked"}
		}
		return nil
	})
	cfg := enrollConfig(token, srv.URL)
	cfg.RefusedEnrollmentRetryInterval = 7 * time.Minute
	e, waits, logs, ctx := testEnroller(t, cfg, 100)

	st, ok := e.run(ctx)
	require.True(t, ok)
	require.Equal(t, srv.URL, st.URL)
	require.Equal(t, []time.Duration{7 * time.Minute, 7 * time.Minute, 7 * time.Minute}, *waits, "jitter 0.5 is the interval itself")
	require.Equal(t, 1, strings.Count(logs.String(), "code=invalid_enrollment_token"), logs.String())
	require.Equal(t, 1, strings.Count(logs.String(), "code=enrollment_token_revoked"), logs.String())
	require.Equal(t, 2, strings.Count(logs.String(), "level=WARN msg=\"The server refused the enrollment token"), logs.String())
	require.Contains(t, logs.String(), "level=WARN msg=Enrolled", "an enrollment after failures is worth a line at the default level")
	require.NotContains(t, logs.String(), token)
	require.Nil(t, e.Status(), "enrolled: no enrollment status any more")

	saved, err := enroll.Load(e.lay.Enrollment())
	require.NoError(t, err)
	require.Equal(t, st.DeviceID, saved.DeviceID)
	require.Equal(t, token, saved.Token)
	require.Equal(t, srv.URL, saved.URL)
	require.True(t, saved.HasKey())
	require.False(t, saved.EndpointsRefreshedAt.IsZero(), "the endpoint list is fetched as enroll fetches it")
}

// While no URL answers, the waits follow the backoff up to backoff_max and one warning says so; status says why.
func TestEnrollerUnreachableBacksOff(t *testing.T) {
	cfg := enrollConfig(token, deadURL(t), deadURL(t))
	cfg.BackoffMin, cfg.BackoffMax = time.Second, 8*time.Second
	e, waits, logs, ctx := testEnroller(t, cfg, 6)
	_, ok := e.run(ctx)
	require.False(t, ok)
	require.Equal(t, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}, *waits)
	require.Equal(t, 1, strings.Count(logs.String(), "Cannot reach the ingest service to enroll"), logs.String())
	s := e.Status()
	require.NotNil(t, s)
	require.Equal(t, 6, s.Attempts)
	require.Contains(t, s.Reason, "connection refused")
	require.False(t, s.Refused)
}

// A server that answers with Retry-After paces the enrollment; the wait never exceeds retry_after_max.
func TestEnrollerPacedByRetryAfter(t *testing.T) {
	srv := ingesttest.New(t, token)
	srv.SetEnrollHook(func(n int) *ingesttest.Reply {
		switch n {
		case 1:
			return &ingesttest.Reply{Status: 503, Code: "storage_unavailable", RetryAfter: "2"}
		case 2:
			return &ingesttest.Reply{Status: 429, Code: "overloaded", RetryAfter: "120"}
		}
		return nil
	})
	cfg := enrollConfig(token, srv.URL)
	cfg.RetryAfterMax = 30 * time.Second
	e, waits, logs, ctx := testEnroller(t, cfg, 100)
	_, ok := e.run(ctx)
	require.True(t, ok)
	require.Equal(t, []time.Duration{2*time.Second + 250*time.Millisecond, 30 * time.Second}, *waits)
	require.NotContains(t, logs.String(), "level=WARN msg=\"Cannot", "a busy server is no warning")
}

// An unreadable token file is a local problem: retried with backoff (an installer may write it a moment later),
// logged once; fixed, the next attempt reads it.
func TestEnrollerTokenFile(t *testing.T) {
	srv := ingesttest.New(t, token)
	cfg := enrollConfig("", srv.URL)
	cfg.EnrollmentTokenFile = t.TempDir() + "/token"
	e, waits, logs, ctx := testEnroller(t, cfg, 100)
	e.sleep = func(ctx context.Context, d time.Duration) error {
		*waits = append(*waits, d)
		if len(*waits) == 3 {
			require.NoError(t, writeFile(cfg.EnrollmentTokenFile, token+"\n"))
		}
		return ctx.Err()
	}
	st, ok := e.run(ctx)
	require.True(t, ok)
	require.Equal(t, token, st.Token)
	require.Len(t, *waits, 3)
	require.Equal(t, 1, strings.Count(logs.String(), "enrollment_token_file"), logs.String())
	require.Equal(t, 1, srv.Stats().EnrollRequests)
}

// Enrolled by "supportstack-agent enroll" while the daemon waits: that enrollment is taken, none is made.
func TestEnrollerTakesAnEnrollmentMadeMeanwhile(t *testing.T) {
	srv := ingesttest.New(t, token)
	cfg := enrollConfig(token, deadURL(t))
	e, _, _, ctx := testEnroller(t, cfg, 100)
	e.sleep = func(ctx context.Context, d time.Duration) error {
		st, err := enroll.Enroll(ctx, &client.Client{}, srv.URL, token, nil, "test", time.Now())
		require.NoError(t, err)
		require.NoError(t, enroll.Save(e.lay.Enrollment(), st))
		return nil
	}
	st, ok := e.run(ctx)
	require.True(t, ok)
	require.Equal(t, []string{st.DeviceID}, srv.Stats().DeviceIDs)
}

func TestNotEnrolledError(t *testing.T) {
	for name, cfg := range map[string]config.Config{
		"neither":  config.Default(),
		"no token": enrollConfig("", "https://ingest.example.com"),
		"no URLs":  enrollConfig(token),
	} {
		err := notEnrolled(cfg)
		require.ErrorIs(t, err, enroll.ErrNotEnrolled, name)
		require.Contains(t, err.Error(), "ingest_urls", name)
		require.Contains(t, err.Error(), "enrollment_token", name)
		require.NotContains(t, err.Error(), token, name)
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
