package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/strata-metrics/strata/backfill"
)

// backfillUsage is the first line of strata backfill -h.
const backfillUsage = `Usage: strata backfill -url=URL [-tenant=ID] [-bearer-token-file=FILE | -basic-auth=USER:PASSWORD] <TSDB directory | file of OpenMetrics text>

Uploads the blocks of a Prometheus TSDB directory (or one block), or blocks
built from an OpenMetrics text file (2h blocks, every sample with a
timestamp), to Strata's block upload API. Run it again after an
interruption: it resumes. Flags:
`

// runBackfill is strata backfill: a command of its own, with its own flags,
// that never touches the server's.
func runBackfill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata backfill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, backfillUsage)
		fs.PrintDefaults()
	}
	var (
		c                backfill.Client
		tokenFile, basic string
		workDir          string
		rateLimit        float64
		retries          int
		busyWait         time.Duration
	)
	fs.StringVar(&c.URL, "url", "", "Strata's base URL: the compactor's, or any -target=all process's (required).")
	fs.StringVar(&c.Tenant, "tenant", "", "Tenant id sent as X-Scope-OrgID (with -auth.multitenancy-enabled behind a gateway); with a tenants file the credentials name the tenant.")
	fs.StringVar(&tokenFile, "bearer-token-file", "", "File holding the tenant's bearer token (-auth.tenants-file).")
	fs.StringVar(&basic, "basic-auth", "", "USER:PASSWORD of the tenant (-auth.tenants-file).")
	fs.StringVar(&workDir, "work-dir", "", "Directory the blocks built from OpenMetrics go to (removed after); default the system's temporary directory.")
	fs.Float64Var(&rateLimit, "rate-limit-bytes", 0, "Most bytes per second to send; 0 means no limit.")
	fs.IntVar(&retries, "retries", 5, "How often a block is tried again after no answer or a 5xx (1s, then twice as long each time), resuming; a 4xx stops at once.")
	fs.DurationVar(&busyWait, "busy-wait", time.Hour, "How long to keep finishing a block the server answers 429 (it verifies one block at a time), waiting its Retry-After between tries; 0 stops at once.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if busyWait < 0 {
		return fmt.Errorf("backfill: -busy-wait must not be negative, got %s", busyWait)
	}
	if c.URL == "" || fs.NArg() != 1 {
		fs.Usage()
		return errors.New("backfill: want -url and one TSDB directory or OpenMetrics file")
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("backfill: reading -bearer-token-file: %w", err)
		}
		c.BearerToken = strings.TrimSpace(string(b))
	}
	if basic != "" {
		var ok bool
		if c.BasicUser, c.BasicPassword, ok = strings.Cut(basic, ":"); !ok {
			return errors.New("backfill: -basic-auth wants USER:PASSWORD")
		}
	}
	src := fs.Arg(0)
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	dir := src
	if !fi.IsDir() {
		if dir, err = os.MkdirTemp(workDir, "strata-backfill-"); err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		defer os.RemoveAll(dir)
		input, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		fmt.Fprintf(stderr, "backfill: building blocks from %s\n", src)
		if _, err := backfill.BuildOpenMetrics(ctx, input, dir); err != nil {
			return fmt.Errorf("backfill: %s: %w", src, err)
		}
	}
	blocks, err := backfill.FindBlocks(dir)
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	f, isFile := stderr.(*os.File)
	p := backfill.NewProgress(stderr, isFile && backfill.IsTerminal(f), blocks, time.Now)
	u := backfill.Uploader{Client: &c, Progress: p, Retries: retries, RetryWait: time.Second, BusyWait: busyWait,
		OnRetry: func(err error, wait time.Duration) {
			fmt.Fprintf(stderr, "backfill: %v; trying again in %s\n", err, wait)
		}}
	if rateLimit > 0 {
		u.Limit = rate.NewLimiter(rate.Limit(rateLimit), max(1, min(int(rateLimit), 256<<10)))
	}
	if err := u.Upload(ctx, blocks); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	p.Done()
	var total int64
	for _, b := range blocks {
		total += b.Bytes
	}
	_, err = fmt.Fprintf(stdout, "backfill: %d blocks (%.1f MB) in Strata\n", len(blocks), float64(total)/1e6)
	return err
}
