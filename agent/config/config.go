// Package config holds the agent's settings: defaults, the config file (simple "key = value" lines), flags
// that override it, and the per-OS locations of the state directory and the config file.
//
// The config file has one setting per line, "key = value"; blank lines, lines starting with '#' and
// anything after " #" are ignored; durations use Go syntax ("90s", "10m", "1h"); sizes are bytes with an optional KiB, MiB or GiB
// suffix. Unknown keys are an error, so a typo does not go unnoticed. Every key is also a flag of the same
// name with '-' for '_' (perf_interval → --perf-interval), and a flag wins over the file.
//
// ingest_urls with enrollment_token (or enrollment_token_file) let "run" enroll the device by itself on its first
// start; they are not used once the device is enrolled (the enrollment in the state directory wins).
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Secret is a value that must never be printed: fmt and log/slog show it as [redacted] (or nothing when it is
// empty). Reveal returns the value itself, for the one place that sends it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String is [redacted] for a secret that is set.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue keeps log/slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoders (JSON and others) from writing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Config is everything the agent can be told.
type Config struct {
	// StateDir holds enrollment, spool, inbox and ledgers; empty means the OS default (DefaultStateDir).
	StateDir string
	// LogLevel is "error", "warn" (default), "info" or "debug".
	LogLevel string

	// IngestURLs are the ingest base URLs "run" enrolls at when the device is not enrolled yet, in order of
	// preference (a replicated workspace has one per cluster). Unused once enrolled: the server's endpoint list
	// takes over.
	IngestURLs []string
	// EnrollmentToken is the token "run" enrolls with when the device is not enrolled yet; EnrollmentTokenFile a
	// file holding it instead. At most one of them is set.
	EnrollmentToken     Secret
	EnrollmentTokenFile string
	// RefusedEnrollmentRetryInterval is how often "run" tries again to enroll with a token the server refused.
	RefusedEnrollmentRetryInterval time.Duration

	// InventoryInterval is how often the inventory is sent even when unchanged; InventoryCheckInterval how
	// often it is read to see whether it changed.
	InventoryInterval      time.Duration
	InventoryCheckInterval time.Duration
	// PerfInterval is the period of performance samples.
	PerfInterval time.Duration
	// InboxPollInterval is how often the daemon looks for questions queued by "ask".
	InboxPollInterval time.Duration
	// StatusInterval is how often the daemon writes its status snapshot for the "status" command.
	StatusInterval time.Duration
	// AnswerInterval is how often the daemon fetches the answers support staff gave to the user's questions.
	AnswerInterval time.Duration

	// Spool bounds.
	SpoolMaxQuestionBytes  int64
	SpoolMaxTelemetryBytes int64
	SpoolSegmentBytes      int64
	SpoolSyncInterval      time.Duration

	// Sender timing.
	BackoffMin time.Duration
	BackoffMax time.Duration
	// RetryAfterMax bounds a wait a reachable server asks for with Retry-After.
	RetryAfterMax            time.Duration
	RejectedRetryInterval    time.Duration
	PrimaryRetryInterval     time.Duration
	EndpointsRefreshInterval time.Duration
	ConnectTimeout           time.Duration
	RequestTimeout           time.Duration
}

// Default returns the built-in settings.
func Default() Config {
	return Config{
		LogLevel:                 "warn",
		InventoryInterval:        time.Hour,
		InventoryCheckInterval:   5 * time.Minute,
		PerfInterval:             time.Minute,
		InboxPollInterval:        2 * time.Second,
		StatusInterval:           10 * time.Second,
		AnswerInterval:           time.Minute,
		SpoolMaxQuestionBytes:    16 << 20,
		SpoolMaxTelemetryBytes:   128 << 20,
		SpoolSegmentBytes:        4 << 20,
		SpoolSyncInterval:        time.Second,
		BackoffMin:               time.Second,
		BackoffMax:               10 * time.Minute,
		RetryAfterMax:            30 * time.Second,
		RejectedRetryInterval:    10 * time.Minute,
		PrimaryRetryInterval:     10 * time.Minute,
		EndpointsRefreshInterval: time.Hour,
		ConnectTimeout:           5 * time.Second,
		RequestTimeout:           30 * time.Second,

		RefusedEnrollmentRetryInterval: 10 * time.Minute,
	}
}

type field struct {
	help string
	set  func(c *Config, v string) error
	get  func(c *Config) string
	// secret values are never quoted in errors; Get shows them redacted.
	secret bool
}

func durationField(help string, p func(*Config) *time.Duration) field {
	return durationAtLeast(help, 0, p)
}

// durationAtLeast is a duration that may not be shorter than least: the period of a call every PC makes to the
// server, where a typo ("1ms") would turn a tenant's fleet into a load test.
func durationAtLeast(help string, least time.Duration, p func(*Config) *time.Duration) field {
	return field{
		help: help,
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			if d <= 0 {
				return errors.New("must be positive")
			}
			if d < least {
				return fmt.Errorf("must be at least %s", least)
			}
			*p(c) = d
			return nil
		},
		get: func(c *Config) string { return p(c).String() },
	}
}

func sizeField(help string, p func(*Config) *int64) field {
	return field{
		help: help,
		set: func(c *Config, v string) error {
			n, err := ParseSize(v)
			if err != nil {
				return err
			}
			*p(c) = n
			return nil
		},
		get: func(c *Config) string { return strconv.FormatInt(*p(c), 10) },
	}
}

var fields = map[string]field{
	"state_dir": {
		help: "state directory (enrollment, spool, inbox); default per OS",
		set:  func(c *Config, v string) error { c.StateDir = v; return nil },
		get:  func(c *Config) string { return c.StateDir },
	},
	"log_level": {
		help: "error, warn, info or debug",
		set: func(c *Config, v string) error {
			switch v {
			case "error", "warn", "info", "debug":
				c.LogLevel = v
				return nil
			}
			return errors.New("want error, warn, info or debug")
		},
		get: func(c *Config) string { return c.LogLevel },
	},
	"ingest_urls": {
		help: "comma-separated ingest URLs, preferred first, that run enrolls at when the device is not enrolled yet",
		set: func(c *Config, v string) error {
			urls, err := parseURLs(v)
			if err != nil {
				return err
			}
			c.IngestURLs = urls
			return nil
		},
		get: func(c *Config) string { return strings.Join(c.IngestURLs, ",") },
	},
	"enrollment_token": {
		help: "token run enrolls with when the device is not enrolled yet (or enrollment_token_file)",
		set: func(c *Config, v string) error {
			if strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
				return errors.New("must not contain spaces or control characters")
			}
			c.EnrollmentToken = Secret(v)
			return nil
		},
		get:    func(c *Config) string { return c.EnrollmentToken.String() },
		secret: true,
	},
	"enrollment_token_file": {
		help: "file holding the enrollment token (instead of enrollment_token), read when run enrolls",
		set:  func(c *Config, v string) error { c.EnrollmentTokenFile = v; return nil },
		get:  func(c *Config) string { return c.EnrollmentTokenFile },
	},
	"refused_enrollment_retry_interval": durationAtLeast("how often run tries again to enroll with a token the server refused", time.Second,
		func(c *Config) *time.Duration { return &c.RefusedEnrollmentRetryInterval }),
	"inventory_interval":         durationField("send the inventory at least this often", func(c *Config) *time.Duration { return &c.InventoryInterval }),
	"inventory_check_interval":   durationField("read the inventory this often and send it when it changed", func(c *Config) *time.Duration { return &c.InventoryCheckInterval }),
	"perf_interval":              durationField("period of performance samples", func(c *Config) *time.Duration { return &c.PerfInterval }),
	"inbox_poll_interval":        durationField("how often run picks up questions queued by ask", func(c *Config) *time.Duration { return &c.InboxPollInterval }),
	"status_interval":            durationField("how often run writes its status snapshot", func(c *Config) *time.Duration { return &c.StatusInterval }),
	"answer_interval":            durationAtLeast("how often run fetches the answers to the user's questions", time.Second, func(c *Config) *time.Duration { return &c.AnswerInterval }),
	"spool_max_question_bytes":   sizeField("spool space for questions", func(c *Config) *int64 { return &c.SpoolMaxQuestionBytes }),
	"spool_max_telemetry_bytes":  sizeField("spool space for telemetry (oldest evicted first)", func(c *Config) *int64 { return &c.SpoolMaxTelemetryBytes }),
	"spool_segment_bytes":        sizeField("size of one spool segment file", func(c *Config) *int64 { return &c.SpoolSegmentBytes }),
	"spool_sync_interval":        durationField("how often telemetry is fsynced (questions always are)", func(c *Config) *time.Duration { return &c.SpoolSyncInterval }),
	"backoff_min":                durationField("first retry delay after a failure", func(c *Config) *time.Duration { return &c.BackoffMin }),
	"backoff_max":                durationField("longest retry delay while no endpoint can be reached", func(c *Config) *time.Duration { return &c.BackoffMax }),
	"retry_after_max":            durationField("longest wait a reachable server may ask for (503 or 429 with Retry-After)", func(c *Config) *time.Duration { return &c.RetryAfterMax }),
	"rejected_retry_interval":    durationField("how often a batch or record the server rejected is tried again", func(c *Config) *time.Duration { return &c.RejectedRetryInterval }),
	"primary_retry_interval":     durationField("how often the first endpoint is tried again while on another", func(c *Config) *time.Duration { return &c.PrimaryRetryInterval }),
	"endpoints_refresh_interval": durationField("how often the endpoint list is fetched", func(c *Config) *time.Duration { return &c.EndpointsRefreshInterval }),
	"connect_timeout":            durationField("TCP and TLS connect timeout", func(c *Config) *time.Duration { return &c.ConnectTimeout }),
	"request_timeout":            durationField("timeout of one whole HTTP request", func(c *Config) *time.Duration { return &c.RequestTimeout }),
}

// Keys returns the setting names, sorted.
func Keys() []string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Help describes a key.
func Help(key string) string { return fields[key].help }

// IsSecret tells whether a key's value is a secret, never to be printed.
func IsSecret(key string) bool { return fields[key].secret }

// Set applies one setting. The error names the key, and the value unless it is a secret.
func (c *Config) Set(key, value string) error {
	f, ok := fields[key]
	if !ok {
		return fmt.Errorf("unknown setting %q", key)
	}
	if err := f.set(c, strings.TrimSpace(value)); err != nil {
		if f.secret {
			return fmt.Errorf("setting %s: %w", key, err)
		}
		return fmt.Errorf("setting %s=%q: %w", key, value, err)
	}
	return nil
}

// parseURLs reads a comma-separated list of http(s) base URLs; empty is none.
func parseURLs(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, errors.New("empty URL in the list")
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%q is not an http(s) URL", s)
		}
		if u.User != nil {
			return nil, fmt.Errorf("%q holds a user name or password: the token authenticates the agent", u.Redacted())
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("%q: a base URL takes no query or fragment", s)
		}
		out = append(out, s)
	}
	return out, nil
}

// Get returns a setting as text; a secret that is set is [redacted].
func (c *Config) Get(key string) string {
	f, ok := fields[key]
	if !ok {
		return ""
	}
	return f.get(c)
}

// Parse applies the settings read from r (the config file format) to c.
func (c *Config) Parse(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 { // a comment after the value
			line = strings.TrimSpace(line[:i])
		}
		if i := strings.Index(line, "\t#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("line %d: want key = value", n)
		}
		if err := c.Set(strings.TrimSpace(k), v); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return sc.Err()
}

// LoadFile applies the config file at path. A missing file is an error only when required.
func (c *Config) LoadFile(path string, required bool) error {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) && !required {
			return nil
		}
		return fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	if err := c.Parse(f); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Validate checks relations between settings.
func (c *Config) Validate() error {
	if c.BackoffMin > c.BackoffMax {
		return fmt.Errorf("backoff_min %s exceeds backoff_max %s", c.BackoffMin, c.BackoffMax)
	}
	if c.SpoolSegmentBytes <= 0 || c.SpoolMaxQuestionBytes <= 0 || c.SpoolMaxTelemetryBytes <= 0 {
		return errors.New("spool sizes must be positive")
	}
	if c.EnrollmentToken != "" && c.EnrollmentTokenFile != "" {
		return errors.New("enrollment_token and enrollment_token_file are both set: keep one")
	}
	return nil
}

// CanEnroll tells whether "run" can enroll the device by itself: ingest_urls and a token are set.
func (c *Config) CanEnroll() bool {
	return len(c.IngestURLs) > 0 && (c.EnrollmentToken != "" || c.EnrollmentTokenFile != "")
}

// Token returns the enrollment token: enrollment_token, or the content of enrollment_token_file read now (so
// that a file fixed later is picked up), without surrounding white space. The error never holds the token.
func (c *Config) Token() (string, error) {
	if c.EnrollmentToken != "" {
		return c.EnrollmentToken.Reveal(), nil
	}
	if c.EnrollmentTokenFile == "" {
		return "", errors.New("neither enrollment_token nor enrollment_token_file is set")
	}
	raw, err := os.ReadFile(c.EnrollmentTokenFile)
	if err != nil {
		return "", fmt.Errorf("read enrollment_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if tok == "" {
		return "", fmt.Errorf("enrollment_token_file %s is empty", c.EnrollmentTokenFile)
	}
	if strings.ContainsFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", fmt.Errorf("enrollment_token_file %s: the token must be one line without spaces or control characters", c.EnrollmentTokenFile)
	}
	return tok, nil
}

// ParseSize reads a byte count with an optional KiB, MiB or GiB suffix.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			mult = m
			s = strings.TrimSpace(strings.TrimSuffix(s, suffix))
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive size", s)
	}
	return n * mult, nil
}

// Env is the part of the process environment the defaults depend on.
type Env struct {
	GOOS   string
	Getenv func(string) string
	// Root is true when running as root (Unix) or as a service/administrator (Windows, where the
	// machine-wide directory is used regardless).
	Root bool
}

const appName = "supportstack-agent"

// DefaultStateDir is where the agent keeps its state, by OS convention.
func DefaultStateDir(e Env) string {
	home := e.Getenv("HOME")
	switch e.GOOS {
	case "windows":
		pd := e.Getenv("ProgramData")
		if pd == "" {
			pd = `C:\ProgramData`
		}
		return pd + `\` + appName
	case "darwin":
		if e.Root || home == "" {
			return "/Library/Application Support/" + appName
		}
		return filepath.Join(home, "Library", "Application Support", appName)
	default:
		if e.Root {
			return "/var/lib/" + appName
		}
		if x := e.Getenv("XDG_STATE_HOME"); x != "" {
			return filepath.Join(x, appName)
		}
		if home == "" {
			return "/var/lib/" + appName
		}
		return filepath.Join(home, ".local", "state", appName)
	}
}

// DefaultConfigFile is where the config file is looked for when --config is not given.
func DefaultConfigFile(e Env) string {
	home := e.Getenv("HOME")
	switch e.GOOS {
	case "windows", "darwin":
		return joinFor(e.GOOS, DefaultStateDir(e), "agent.conf")
	default:
		if e.Root {
			return "/etc/" + appName + "/agent.conf"
		}
		if x := e.Getenv("XDG_CONFIG_HOME"); x != "" {
			return filepath.Join(x, appName, "agent.conf")
		}
		if home == "" {
			return "/etc/" + appName + "/agent.conf"
		}
		return filepath.Join(home, ".config", appName, "agent.conf")
	}
}

func joinFor(goos, dir, name string) string {
	if goos == "windows" {
		return dir + `\` + name
	}
	return dir + "/" + name
}

// Layout names the files in the state directory.
type Layout struct{ Root string }

// Enrollment is the device's identity: ID, credential, endpoints, enrollment token (mode 0600).
func (l Layout) Enrollment() string { return filepath.Join(l.Root, "enrollment.json") }

// Spool is the durable spool's directory.
func (l Layout) Spool() string { return filepath.Join(l.Root, "spool") }

// Inbox holds questions queued by "ask" and not yet taken into the spool.
func (l Layout) Inbox() string { return filepath.Join(l.Root, "inbox") }

// Questions is the question ledger: ID → spool seq, delivery time.
func (l Layout) Questions() string { return filepath.Join(l.Root, "questions.json") }

// Collect is the collectors' memory: last boot time, inventory hash.
func (l Layout) Collect() string { return filepath.Join(l.Root, "collect.json") }

// Status is the daemon's latest status snapshot.
func (l Layout) Status() string { return filepath.Join(l.Root, "status.json") }

// Rejected holds records the server refused for good, kept and retried slowly.
func (l Layout) Rejected() string { return filepath.Join(l.Root, "rejected") }

// Answers holds the answers support staff gave to the user's questions, and the texts of those questions.
func (l Layout) Answers() string { return filepath.Join(l.Root, "answers.json") }
