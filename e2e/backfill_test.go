package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/internal/procs"
)

// TestBackfill brings history into a real strata through the strata
// backfill command, run as a subprocess of the built binary:
//   - a TSDB directory of 2h blocks made with Prometheus' TSDB, its upload
//     killed (SIGKILL) after the first block: in between, every block in the
//     bucket is either whole with its meta.json or has none, and queries
//     answer exactly the whole blocks' samples; run again, it skips those and
//     finishes: every sample answered once, equal to the source;
//   - a block overlapping one already there (the same samples again): each
//     sample is still answered once;
//   - an OpenMetrics file: every sample answered, equal to the file;
//   - a corrupt block and a tenant not allowed to upload: the command exits
//     non-zero with the server's message, and nothing changes.
func TestBackfill(t *testing.T) {
	bin := strataBin(t)
	dir := t.TempDir()
	runtimeCfg := filepath.Join(dir, "runtime.yaml")
	require.NoError(t, os.WriteFile(runtimeCfg, []byte("overrides:\n  team-a:\n    compactor_block_upload_enabled: true\n"), 0o644))
	s := procs.StartStrataT(t, procs.StrataConfig{Bin: bin, Args: []string{
		"-auth.multitenancy-enabled=true",
		"-runtime-config.file=" + runtimeCfg,
		"-blocks-storage.bucket-index.update-interval=1s",
		"-store-gateway.sync-interval=1s",
		"-querier.query-ingesters-within=0",
		"-querier.query-store-after=0",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := newClient(s.URL, "team-a")
	bucketDir := filepath.Join(s.DataDir, "bucket", "team-a")

	// Six 2h blocks three days ago, ten series, a sample every 15s with
	// random values (so that chunks do not shrink to nothing).
	start := time.Now().Add(-72 * time.Hour).Truncate(2 * time.Hour)
	tsdbDir := filepath.Join(dir, "prometheus")
	want := map[string][]point{} // by series
	var blockSamples []int
	rnd := rand.New(rand.NewPCG(1, 2))
	for b := range 6 {
		var ss []storage.Series
		for i := range 10 {
			name := fmt.Sprintf(`{__name__="bf_tsdb", i="%d"}`, i)
			var smp []chunks.Sample
			for ts := start.Add(time.Duration(b) * 2 * time.Hour); ts.Before(start.Add(time.Duration(b+1) * 2 * time.Hour)); ts = ts.Add(15 * time.Second) {
				p := point{T: ts.UnixMilli(), V: float64(rnd.IntN(1e9)) / 1e3}
				smp = append(smp, bfSample{p})
				want[name] = append(want[name], p)
			}
			ss = append(ss, storage.NewListSeries(labels.FromStrings("__name__", "bf_tsdb", "i", fmt.Sprint(i)), smp))
		}
		_, err := tsdb.CreateBlock(ss, tsdbDir, 0, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		blockSamples = append(blockSamples, 10*480)
	}
	end := start.Add(12 * time.Hour)
	backfill := func(name string, args ...string) *procs.Process {
		return procs.StartT(t, procs.Spec{Name: name, Path: bin, Dir: dir,
			Args: append([]string{"backfill", "-url=" + s.URL, "-tenant=team-a"}, args...)})
	}

	// Interrupted half way: killed once the first block is in.
	p := backfill("backfill-1", "-rate-limit-bytes=40000", tsdbDir)
	require.NoError(t, procs.Poll(ctx, 20*time.Millisecond, func() (bool, string) {
		return strings.Contains(p.LogTail(50), " uploaded ("), "first block uploaded: " + p.LogTail(5)
	}))
	require.NoError(t, p.Kill())
	whole := wholeBlocks(t, bucketDir)
	require.NotZero(t, whole, "a block was whole before the kill")
	require.Less(t, whole, 6, "the kill came after the end: raise the data or lower the rate")
	inBucket := 0
	for _, n := range blockSamples[:whole] {
		inBucket += n
	}
	requireSamples(ctx, t, c, `bf_tsdb`, end, inBucket, nil)

	// Resumed: the whole blocks skipped, the rest uploaded.
	p = backfill("backfill-2", tsdbDir)
	requireExit(ctx, t, p, 0)
	require.Contains(t, p.LogTail(50), "already in Strata, skipped")
	require.Equal(t, 6, wholeBlocks(t, bucketDir))
	requireSamples(ctx, t, c, `bf_tsdb`, end, 6*10*480, want)

	// Overlap: the first hour of block 0 again, half its series, same
	// samples, as its own block.
	overlapDir := filepath.Join(dir, "overlap")
	var ss []storage.Series
	for i := range 5 {
		name := fmt.Sprintf(`{__name__="bf_tsdb", i="%d"}`, i)
		var smp []chunks.Sample
		for _, pt := range want[name][:240] {
			smp = append(smp, bfSample{pt})
		}
		ss = append(ss, storage.NewListSeries(labels.FromStrings("__name__", "bf_tsdb", "i", fmt.Sprint(i)), smp))
	}
	_, err := tsdb.CreateBlock(ss, overlapDir, 0, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	requireExit(ctx, t, backfill("backfill-overlap", overlapDir), 0)
	require.Equal(t, 7, wholeBlocks(t, bucketDir))
	// Poll until the store-gateway has the seventh block, then compare.
	require.NoError(t, procs.Poll(ctx, 200*time.Millisecond, func() (bool, string) {
		n, err := c.metric(ctx, "strata_storegateway_blocks_owned", nil)
		return err == nil && n == 7, fmt.Sprintf("store-gateway owns %v blocks, %v", n, err)
	}))
	requireSamples(ctx, t, c, `bf_tsdb`, end, 6*10*480, want)

	// The compactor merges the overlapping block into the one it overlaps
	// (and the 2h blocks into larger ones): the answers do not change.
	ans, err := newClient(s.URL, procs.OperatorTenant).post(ctx, "/compactor/run")
	require.NoError(t, err)
	require.Equal(t, 200, ans.Status, ans.text())
	fsb, err := filesystem.NewBucket(filepath.Join(s.DataDir, "bucket"))
	require.NoError(t, err)
	ix, err := bucketindex.ReadIndex(ctx, fsb, "team-a")
	require.NoError(t, err)
	marked := map[ulid.ULID]bool{}
	for _, m := range ix.DeletionMarks {
		marked[m.ID] = true
	}
	var live []string
	for _, b := range ix.Blocks {
		if !marked[b.ID] {
			live = append(live, string(b.Source))
			require.True(t, b.Source == block.SourceCompactor || b.MinTime >= start.Add(2*time.Hour).UnixMilli(), "the first range's blocks are merged: %+v", b)
		}
	}
	require.Contains(t, live, string(block.SourceCompactor))
	require.Less(t, len(live), 7, "live blocks after compaction: %v", live)
	requireSamples(ctx, t, c, `bf_tsdb`, end, 6*10*480, want)

	// OpenMetrics: two days ago, 5h, a sample a minute.
	omStart := time.Now().Add(-48 * time.Hour).Truncate(time.Hour)
	var om strings.Builder
	om.WriteString("# TYPE bf_om gauge\n")
	wantOM := map[string][]point{}
	for _, job := range []string{"a", "b"} {
		name := fmt.Sprintf(`{__name__="bf_om", job="%s"}`, job)
		for i := range 300 {
			pt := point{T: omStart.Add(time.Duration(i) * time.Minute).UnixMilli(), V: float64(rnd.IntN(1e6)) / 8}
			fmt.Fprintf(&om, "bf_om{job=%q} %g %d.%03d\n", job, pt.V, pt.T/1000, pt.T%1000)
			wantOM[name] = append(wantOM[name], pt)
		}
	}
	om.WriteString("# EOF\n")
	omFile := filepath.Join(dir, "history.om")
	require.NoError(t, os.WriteFile(omFile, []byte(om.String()), 0o644))
	requireExit(ctx, t, backfill("backfill-om", omFile), 0)
	requireSamples(ctx, t, c, `bf_om`, omStart.Add(6*time.Hour), 600, wantOM)
	// Again: nothing new (the same file makes the same blocks).
	before := wholeBlocks(t, bucketDir)
	p = backfill("backfill-om-2", omFile)
	requireExit(ctx, t, p, 0)
	require.Equal(t, before, wholeBlocks(t, bucketDir))
	require.NotContains(t, p.LogTail(50), " uploaded (")

	// Refused: a corrupt block, a tenant not allowed.
	badDir := filepath.Join(dir, "bad")
	bdir, err := tsdb.CreateBlock([]storage.Series{storage.NewListSeries(labels.FromStrings("__name__", "bf_bad"),
		[]chunks.Sample{bfSample{point{T: start.UnixMilli(), V: 1}}, bfSample{point{T: start.UnixMilli() + 1000, V: 2}}})}, badDir, 0, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(bdir, "index"), []byte("not an index at all, not at all"), 0o644))
	p = backfill("backfill-bad", badDir)
	requireExit(ctx, t, p, 1)
	require.Contains(t, p.LogTail(5), "server answered 400")
	require.Contains(t, p.LogTail(5), "[strata-block-upload-corrupt]")
	_, err = os.Stat(filepath.Join(bucketDir, filepath.Base(bdir)))
	require.True(t, os.IsNotExist(err), "nothing of the corrupt block stays")

	p = procs.StartT(t, procs.Spec{Name: "backfill-other", Path: bin, Dir: dir,
		Args: []string{"backfill", "-url=" + s.URL, "-tenant=team-b", tsdbDir}})
	requireExit(ctx, t, p, 1)
	require.Contains(t, p.LogTail(5), `server answered 403: block upload is disabled for tenant "team-b"`)
	_, err = os.Stat(filepath.Join(s.DataDir, "bucket", "team-b"))
	require.True(t, os.IsNotExist(err))
}

// bfSample is a point as a Prometheus TSDB sample.
type bfSample struct{ p point }

func (s bfSample) T() int64                      { return s.p.T }
func (s bfSample) ST() int64                     { return 0 }
func (s bfSample) F() float64                    { return s.p.V }
func (s bfSample) H() *histogram.Histogram       { return nil }
func (s bfSample) FH() *histogram.FloatHistogram { return nil }
func (s bfSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s bfSample) Copy() chunks.Sample           { return s }

// wholeBlocks counts the blocks with a meta.json under a tenant's bucket
// directory and checks that each is whole: every file meta.json lists is
// there with its size.
func wholeBlocks(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return 0
	}
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if _, ok := block.ParseDir(e.Name()); !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), block.MetaFilename))
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		var m block.Meta
		require.NoError(t, json.Unmarshal(b, &m))
		require.NotEmpty(t, m.Strata.Files)
		for _, f := range m.Strata.Files {
			fi, err := os.Stat(filepath.Join(dir, e.Name(), filepath.FromSlash(f.Path)))
			require.NoError(t, err, "block %s with meta.json lacks %s", e.Name(), f.Path)
			require.Equal(t, f.Size, fi.Size())
		}
		n++
	}
	return n
}

// requireSamples polls until the raw samples of metric up to end number
// n, then (want not nil) compares them with want, bit for bit.
func requireSamples(ctx context.Context, t *testing.T, c *client, metric string, end time.Time, n int, want map[string][]point) {
	t.Helper()
	var got apiResult
	require.NoError(t, procs.Poll(ctx, 200*time.Millisecond, func() (bool, string) {
		var err error
		got, err = c.query(ctx, metric+"[4d]", end)
		if err != nil {
			return false, err.Error()
		}
		total := 0
		for _, s := range got.Series {
			total += len(s.Points)
		}
		return total == n, fmt.Sprintf("%d samples of %s, want %d", total, metric, n)
	}))
	if want == nil {
		return
	}
	require.Len(t, got.Series, len(want))
	for _, s := range got.Series {
		w := want[s.Labels.String()]
		require.Len(t, s.Points, len(w), s.Labels.String())
		for i := range w {
			require.Equal(t, w[i].T, s.Points[i].T)
			require.True(t, sameBits(w[i].V, s.Points[i].V), "%s at %d: %v, want %v", s.Labels, w[i].T, s.Points[i].V, w[i].V)
		}
	}
}

// requireExit waits for p to exit with code.
func requireExit(ctx context.Context, t *testing.T, p *procs.Process, code int) {
	t.Helper()
	select {
	case <-p.Done():
	case <-ctx.Done():
		t.Fatalf("%s still running: %s", p.Name, p.LogTail(10))
	}
	got := 0
	if err := p.ExitErr(); err != nil {
		var ee interface{ ExitCode() int }
		require.ErrorAs(t, err, &ee, p.LogTail(10))
		got = ee.ExitCode()
	}
	require.Equal(t, code, got, p.LogTail(10))
}
