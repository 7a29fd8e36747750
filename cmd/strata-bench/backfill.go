package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/strata-metrics/strata/internal/procs"
)

// Backfill mode: upload throughput of strata backfill (the built binary,
// a subprocess) into a strata -target=all (its bucket from -strata.args:
// the filesystem bucket under its data dir by default, S3 with the
// -blocks-storage.s3.* flags). The workload is backfillBlocks 2h blocks of
// -series series, a sample every -interval with random values, made with
// Prometheus' TSDB.
const (
	backfillBlocks = 12
	backfillSeries = 1000
	backfillTenant = "bench-backfill"
)

type bfSample struct {
	t int64
	f float64
}

func (s bfSample) T() int64                      { return s.t }
func (s bfSample) ST() int64                     { return 0 }
func (s bfSample) F() float64                    { return s.f }
func (s bfSample) H() *histogram.Histogram       { return nil }
func (s bfSample) FH() *histogram.FloatHistogram { return nil }
func (s bfSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s bfSample) Copy() chunks.Sample           { return s }

func runBackfill(ctx context.Context, cfg Config, dir string, log *slog.Logger, out io.Writer) error {
	bin, err := cfg.strataBin(dir)
	if err != nil {
		return err
	}
	tsdbDir := filepath.Join(dir, "tsdb")
	start := time.Now().Add(-7 * 24 * time.Hour).Truncate(2 * time.Hour)
	rnd := rand.New(rand.NewPCG(1, 2))
	var samples int
	log.Info("making blocks", "blocks", backfillBlocks, "series", cfg.Series)
	for b := range backfillBlocks {
		from := start.Add(time.Duration(b) * 2 * time.Hour)
		var ss []storage.Series
		for i := range cfg.Series {
			var smp []chunks.Sample
			for ts := from; ts.Before(from.Add(2 * time.Hour)); ts = ts.Add(cfg.Interval) {
				smp = append(smp, bfSample{ts.UnixMilli(), float64(rnd.IntN(1e6)) / 100})
			}
			samples += len(smp)
			ss = append(ss, storage.NewListSeries(labels.FromStrings("__name__", "bench_backfill", "i", strconv.Itoa(i)), smp))
		}
		if _, err := tsdb.CreateBlock(ss, tsdbDir, 4*time.Hour.Milliseconds(), slog.New(slog.DiscardHandler)); err != nil {
			return fmt.Errorf("make block: %w", err)
		}
	}
	var size int64
	if err := filepath.Walk(tsdbDir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			size += fi.Size()
		}
		return err
	}); err != nil {
		return err
	}

	fmt.Fprintf(out, "backfill: %d blocks, %d series, %d samples, %.1f MB\n", backfillBlocks, cfg.Series, samples, float64(size)/1e6)
	// The filesystem bucket, then a local S3 server (versitygw, as the
	// tests use) when it is installed.
	if err := backfillInto(ctx, cfg, bin, filepath.Join(dir, "fs"), tsdbDir, "filesystem", nil, samples, size, out); err != nil {
		return err
	}
	if _, err := procs.LookVersityGW(); err != nil {
		log.Info("no versitygw: S3 skipped", "err", err)
		return nil
	}
	s3dir := filepath.Join(dir, "s3")
	if err := os.MkdirAll(s3dir, 0o755); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	s3, err := procs.StartS3(sctx, s3dir, "")
	cancel()
	if err != nil {
		return err
	}
	defer s3.Stop(10 * time.Second)
	return backfillInto(ctx, cfg, bin, filepath.Join(dir, "s3strata"), tsdbDir, "s3 (versitygw)", []string{
		"-blocks-storage.backend=s3", "-blocks-storage.s3.endpoint=" + s3.Endpoint,
		"-blocks-storage.s3.bucket-name=" + s3.Bucket, "-blocks-storage.s3.region=" + s3.Region,
		"-blocks-storage.s3.access-key-id=" + s3.AccessKey, "-blocks-storage.s3.secret-access-key=" + s3.SecretKey,
		"-blocks-storage.s3.insecure=true", "-blocks-storage.s3.bucket-lookup-type=path",
	}, samples, size, out)
}

// backfillInto uploads tsdbDir into a fresh strata in dir and prints the
// figures.
func backfillInto(ctx context.Context, cfg Config, bin, dir, tsdbDir, bucket string, args []string, samples int, size int64, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := procs.StartStrata(sctx, dir, procs.StrataConfig{Bin: bin, Args: append(append([]string{
		"-auth.multitenancy-enabled=true", "-compactor.block-upload-enabled=true",
	}, args...), strings.Fields(cfg.StrataArgs)...)})
	cancel()
	if err != nil {
		return err
	}
	defer s.Process().Stop(30 * time.Second)
	before, err := s.Process().Usage()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, "backfill", "-url="+s.URL, "-tenant="+backfillTenant, tsdbDir)
	cmd.Stderr = io.Discard
	t0 := time.Now()
	if b, err := cmd.Output(); err != nil {
		return fmt.Errorf("strata backfill: %w: %s", err, b)
	}
	elapsed := time.Since(t0)
	after, err := s.Process().Usage()
	if err != nil {
		return err
	}
	clientCPU := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	serverCPU := after.CPUSeconds - before.CPUSeconds
	msamples := float64(samples) / 1e6
	fmt.Fprintf(out, "into %s:\n", bucket)
	fmt.Fprintf(out, "  wall            %8.2f s\n", elapsed.Seconds())
	fmt.Fprintf(out, "  throughput      %8.1f MB/s\n", float64(size)/1e6/elapsed.Seconds())
	fmt.Fprintf(out, "  samples/s       %8.0f\n", float64(samples)/elapsed.Seconds())
	fmt.Fprintf(out, "  server CPU      %8.3f s per million samples\n", serverCPU/msamples)
	fmt.Fprintf(out, "  client CPU      %8.3f s per million samples\n", clientCPU/msamples)
	fmt.Fprintf(out, "  server peak RSS %8.1f MiB\n", mib(after.PeakRSSBytes))
	return nil
}
