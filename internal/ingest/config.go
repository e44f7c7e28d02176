package ingest

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/supportstack/supportstack/internal/protocol"
	"github.com/supportstack/supportstack/internal/webserver"
)

// Config of the ingest service. Secrets (storage credentials, enrollment token, signing key) come from the
// environment only, never from flags, so that they show in no process listing and no Deployment's args.
type Config struct {
	webserver.StorageConfig

	// EnrollmentToken is the tenant's shared secret that agents present to enroll (env ENROLLMENT_TOKEN).
	EnrollmentToken string
	// SigningKey signs and verifies device credentials (env SIGNING_KEY, its text's bytes used as they are).
	SigningKey []byte
	// CredentialTTL is how long issued credentials are valid; 0 means protocol.DefaultCredentialTTL.
	CredentialTTL time.Duration

	// IngestEndpoints are this tenant's public ingest URLs, preferred first, handed to agents by enroll and
	// GET /v1/endpoints. Empty: agents keep the endpoints they have.
	IngestEndpoints []string
	// AgentDir holds the agent binaries served at /downloads/ (DefaultAgentDir()).
	AgentDir string
	// MaxRecordsPerSecond is each device's sustained record rate; 0 turns the limit off.
	MaxRecordsPerSecond float64
	// RecordsBurst is how many records a device may send at once beyond the rate; it is raised to
	// Limits.MaxRecords if lower, so that a full batch can always pass eventually.
	RecordsBurst int
	// DrainRecordsPerSecond is the rate GET /v1/endpoints asks agents with a backlog to keep to.
	DrainRecordsPerSecond int
	// Limits bound one batch request; zero fields mean protocol.DefaultLimits.
	Limits protocol.Limits

	// StorageRequestTimeout bounds one storage attempt at one endpoint; 0 means the pool's default (10s). The
	// flag's default is DefaultStorageRequestTimeout.
	StorageRequestTimeout time.Duration
	// StorageHealthInterval is how often each storage endpoint's health is checked; 0 means 1s.
	StorageHealthInterval time.Duration

	// MaxConcurrentRequests bounds the requests doing storage work at once (enroll, batches, answers); 0 means
	// DefaultMaxConcurrentRequests. A request waits up to AdmissionWait (0: DefaultAdmissionWait) for a slot and
	// is otherwise refused with 429 overloaded and a spread Retry-After.
	MaxConcurrentRequests int
	AdmissionWait         time.Duration
	// EnrollReadTimeout and BatchReadTimeout are how long a client has to send an enrollment or batch body
	// (0: DefaultEnrollReadTimeout, DefaultBatchReadTimeout); a slower one gets 408 body_timeout.
	EnrollReadTimeout time.Duration
	BatchReadTimeout  time.Duration
	// Rand returns numbers in [0, 1) to spread Retry-After times; nil is math/rand.
	Rand func() float64

	// Logger receives request logs; nil discards them in New and means JSON on stderr in Run.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Defaults of the rate and admission flags.
const (
	DefaultMaxRecordsPerSecond   = 200
	DefaultRecordsBurst          = 2000
	DefaultDrainRecordsPerSecond = 150
	DefaultMaxConcurrentRequests = 64
	DefaultAdmissionWait         = 2 * time.Second
	// An enrollment body is at most 16 KiB, a batch body a few MiB sent by a PC on any line.
	// DefaultStorageRequestTimeout bounds one storage attempt: a batch's objects are small, so a MinIO that has
	// not answered in 2 s is hung or drowning, and the request goes on to the peer's copy (keys are written once,
	// so nothing is written twice). It is most of what a hung MinIO costs an agent.
	DefaultStorageRequestTimeout = 2 * time.Second

	DefaultEnrollReadTimeout = 10 * time.Second
	DefaultBatchReadTimeout  = 30 * time.Second
)

func (c *Config) maxConcurrentRequests() int {
	if c.MaxConcurrentRequests <= 0 {
		return DefaultMaxConcurrentRequests
	}
	return c.MaxConcurrentRequests
}

func (c *Config) admissionWait() time.Duration {
	return orDefault(c.AdmissionWait, DefaultAdmissionWait)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// BindFlags registers the shared storage flags and the ingest's own.
func (c *Config) BindFlags(fs *flag.FlagSet) {
	c.StorageConfig.BindFlags(fs)
	fs.Func("ingest-endpoints", "comma-separated public ingest URLs of this tenant, preferred first, handed to agents (empty: agents keep theirs)", func(s string) error {
		c.IngestEndpoints = splitList(s)
		return nil
	})
	fs.StringVar(&c.AgentDir, "agent-dir", "", "folder of the agent binaries served at /downloads/ (supportstack-agent-<os>-<arch>[.exe]; default: agents/ beside this binary)")
	fs.Float64Var(&c.MaxRecordsPerSecond, "max-records-per-second", DefaultMaxRecordsPerSecond, "records per second each device may send (token bucket; 0: no limit)")
	fs.IntVar(&c.RecordsBurst, "records-burst", DefaultRecordsBurst, "records a device may send at once beyond its rate")
	fs.IntVar(&c.DrainRecordsPerSecond, "drain-records-per-second", DefaultDrainRecordsPerSecond, "records per second agents with a backlog are asked to keep to (0: no limit)")
	c.Limits = protocol.DefaultLimits
	fs.Int64Var(&c.Limits.MaxBodyBytes, "max-body-bytes", protocol.DefaultLimits.MaxBodyBytes, "largest batch request body as sent")
	fs.Int64Var(&c.Limits.MaxDecodedBytes, "max-decoded-bytes", protocol.DefaultLimits.MaxDecodedBytes, "largest batch request body after decompression")
	fs.IntVar(&c.Limits.MaxRecords, "max-records-per-batch", protocol.DefaultLimits.MaxRecords, "most records in one batch")
	fs.IntVar(&c.Limits.MaxRecordBytes, "max-record-bytes", protocol.DefaultLimits.MaxRecordBytes, "largest data of one record")
	fs.DurationVar(&c.StorageRequestTimeout, "storage-request-timeout", DefaultStorageRequestTimeout,
		"bound of one storage request at one endpoint; one that times out sends the next requests to the next endpoint")
	fs.DurationVar(&c.StorageHealthInterval, "storage-health-interval", time.Second, "how often each storage endpoint's health is checked")
	fs.IntVar(&c.MaxConcurrentRequests, "max-concurrent-requests", DefaultMaxConcurrentRequests, "requests doing storage work at once; more wait up to --admission-wait, then get 429 overloaded")
	fs.DurationVar(&c.AdmissionWait, "admission-wait", DefaultAdmissionWait, "how long a request waits for a free slot before it is refused with 429 overloaded")
	fs.DurationVar(&c.EnrollReadTimeout, "enroll-read-timeout", DefaultEnrollReadTimeout, "how long a client has to send an enrollment body")
	fs.DurationVar(&c.BatchReadTimeout, "batch-read-timeout", DefaultBatchReadTimeout, "how long a client has to send a batch body")
}

// LoadEnv reads the storage credentials, ENROLLMENT_TOKEN and SIGNING_KEY from the environment and checks the
// configuration.
func (c *Config) LoadEnv() error {
	err := c.StorageConfig.LoadEnv()
	c.EnrollmentToken = os.Getenv("ENROLLMENT_TOKEN")
	c.SigningKey = []byte(os.Getenv("SIGNING_KEY"))
	return errors.Join(err, c.Validate())
}

// Validate checks everything but the storage settings, which webserver.StorageConfig.LoadEnv checks.
func (c *Config) Validate() error {
	var errs []error
	if c.EnrollmentToken == "" {
		errs = append(errs, errors.New("missing configuration: ENROLLMENT_TOKEN"))
	}
	if len(c.SigningKey) < minSigningKeyBytes {
		// Say how long it is, never what it is.
		errs = append(errs, fmt.Errorf("SIGNING_KEY has %d bytes, want at least %d", len(c.SigningKey), minSigningKeyBytes))
	}
	for _, e := range c.IngestEndpoints {
		if u, err := url.Parse(e); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			errs = append(errs, fmt.Errorf("--ingest-endpoints: %q is not an http(s) URL", e))
		}
	}
	l := c.Limits
	if l.MaxBodyBytes < 0 || l.MaxDecodedBytes < 0 || l.MaxRecords < 0 || l.MaxRecordBytes < 0 {
		errs = append(errs, errors.New("batch limits must not be negative"))
	}
	if c.MaxRecordsPerSecond < 0 || c.RecordsBurst < 0 || c.DrainRecordsPerSecond < 0 {
		errs = append(errs, errors.New("rates must not be negative"))
	}
	if c.MaxConcurrentRequests < 0 || c.AdmissionWait < 0 || c.EnrollReadTimeout < 0 || c.BatchReadTimeout < 0 {
		errs = append(errs, errors.New("--max-concurrent-requests, --admission-wait and the read timeouts must not be negative"))
	}
	return errors.Join(errs...)
}

// minSigningKeyBytes is what protocol.Signer.Issue demands; Verify does not check it, so the server must.
const minSigningKeyBytes = 16

func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, strings.TrimRight(e, "/"))
		}
	}
	return out
}

// limits returns c.Limits with protocol.DefaultLimits for the fields that are zero.
func (c *Config) limits() protocol.Limits {
	l, d := c.Limits, protocol.DefaultLimits
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxDecodedBytes == 0 {
		l.MaxDecodedBytes = d.MaxDecodedBytes
	}
	if l.MaxRecords == 0 {
		l.MaxRecords = d.MaxRecords
	}
	if l.MaxRecordBytes == 0 {
		l.MaxRecordBytes = d.MaxRecordBytes
	}
	return l
}
