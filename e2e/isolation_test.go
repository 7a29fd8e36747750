package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/internal/procs"
	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/tenant"
)

// Issue 4, isolation: with -auth.multitenancy-enabled, tenant A's series,
// label names and values, metadata, exemplars and usage never appear to
// tenant B through any read route, in one process and in a cluster; hostile
// tenant ids are rejected with 400 at the distributor and the querier and
// with InvalidArgument at an ingester's gRPC Push, and name no file: after
// all of them nothing exists outside the nodes' data dirs and tenant A's
// data is as it was pushed.

// isoEnv is where one isolation run writes, reads and looks for files.
type isoEnv struct {
	pushA, pushB string   // base URLs of the distributors tenants A and B push to
	distributors []string // HTTP host:port of every distributor
	querier      string   // base URL of the querier
	querierAddr  string   // its HTTP host:port
	ingesters    []string // gRPC host:port of every ingester
	root         string   // parent of every data dir: walked at the end
	rules        treeRules
	exited       func() []string // names of processes that exited
}

// TestIsolationSingleProcess runs the table against `strata -target=all`
// with its working directory, log and data dir under a fresh root that also
// holds a sentinel directory.
func TestIsolationSingleProcess(t *testing.T) {
	t.Parallel()
	bin := strataBin(t)
	root := t.TempDir()
	makeSentinel(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := procs.StartStrata(ctx, root, procs.StrataConfig{
		Bin: bin, DataDir: filepath.Join(root, "data"), Args: []string{"-auth.multitenancy-enabled"},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		p := s.Process()
		if err := p.Stop(10 * time.Second); err != nil {
			t.Logf("stop strata: %v", err)
		}
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", p.LogPath, p.LogTail(40))
		}
	})
	runIsolation(t, isoEnv{
		pushA: s.URL, pushB: s.URL,
		distributors: []string{s.HTTPAddr},
		querier:      s.URL, querierAddr: s.HTTPAddr,
		ingesters: []string{s.GRPCAddr},
		root:      root,
		rules: treeRules{
			dataDirs: []string{"data"},
			files:    map[string]bool{"strata.log": true},
			sentinel: "sentinel",
		},
		exited: func() []string {
			if s.Process().Exited() {
				return []string{"strata"}
			}
			return nil
		},
	})
}

// TestIsolationCluster runs the same table against one cluster (3
// ingesters in 3 zones with RF=3, 2 distributors, 1 querier), writing
// tenant A through one distributor and tenant B through the other. The
// cluster's Dir is a subdirectory of a fresh root beside a sentinel.
func TestIsolationCluster(t *testing.T) {
	bin := clusterBinary(t)
	root := t.TempDir()
	makeSentinel(t, root)
	c := procs.StartClusterT(t, procs.ClusterConfig{
		Bin: bin,
		Dir: filepath.Join(root, "cluster"),
		Args: []string{
			"-auth.multitenancy-enabled",
			"-ingester.heartbeat-period=250ms",
			"-ring.heartbeat-timeout=4s",
			"-memberlist.rejoin-interval=1s",
			"-memberlist.pull-push-interval=2s",
		},
	})
	waitActive(context.Background(), t, clusterObservers(c), c.ByRole(procs.RoleIngester), 30*time.Second)
	env := isoEnv{
		root: root,
		rules: treeRules{
			files:    map[string]bool{"cluster": true},
			sentinel: "sentinel",
		},
		exited: c.Exited,
	}
	dists := c.ByRole(procs.RoleDistributor)
	env.pushA, env.pushB = dists[0].URL(), dists[len(dists)-1].URL()
	for _, d := range dists {
		env.distributors = append(env.distributors, d.HTTPAddr)
	}
	q := c.ByRole(procs.RoleQuerier)[0]
	env.querier, env.querierAddr = q.URL(), q.HTTPAddr
	for _, in := range c.ByRole(procs.RoleIngester) {
		env.ingesters = append(env.ingesters, in.GRPCAddr)
	}
	for _, n := range c.Nodes {
		rel, err := filepath.Rel(root, n.DataDir)
		require.NoError(t, err)
		env.rules.dataDirs = append(env.rules.dataDirs, rel)
		env.rules.files[filepath.Join("cluster", n.Name+".log")] = true
	}
	// The cluster's shared bucket (procs.PlanCluster): tenants' blocks go
	// under <bucket>/<tenant>; nothing may appear there during the test.
	env.rules.dataDirs = append(env.rules.dataDirs, filepath.Join("cluster", "bucket"))
	runIsolation(t, env)
}

// makeSentinel creates <root>/sentinel holding one file: nothing may
// appear in it or beside it.
func makeSentinel(t *testing.T, root string) {
	t.Helper()
	dir := filepath.Join(root, "sentinel")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "keep"), []byte("must stay as it is\n"), 0o644))
}

func runIsolation(t *testing.T, env isoEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := time.Now().Add(-5 * time.Minute).Truncate(time.Second).UnixMilli()
	a := newIsoTenant(isoTenantA, "alpha", 2, base, 1000)
	b := newIsoTenant(isoTenantB, "bravo", 1, base, 5000)
	for _, p := range []struct {
		url string
		d   *isoTenant
	}{{env.pushA, a}, {env.pushB, b}} {
		res, err := newClient(p.url, p.d.id).push(ctx, p.d.body())
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, res.Status, "push of tenant %s: %s", p.d.id, res.text())
	}

	t.Run("each tenant reads only its own data", func(t *testing.T) {
		for _, pair := range [][2]*isoTenant{{b, a}, {a, b}} {
			own, other := pair[0], pair[1]
			for _, p := range isoProbes(own, other) {
				t.Run(own.marker+" "+p.name, func(t *testing.T) { requireProbe(ctx, t, env.querier, own, other, p) })
			}
		}
	})
	t.Run("remote read", func(t *testing.T) { checkRemoteRead(ctx, t, env.querier, b, a) })
	t.Run("tenant required", func(t *testing.T) { checkTenantRequired(ctx, t, env, a, b) })
	t.Run("tenant-less routes", func(t *testing.T) { checkTenantless(ctx, t, env.querier) })

	before, err := snapshotTree(env.root)
	require.NoError(t, err)
	hostile := hostileIDs()
	t.Run("hostile tenant ids", func(t *testing.T) {
		t.Run("distributor push", func(t *testing.T) { checkHostilePush(ctx, t, env, hostile) })
		t.Run("querier", func(t *testing.T) { checkHostileQuery(ctx, t, env, hostile) })
		t.Run("ingester gRPC", func(t *testing.T) { checkHostileGRPC(ctx, t, env, hostile, a) })
	})
	t.Run("valid id of 150 bytes", func(t *testing.T) { checkLongValidID(ctx, t, env) })

	t.Run("nothing written outside the data dirs", func(t *testing.T) {
		after, err := snapshotTree(env.root)
		require.NoError(t, err)
		rules := env.rules
		rules.tenants = map[string]bool{a.id: true, b.id: true, validLong150: true}
		problems := checkTree(before, after, rules, hostile)
		require.Empty(t, problems, "under %s", env.root)
		// The tenants' TSDBs are where they belong.
		var tsdbs []string
		for _, d := range rules.dataDirs {
			entries, err := os.ReadDir(filepath.Join(env.root, d, "tsdb"))
			if errors.Is(err, os.ErrNotExist) {
				continue // not an ingester
			}
			require.NoError(t, err)
			for _, e := range entries {
				tsdbs = append(tsdbs, e.Name())
			}
		}
		require.Contains(t, tsdbs, a.id)
		require.Contains(t, tsdbs, b.id)
		require.Contains(t, tsdbs, validLong150)
	})

	t.Run("tenant A intact", func(t *testing.T) {
		requireIntact(ctx, t, env.querier, a)
		for _, p := range isoProbes(a, b) {
			t.Run(p.name, func(t *testing.T) { requireProbe(ctx, t, env.querier, a, b, p) })
		}
	})
	require.Empty(t, env.exited(), "processes that exited")
}

// requireProbe polls p as own until its check passes; an answer that
// mentions the other tenant's marker fails at once.
func requireProbe(ctx context.Context, t *testing.T, querier string, own, other *isoTenant, p isoProbe) {
	t.Helper()
	api := newClient(querier, own.id)
	poll(ctx, t, fmt.Sprintf("%s %s %v as %s", p.method, p.path, p.params, own.id), 20*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
		res, err := api.do(ctx, p.method, p.path, p.params, nil, nil)
		if err != nil {
			return false, err.Error()
		}
		if bytes.Contains(res.Body, []byte(other.marker)) {
			t.Fatalf("LEAK: %s %s as %s answers with tenant %s's data (%q): %s", p.method, p.path, own.id, other.id, other.marker, truncate(res.text(), 2000))
		}
		if res.Status != http.StatusOK {
			return false, fmt.Sprintf("status %d: %s", res.Status, truncate(res.text(), 300))
		}
		if err := p.check(res.Body); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// requireIntact reads every raw sample of d back (a range selector over the
// whole push) and compares it with what was pushed, bit for bit.
func requireIntact(ctx context.Context, t *testing.T, querier string, d *isoTenant) {
	t.Helper()
	params := url.Values{"query": {`{__name__=~".+"}[10m]`}, "time": {isoSecs(d.last())}}
	res, err := newClient(querier, d.id).do(ctx, http.MethodGet, "/api/v1/query", params, nil, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.Status, res.text())
	r, err := decodeAPIResult(res.Body)
	require.NoError(t, err)
	var got []string
	for _, s := range r.Series {
		k := s.Labels.String()
		got = append(got, k)
		want, ok := d.byKey[k]
		require.True(t, ok, "tenant %s holds series %s it never pushed", d.id, k)
		require.NoError(t, samePoints(want.Samples, s.Points), "series %s", k)
	}
	require.Equal(t, d.keys(), got)
}

// tenantRoutes are one request per tenant-scoped route of the querier
// (querier/api.go), with minimal parameters.
func tenantRoutes() []isoProbe {
	q := url.Values{"query": {"up"}}
	return []isoProbe{
		{name: "query", method: http.MethodGet, path: "/api/v1/query", params: q},
		{name: "query, POST", method: http.MethodPost, path: "/api/v1/query", params: q},
		{name: "query_range", method: http.MethodGet, path: "/api/v1/query_range", params: url.Values{"query": {"up"}, "start": {"1"}, "end": {"2"}, "step": {"1"}}},
		{name: "query_exemplars", method: http.MethodGet, path: "/api/v1/query_exemplars", params: url.Values{"query": {"up"}, "start": {"1"}, "end": {"2"}}},
		{name: "labels", method: http.MethodGet, path: "/api/v1/labels"},
		{name: "label values", method: http.MethodGet, path: "/api/v1/label/__name__/values"},
		{name: "series", method: http.MethodGet, path: "/api/v1/series", params: url.Values{"match[]": {"up"}}},
		{name: "metadata", method: http.MethodGet, path: "/api/v1/metadata"},
		{name: "tsdb status", method: http.MethodGet, path: "/api/v1/status/tsdb"},
		{name: "user stats", method: http.MethodGet, path: "/api/v1/user_stats"},
	}
}

// checkTenantRequired: every tenant-scoped route and every distributor's
// push answers 401 without X-Scope-OrgID and 400 with an invalid one or
// with two of them (tenants A and B at once).
func checkTenantRequired(ctx context.Context, t *testing.T, env isoEnv, a, b *isoTenant) {
	cases := []struct {
		name   string
		orgIDs []string
		code   int
		msg    string
	}{
		{"no header", nil, http.StatusUnauthorized, "no tenant id"},
		{"invalid id", []string{"../x"}, http.StatusBadRequest, "invalid tenant id"},
		{"two tenants", []string{a.id, b.id}, http.StatusBadRequest, "2 X-Scope-OrgID headers"},
	}
	for _, r := range tenantRoutes() {
		for _, tc := range cases {
			t.Run(r.name+" "+tc.name, func(t *testing.T) {
				res, err := newClient(env.querier, tc.orgIDs...).do(ctx, r.method, r.path, r.params, nil, nil)
				require.NoError(t, err)
				require.Equal(t, tc.code, res.Status, res.text())
				require.Contains(t, errorText(res.text()), tc.msg)
			})
		}
	}
	for _, d := range env.distributors {
		for _, path := range []string{"/api/v1/push", "/api/v1/write"} {
			for _, tc := range cases {
				t.Run(d+path+" "+tc.name, func(t *testing.T) {
					res, err := newClient("http://"+d, tc.orgIDs...).send(ctx, http.MethodPost, path, a.body(), nil)
					require.NoError(t, err)
					require.Equal(t, tc.code, res.Status, res.text())
					require.Contains(t, res.text(), tc.msg)
				})
			}
		}
	}
}

// checkTenantless: build info and query formatting touch no tenant's data;
// they answer without a tenant (whatever the header says) and mention no
// tenant.
func checkTenantless(ctx context.Context, t *testing.T, querier string) {
	for _, r := range []isoProbe{
		{name: "buildinfo", method: http.MethodGet, path: "/api/v1/status/buildinfo"},
		{name: "format_query", method: http.MethodGet, path: "/api/v1/format_query", params: url.Values{"query": {"sum(up)"}}},
	} {
		for _, orgIDs := range [][]string{nil, {"../x"}, {isoTenantA}} {
			t.Run(fmt.Sprintf("%s %q", r.name, orgIDs), func(t *testing.T) {
				res, err := newClient(querier, orgIDs...).do(ctx, r.method, r.path, r.params, nil, nil)
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, res.Status, res.text())
				require.NotContains(t, res.text(), "alpha")
				require.NotContains(t, res.text(), "bravo")
			})
		}
	}
}

// checkRemoteRead: the querier does not serve /api/v1/read today; if it
// ever does, tenant B must read back its own series and none of A's.
func checkRemoteRead(ctx context.Context, t *testing.T, querier string, own, other *isoTenant) {
	all := &prompb.LabelMatcher{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: ".+"}
	series, err := newClient(querier, own.id).remoteRead(ctx, own.base, own.last(), all)
	if se := (*statusError)(nil); errors.As(err, &se) && se.Status == http.StatusNotFound {
		t.Logf("/api/v1/read is not served (404): nothing to isolate there")
		return
	}
	require.NoError(t, err)
	var got []string
	for _, ts := range series {
		k := toLabels(ts.Labels).String()
		require.NotContains(t, k, other.marker, "LEAK through remote read")
		got = append(got, k)
	}
	slices.Sort(got)
	require.Equal(t, own.keys(), got)
}

// hostileWant checks a 400 answer to hostile id h.
func hostileWant(t *testing.T, h hostileID, code int, body string) {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, code, "answer: %s", body)
	msg := errorText(body)
	if h.reason == "" {
		// Go's HTTP server refuses the header line before any handler.
		require.Contains(t, msg, "Bad Request")
		return
	}
	require.Contains(t, msg, "invalid tenant id")
	require.Contains(t, msg, h.reason)
}

// checkHostilePush sends a valid remote-write body as every hostile id to
// both push paths of every distributor.
func checkHostilePush(ctx context.Context, t *testing.T, env isoEnv, hostile []hostileID) {
	body := write(series1(time.Now().Add(-time.Minute).UnixMilli(), 1, "__name__", "iso_hostile_write", "probe", "1"))
	hdr := map[string]string{
		"Content-Type":                      "application/x-protobuf",
		"Content-Encoding":                  "snappy",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
	}
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			for _, d := range env.distributors {
				for _, path := range []string{"/api/v1/push", "/api/v1/write"} {
					res, err := newClient("http://"+d).raw(ctx, http.MethodPost, path, h.id, hdr, body)
					require.NoError(t, err, "%s%s", d, path)
					hostileWant(t, h, res.Status, res.text())
				}
			}
		})
	}
}

// checkHostileQuery sends every hostile id to every tenant-scoped route of
// the querier.
func checkHostileQuery(ctx context.Context, t *testing.T, env isoEnv, hostile []hostileID) {
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			for _, r := range tenantRoutes() {
				target, hdr := r.path, map[string]string{}
				var body []byte
				if r.method == http.MethodPost {
					body = []byte(r.params.Encode())
					hdr["Content-Type"] = "application/x-www-form-urlencoded"
				} else if len(r.params) > 0 {
					target += "?" + r.params.Encode()
				}
				res, err := newClient("http://"+env.querierAddr).raw(ctx, r.method, target, h.id, hdr, body)
				require.NoError(t, err, r.name)
				hostileWant(t, h, res.Status, res.text())
			}
		})
	}
}

// checkHostileGRPC pushes as every hostile id straight to every ingester
// (no distributor in front to check it): each must be InvalidArgument with
// ErrorDetails BAD_INPUT. Reads as a hostile id must return nothing, and
// reads as tenant A (the control) must return A's data.
func checkHostileGRPC(ctx context.Context, t *testing.T, env isoEnv, hostile []hostileID, a *isoTenant) {
	wr, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series1(time.Now().Add(-time.Minute).UnixMilli(), 1, "__name__", "iso_hostile_grpc", "probe", "1"),
	}}).Marshal()
	require.NoError(t, err)
	for _, addr := range env.ingesters {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		defer conn.Close()
		c := ingesterpb.NewIngesterClient(conn)
		t.Run(addr+" control: tenant A reads its data", func(t *testing.T) {
			poll(ctx, t, "tenant A's label names from "+addr, 20*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
				resp, err := c.LabelNames(ctx, &ingesterpb.LabelNamesRequest{Tenant: a.id, StartMs: a.base, EndMs: a.last()})
				if err != nil {
					return false, err.Error()
				}
				if !slices.Equal(resp.GetNames(), a.labelNames()) {
					return false, fmt.Sprintf("label names %q, want %q", resp.GetNames(), a.labelNames())
				}
				return true, ""
			})
		})
		for _, h := range hostile {
			if h.httpOnly {
				continue
			}
			t.Run(addr+" "+h.name, func(t *testing.T) {
				_, err := c.Push(ctx, &ingesterpb.PushRequest{Tenant: h.id, WriteRequest: wr})
				requireBadTenant(t, err, h)
				require.NoError(t, ingesterReadsNothing(ctx, c, h.id, a))
			})
		}
	}
}

// requireBadTenant checks an ingester's answer to a push as hostile h.
// An ingester that accepts it has created a TSDB for it on disk: the fix
// belongs in ingester.Ingester.Push (acquire with create=true must run
// tenant.Validate before the id names a path).
func requireBadTenant(t *testing.T, err error, h hostileID) {
	t.Helper()
	require.Error(t, err, "BUG: the ingester accepted a push as tenant %q: it does not validate tenant ids on gRPC", h.id)
	st, _ := status.FromError(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), "status %v", st)
	want := h.reason
	if want == "" {
		want = reasonChar // HTTP never lets control characters through; gRPC does
	}
	require.Contains(t, st.Message(), "invalid tenant id")
	require.Contains(t, st.Message(), want)
	var class ingesterpb.ErrorClass
	for _, d := range st.Details() {
		if ed, ok := d.(*ingesterpb.ErrorDetails); ok {
			class = ed.GetClass()
		}
	}
	require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, class, "ErrorDetails of %v", st)
}

// ingesterReadsNothing asks every read RPC of one ingester as tenant id:
// each must fail or be empty, whatever the id looks like.
func ingesterReadsNothing(ctx context.Context, c ingesterpb.IngesterClient, id string, a *isoTenant) error {
	all := []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_RE, Name: "__name__", Value: ".+"}}
	from, to := a.base, a.last()
	var problems []string
	fail := func(rpc string, got any) { problems = append(problems, fmt.Sprintf("%s answers %v", rpc, got)) }
	if r, err := c.LabelNames(ctx, &ingesterpb.LabelNamesRequest{Tenant: id, StartMs: from, EndMs: to}); err == nil && len(r.GetNames()) > 0 {
		fail("LabelNames", r.GetNames())
	}
	if r, err := c.LabelValues(ctx, &ingesterpb.LabelValuesRequest{Tenant: id, Name: "__name__", StartMs: from, EndMs: to}); err == nil && len(r.GetValues()) > 0 {
		fail("LabelValues", r.GetValues())
	}
	if r, err := c.Metadata(ctx, &ingesterpb.MetadataRequest{Tenant: id}); err == nil && len(r.GetMetadata()) > 0 {
		fail("Metadata", r.GetMetadata())
	}
	if r, err := c.QueryExemplars(ctx, &ingesterpb.ExemplarsRequest{Tenant: id, StartMs: from, EndMs: to, MatcherSets: []*ingesterpb.MatcherSet{{Matchers: all}}}); err == nil && len(r.GetSeries()) > 0 {
		fail("QueryExemplars", r.GetSeries())
	}
	if r, err := c.TSDBStatus(ctx, &ingesterpb.TSDBStatusRequest{Tenant: id}); err == nil && (r.GetNumSeries() > 0 || len(r.GetSeriesCountByMetricName()) > 0) {
		fail("TSDBStatus", r)
	}
	if r, err := c.UserStats(ctx, &ingesterpb.UserStatsRequest{Tenant: id}); err == nil && r.GetNumSeries() > 0 {
		fail("UserStats", r)
	}
	if n, err := streamCount(func() (int, error) {
		s, err := c.QueryStream(ctx, &ingesterpb.QueryRequest{Tenant: id, StartMs: from, EndMs: to, Matchers: all})
		if err != nil {
			return 0, err
		}
		resp, err := s.Recv()
		return len(resp.GetSeries()), err
	}); err == nil && n > 0 {
		fail("QueryStream", fmt.Sprintf("%d series", n))
	}
	if n, err := streamCount(func() (int, error) {
		s, err := c.Series(ctx, &ingesterpb.SeriesRequest{Tenant: id, StartMs: from, EndMs: to, Matchers: all})
		if err != nil {
			return 0, err
		}
		resp, err := s.Recv()
		return len(resp.GetSeries()), err
	}); err == nil && n > 0 {
		fail("Series", fmt.Sprintf("%d series", n))
	}
	if len(problems) > 0 {
		return fmt.Errorf("reads as tenant %q: %s", id, strings.Join(problems, "; "))
	}
	return nil
}

// streamCount runs recv; io.EOF (an empty stream) counts as 0 series.
func streamCount(recv func() (int, error)) (int, error) {
	n, err := recv()
	if errors.Is(err, io.EOF) {
		return 0, nil
	}
	return n, err
}

// checkLongValidID: an id of exactly 150 bytes is valid: accepted by every
// distributor, the querier and an ingester, and read back.
func checkLongValidID(ctx context.Context, t *testing.T, env isoEnv) {
	ts := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	for i, d := range env.distributors {
		body := write(series1(ts, float64(i), "__name__", "iso_long_tenant", "distributor", fmt.Sprint(i)))
		res, err := newClient("http://"+d, validLong150).push(ctx, body)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, res.Status, "push as the 150-byte tenant to %s: %s", d, res.text())
	}
	api := newClient(env.querier, validLong150)
	params := url.Values{"query": {"iso_long_tenant"}, "time": {isoSecs(ts)}}
	poll(ctx, t, "the 150-byte tenant's series", 20*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, string) {
		res, err := api.do(ctx, http.MethodGet, "/api/v1/query", params, nil, nil)
		if err != nil {
			return false, err.Error()
		}
		if res.Status != http.StatusOK {
			return false, fmt.Sprintf("status %d: %s", res.Status, res.Body)
		}
		r, err := decodeAPIResult(res.Body)
		if err != nil {
			return false, err.Error()
		}
		if len(r.Series) != len(env.distributors) {
			return false, fmt.Sprintf("%d series, want %d", len(r.Series), len(env.distributors))
		}
		return true, ""
	})
	for _, r := range tenantRoutes() {
		res, err := api.do(ctx, r.method, r.path, r.params, nil, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.Status, "%s as the 150-byte tenant: %s", r.name, res.Body)
	}
	wr, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		series1(ts, 42, "__name__", "iso_long_tenant", "via", "grpc"),
	}}).Marshal()
	require.NoError(t, err)
	conn, err := grpc.NewClient(env.ingesters[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	_, err = ingesterpb.NewIngesterClient(conn).Push(ctx, &ingesterpb.PushRequest{Tenant: validLong150, WriteRequest: wr})
	require.NoError(t, err, "gRPC push as the 150-byte tenant")
}

// TestIsolationTreeCheck proves checkTree finds what the cluster test
// looks for: the harness must fail where a node writes outside its place.
func TestIsolationTreeCheck(t *testing.T) {
	sep := string(filepath.Separator)
	p := func(parts ...string) string { return strings.Join(parts, sep) }
	base := map[string]fsEntry{
		"cluster":                              {dir: true},
		p("cluster", "n1.log"):                 {size: 10},
		p("cluster", "n1"):                     {dir: true},
		p("cluster", "n1", "tokens"):           {size: 5},
		p("cluster", "n1", "tsdb"):             {dir: true},
		p("cluster", "n1", "tsdb", "tenant-a"): {dir: true},
		"sentinel":                             {dir: true},
		p("sentinel", "keep"):                  {size: 3},
	}
	rules := treeRules{
		dataDirs: []string{p("cluster", "n1")},
		files:    map[string]bool{"cluster": true, p("cluster", "n1.log"): true},
		sentinel: "sentinel",
		tenants:  map[string]bool{"tenant-a": true},
	}
	hostile := []hostileID{{id: "../x"}, {id: ".."}, {id: "%2e%2e"}, {id: strings.Repeat("h", tenant.MaxIDLength+1)}}
	with := func(add map[string]fsEntry, drop ...string) map[string]fsEntry {
		out := map[string]fsEntry{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range add {
			out[k] = v
		}
		for _, k := range drop {
			delete(out, k)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		after map[string]fsEntry
		want  string // substring of the one problem; "" for none
	}{
		{"unchanged", with(nil), ""},
		{"a tenant's TSDB grows", with(map[string]fsEntry{p("cluster", "n1", "tsdb", "tenant-a", "wal"): {dir: true}, p("cluster", "n1.log"): {size: 99}}), ""},
		{"a file beside the cluster dir", with(map[string]fsEntry{"x": {}}), "outside every node's data dir"},
		{"a file beside the node dirs", with(map[string]fsEntry{p("cluster", "x"): {}}), "outside every node's data dir"},
		{"../x from the tsdb dir", with(map[string]fsEntry{p("cluster", "n1", "x"): {dir: true}}), "created during the hostile requests"},
		{"a TSDB of no tenant", with(map[string]fsEntry{p("cluster", "n1", "tsdb", "b"): {dir: true}}), "which is no tenant that pushed"},
		{"a file in the sentinel", with(map[string]fsEntry{p("sentinel", "new"): {}}), "holds 2 entries"},
		{"the sentinel's file changed", with(map[string]fsEntry{p("sentinel", "keep"): {size: 4}}), "the sentinel's file changed"},
		{"the sentinel's file is gone", with(nil, p("sentinel", "keep")), "holds 0 entries"},
		{"a name holds a hostile id", with(map[string]fsEntry{p("cluster", "n1", "tsdb", "tenant-a", "%2e%2e"): {}}), `hostile tenant id "%2e%2e"`},
		{"a name holds a cut hostile id", with(map[string]fsEntry{p("cluster", "n1", "tsdb", "tenant-a", strings.Repeat("h", tenant.MaxIDLength)): {}}), "hostile tenant id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkTree(base, tc.after, rules, hostile)
			if tc.want == "" {
				require.Empty(t, got)
				return
			}
			require.NotEmpty(t, got)
			require.Contains(t, strings.Join(got, "\n"), tc.want)
		})
	}
}
