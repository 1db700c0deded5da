package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress reports how far a command that walks the bucket is (floe restore,
// floe archive verify): on a terminal one line redrawn in place, a bar with objects and
// bytes done of their totals, the rate and the time left; otherwise a plain line every
// progressLogEvery, for logs. Safe for concurrent use.
type progress struct {
	w     io.Writer
	what  string
	tty   bool
	start time.Time
	now   func() time.Time

	mu    sync.Mutex
	last  time.Time // of the last line written
	drawn bool      // a terminal line is on screen
}

// progressLogEvery spaces the plain lines; progressDrawEvery the terminal redraws.
const (
	progressLogEvery  = 5 * time.Second
	progressDrawEvery = 100 * time.Millisecond
)

// newProgress reports on stderr.
func newProgress(what string) *progress {
	return &progress{w: os.Stderr, what: what, tty: term.IsTerminal(int(os.Stderr.Fd())), start: time.Now(), now: time.Now}
}

// update reports objects and bytes done of their totals (a total of 0: not known).
func (p *progress) update(doneObjects, totalObjects int, doneBytes, totalBytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	every := progressLogEvery
	if p.tty {
		every = progressDrawEvery
	}
	finished := totalObjects > 0 && doneObjects >= totalObjects
	if !finished && now.Sub(p.last) < every {
		return
	}
	p.last = now
	line := renderProgress(p.what, doneObjects, totalObjects, doneBytes, totalBytes, now.Sub(p.start), p.tty)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.drawn = true
		if finished {
			fmt.Fprintln(p.w)
			p.drawn = false
		}
		return
	}
	fmt.Fprintln(p.w, line)
}

// clear erases a terminal line on screen, before the command writes a line of its own
// (the next update draws it again).
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
		p.last = time.Time{}
	}
}

// done ends a terminal line left on screen.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// renderProgress is one report: with bar, a 24-cell bar first (a terminal).
func renderProgress(what string, doneObjects, totalObjects int, doneBytes, totalBytes int64, elapsed time.Duration, bar bool) string {
	var b strings.Builder
	b.WriteString(what)
	frac := -1.0
	switch {
	case totalBytes > 0:
		frac = float64(doneBytes) / float64(totalBytes)
	case totalObjects > 0:
		frac = float64(doneObjects) / float64(totalObjects)
	}
	frac = min(frac, 1)
	if bar && frac >= 0 {
		const cells = 24
		full := int(frac * cells)
		b.WriteString(" [" + strings.Repeat("=", full))
		if full < cells {
			b.WriteString(">" + strings.Repeat(" ", cells-full-1))
		}
		b.WriteString("]")
	} else {
		b.WriteString(":")
	}
	if totalObjects > 0 {
		fmt.Fprintf(&b, " %d/%d objects", doneObjects, totalObjects)
	} else {
		fmt.Fprintf(&b, " %d objects", doneObjects)
	}
	if totalBytes > 0 {
		fmt.Fprintf(&b, ", %s/%s", sizeText(doneBytes), sizeText(totalBytes))
	} else {
		fmt.Fprintf(&b, ", %s", sizeText(doneBytes))
	}
	if secs := elapsed.Seconds(); secs > 0 {
		rate := float64(doneBytes) / secs
		fmt.Fprintf(&b, ", %s/s", sizeText(int64(rate)))
		if frac > 0 && frac < 1 {
			left := time.Duration(float64(elapsed) * (1 - frac) / frac).Round(time.Second)
			fmt.Fprintf(&b, ", %v left", left)
		}
	}
	return b.String()
}

// sizeText is n bytes in binary units, one decimal.
func sizeText(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
