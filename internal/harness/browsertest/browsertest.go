// Package browsertest drives headless Chromium (chromedp) in tests: a tab with deadlines on every step, waits
// for a new page or a condition, screenshots into bin/screenshots, and the check that a page runs no script.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/supportstack/supportstack/internal/harness/localbin"
)

// Chromium finds the browser; without one the tests skip, except in CI, where they fail.
func Chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("SUPPORTSTACK_CHROMIUM_BIN"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found (install Debian's chromium package, or set SUPPORTSTACK_CHROMIUM_BIN): the browser tests must run in CI")
	}
	t.Skip("no Chromium found: install Debian's chromium package (make test does when it may) to run the browser tests")
	return ""
}

// Browser is a headless Chromium tab. Any JavaScript dialog that opens is counted: none may.
type Browser struct {
	T       *testing.T
	ctx     context.Context
	dialogs *atomic.Int32
	shots   string
}

// Step is an action without a value.
type Step = chromedp.Action[chromedp.Void]

// New starts a browser for the test.
func New(t *testing.T) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(Chromium(t)), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &Browser{T: t, ctx: ctx, dialogs: new(atomic.Int32)}
	require.NoError(t, chromedp.Do(ctx)) // starts the browser
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			b.dialogs.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	if root, err := localbin.RepoRoot(); err == nil {
		b.shots = filepath.Join(root, "bin", "screenshots")
		_ = os.MkdirAll(b.shots, 0o755)
	}
	return b
}

// Run runs one action with a deadline and returns its value.
func Run[T any](b *Browser, a chromedp.Action[T]) T {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	require.NoError(b.T, err)
	return v
}

// Do runs steps in order with a deadline.
func (b *Browser) Do(steps ...Step) {
	b.T.Helper()
	Run(b, chromedp.Steps(steps...))
}

func (b *Browser) Text(sel string) string {
	b.T.Helper()
	return Run(b, chromedp.Text(chromedp.CSS(sel)))
}

func (b *Browser) Eval(js string) any {
	b.T.Helper()
	return Run(b, chromedp.Evaluate[any](js))
}

func (b *Browser) Location() string {
	b.T.Helper()
	return Run(b, chromedp.Location())
}

// Until reloads url until the page satisfies js (a boolean expression), with a deadline.
func (b *Browser) Until(url, js string, within time.Duration, msg string) {
	b.T.Helper()
	deadline := time.Now().Add(within)
	for {
		b.Do(chromedp.Navigate(url))
		if ok, _ := b.Eval(js).(bool); ok {
			return
		}
		if time.Now().After(deadline) {
			b.T.Fatalf("%s (waited %s for %s on %s); the page said:\n%s", msg, within, js, url, b.Eval(`document.body.innerText`))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Shot saves a screenshot of the page under bin/screenshots (gitignored) for a person to look at.
func (b *Browser) Shot(name string) {
	b.T.Helper()
	if b.shots == "" {
		return
	}
	png := Run(b, chromedp.FullScreenshot(100))
	require.NoError(b.T, os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644))
}

// Inert checks that the page runs no script: none is in it and no dialog ever opened.
func (b *Browser) Inert(where string) {
	b.T.Helper()
	require.EqualValues(b.T, 0, b.Eval(`document.scripts.length`), "%s: a script element made it into the page", where)
	require.EqualValues(b.T, 0, b.Eval(`document.querySelectorAll('[onerror],[onload]').length`), "%s: an event handler attribute made it into the page", where)
	require.Zero(b.T, b.dialogs.Load(), "%s: a JavaScript dialog opened", where)
}

// Navigating runs steps that load another page (a click on a link, a form sent) and waits until it is loaded:
// the current page is marked first, and the new one does not carry the mark.
func (b *Browser) Navigating(steps ...Step) {
	b.T.Helper()
	b.Eval(`window.__before = true`)
	b.Do(steps...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, _ := b.Eval(`!window.__before && document.readyState === 'complete'`).(bool); ok {
			return
		}
		require.True(b.T, time.Now().Before(deadline), "no new page loaded")
		time.Sleep(50 * time.Millisecond)
	}
}
