package ingest

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/protocol"
)

func parseConfig(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.BindFlags(fs)
	require.NoError(t, fs.Parse(args))
	return cfg, cfg.LoadEnv()
}

func setSecrets(t *testing.T, token, key string) {
	t.Setenv("STORAGE_ACCESS_KEY", "access")
	t.Setenv("STORAGE_SECRET_KEY", "secret")
	t.Setenv("ENROLLMENT_TOKEN", token)
	t.Setenv("SIGNING_KEY", key)
}

func TestConfigFromFlagsAndEnv(t *testing.T) {
	setSecrets(t, testEnrollmentToken, testSigningKey)
	cfg, err := parseConfig(t, "--tenant=acme", "--storage-endpoints=http://a:9000,http://b:9000",
		"--ingest-endpoints=https://acme-ingest.east.example.com/, https://acme-ingest.west.example.com",
		"--max-records-per-second=50", "--records-burst=500", "--drain-records-per-second=100",
		"--max-records-per-batch=200", "--max-body-bytes=1048576", "--storage-request-timeout=5s")
	require.NoError(t, err)
	require.Equal(t, []string{"https://acme-ingest.east.example.com", "https://acme-ingest.west.example.com"}, cfg.IngestEndpoints)
	require.Equal(t, []string{"http://a:9000", "http://b:9000"}, cfg.Endpoints)
	require.Equal(t, 50.0, cfg.MaxRecordsPerSecond)
	require.Equal(t, 500, cfg.RecordsBurst)
	require.Equal(t, 100, cfg.DrainRecordsPerSecond)
	require.Equal(t, protocol.Limits{MaxBodyBytes: 1 << 20, MaxDecodedBytes: protocol.DefaultLimits.MaxDecodedBytes,
		MaxRecords: 200, MaxRecordBytes: protocol.DefaultLimits.MaxRecordBytes}, cfg.Limits)
	require.Equal(t, 5*time.Second, cfg.StorageRequestTimeout)
	require.Equal(t, testEnrollmentToken, cfg.EnrollmentToken)
	require.Equal(t, []byte(testSigningKey), cfg.SigningKey, "the key text's bytes, not its base64 decoding")
}

func TestConfigDefaults(t *testing.T) {
	setSecrets(t, testEnrollmentToken, testSigningKey)
	cfg, err := parseConfig(t, "--tenant=acme", "--storage-endpoints=http://a:9000")
	require.NoError(t, err)
	require.Empty(t, cfg.IngestEndpoints)
	require.Equal(t, float64(DefaultMaxRecordsPerSecond), cfg.MaxRecordsPerSecond)
	require.Equal(t, DefaultRecordsBurst, cfg.RecordsBurst)
	require.Equal(t, DefaultDrainRecordsPerSecond, cfg.DrainRecordsPerSecond)
	require.Equal(t, protocol.DefaultLimits, cfg.Limits)
}

func TestConfigRejects(t *testing.T) {
	tests := map[string]struct {
		token, key string
		args       []string
		want       string
	}{
		"no enrollment token": {"", testSigningKey, nil, "ENROLLMENT_TOKEN"},
		"short signing key":   {testEnrollmentToken, "0123456789", nil, "SIGNING_KEY has 10 bytes, want at least 16"},
		"no signing key":      {testEnrollmentToken, "", nil, "SIGNING_KEY has 0 bytes"},
		"ingest endpoint not a URL": {testEnrollmentToken, testSigningKey,
			[]string{"--ingest-endpoints=acme-ingest:80"}, `"acme-ingest:80" is not an http(s) URL`},
		"negative rate": {testEnrollmentToken, testSigningKey, []string{"--max-records-per-second=-1"}, "must not be negative"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			setSecrets(t, tc.token, tc.key)
			_, err := parseConfig(t, append([]string{"--tenant=acme", "--storage-endpoints=http://a:9000"}, tc.args...)...)
			require.ErrorContains(t, err, tc.want)
			if tc.key != "" {
				require.NotContains(t, err.Error(), tc.key, "errors never show a secret")
			}
		})
	}
}

// Secrets come from the environment only: no flag could take one.
func TestNoSecretFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	cfg.BindFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		for _, word := range []string{"token", "secret", "signing", "access-key", "password"} {
			require.False(t, strings.Contains(f.Name, word), "flag --%s looks like a secret", f.Name)
		}
	})
}
