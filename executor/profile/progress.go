package profile

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// progress reports how far a long measurement is: a bar redrawn in place
// on a terminal, a line every tenth of the work (at most every 10 s)
// otherwise. A nil writer reports nothing.
type progress struct {
	w        io.Writer
	what     string
	total    int
	tty      bool
	start    time.Time
	lastLine time.Time
	lastTen  int
}

func newProgress(w io.Writer, what string, total int) *progress {
	p := &progress{w: w, what: what, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

// step reports that done of total are finished.
func (p *progress) step(done int) {
	if p == nil || p.w == nil || p.total <= 0 {
		return
	}
	el := time.Since(p.start)
	if p.tty {
		const width = 30
		fill := width * done / p.total
		fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %s", p.what, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, p.total, el.Round(100*time.Millisecond))
		if done == p.total {
			fmt.Fprintln(p.w)
		}
		return
	}
	ten := 10 * done / p.total
	if done == p.total || ten > p.lastTen || time.Since(p.lastLine) > 10*time.Second {
		p.lastTen, p.lastLine = ten, time.Now()
		fmt.Fprintf(p.w, "%s: %d/%d (%d%%) after %s\n", p.what, done, p.total, 100*done/p.total, el.Round(100*time.Millisecond))
	}
}
