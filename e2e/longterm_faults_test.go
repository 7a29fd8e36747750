package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// The long-term storage fault tests: an upload cut half way, a corrupt block in
// the bucket, a store-gateway killed mid-query. Each runs real processes on
// loopback; data lies days in the past, so the querier reads it from the
// store-gateways only (-querier.query-ingesters-within is 13h).

// ltfBase is the start of the test data: ago before now, floored to the
// 12h grid (so a few hours of data stay in one 12h compaction window and
// start a 2h block range).
func ltfBase(ago time.Duration) int64 {
	const grid = 12 * time.Hour
	return time.Now().Add(-ago).Truncate(grid).UnixMilli()
}

// TestPartialUploadRetried puts a proxy that cuts every PUT of a block's
// index object half way between a -target=all strata and a real S3 server
// (versitygw). While it cuts: the shipper counts failures, the bucket holds
// chunks but no meta.json, and the compactor's bucket index, the
// store-gateway and the querier see no block. Once the proxy passes
// everything, the ship loop's retry uploads each block once, complete, and
// the querier answers every sample from the store-gateway.
func TestPartialUploadRetried(t *testing.T) {
	t.Parallel()
	bin := strataBin(t)
	s3 := procs.StartS3T(t)
	proxy := startLTFProxy(t, s3.Endpoint, ltfPathIsBlockIndex)
	proxy.failing.Store(true)
	bkt := newBucket(t, s3)
	const tenant = "anonymous"

	s := procs.StartStrataT(t, procs.StrataConfig{Bin: bin, Args: []string{
		"-blocks-storage.backend=s3",
		"-blocks-storage.s3.endpoint=" + proxy.Addr,
		"-blocks-storage.s3.bucket-name=" + s3.Bucket,
		"-blocks-storage.s3.region=" + s3.Region,
		"-blocks-storage.s3.access-key-id=" + s3.AccessKey,
		"-blocks-storage.s3.secret-access-key=" + s3.SecretKey,
		"-blocks-storage.s3.insecure=true",
		"-blocks-storage.s3.bucket-lookup-type=path",
		"-ingester.ship-interval=1s",
		"-store-gateway.sync-interval=1s",
		"-blocks-storage.bucket-index.update-interval=1s",
	}})

	// 3h of samples, three days ago, from the start of a 2h range: two blocks.
	d := ltfData{metric: "ltf_upload_samples", series: 10, samples: 180, groups: 2, base: ltfBase(72 * time.Hour), step: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, d.push(ctx, newClient(s.URL), 60))

	// The flush cuts the head into blocks and tries to ship them: every
	// index upload is cut, so it fails.
	ans, err := newClient(s.URL).post(ctx, "/ingester/flush")
	require.NoError(t, err)
	require.Equal(t, http.StatusInternalServerError, ans.Status, "flush while every index upload is cut: %s", ans.text())
	require.Contains(t, ans.text(), "index", "the flush error should name the object that failed")
	failures, err := newClient(s.URL).metric(ctx, "strata_ingester_shipper_upload_failures_total", nil)
	require.NoError(t, err)
	require.Positive(t, failures, "strata_ingester_shipper_upload_failures_total after failed uploads")
	require.NotEmpty(t, proxy.Faulted(), "the proxy cut no upload")

	// While it fails: the bucket holds parts of blocks, never a meta.json.
	keys, err := bkt.keys(ctx, tenant+"/")
	require.NoError(t, err)
	partial := ltfBlockFiles(keys, tenant)
	require.NotEmpty(t, partial, "no object of any block reached the bucket: %v", keys)
	for id, files := range partial {
		require.False(t, ltfHas(files, "meta.json"), "block %s has a meta.json while its index upload fails: %v", id, files)
		require.False(t, ltfHas(files, "index"), "block %s has an index object though every index upload was cut: %v", id, files)
	}
	t.Logf("while failing: %d upload(s) cut by the proxy, %.0f shipper failure(s), partial blocks in the bucket: %v", len(proxy.Faulted()), failures, partial)

	// The compactor's bucket index and the querier (through the
	// store-gateway) see no block.
	ans, err = newClient(s.URL).post(ctx, "/compactor/run")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, ans.Status, "compactor run over partial blocks: %s", ans.text())
	idx := bkt.requireIndex(ctx, t, tenant)
	require.Empty(t, idx.Blocks, "bucket index lists blocks that have no meta.json")
	api := newClient(s.URL)
	q, at := d.rawQuery(0, d.samples)
	res, err := api.query(ctx, q, at)
	require.NoError(t, err, "a query over partial blocks must not fail")
	require.Empty(t, res.Series, "a query sees samples of partial blocks")

	// Heal: the ship loop retries and every block arrives once, complete.
	failuresBefore := failures
	proxy.failing.Store(false)
	poll(ctx, t, "blocks shipped after the fault healed", 90*time.Second, 250*time.Millisecond, func(ctx context.Context) (bool, string) {
		keys, err := bkt.keys(ctx, tenant+"/")
		if err != nil {
			return false, err.Error()
		}
		blocks := ltfBlockFiles(keys, tenant)
		for id, files := range blocks {
			if !ltfHas(files, "meta.json") {
				return false, fmt.Sprintf("block %s not complete yet: %v", id, files)
			}
		}
		return len(blocks) > 0, fmt.Sprintf("blocks %v", blocks)
	})
	keys, err = bkt.keys(ctx, tenant+"/")
	require.NoError(t, err)
	blocks := ltfBlockFiles(keys, tenant)
	require.Len(t, blocks, 2, "3h from a 2h boundary make two blocks; bucket: %v", keys)
	ranges := map[int64]string{}
	var total uint64
	for id, files := range blocks {
		require.True(t, ltfHas(files, "index") && ltfHas(files, "chunks/000001"), "block %s: %v", id, files)
		b, err := bkt.get(ctx, tenant+"/"+id+"/meta.json")
		require.NoError(t, err)
		var m ltfMeta
		require.NoError(t, json.Unmarshal(b, &m))
		require.Equal(t, id, m.ULID)
		require.Equal(t, tenant, m.Strata.Tenant)
		require.Equal(t, "ingester", m.Strata.Source)
		rng := m.MinTime - m.MinTime%(2*time.Hour).Milliseconds()
		require.NotContains(t, ranges, rng, "two blocks of one range from one ingester: %s and %s", ranges[rng], id)
		ranges[rng] = id
		total += m.Stats.NumSamples
	}
	require.Equal(t, uint64(d.series*d.samples), total, "samples in the shipped blocks")
	uploads, err := newClient(s.URL).metric(ctx, "strata_ingester_shipper_uploads_total", nil)
	require.NoError(t, err)
	require.Equal(t, 2.0, uploads, "strata_ingester_shipper_uploads_total: each block uploaded once")

	// Indexed and served from the store-gateway: every sample, exactly.
	ans, err = newClient(s.URL).post(ctx, "/compactor/run")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, ans.Status, "compactor run: %s", ans.text())
	require.Len(t, bkt.requireIndex(ctx, t, tenant).Blocks, 2)
	poll(ctx, t, "every sample from the store-gateway", 60*time.Second, 250*time.Millisecond, func(ctx context.Context) (bool, string) {
		res, err := api.query(ctx, q, at)
		if err != nil {
			return false, err.Error()
		}
		if err := d.check(res, 0, d.samples); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	failures, err = newClient(s.URL).metric(ctx, "strata_ingester_shipper_upload_failures_total", nil)
	require.NoError(t, err)
	t.Logf("after healing: %d block(s) complete, uploads_total=%.0f, failures %.0f -> %.0f", len(blocks), uploads, failuresBefore, failures)
	require.False(t, s.Process().Exited())
}

// TestCorruptBlockSkipped ships three blocks of one 12h window to a
// filesystem bucket from a -target=all strata, flips a byte in a chunk of
// the middle one, and runs the compactor: the corrupt block is marked
// no-compact (metric, log line naming tenant and block), the other two are
// merged. A query touching the corrupt block fails with an error naming it
// (the data of its range exists nowhere else: RF 1); a query of the other
// ranges answers exactly; no process crashes.
func TestCorruptBlockSkipped(t *testing.T) {
	t.Parallel()
	bin := strataBin(t)
	s := procs.StartStrataT(t, procs.StrataConfig{Bin: bin, Args: []string{
		"-compactor.first-level-compaction-wait-period=0s",
		"-store-gateway.sync-interval=1s",
		"-blocks-storage.bucket-index.update-interval=1s",
	}})
	bucketDir := filepath.Join(s.DataDir, "bucket")
	const tenant = "anonymous"
	// 6h from the start of a 12h window, four days ago: three 2h blocks.
	d := ltfData{metric: "ltf_corrupt_samples", series: 10, samples: 360, groups: 2, base: ltfBase(96 * time.Hour), step: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, d.push(ctx, newClient(s.URL), 60))
	ans, err := newClient(s.URL).post(ctx, "/ingester/flush")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, ans.Status, "flush: %s", ans.text())

	keys, err := ltfFSObjects(bucketDir, tenant)
	require.NoError(t, err)
	blocks := ltfBlockFiles(keys, tenant)
	require.Len(t, blocks, 3, "6h from a 2h boundary make three blocks: %v", keys)
	metas := ltfFSMetas(t, bucketDir, tenant, blocks)
	bad := metas[1] // the middle range
	at, err := ltfCorruptChunk(filepath.Join(bucketDir, tenant, bad.ULID, "chunks", "000001"))
	require.NoError(t, err)
	t.Logf("corrupted block %s [%d, %d] at byte %d of chunks/000001", bad.ULID, bad.MinTime, bad.MaxTime, at)

	ans, err = newClient(s.URL).post(ctx, "/compactor/run")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, ans.Status, "a corrupt block must not fail the compaction run: %s", ans.text())
	marked, err := newClient(s.URL).metric(ctx, "strata_compactor_blocks_marked_no_compact_total", nil)
	require.NoError(t, err)
	require.Equal(t, 1.0, marked, "strata_compactor_blocks_marked_no_compact_total")
	line := ltfLogLine(t, s.Process().LogPath, "no-compact", "tenant="+tenant, bad.ULID)
	require.NotEmpty(t, line, "no log line says the corrupt block %s of tenant %s was marked no-compact", bad.ULID, tenant)
	t.Logf("compactor log: %s", strings.TrimSpace(line))

	keys, err = ltfFSObjects(bucketDir, tenant)
	require.NoError(t, err)
	after := ltfBlockFiles(keys, tenant)
	require.True(t, ltfHas(after[bad.ULID], "no-compact-mark.json"), "corrupt block not marked no-compact: %v", after[bad.ULID])
	require.False(t, ltfHas(after[bad.ULID], "deletion-mark.json"), "corrupt block marked for deletion")
	for _, m := range []ltfMeta{metas[0], metas[2]} {
		require.True(t, ltfHas(after[m.ULID], "deletion-mark.json"), "good block %s not compacted (no deletion mark): %v", m.ULID, after[m.ULID])
	}
	require.Len(t, after, 4, "the three blocks and the compacted one: %v", after)

	// A query of the ranges of the good blocks answers exactly.
	api := newClient(s.URL)
	q, qAt := d.rawQuery(0, 110) // the first block's range, short of the second's
	poll(ctx, t, "query of the good blocks' range", 60*time.Second, 250*time.Millisecond, func(ctx context.Context) (bool, string) {
		res, err := api.query(ctx, q, qAt)
		if err != nil {
			return false, err.Error()
		}
		if err := d.check(res, 0, 110); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	// A query touching the corrupt block fails and says which block.
	q, qAt = d.rawQuery(0, d.samples)
	var last string
	poll(ctx, t, "query touching the corrupt block fails naming it", 60*time.Second, 250*time.Millisecond, func(ctx context.Context) (bool, string) {
		ans, err := api.do(ctx, http.MethodPost, "/api/v1/query", queryParams(q, qAt), nil, nil)
		if err != nil {
			return false, err.Error()
		}
		status, body := ans.Status, ans.text()
		if status == http.StatusOK {
			res, derr := decodeAPIResult(ans.Body)
			if derr == nil && d.check(res, 0, d.samples) != nil {
				t.Errorf("query touching the corrupt block answered 200 with wrong data: %v", d.check(res, 0, d.samples))
			}
			return false, "answered 200"
		}
		last = fmt.Sprintf("%d %s", status, body)
		return strings.Contains(body, bad.ULID) && strings.Contains(body, "checksum"), last
	})
	t.Logf("query touching the corrupt block: %s", truncate(last, 600))
	require.False(t, s.Process().Exited(), "strata exited")
	ans, _ = api.do(ctx, http.MethodPost, "/api/v1/query", queryParams("up", time.Now()), nil, nil)
	require.Equal(t, http.StatusOK, ans.Status, "strata still answers")
}

// ltfFSMetas reads the meta.json of blocks in a filesystem bucket, sorted
// by MinTime.
func ltfFSMetas(t *testing.T, root, tenant string, blocks map[string][]string) []ltfMeta {
	t.Helper()
	var out []ltfMeta
	for id := range blocks {
		b, err := os.ReadFile(filepath.Join(root, tenant, id, "meta.json"))
		require.NoError(t, err)
		var m ltfMeta
		require.NoError(t, json.Unmarshal(b, &m))
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b ltfMeta) int { return int(a.MinTime - b.MinTime) })
	return out
}

// TestStoreGatewayKillMidQuery runs 3 store-gateways with replication
// factor 2 over blocks in a shared bucket and a loop of range queries
// through the querier, kills one store-gateway with SIGKILL in the middle
// of the loop and requires every query, those in flight at the kill
// included, to answer 200 with the answer of before the kill; then again
// once the ring marks the dead one unhealthy.
func TestStoreGatewayKillMidQuery(t *testing.T) {
	t.Parallel()
	c := procs.StartClusterT(t, procs.ClusterConfig{
		Bin: clusterBinary(t), Ingesters: 1, Distributors: 1, Queriers: 1, StoreGateways: 3, Compactors: 1,
		Args: []string{
			"-ingester.heartbeat-period=250ms",
			"-ring.heartbeat-timeout=4s",
			"-memberlist.rejoin-interval=1s",
			"-memberlist.pull-push-interval=2s",
			"-store-gateway.replication-factor=2",
			"-store-gateway.sync-interval=1s",
			"-blocks-storage.bucket-index.update-interval=1s",
		},
	})
	waitActive(context.Background(), t, c.ByRole(procs.RoleDistributor), c.ByRole(procs.RoleIngester), time.Minute)
	querier := c.ByRole(procs.RoleQuerier)[0]
	sgs := c.ByRole(procs.RoleStoreGateway)
	poll(context.Background(), t, "store-gateways ACTIVE in the querier's ring", 60*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, string) {
		r, err := newClient(querier.URL()).ring(ctx, "/store-gateway/ring")
		if err != nil {
			return false, err.Error()
		}
		return allActive(sgs)(r)
	})

	// 6h of 200 series every 30s, three days ago: three blocks.
	d := ltfData{metric: "ltf_sg_samples", series: 200, samples: 720, groups: 10, base: ltfBase(72 * time.Hour), step: 30 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	require.NoError(t, d.push(ctx, newClient(c.ByRole(procs.RoleDistributor)[0].URL()), 60))
	ans, err := newClient(c.ByRole(procs.RoleIngester)[0].URL()).post(ctx, "/ingester/flush")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, ans.Status, "flush: %s", ans.text())
	ans, err = newClient(c.ByRole(procs.RoleCompactor)[0].URL()).post(ctx, "/compactor/run")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, ans.Status, "compactor run: %s", ans.text())

	api := newClient(querier.URL())
	rq, rAt := d.rawQuery(0, d.samples)
	poll(ctx, t, "every sample from the store-gateways", 60*time.Second, 250*time.Millisecond, func(ctx context.Context) (bool, string) {
		res, err := api.query(ctx, rq, rAt)
		if err != nil {
			return false, err.Error()
		}
		if err := d.check(res, 0, d.samples); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	const heavy = `sum by (group) (sum_over_time(ltf_sg_samples[10m]))`
	start, end := time.UnixMilli(d.base), time.UnixMilli(d.last())
	want, err := api.queryRange(ctx, heavy, start, end, time.Minute)
	require.NoError(t, err)
	require.Len(t, want.Series, d.groups)

	// The query loop: workers run the heavy query (and now and then the
	// raw one) until stopped, at most maxQueries each.
	const workers, maxQueries = 3, 400
	var (
		stop               atomic.Bool
		ok, inFlightAtKill atomic.Int64
		killedAt           atomic.Int64 // unix ns, 0 before the kill
		mu                 sync.Mutex
		failures           []string
		wg                 sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	for w := range workers {
		wg.Go(func() {
			for i := 0; i < maxQueries && !stop.Load() && ctx.Err() == nil; i++ {
				began := time.Now().UnixNano()
				var err error
				if (i+w)%5 == 4 {
					var res apiResult
					if res, err = api.query(ctx, rq, rAt); err == nil {
						err = d.check(res, 0, d.samples)
					}
				} else {
					var res apiResult
					if res, err = api.queryRange(ctx, heavy, start, end, time.Minute); err == nil {
						if d := diffResult(want, res); d != "" {
							err = errors.New(d)
						}
					}
				}
				if k := killedAt.Load(); k != 0 && began < k {
					inFlightAtKill.Add(1)
				}
				if err != nil {
					fail("worker %d query %d: %v", w, i, err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	waitOK := func(n int64, what string) {
		poll(ctx, t, what, 90*time.Second, 50*time.Millisecond, func(context.Context) (bool, string) {
			return ok.Load() >= n, fmt.Sprintf("%d good queries", ok.Load())
		})
	}
	waitOK(6, "queries before the kill")
	// The victim is the store-gateway that served the most series so far:
	// a primary replica of some block, which queries ask first.
	victim, most := sgs[0], -1.0
	for _, sg := range sgs {
		n, err := newClient(sg.URL()).metric(ctx, "strata_storegateway_series_returned_total", nil)
		require.NoError(t, err)
		if n > most {
			victim, most = sg, n
		}
	}
	require.Positive(t, most, "no store-gateway served any series")
	killedAt.Store(time.Now().UnixNano())
	require.NoError(t, victim.Kill())
	atKill := ok.Load()
	waitOK(atKill+9, "queries after the kill")
	poll(ctx, t, "killed store-gateway unhealthy in the querier's ring", 60*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, string) {
		r, err := newClient(querier.URL()).ring(ctx, "/store-gateway/ring")
		if err != nil {
			return false, err.Error()
		}
		return procs.InstanceUnhealthy(victim.Name)(r)
	})
	afterUnhealthy := ok.Load()
	waitOK(afterUnhealthy+9, "queries once the ring marks it unhealthy")
	stop.Store(true)
	wg.Wait()

	retries, err := newClient(querier.URL()).metric(ctx, "strata_querier_store_gateway_block_retries_total", nil)
	require.NoError(t, err)
	t.Logf("queries: %d good (%d before the kill, %d once unhealthy), %d in flight at the kill; block retries on another replica: %.0f",
		ok.Load(), atKill, afterUnhealthy, inFlightAtKill.Load(), retries)
	require.Empty(t, failures, "queries that failed or answered wrong around the kill of %s", victim.Name)
	// The victim stays in the ring, healthy, for -ring.heartbeat-timeout
	// after the kill, and the workers query without pause: the queries of
	// that time (those in flight at the kill too) asked it first.
	require.Positive(t, retries, "no block was retried on another replica: the kill was not under load")
	ltfAlive(t, c, victim.Name)
}

// TestCorruptBlockReplicaCopy is the corrupt block with replicas: two
// ingesters (RF 2) ship one copy each of a 2h range, one copy gets a
// flipped byte. The compactor marks it no-compact and goes on. Every
// acknowledged sample is in the other copy (a write succeeds only on a
// quorum, 2 of 2), so a query of the range should answer from it, in full,
// instead of failing on the corrupt copy.
func TestCorruptBlockReplicaCopy(t *testing.T) {
	t.Parallel()
	c := procs.StartClusterT(t, procs.ClusterConfig{
		Bin: clusterBinary(t), Ingesters: 2, Distributors: 1, Queriers: 1, StoreGateways: 1, Compactors: 1,
		Args: []string{
			"-ingester.heartbeat-period=250ms",
			"-ring.heartbeat-timeout=4s",
			"-store-gateway.sync-interval=1s",
			"-blocks-storage.bucket-index.update-interval=1s",
			"-compactor.first-level-compaction-wait-period=0s",
		},
	})
	const tenant = "anonymous"
	bucketDir := filepath.Join(filepath.Dir(c.Nodes[0].DataDir), "bucket")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitActive(context.Background(), t, c.ByRole(procs.RoleDistributor), c.ByRole(procs.RoleIngester), time.Minute)
	// 2h from a 2h boundary, five days ago: one block per ingester.
	d := ltfData{metric: "ltf_copies_samples", series: 10, samples: 120, groups: 2, base: ltfBase(120 * time.Hour), step: time.Minute}
	require.NoError(t, d.push(ctx, newClient(c.ByRole(procs.RoleDistributor)[0].URL()), 60))
	for _, in := range c.ByRole(procs.RoleIngester) {
		ans, err := newClient(in.URL()).post(ctx, "/ingester/flush")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, ans.Status, "flush %s: %s", in.Name, ans.text())
	}
	keys, err := ltfFSObjects(bucketDir, tenant)
	require.NoError(t, err)
	blocks := ltfBlockFiles(keys, tenant)
	require.Len(t, blocks, 2, "one copy per ingester: %v", keys)
	metas := ltfFSMetas(t, bucketDir, tenant, blocks)
	bad := metas[0]
	if metas[1].Strata.Ingester < bad.Strata.Ingester {
		bad = metas[1]
	}
	_, err = ltfCorruptChunk(filepath.Join(bucketDir, tenant, bad.ULID, "chunks", "000001"))
	require.NoError(t, err)
	t.Logf("corrupted %s's copy %s", bad.Strata.Ingester, bad.ULID)

	comp := c.ByRole(procs.RoleCompactor)[0]
	ans, err := newClient(comp.URL()).post(ctx, "/compactor/run")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, ans.Status, "compactor run: %s", ans.text())
	marked, err := newClient(comp.URL()).metric(ctx, "strata_compactor_blocks_marked_no_compact_total", nil)
	require.NoError(t, err)
	require.Equal(t, 1.0, marked, "strata_compactor_blocks_marked_no_compact_total")

	querier := c.ByRole(procs.RoleQuerier)[0]
	q, at := d.rawQuery(0, d.samples)
	var last string
	api := newClient(querier.URL())
	poll(ctx, t, "an answer from the intact copies or the checksum error", 30*time.Second, 250*time.Millisecond, func(ctx context.Context) (bool, string) {
		ans, err := api.do(ctx, http.MethodPost, "/api/v1/query", queryParams(q, at), nil, nil)
		status, body := ans.Status, ans.text()
		switch {
		case err != nil:
			last = err.Error()
		case status != http.StatusOK:
			last = fmt.Sprintf("%d %s", status, truncate(body, 600))
			// A store-gateway that has not loaded the blocks yet also
			// fails; the corrupt copy's checksum error is the answer.
			if strings.Contains(body, "checksum") {
				return true, last
			}
		default:
			res, err := decodeAPIResult(ans.Body)
			if err == nil {
				err = d.check(res, 0, d.samples)
			}
			if err == nil {
				last = ""
				return true, ""
			}
			last = err.Error()
		}
		return false, last
	})
	ltfAlive(t, c)
	require.Empty(t, last, "a query of a range whose other replica copy is intact should answer from it; got: %s", last)
}
