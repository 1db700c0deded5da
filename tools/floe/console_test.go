package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserPath finds Chromium for the console test. FLOE_BROWSER_TEST=1 (.ci/run) makes
// a missing browser a failure; =0 skips the test; unset, it runs when one is found.
func browserPath(t *testing.T) string {
	t.Helper()
	mode := os.Getenv("FLOE_BROWSER_TEST")
	if mode == "0" {
		t.Skip("FLOE_BROWSER_TEST=0")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if mode == "1" {
		t.Fatal("FLOE_BROWSER_TEST=1 but no Chromium in PATH: apt-get install chromium")
	}
	t.Skip("no Chromium in PATH (apt-get install chromium); FLOE_BROWSER_TEST=1 makes this a failure")
	return ""
}

// artifactDir is where tests leave what a person may want to look at afterwards
// (FLOE_TEST_ARTIFACTS, default <repo>/artifacts).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FLOE_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestConsoleInBrowser loads the console of a running cluster in headless Chromium and
// reads the page as a person would see it: the three members, a topic, and the cell of
// its first segment, which turns from active to archived (local and archived) once the
// topic rolls over and the segment is uploaded. It saves a screenshot as an artifact.
// With the admin actions shown, it deletes a topic: not with a wrong name typed, then
// with the right one.
func TestConsoleInBrowser(t *testing.T) {
	browser := browserPath(t)
	archive := t.TempDir()
	c := startCluster(t, clusterOpts{args: []string{"--archive", "file://" + archive, "--max-segment-entries", "5"}})
	conn := c.conn(1)
	mustOK(t, conn.Register("console"), "REGISTER")
	mustOK(t, conn.Register("doomed"), "REGISTER doomed")
	for i := range 3 {
		mustOK(t, conn.Put("console", []byte(fmt.Sprintf("entry-%d", i))), "PUT")
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.WindowSize(1300, 1000), chromedp.Flag("disable-dev-shm-usage", true))
	// The deadline is the allocator's: it bounds the whole browser (chromedp wants the
	// context of the first action without one).
	actx, cancelAlloc := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelAlloc()
	actx, cancelExec := chromedp.NewExecAllocator(actx, opts...)
	defer cancelExec()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	url := fmt.Sprintf("http://127.0.0.1:%d/", c.node(1).httpPort)
	cell := func(seg int) chromedp.CSS {
		return chromedp.CSS(fmt.Sprintf(`.topic[data-topic="console"] .cell[data-segment="%d"]`, seg))
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="true"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#members tr[data-node="3"]`)),
		chromedp.WaitVisible(cell(1)),
	); err != nil {
		t.Fatalf("console at %s: %v", url, err)
	}
	members, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#members tbody tr").length`))
	if err != nil {
		t.Fatal(err)
	}
	first, err := chromedp.Run(ctx, chromedp.AttributeValue(cell(1), "data-tier"))
	if err != nil {
		t.Fatal(err)
	}
	if members != 3 || first.Value != "active" {
		t.Fatalf("console: %d members, segment 1 %q; want 3 and active", members, first.Value)
	}

	// Roll over: segment 1 seals at 5 entries, is uploaded, and the page, refreshing
	// itself, shows it archived.
	for i := 3; i < 7; i++ {
		mustOK(t, conn.Put("console", []byte(fmt.Sprintf("entry-%d", i))), "PUT")
	}
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`.topic[data-topic="console"] .cell[data-segment="1"][data-tier="both"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.topic[data-topic="console"] .cell[data-segment="2"][data-tier="active"]`)),
	); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("#topics")))
		t.Fatalf("segment 1 never shown archived: %v\n%s", err, html)
	}
	screenshot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(artifactDir(t), "console.png")
	if err := os.WriteFile(path, screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the console: %s", path)

	// A page without a token shows no admin action.
	adminShown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`[...document.querySelectorAll(".admin")].some(e => getComputedStyle(e).display !== "none")`))
	if err != nil {
		t.Fatal(err)
	}
	if adminShown {
		t.Fatal("the console shows admin actions without a token")
	}
	// This node checks no tokens: the admin actions show once asked for and confirmed.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#token-button")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS("body.signed-in #sweep-button")),
	); err != nil {
		t.Fatalf("asking for the admin actions: %v", err)
	}

	// Deleting a topic takes its name typed: a wrong name deletes nothing, the right
	// one deletes it and the page drops it. (The page redraws its topics every 2 s:
	// a click that met a redrawn button is made again.)
	deleteTyping := func(typed string) {
		t.Helper()
		del := chromedp.CSS(`.topic[data-topic="doomed"] button.delete-topic`)
		for attempt := 0; ; attempt++ {
			err := chromedp.Do(ctx, chromedp.WaitVisible(del), chromedp.Click(del))
			if err == nil {
				// The dialog opens at once, or the click missed: a bounded wait.
				wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				err = chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS("#confirm-typed")))
				cancel()
			}
			if err == nil {
				break
			}
			if attempt == 4 {
				t.Fatalf("opening the delete dialog: %v", err)
			}
		}
		if err := chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.CSS("#confirm-typed"), typed),
			chromedp.Click(chromedp.CSS("#confirm-ok")),
		); err != nil {
			t.Fatalf("typing %q and confirming: %v", typed, err)
		}
	}
	deleteTyping("doome")
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("status").textContent.includes("not done")`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("no refusal shown for a wrong name: %v", err)
	}
	if _, err := c.conn(2).State("doomed"); err != nil {
		t.Fatalf("a wrong name typed deleted the topic: %v", err)
	}
	deleteTyping("doomed")
	if err := chromedp.Do(ctx, chromedp.WaitNotPresent(chromedp.CSS(`.topic[data-topic="doomed"]`))); err != nil {
		t.Fatalf("the deleted topic stays on the page: %v", err)
	}
	if _, err := c.conn(2).State("doomed"); err == nil || !strings.Contains(err.Error(), "no such topic") {
		t.Fatalf("STATE after the delete from the console: %v", err)
	}
	if !strings.HasPrefix(string(screenshot), "\x89PNG") {
		t.Fatal("the screenshot is not a PNG")
	}
}
