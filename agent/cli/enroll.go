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

func cmdEnroll(args []string, stdout, stderr io.Writer) error {
	fs, c := newFlagSet("enroll", stderr)
	url := fs.String("url", "", "ingest URL to enroll at")
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
	if *url == "" || tok == "" {
		return errors.New("--url and a token (--token, --token-file or $SUPPORTSTACK_ENROLL_TOKEN) are required")
	}
	if err := client.ValidateEndpoints([]string{*url}); err != nil {
		return fmt.Errorf("--url: %w", err)
	}

	lay := config.Layout{Root: r.stateDir}
	var prev *enroll.State
	if old, err := enroll.Load(lay.Enrollment()); err == nil && !*newDevice {
		prev = &old
	}
	if err := os.MkdirAll(r.stateDir, 0o755); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*r.cfg.RequestTimeout)
	defer cancel()
	hc := client.NewHTTPClient(r.cfg.ConnectTimeout, r.cfg.RequestTimeout)
	cl := &client.Client{HTTP: hc, UserAgent: "supportstack-agent/" + version()}
	st, err := enroll.Enroll(ctx, cl, *url, tok, prev, version(), time.Now().UTC())
	if err != nil {
		return err
	}
	st.URL = *url
	// The endpoint list and the drain rate come from GET /v1/endpoints; the daemon fetches them again if this
	// fails.
	for _, ep := range st.Endpoints {
		resp, err := cl.Endpoints(ctx, ep, st.Credential)
		if err != nil {
			r.log.Info("Cannot fetch the endpoint list", "endpoint", ep, "err", err)
			continue
		}
		// An empty list means "keep yours".
		if len(resp.Endpoints) > 0 {
			st.Endpoints = resp.Endpoints
		}
		st.MaxRecordsPerSecond, st.EndpointsRefreshedAt = resp.MaxRecordsPerSecond, time.Now().UTC()
		break
	}
	if err := enroll.Save(lay.Enrollment(), st); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Enrolled device %s\nCredential valid until %s\nEndpoints: %s\nState directory: %s\n",
		st.DeviceID, st.ExpiresAt.UTC().Format(time.RFC3339), strings.Join(st.Endpoints, ", "), r.stateDir)
	if prev != nil {
		fmt.Fprintln(stdout, "Restart a running agent to use the new enrollment.")
	}
	return nil
}
