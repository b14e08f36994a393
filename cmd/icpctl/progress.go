package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Progress modes of the long-running commands (--progress).
const (
	progressAuto  = "auto"  // a bar on a terminal, lines otherwise
	progressBar   = "bar"   // a bar with rate and ETA
	progressLines = "lines" // a plain line every few seconds
	progressNone  = "none"
)

// progress reports a long job on w. Positions measure how far the job got
// (the bar and the ETA); the count is what the rate is given in.
type progress struct {
	w        io.Writer
	what     string // e.g. "rebuild"
	unit     string // e.g. "events"
	bar      *progressbar.ProgressBar
	barMax   int64
	lines    bool
	every    time.Duration
	lastLine time.Time
}

func newProgress(w io.Writer, mode, what, unit string) *progress {
	p := &progress{w: w, what: what, unit: unit, every: 2 * time.Second}
	if mode == progressAuto {
		mode = progressLines
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = progressBar
		}
	}
	switch mode {
	case progressBar:
		p.bar = progressbar.NewOptions64(1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
		p.barMax = 1
	case progressLines:
		p.lines = true
	}
	return p
}

// update reports that phase reached position pos of head (0: a total not
// known), count units done in elapsed.
func (p *progress) update(phase string, pos, head, count uint64, elapsed time.Duration) {
	rate := 0.0
	if elapsed > 0 {
		rate = float64(count) / elapsed.Seconds()
	}
	switch {
	case p.bar != nil:
		switch {
		case head == 0 && p.barMax != -1: // a total not known: a spinner
			p.bar.ChangeMax64(-1)
			p.barMax = -1
		case head > 0 && int64(head) != p.barMax:
			p.bar.ChangeMax64(int64(head))
			p.barMax = int64(head)
		}
		p.bar.Describe(fmt.Sprintf("%s %s: %d %s, %.0f %s/s", p.what, phase, count, p.unit, rate, p.unit))
		if head == 0 {
			_ = p.bar.Set64(int64(pos))
		} else {
			_ = p.bar.Set64(int64(min(pos, head)))
		}
	case p.lines:
		now := time.Now()
		if now.Sub(p.lastLine) < p.every && (head == 0 || pos < head) {
			return
		}
		p.lastLine = now
		if head == 0 {
			fmt.Fprintf(p.w, "%s: %s, %d %s, %.0f %s/s\n", p.what, phase, count, p.unit, rate, p.unit)
			return
		}
		pct := 100 * float64(pos) / float64(head)
		fmt.Fprintf(p.w, "%s: %s %.0f%% (position %d of %d), %d %s, %.0f %s/s\n", p.what, phase, pct, pos, head, count, p.unit, rate, p.unit)
	}
}

// done ends the bar, if any.
func (p *progress) done() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
