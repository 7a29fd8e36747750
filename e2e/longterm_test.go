package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// TestLongTermS3 runs a cluster over a real S3 server (versitygw on
// loopback): 3 ingesters at RF=3, 3 store-gateways at RF=2, a compactor.
// Two tenants write three simulated days that ended a day ago; then, in
// order:
//   - restart: the ingesters flush and ship their blocks, stop, lose their
//     disks and come back empty; every sample is still answered, from the
//     bucket, exactly as written and as before;
//   - compaction: one compactor run merges the RF copies of every 2h range
//     into one block (and those into 12h and 24h blocks); the stored bytes
//     drop to about a third, the answers do not change;
//   - retention: tenant A gets a 2-day retention in the runtime config; its
//     older blocks leave the bucket and the answers, tenant B keeps
//     everything.
func TestLongTermS3(t *testing.T) {
	bin := strataBin(t)
	s3 := procs.StartS3T(t)
	bkt := newBucket(t, s3)
	dir := t.TempDir()
	runtimeCfg := filepath.Join(dir, "runtime.yaml")
	require.NoError(t, os.WriteFile(runtimeCfg, []byte("overrides: {}\n"), 0o644))

	c := procs.StartClusterT(t, procs.ClusterConfig{
		Bin: bin, Dir: dir,
		Ingesters: 3, Zones: 3, ReplicationFactor: 3, Distributors: 1, Queriers: 1,
		StoreGateways: 3, Compactors: 1,
		Args: []string{
			"-auth.multitenancy-enabled=true",
			// The operator's tenant: flush and compactor runs act on every
			// tenant and need it (the requests below send it).
			"-runtime-config.admin-tenant=" + ltAdmin,
			"-blocks-storage.backend=s3",
			"-blocks-storage.s3.endpoint=" + s3.Endpoint,
			"-blocks-storage.s3.bucket-name=" + s3.Bucket,
			"-blocks-storage.s3.region=" + s3.Region,
			"-blocks-storage.s3.access-key-id=" + s3.AccessKey,
			"-blocks-storage.s3.secret-access-key=" + s3.SecretKey,
			"-blocks-storage.s3.insecure=true",
			"-blocks-storage.s3.bucket-lookup-type=path",
			"-blocks-storage.bucket-index.update-interval=1s",
			"-blocks-storage.bucket-index.max-stale-period=15s",
			"-blocks-storage.bucket-index.ignore-deletion-marks-delay=1s",
			"-store-gateway.replication-factor=2",
			"-store-gateway.sync-interval=2s",
			"-runtime-config.file=" + runtimeCfg,
			"-runtime-config.reload-period=1s",
			// Everything written is days old: the queriers ask both the
			// ingesters and the store-gateways for every range.
			"-querier.query-ingesters-within=0",
			"-querier.query-store-after=0",
			"-ingester.out-of-order-time-window=2h",
			// Every process validates these against the bucket index flags.
			"-compactor.first-level-compaction-wait-period=0s",
			"-compactor.compaction-interval=1h", // runs only when asked
			"-compactor.cleanup-interval=2s",
			"-compactor.deletion-delay=17s",
		},
	})
	dist := c.ByRole(procs.RoleDistributor)[0]
	querier := c.ByRole(procs.RoleQuerier)[0]
	compactor := c.ByRole(procs.RoleCompactor)[0]
	ingesters := c.ByRole(procs.RoleIngester)

	// Three whole UTC days ending at least a day ago, a minute apart: every
	// 2h, 12h and 24h range is complete and may be compacted at once, and
	// a 2-day retention removes exactly the first two days.
	end := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	span := 72 * time.Hour
	a := newLTTenant("lt-a", 4, 25, end.Add(-span), span) // 200 series
	b := newLTTenant("lt-b", 2, 15, end.Add(-span), span) // 60 series
	tenants := []*ltTenant{a, b}
	apis := map[string]*client{a.id: newClient(querier.URL(), a.id), b.id: newClient(querier.URL(), b.id)}

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	waitActive(ctx, t, []*procs.Node{dist, querier}, ingesters, 0)
	started := time.Now()
	for _, d := range tenants {
		require.NoError(t, d.pushAll(ctx, newClient(dist.URL(), d.id)))
	}
	t.Logf("wrote %d series × %d samples (%s) and %d × %d (%s) in %s",
		len(a.series), a.samples(), a.id, len(b.series), b.samples(), b.id, time.Since(started).Round(time.Millisecond))

	// What the ingesters answer (blocks they cut while we wrote may already
	// be in the bucket too: the querier merges both).
	before := map[string]ltMeta{}
	for _, d := range tenants {
		n, err := ltCheckRaw(ctx, apis[d.id], d, d.start)
		require.NoError(t, err)
		require.Equal(t, len(d.series)*d.samples(), n)
		m, err := ltMetaOf(ctx, apis[d.id], d, d.start, d.end)
		require.NoError(t, err)
		require.Len(t, m.Series, len(d.series))
		require.Equal(t, []string{"__name__", "instance", "job"}, m.LabelNames)
		require.Equal(t, d.jobs, m.Jobs)
		require.Equal(t, []string{"lt_requests_total", "lt_temperature_celsius"}, m.Names)
		before[d.id] = m
	}

	// Flush: every ingester cuts its heads into blocks and ships them.
	for _, n := range ingesters {
		body, err := newClient(n.URL(), ltAdmin).ok(ctx, http.MethodPost, "/ingester/flush", nil, nil)
		require.NoError(t, err, "flush %s", n.Name)
		t.Logf("flush %s: %s", n.Name, strings.TrimSpace(string(body)))
	}
	// The compactor's cleanup (every 2s, no compaction) lists the blocks in
	// the bucket index: each 2h range has one block from each ingester.
	shipped := map[string]ltUsage{}
	for _, d := range tenants {
		poll(context.Background(), t, "bucket index lists the RF copies of "+d.id, time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
			ix, err := bkt.index(ctx, d.id)
			if err != nil || ix == nil {
				return false, fmt.Sprintf("index: %v", err)
			}
			// An ingester may have cut an out-of-order block beside the
			// in-order one of a range: count ingesters, not blocks.
			per := ix.ingestersPerRange(d.start, d.end)
			for w, n := range per {
				if n != len(ingesters) {
					return false, fmt.Sprintf("range at %s has blocks of %d ingesters (want %d); counts %v", time.UnixMilli(w).UTC(), n, len(ingesters), countsOf(per))
				}
			}
			t.Logf("%s: %d blocks in the index; 2h ranges by block count: %v", d.id, len(ix.Blocks), countsOf(ix.perRange(d.start, d.end)))
			return true, ""
		})
		objs, err := bkt.objects(ctx, d.id+"/")
		require.NoError(t, err)
		shipped[d.id] = usageOf(d.id, objs)
		require.Empty(t, shipped[d.id].OtherObject)
		t.Logf("%s shipped: %d blocks, %d bytes (%d in chunks)", d.id, shipped[d.id].Blocks, shipped[d.id].Bytes, shipped[d.id].ChunkBytes)
	}
	// The same answers with the blocks in the bucket and on the ingesters.
	requireLTAnswers(t, tenants, apis, before)

	if !t.Run("restart", func(t *testing.T) {
		for _, n := range ingesters {
			require.NoError(t, n.Stop(30*time.Second), "stop %s", n.Name)
			require.NoError(t, os.RemoveAll(n.DataDir))
			require.NoError(t, os.MkdirAll(n.DataDir, 0o755))
		}
		for _, n := range ingesters {
			rctx, rcancel := context.WithTimeout(ctx, time.Minute)
			require.NoError(t, n.Restart(rctx), "restart %s", n.Name)
			rcancel()
		}
		waitActive(ctx, t, []*procs.Node{dist, querier}, ingesters, 0)
		// Nothing on the ingesters' disks any more: every answer comes from
		// the store-gateways.
		requireLTAnswers(t, tenants, apis, before)
		var served, owned []float64
		for _, n := range c.ByRole(procs.RoleStoreGateway) {
			v, err := newClient(n.URL()).metric(ctx, "strata_storegateway_series_returned_total", nil)
			require.NoError(t, err)
			served = append(served, v)
			if v, err = newClient(n.URL()).metric(ctx, "strata_storegateway_blocks_owned", nil); err == nil {
				owned = append(owned, v)
			}
		}
		t.Logf("store-gateways: series returned %v, blocks owned %v", served, owned)
		require.Positive(t, served[0]+served[1]+served[2], "series returned by the store-gateways")
	}) {
		return
	}

	if !t.Run("compaction", func(t *testing.T) {
		started := time.Now()
		body, err := newClient(compactor.URL(), ltAdmin).ok(ctx, http.MethodPost, "/compactor/run", nil, nil)
		require.NoError(t, err)
		t.Logf("compactor run: %s in %s", strings.TrimSpace(string(body)), time.Since(started).Round(time.Millisecond))
		// The merged blocks are marked and deleted after the deletion
		// delay: wait until the bucket holds only the compacted blocks.
		for _, d := range tenants {
			var last ltUsage
			poll(context.Background(), t, "only compacted blocks of "+d.id+" left", 2*time.Minute, time.Second, func(ctx context.Context) (bool, string) {
				ix, err := bkt.index(ctx, d.id)
				if err != nil || ix == nil {
					return false, fmt.Sprintf("index: %v", err)
				}
				if len(ix.DeletionMarks) > 0 {
					return false, fmt.Sprintf("%d blocks still marked for deletion in the index", len(ix.DeletionMarks))
				}
				per := ix.perRange(d.start, d.end)
				for w, n := range per {
					if n != 1 {
						return false, fmt.Sprintf("range at %s has %d live blocks (want 1); counts %v", time.UnixMilli(w).UTC(), n, countsOf(per))
					}
				}
				objs, err := bkt.objects(ctx, d.id+"/")
				if err != nil {
					return false, err.Error()
				}
				last = usageOf(d.id, objs)
				if last.Marked > 0 || last.Blocks != len(ix.Blocks) {
					return false, fmt.Sprintf("bucket has %d blocks (%d marked), index %d", last.Blocks, last.Marked, len(ix.Blocks))
				}
				return true, ""
			})
			ix, err := bkt.index(ctx, d.id)
			require.NoError(t, err)
			// One block per day: 3 copies × 12 ranges (plus out-of-order
			// blocks) → 1.
			require.Len(t, ix.Blocks, 3)
			for _, b := range ix.Blocks {
				day := time.UnixMilli(b.MinTime).UTC().Truncate(24 * time.Hour).UnixMilli()
				require.Equal(t, "compactor", b.Source, "block %s", b.ID)
				require.GreaterOrEqual(t, b.MinTime, d.start, "block %s", b.ID)
				require.LessOrEqual(t, b.MaxTime, day+(24*time.Hour).Milliseconds(), "block %s spans [%d, %d)", b.ID, b.MinTime, b.MaxTime)
			}
			was := shipped[d.id]
			ratio := float64(last.Bytes) / float64(was.Bytes)
			chunkRatio := float64(last.ChunkBytes) / float64(was.ChunkBytes)
			t.Logf("%s compacted: %d → %d blocks, %d → %d bytes (%.3f), chunks %d → %d bytes (%.3f)",
				d.id, was.Blocks, last.Blocks, was.Bytes, last.Bytes, ratio, was.ChunkBytes, last.ChunkBytes, chunkRatio)
			// The chunks are the samples: one copy of three.
			require.InDelta(t, 0.375, chunkRatio, 0.075, "chunk bytes after/before")
			// The index shrinks further as 2h blocks become 24h blocks.
			require.LessOrEqual(t, ratio, 0.45, "bytes after/before")
		}
		requireLTAnswers(t, tenants, apis, before)
	}) {
		return
	}

	t.Run("retention", func(t *testing.T) {
		objsB, err := bkt.objects(ctx, b.id+"/")
		require.NoError(t, err)
		ixA, err := bkt.index(ctx, a.id)
		require.NoError(t, err)
		blocksA := len(ixA.Blocks)

		require.NoError(t, os.WriteFile(runtimeCfg, []byte("overrides:\n  lt-a:\n    compactor_blocks_retention_period: 48h\n"), 0o644))
		poll(context.Background(), t, "compactor loads the retention override", time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
			body, err := newClient(compactor.URL(), a.id).ok(ctx, http.MethodGet, "/runtime_config?mode=diff", nil, nil)
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(string(body), "compactor_blocks_retention_period: 48h"), string(body)
		})
		runAt := time.Now()
		body, err := newClient(compactor.URL(), ltAdmin).ok(ctx, http.MethodPost, "/compactor/run", nil, nil)
		require.NoError(t, err)
		t.Logf("compactor run: %s", strings.TrimSpace(string(body)))

		// A's blocks wholly older than 48h are marked, then deleted after
		// the deletion delay.
		var keepFrom int64
		poll(context.Background(), t, "A's expired blocks leave the bucket", 2*time.Minute, time.Second, func(ctx context.Context) (bool, string) {
			ix, err := bkt.index(ctx, a.id)
			if err != nil || ix == nil {
				return false, fmt.Sprintf("index: %v", err)
			}
			if len(ix.DeletionMarks) > 0 || len(ix.Blocks) >= blocksA {
				return false, fmt.Sprintf("%d blocks (%d before), %d marked", len(ix.Blocks), blocksA, len(ix.DeletionMarks))
			}
			objs, err := bkt.objects(ctx, a.id+"/")
			if err != nil {
				return false, err.Error()
			}
			u := usageOf(a.id, objs)
			if u.Blocks != len(ix.Blocks) || u.Marked > 0 {
				return false, fmt.Sprintf("bucket has %d blocks (%d marked), index %d", u.Blocks, u.Marked, len(ix.Blocks))
			}
			keepFrom = ix.Blocks[0].MinTime
			for _, b := range ix.Blocks {
				keepFrom = min(keepFrom, b.MinTime)
			}
			return true, ""
		})
		// Every block wholly older than the retention is gone, no other.
		cutoff := runAt.Add(-48 * time.Hour).UnixMilli()
		ixA, err = bkt.index(ctx, a.id)
		require.NoError(t, err)
		for _, b := range ixA.Blocks {
			require.Greater(t, b.MaxTime, cutoff, "block %s ends before the retention cutoff", b.ID)
		}
		require.Len(t, ixA.Blocks, 1, "A keeps its last day")
		t.Logf("%s keeps samples from %s (retention cutoff %s)", a.id, time.UnixMilli(keepFrom).UTC(), time.UnixMilli(cutoff).UTC())
		require.Greater(t, keepFrom, a.start, "something of A was deleted")
		require.LessOrEqual(t, keepFrom, cutoff, "nothing newer than the retention was deleted")

		// B's objects are untouched, byte for byte in size.
		objsB2, err := bkt.objects(ctx, b.id+"/")
		require.NoError(t, err)
		delete(objsB, b.id+"/bucket-index.json.gz")
		delete(objsB2, b.id+"/bucket-index.json.gz")
		require.Equal(t, objsB, objsB2, "tenant B's objects")

		poll(context.Background(), t, "answers after retention", time.Minute, time.Second, func(ctx context.Context) (bool, string) {
			if _, err := ltCheckRaw(ctx, apis[a.id], a, keepFrom); err != nil {
				return false, err.Error()
			}
			if _, err := ltCheckRaw(ctx, apis[b.id], b, b.start); err != nil {
				return false, err.Error()
			}
			m, err := ltMetaOf(ctx, apis[b.id], b, b.start, b.end)
			if err != nil {
				return false, err.Error()
			}
			if d := diffMeta(before[b.id], m); d != "" {
				return false, b.id + ": " + d
			}
			// A's answers over what it kept are those of before.
			m, err = ltMetaOf(ctx, apis[a.id], a, keepFrom, a.end)
			if err != nil {
				return false, err.Error()
			}
			if len(m.Series) != len(a.series) {
				return false, fmt.Sprintf("%s: %d series after retention", a.id, len(m.Series))
			}
			return true, ""
		})
	})
}

// requireLTAnswers polls until every tenant's raw samples are what it wrote
// and its other answers equal before.
func requireLTAnswers(t *testing.T, tenants []*ltTenant, apis map[string]*client, before map[string]ltMeta) {
	t.Helper()
	poll(context.Background(), t, "answers equal to what was written and to before", 90*time.Second, time.Second, func(ctx context.Context) (bool, string) {
		for _, d := range tenants {
			if _, err := ltCheckRaw(ctx, apis[d.id], d, d.start); err != nil {
				return false, err.Error()
			}
			m, err := ltMetaOf(ctx, apis[d.id], d, d.start, d.end)
			if err != nil {
				return false, err.Error()
			}
			if diff := diffMeta(before[d.id], m); diff != "" {
				return false, d.id + ": " + diff
			}
		}
		return true, ""
	})
}
