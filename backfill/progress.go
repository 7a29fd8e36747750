package backfill

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress shows how far an upload is: a bar redrawn in place on a
// terminal, plain lines (one per block, one every few seconds) otherwise.
// Its methods are safe on a nil *Progress (no output) and from several
// goroutines.
type Progress struct {
	mu          sync.Mutex
	out         io.Writer
	bar         bool
	now         func() time.Time
	every       time.Duration
	start, last time.Time

	totalBytes, doneBytes int64
	sentBytes             int64 // this run: the rate
	totalBlocks           int
	doneBlocks            int
}

// IsTerminal reports whether f is a terminal (a character device).
func IsTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// NewProgress returns the progress of uploading blocks to out.
func NewProgress(out io.Writer, bar bool, blocks []LocalBlock, now func() time.Time) *Progress {
	p := &Progress{out: out, bar: bar, now: now, every: 5 * time.Second, totalBlocks: len(blocks)}
	if bar {
		p.every = 200 * time.Millisecond
	}
	for _, b := range blocks {
		p.totalBytes += b.Bytes
	}
	p.start = now()
	p.last = p.start
	return p
}

func (p *Progress) sent(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sentBytes += n
	p.doneBytes += n
	if now := p.now(); now.Sub(p.last) >= p.every {
		p.last = now
		p.print("")
	}
}

// unsend takes back bytes of a file whose upload failed.
func (p *Progress) unsend(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sentBytes -= n
	p.doneBytes -= n
}

// resumed counts a file the server had already.
func (p *Progress) resumed(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneBytes += n
}

func (p *Progress) skipped(b LocalBlock, n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneBytes += n
	p.doneBlocks++
	p.print(fmt.Sprintf("block %s already in Strata, skipped", b.ID))
}

func (p *Progress) blockDone(b LocalBlock) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneBlocks++
	p.print(fmt.Sprintf("block %s uploaded (%s)", b.ID, mb(b.Bytes)))
}

// Done ends the bar's line and prints the summary.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.print("done")
	if p.bar {
		fmt.Fprintln(p.out)
	}
}

// print writes the state, with event before it when set. Called with mu.
func (p *Progress) print(event string) {
	elapsed := p.now().Sub(p.start)
	var rate float64
	if elapsed > 0 {
		rate = float64(p.sentBytes) / elapsed.Seconds()
	}
	left := "?"
	if rest := p.totalBytes - p.doneBytes; rest <= 0 {
		left = "0s"
	} else if rate > 0 {
		left = time.Duration(float64(rest) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if p.totalBytes > 0 {
		pct = 100 * float64(p.doneBytes) / float64(p.totalBytes)
	}
	state := fmt.Sprintf("%d/%d blocks, %s/%s (%.0f%%), %s/s, %s left",
		p.doneBlocks, p.totalBlocks, mb(p.doneBytes), mb(p.totalBytes), pct, mb(int64(rate)), left)
	if !p.bar {
		if event != "" {
			state = event + "; " + state
		}
		fmt.Fprintln(p.out, "backfill: "+state)
		return
	}
	const width = 30
	filled := int(pct / 100 * width)
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	if event != "" && event != "done" {
		fmt.Fprintf(p.out, "\r\033[Kbackfill: %s\n", event)
	}
	fmt.Fprintf(p.out, "\r\033[K[%s] %s", bar, state)
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
