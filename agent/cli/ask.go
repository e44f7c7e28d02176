package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/supportstack/supportstack/agent/config"
	"github.com/supportstack/supportstack/agent/questions"
)

func cmdAsk(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlagSet("ask", stderr)
	wait := fs.Duration("wait", 0, "wait up to this long for the question to be delivered")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	text := strings.Join(pos, " ")
	if text == "-" {
		raw, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return fmt.Errorf("read question from standard input: %w", err)
		}
		text = strings.TrimSpace(string(raw))
	}
	if err := questions.CheckText(text); err != nil {
		return err
	}
	r, err := c.resolve(stderr, true)
	if err != nil {
		return err
	}
	lay := config.Layout{Root: r.stateDir}
	q, err := questions.Enqueue(lay.Inbox(), text, time.Now())
	if err != nil {
		return err
	}
	// The question is durable in the inbox before anything is printed.
	fmt.Fprintf(stdout, "%s %s\n", q.ID, questions.StateQueued)
	if *wait <= 0 {
		return nil
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		state, _, err := questions.Lookup(lay.Questions(), lay.Inbox(), q.ID)
		if err != nil {
			return err
		}
		switch state {
		case questions.StateDelivered:
			fmt.Fprintf(stdout, "%s %s\n", q.ID, state)
			return nil
		case questions.StateRejected:
			fmt.Fprintf(stdout, "%s %s\n", q.ID, state)
			return exitError{code: 1, msg: "the server refused the question; it is kept and retried (see status)"}
		}
		select {
		case <-ctx.Done():
			return exitError{code: 3, msg: fmt.Sprintf("question %s not delivered within %s; it stays queued and will be delivered when the agent reaches the service", q.ID, *wait)}
		case <-t.C:
		}
	}
}
