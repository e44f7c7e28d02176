package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/config"
	"github.com/supportstack/supportstack/agent/enroll"
)

func cmdEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlagSet("enroll", stderr)
	url := fs.String("url", "", "ingest URL to enroll at (default: ingest_urls of the config file, in order)")
	token := fs.String("token", "", "enrollment token (visible to other users in the process list: prefer --token-file)")
	tokenFile := fs.String("token-file", "", "file holding the enrollment token")
	newDevice := fs.Bool("new-device", false, "enroll as a new device even when already enrolled")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	r, err := c.resolve(stderr, false)
	if err != nil {
		return err
	}
	tok := *token
	if *tokenFile != "" {
		raw, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("read token file: %w", err)
		}
		tok = strings.TrimSpace(string(raw))
	}
	if tok == "" {
		tok = os.Getenv("SUPPORTSTACK_ENROLL_TOKEN")
	}
	if tok == "" && (r.cfg.EnrollmentToken != "" || r.cfg.EnrollmentTokenFile != "") {
		if tok, err = r.cfg.Token(); err != nil {
			return err
		}
	}
	urls := r.cfg.IngestURLs
	if *url != "" {
		if err := client.ValidateEndpoints([]string{*url}); err != nil {
			return fmt.Errorf("--url: %w", err)
		}
		urls = []string{*url}
	}
	if len(urls) == 0 || tok == "" {
		return errors.New("--url (or ingest_urls in the config file) and a token (--token, --token-file, $SUPPORTSTACK_ENROLL_TOKEN, or enrollment_token or enrollment_token_file in the config file) are required")
	}

	lay := config.Layout{Root: r.stateDir}
	// base is the identity to enroll with: the device's own, or only a key for a new device. The key is made
	// once, before any attempt, and an enrolled device's new key is saved before it is sent: the server may bind
	// it although its answer never arrives.
	var base enroll.State
	old, err := enroll.Load(lay.Enrollment())
	enrolled := err == nil && !*newDevice
	if enrolled {
		base = old
	}
	if err := os.MkdirAll(r.stateDir, 0o755); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if !base.HasKey() {
		if err := enroll.EnsureKey(&base); err != nil {
			return err
		}
		if enrolled {
			if err := enroll.Save(lay.Enrollment(), base); err != nil {
				return err
			}
		}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, enrollPatience)
	defer cancel()
	hc := client.NewHTTPClient(r.cfg.ConnectTimeout, r.cfg.RequestTimeout)
	defer hc.CloseIdleConnections()
	cl := &client.Client{HTTP: hc, UserAgent: "supportstack-agent/" + version()}
	st, err := enrollPaced(ctx, cl, urls, tok, &base, stderr)
	if err != nil {
		return err
	}
	// The endpoint list and the drain rate come from GET /v1/endpoints; the daemon fetches them again if this
	// fails.
	enroll.FetchEndpoints(ctx, cl, &st, time.Now().UTC(), r.log)
	if err := enroll.Save(lay.Enrollment(), st); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Enrolled device %s at %s\nCredential valid until %s\nEndpoints: %s\nState directory: %s\n",
		st.DeviceID, st.URL, st.ExpiresAt.UTC().Format(time.RFC3339), strings.Join(st.Endpoints, ", "), r.stateDir)
	if enrolled {
		fmt.Fprintln(stdout, "Restart a running agent to use the new enrollment.")
	}
	return nil
}

// enrollPatience is how long "enroll" keeps trying while the server asks it to come back later.
const enrollPatience = 2 * time.Minute

// enrollPaced enrolls at the first of urls that takes the enrollment (enroll.Try), and when the server is busy
// or its storage is out (429, 503, or any other answer but a refusal, with Retry-After) waits as long as it says
// and tries again, until ctx ends: a whole office enrolling at the same minute is admitted at the server's pace
// instead of failing. "run" enrolls with the same enroll.Try, and keeps trying (daemon/enroll.go).
func enrollPaced(ctx context.Context, cl *client.Client, urls []string, token string, prev *enroll.State, stderr io.Writer) (enroll.State, error) {
	for {
		st, err := enroll.Try(ctx, cl, urls, token, prev, version(), time.Now().UTC())
		var re *enroll.RoundError
		if err == nil || !errors.As(err, &re) || re.Refused || re.RetryAfter <= 0 {
			return st, err
		}
		code := ""
		if se := client.AsStatus(err); se != nil {
			code = se.Code
		}
		fmt.Fprintf(stderr, "The server is busy (%s): trying again in %s\n", code, re.RetryAfter)
		select {
		case <-ctx.Done():
			return st, err
		case <-time.After(re.RetryAfter):
		}
	}
}
