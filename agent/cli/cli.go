// Package cli is the supportstack-agent command line: enroll, run, ask, status, version.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/supportstack/supportstack/agent/config"
)

// Version is the agent's version, set at build time with
// -ldflags "-X github.com/supportstack/supportstack/agent/cli.Version=v1.2.3".
var Version = "dev"

func version() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

const usage = `supportstack-agent reports this PC's technical data and its user's questions to the support service.

Usage:
  supportstack-agent enroll --url URL --token TOKEN   enroll this PC (token also from --token-file or $SUPPORTSTACK_ENROLL_TOKEN;
                                                     URL and token default to ingest_urls and enrollment_token of the config file)
  supportstack-agent run                             run the agent (collectors, question intake, sender); not enrolled yet, it
                                                     enrolls by itself with ingest_urls and enrollment_token of the config file
  supportstack-agent ask [--wait DURATION] "TEXT"    ask a question; prints its ID and delivery state
  supportstack-agent status [--json]                 show enrollment, spool, delivery, pending questions and answers
  supportstack-agent version

Flags of every command:
  --config FILE      config file (default per OS, see "supportstack-agent help config")
  --state-dir DIR    state directory (default per OS)
  -v                 log informational messages too (default: warnings and errors only)
  --log-level LEVEL  error, warn, info or debug
`

// Main runs the command line and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainContext(context.Background(), args, stdout, stderr)
}

// MainContext is Main with a context: ending it stops "run" as SIGTERM does (and "enroll", "ask --wait" as
// Ctrl-C does).
func MainContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "enroll":
		err = cmdEnroll(ctx, rest, stdout, stderr)
	case "run":
		err = cmdRun(ctx, rest, stdout, stderr)
	case "ask":
		err = cmdAsk(ctx, rest, stdout, stderr)
	case "status":
		err = cmdStatus(rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "supportstack-agent %s %s/%s %s\n", version(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	case "help", "-h", "--help", "-help":
		if len(rest) > 0 && rest[0] == "config" {
			printConfigHelp(stdout)
		} else {
			fmt.Fprint(stdout, usage)
		}
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, ee.msg)
		}
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "supportstack-agent %s: %v\n", cmd, err)
	return 1
}

// exitError ends a command with a given exit code.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func printConfigHelp(w io.Writer) {
	env := hostEnv()
	fmt.Fprintf(w, `Config file: one "key = value" per line, '#' comments. Durations like 90s, 10m, 1h; sizes in bytes or
with KiB, MiB, GiB. Each key is also a flag of "run" (perf_interval -> --perf-interval); flags win.
Default file: %s (or --config FILE, or $SUPPORTSTACK_AGENT_CONFIG)
Default state directory: %s

`, config.DefaultConfigFile(env), config.DefaultStateDir(env))
	def := config.Default()
	width := 0
	for _, k := range config.Keys() {
		width = max(width, len(k))
	}
	for _, k := range config.Keys() {
		fmt.Fprintf(w, "  %-*s %s (default %q)\n", width+2, k, config.Help(k), def.Get(k))
	}
}

// common are the flags of every command.
type common struct {
	configFile string
	stateDir   string
	verbose    bool
	logLevel   string
	// sets are config settings given as flags, applied after the file in order.
	sets [][2]string
}

func newFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &common{}
	fs.StringVar(&c.configFile, "config", "", "config file")
	fs.StringVar(&c.stateDir, "state-dir", "", "state directory")
	fs.BoolVar(&c.verbose, "v", false, "log informational messages too")
	fs.StringVar(&c.logLevel, "log-level", "", "error, warn, info or debug")
	return fs, c
}

// addConfigFlags makes every config key a flag.
func (c *common) addConfigFlags(fs *flag.FlagSet) {
	for _, k := range config.Keys() {
		if k == "state_dir" || k == "log_level" {
			continue
		}
		if config.IsSecret(k) {
			// The flag package would quote a refused value in its error: the value is checked in resolve,
			// whose error does not.
			fs.Func(strings.ReplaceAll(k, "_", "-"), config.Help(k)+" (visible in the process list: prefer the config file)", func(v string) error {
				c.sets = append(c.sets, [2]string{k, v})
				return nil
			})
			continue
		}
		fs.Func(strings.ReplaceAll(k, "_", "-"), config.Help(k), func(v string) error {
			probe := config.Default()
			if err := probe.Set(k, v); err != nil {
				return err
			}
			c.sets = append(c.sets, [2]string{k, v})
			return nil
		})
	}
}

// parse parses args, allowing flags after positional arguments ("ask 'text' --wait 5s").
// parseNoArgs parses a command that takes flags only.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parse(fs, args)
	if err == nil && len(pos) > 0 {
		err = fmt.Errorf("unexpected arguments %q", pos)
	}
	return err
}

func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func hostEnv() config.Env {
	return config.Env{GOOS: runtime.GOOS, Getenv: os.Getenv, Root: isRoot()}
}

// isRoot tells whether the machine-wide locations apply: root on Unix; always on Windows, where the agent runs as
// a service and %ProgramData% is shared.
func isRoot() bool { return runtime.GOOS == "windows" || os.Geteuid() == 0 }

// resolved is the outcome of config file, flags and defaults.
type resolved struct {
	cfg      config.Config
	stateDir string
	log      *slog.Logger
}

// resolve loads the config and finds the state directory. For commands that only read the state or drop a
// question (ask, status), a user without a state directory of their own is pointed at the machine-wide one when
// a daemon keeps its state there.
func (c *common) resolve(stderr io.Writer, userFallback bool) (resolved, error) {
	env := hostEnv()
	cfg := config.Default()
	path, required := c.configFile, true
	if path == "" {
		path = os.Getenv("SUPPORTSTACK_AGENT_CONFIG")
	}
	if path == "" {
		path, required = config.DefaultConfigFile(env), false
	}
	if err := cfg.LoadFile(path, required); err != nil {
		return resolved{}, err
	}
	for _, kv := range c.sets {
		if err := cfg.Set(kv[0], kv[1]); err != nil {
			return resolved{}, err
		}
	}
	if c.stateDir != "" {
		cfg.StateDir = c.stateDir
	}
	if c.logLevel != "" {
		if err := cfg.Set("log_level", c.logLevel); err != nil {
			return resolved{}, err
		}
	}
	if c.verbose && cfg.LogLevel != "debug" {
		cfg.LogLevel = "info"
	}
	if err := cfg.Validate(); err != nil {
		return resolved{}, err
	}
	dir := cfg.StateDir
	if dir == "" {
		dir = config.DefaultStateDir(env)
		if userFallback && !env.Root {
			sys := config.DefaultStateDir(config.Env{GOOS: env.GOOS, Getenv: env.Getenv, Root: true})
			if !exists(config.Layout{Root: dir}.Enrollment()) && exists(filepath.Join(sys, "status.json")) {
				dir = sys
			}
		}
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return resolved{cfg: cfg, stateDir: dir, log: log}, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
