// Package daemon is the agent's "run" command: it opens the spool, starts the collectors, the inbox intake, the
// sender and the fetching of answers, and writes a status snapshot for the "status" command, until its context
// is cancelled. A device not enrolled yet is enrolled first with the config's ingest_urls and token (enroll.go).
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/supportstack/supportstack/agent/client"
	"github.com/supportstack/supportstack/agent/collect"
	"github.com/supportstack/supportstack/agent/config"
	"github.com/supportstack/supportstack/agent/enroll"
	"github.com/supportstack/supportstack/agent/questions"
	"github.com/supportstack/supportstack/agent/sender"
	"github.com/supportstack/supportstack/agent/spool"
	"github.com/supportstack/supportstack/internal/protocol"
)

// Options configure Run.
type Options struct {
	Config       config.Config
	StateDir     string
	AgentVersion string
	Log          *slog.Logger
	// SharedInbox lets every local user queue questions (the daemon runs as root or a service).
	SharedInbox bool
}

// ledgerRetention is how long delivered questions stay in the ledger.
const ledgerRetention = 90 * 24 * time.Hour

// Run runs the agent until ctx is done. It returns nil after a clean shutdown.
//
// A device without an enrollment is enrolled by Run itself when the config has ingest_urls and a token
// (enroller): meanwhile the spool takes questions and telemetry, and "status" shows why it is not enrolled yet;
// the sender and the fetching of answers start once it is. An enrollment in the state directory always wins over
// the config's ingest_urls and token: they are not used then.
func Run(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lay := config.Layout{Root: o.StateDir}
	st, err := enroll.Load(lay.Enrollment())
	enrolled := err == nil
	switch {
	case errors.Is(err, enroll.ErrNotEnrolled):
		if !cfg.CanEnroll() {
			return notEnrolled(cfg)
		}
	case err != nil:
		return err
	default:
		noteIgnoredConfig(cfg, st, log)
	}
	sp, err := openSpool(ctx, lay, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := sp.Close(); err != nil {
			log.Error("Cannot close the spool", "err", err)
		}
	}()
	ledger, err := questions.OpenLedger(lay.Questions())
	if err != nil {
		return err
	}
	if err := questions.PrepareInbox(lay.Inbox(), o.SharedInbox); err != nil {
		return err
	}
	answers, err := questions.LoadAnswers(lay.Answers())
	if err != nil {
		// Answers are a convenience: the server still has them and the next fetch brings them back.
		log.Warn("Cannot read the stored answers; starting without them", "err", err)
		answers = questions.NewAnswers(lay.Answers())
	}
	answers.PruneQuestions(time.Now().Add(-ledgerRetention))
	if err := answers.Save(); err != nil {
		log.Warn("Cannot save the answers", "err", err)
	}

	hc := client.NewHTTPClient(cfg.ConnectTimeout, cfg.RequestTimeout)
	defer hc.CloseIdleConnections()
	cl := &client.Client{HTTP: hc, UserAgent: "supportstack-agent/" + o.AgentVersion}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	// The sender exists once the device is enrolled; what is spooled before waits for it in the spool.
	var snd atomic.Pointer[sender.Sender]
	notify := func() {
		if s := snd.Load(); s != nil {
			s.Notify()
		}
	}
	startSending := func(st enroll.State) {
		s := sender.New(sender.Options{
			Spool:                    sp,
			Client:                   cl,
			State:                    st,
			SaveState:                func(s enroll.State) error { return enroll.Save(lay.Enrollment(), s) },
			AgentVersion:             o.AgentVersion,
			RejectedDir:              lay.Rejected(),
			OnAck:                    func(recs []protocol.Record, at time.Time) { markDelivered(ledger, recs, at, log) },
			OnReject:                 func(r protocol.Record, reason string) { markRejected(ledger, r, reason, log) },
			Log:                      log.With("component", "sender"),
			BackoffMin:               cfg.BackoffMin,
			BackoffMax:               cfg.BackoffMax,
			PacedMax:                 cfg.RetryAfterMax,
			RejectedRetryInterval:    cfg.RejectedRetryInterval,
			PrimaryRetryInterval:     cfg.PrimaryRetryInterval,
			EndpointsRefreshInterval: cfg.EndpointsRefreshInterval,
		})
		snd.Store(s)
		wg.Go(func() { _ = s.Run(ctx) })
		poller := &answerPoller{lay: lay, client: cl, store: answers, log: log.With("component", "answers"), rand: rand.Float64}
		wg.Go(func() { poller.loop(ctx, cfg.AnswerInterval) })
	}
	wg.Go(func() {
		_ = collect.Run(ctx, collect.Options{
			StatePath:              lay.Collect(),
			InventoryInterval:      cfg.InventoryInterval,
			InventoryCheckInterval: cfg.InventoryCheckInterval,
			PerfInterval:           cfg.PerfInterval,
			AgentVersion:           o.AgentVersion,
			Log:                    log.With("component", "collect"),
			Sink: func(kind protocol.Kind, t time.Time, data json.RawMessage) error {
				if _, err := sp.Append(spool.Telemetry, kind, t, data); err != nil {
					return err
				}
				notify()
				return nil
			},
		})
	})
	// Questions are taken into the spool whether or not the device is enrolled yet: the spool keeps them safe.
	wg.Go(func() { intakeLoop(ctx, lay, cfg.InboxPollInterval, sp, ledger, answers, notify, log) })
	snaps := &snapshots{lay: lay, version: o.AgentVersion, sp: sp, snd: &snd, log: log, kicks: make(chan struct{}, 1)}
	if enrolled {
		startSending(st)
		log.Info("Agent running", "deviceId", st.DeviceID, "stateDir", o.StateDir)
	} else {
		enr := newEnroller(cfg, lay, cl, o.AgentVersion, log.With("component", "enroll"))
		snaps.enr = enr
		log.Info("Agent running, not enrolled yet: enrolling", "urls", cfg.IngestURLs, "stateDir", o.StateDir)
		wg.Go(func() {
			if st, ok := enr.run(ctx); ok {
				startSending(st) // the enroller's goroutine still counts in wg: adding to it here is allowed
				snaps.kick()
			}
		})
	}
	wg.Go(func() { snaps.loop(ctx, cfg.StatusInterval) })
	<-ctx.Done()
	wg.Wait()
	snaps.write(false)
	return nil
}

// openSpool opens the spool; a lock held briefly (by a "status" command) is waited for, one held longer means
// another daemon runs.
func openSpool(ctx context.Context, lay config.Layout, cfg config.Config, log *slog.Logger) (*spool.Spool, error) {
	opts := spool.Options{
		Dir:                   lay.Spool(),
		MaxQuestionBytes:      cfg.SpoolMaxQuestionBytes,
		MaxTelemetryBytes:     cfg.SpoolMaxTelemetryBytes,
		SegmentBytes:          cfg.SpoolSegmentBytes,
		TelemetrySyncInterval: cfg.SpoolSyncInterval,
	}
	// "status" commands run back to back (a monitoring loop) can hold the lock most of the time; a daemon must
	// still get it, so it tries often and for long enough.
	deadline := time.Now().Add(10 * time.Second)
	for {
		sp, rec, err := spool.Open(opts)
		if err == nil {
			if rec.TornTails > 0 || len(rec.SetAside) > 0 {
				log.Warn("Spool recovered after a crash", "tornTails", rec.TornTails, "setAsideFiles", len(rec.SetAside))
			}
			for _, a := range rec.SetAside {
				log.Warn("Spool file set aside", "file", a.File, "records", a.Records, "fromSeq", a.FromSeq, "toSeq", a.ToSeq, "reason", a.Reason)
			}
			return sp, nil
		}
		if !errors.Is(err, spool.ErrLocked) {
			return nil, fmt.Errorf("open spool: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, errors.New("another supportstack-agent is running with this state directory (the spool is locked)")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func intakeLoop(ctx context.Context, lay config.Layout, every time.Duration, sp *spool.Spool, ledger *questions.Ledger, answers *questions.Answers, notify func(), log *slog.Logger) {
	appendQ := func(t time.Time, data json.RawMessage) (uint64, error) {
		seq, err := sp.Append(spool.Questions, protocol.KindQuestion, t, data)
		if errors.Is(err, spool.ErrInvalidRecord) {
			return 0, fmt.Errorf("%w: %w", questions.ErrRefused, err)
		}
		if err == nil {
			rememberQuestion(answers, data, t, log)
		}
		return seq, err
	}
	if err := ledger.Prune(time.Now().Add(-ledgerRetention)); err != nil {
		log.Warn("Cannot prune the question ledger", "err", err)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastErr string
	var lastLogged time.Time
	for {
		taken, err := questions.Intake(lay.Inbox(), ledger, appendQ, time.Now(), log)
		if len(taken) > 0 {
			log.Info("Questions queued for delivery", "count", len(taken))
			notify()
		}
		if err != nil {
			// A full spool keeps the question in the inbox: nothing is lost, it is tried again. Logged when the
			// error changes and every 10 minutes, not at every poll.
			if err.Error() != lastErr || time.Since(lastLogged) > 10*time.Minute {
				log.Error("Cannot take questions from the inbox", "err", err)
				lastErr, lastLogged = err.Error(), time.Now()
			}
		} else {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rememberQuestion keeps a question's text with the answers, where "status" shows it with its answers; the inbox
// file that holds it now is deleted once the question is in the spool. Losing it (a crash right after the
// append) only shows the answers without their question.
func rememberQuestion(answers *questions.Answers, data json.RawMessage, asked time.Time, log *slog.Logger) {
	q, err := protocol.ParseQuestion(data)
	if err != nil {
		return
	}
	answers.Asked(q.ID, q.Text, asked)
	if err := answers.Save(); err != nil {
		log.Warn("Cannot save the question's text for its answers", "questionId", q.ID, "err", err)
	}
}

func markDelivered(ledger *questions.Ledger, recs []protocol.Record, at time.Time, log *slog.Logger) {
	var ids []string
	for _, r := range recs {
		if r.Kind != protocol.KindQuestion {
			continue
		}
		if q, err := protocol.ParseQuestion(r.Data); err == nil {
			ids = append(ids, q.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	if err := ledger.Delivered(ids, at); err != nil {
		log.Error("Cannot record question delivery", "err", err)
	}
}

func markRejected(ledger *questions.Ledger, r protocol.Record, reason string, log *slog.Logger) {
	if r.Kind != protocol.KindQuestion {
		return
	}
	q, err := protocol.ParseQuestion(r.Data)
	if err != nil {
		return
	}
	if err := ledger.Rejected(q.ID, reason); err != nil {
		log.Error("Cannot record a rejected question", "err", err)
	}
}

// pid is this process, for the snapshot.
var pid = os.Getpid()
