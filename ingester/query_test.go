package ingester

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// labelsFixture pushes six series of two metrics for tenant "t":
// up{job=api|db|web, instance=1}, go_goroutines{job=api|db, instance=1|2}...
func labelsFixture(t *testing.T) *harness {
	h := start(t, defaultConfig(t), t.TempDir())
	h.mustPush("t",
		floats(lbls("__name__", "up", "instance", "1", "job", "api"), float64(t0), 1),
		floats(lbls("__name__", "up", "instance", "1", "job", "db"), float64(t0), 1),
		floats(lbls("__name__", "up", "instance", "1", "job", "web"), float64(t0), 1),
		floats(lbls("__name__", "go_goroutines", "instance", "1", "job", "api"), float64(t0), 10),
		floats(lbls("__name__", "go_goroutines", "instance", "2", "job", "db", "zone", "b"), float64(t0), 10),
		// Only late samples: outside the early time range below.
		floats(lbls("__name__", "late", "job", "batch"), float64(t0+600000), 1),
	)
	return h
}

var (
	eq  = ingesterpb.LabelMatcher_EQ
	neq = ingesterpb.LabelMatcher_NEQ
	re  = ingesterpb.LabelMatcher_RE
	nre = ingesterpb.LabelMatcher_NRE
)

func TestLabelNamesValuesSeries(t *testing.T) {
	h := labelsFixture(t)
	ctx := context.Background()
	const end = t0 + 3600000

	t.Run("label names", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			start, end int64
			ms         []*ingesterpb.LabelMatcher
			limit      int64
			want       []string
		}{
			{"all", t0, end, nil, 0, []string{"__name__", "instance", "job", "zone"}},
			{"limit", t0, end, nil, 2, []string{"__name__", "instance"}},
			{"matcher", t0, end, []*ingesterpb.LabelMatcher{matcher(eq, "__name__", "up")}, 0, []string{"__name__", "instance", "job"}},
			{"regexp", t0, end, []*ingesterpb.LabelMatcher{matcher(re, "job", "d.*")}, 0, []string{"__name__", "instance", "job", "zone"}},
			// The head answers names and values for its whole time range.
			{"after the head", end, end + 3600000, nil, 0, nil},
			{"empty range", end, t0, nil, 0, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := h.client.LabelNames(ctx, &ingesterpb.LabelNamesRequest{Tenant: "t", StartMs: tc.start, EndMs: tc.end, Matchers: tc.ms, Limit: tc.limit})
				require.NoError(t, err)
				require.Equal(t, tc.want, nilIfEmpty(resp.Names))
			})
		}
	})

	t.Run("label values", func(t *testing.T) {
		for _, tc := range []struct {
			name, label string
			start       int64
			ms          []*ingesterpb.LabelMatcher
			limit       int64
			want        []string
		}{
			{"metric names", "__name__", t0, nil, 0, []string{"go_goroutines", "late", "up"}},
			{"jobs", "job", t0, nil, 0, []string{"api", "batch", "db", "web"}},
			{"limit", "job", t0, nil, 2, []string{"api", "batch"}},
			{"matcher", "job", t0, []*ingesterpb.LabelMatcher{matcher(eq, "__name__", "go_goroutines")}, 0, []string{"api", "db"}},
			{"not equal", "job", t0, []*ingesterpb.LabelMatcher{matcher(neq, "__name__", "up")}, 0, []string{"api", "batch", "db"}},
			{"not regexp", "instance", t0, []*ingesterpb.LabelMatcher{matcher(nre, "job", "api|web")}, 0, []string{"1", "2"}},
			{"after the head", "job", end, nil, 0, nil},
			{"unknown label", "nope", t0, nil, 0, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := h.client.LabelValues(ctx, &ingesterpb.LabelValuesRequest{Tenant: "t", Name: tc.label, StartMs: tc.start, EndMs: end, Matchers: tc.ms, Limit: tc.limit})
				require.NoError(t, err)
				require.Equal(t, tc.want, nilIfEmpty(resp.Values))
			})
		}
	})

	t.Run("series", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			start int64
			ms    []*ingesterpb.LabelMatcher
			limit int64
			want  []string
		}{
			{"by name", t0, []*ingesterpb.LabelMatcher{matcher(eq, "__name__", "up")}, 0, []string{
				`{__name__="up", instance="1", job="api"}`, `{__name__="up", instance="1", job="db"}`, `{__name__="up", instance="1", job="web"}`,
			}},
			{"limit", t0, []*ingesterpb.LabelMatcher{matcher(re, "__name__", ".+")}, 2, []string{
				`{__name__="go_goroutines", instance="1", job="api"}`, `{__name__="go_goroutines", instance="2", job="db", zone="b"}`,
			}},
			{"two matchers", t0, []*ingesterpb.LabelMatcher{matcher(re, "__name__", ".+"), matcher(eq, "job", "db")}, 0, []string{
				`{__name__="go_goroutines", instance="2", job="db", zone="b"}`, `{__name__="up", instance="1", job="db"}`,
			}},
			{"time range", t0 + 300000, []*ingesterpb.LabelMatcher{matcher(re, "__name__", ".+")}, 0, []string{`{__name__="late", job="batch"}`}},
			{"no match", t0, []*ingesterpb.LabelMatcher{matcher(eq, "__name__", "nope")}, 0, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				stream, err := h.client.Series(ctx, &ingesterpb.SeriesRequest{Tenant: "t", StartMs: tc.start, EndMs: end, Matchers: tc.ms, Limit: tc.limit})
				require.NoError(t, err)
				var got []string
				for {
					resp, err := stream.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					require.NoError(t, err)
					for _, ls := range resp.Series {
						got = append(got, labelString(ls.Labels))
					}
				}
				require.Equal(t, tc.want, got)
			})
		}
	})

	t.Run("query stream limit and matchers", func(t *testing.T) {
		got, err := h.queryLimit("t", t0, end, 2, matcher(re, "job", "api|db|web"))
		require.NoError(t, err)
		require.Len(t, got, 2)
		require.Equal(t, `{__name__="go_goroutines", instance="1", job="api"}`, got[0].labels)
		require.Len(t, h.query("t", t0, end), 6, "no matchers: every series")
	})

	t.Run("invalid matcher", func(t *testing.T) {
		_, err := h.queryLimit("t", t0, end, 0, matcher(re, "job", "(unclosed"))
		code, det := errDetails(t, err)
		require.Equal(t, codes.InvalidArgument, code)
		require.Equal(t, ingesterpb.ErrorClass_ERROR_CLASS_BAD_INPUT, det.Class)
		_, err = h.client.LabelValues(ctx, &ingesterpb.LabelValuesRequest{Tenant: "t", Name: "job", EndMs: end, Matchers: []*ingesterpb.LabelMatcher{matcher(re, "job", "(")}})
		code, _ = errDetails(t, err)
		require.Equal(t, codes.InvalidArgument, code)
	})
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// TestQueryStreamBatches checks that many series arrive in several messages
// and none is lost or repeated at the seams.
func TestQueryStreamBatches(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	const n = 3*maxSeriesPerMessage + 7
	var series []*ingesterpb.TimeSeries
	for k := range n {
		series = append(series, floats(lbls("__name__", "m", "k", strings.Repeat("x", k%5)+string(rune('a'+k%26))+string(rune('0'+k/26%10))+string(rune('A'+k/260))), float64(t0), float64(k)))
	}
	h.mustPush("t", series...)

	stream, err := h.client.QueryStream(context.Background(), &ingesterpb.QueryRequest{Tenant: "t", StartMs: t0, EndMs: t0, Matchers: []*ingesterpb.LabelMatcher{matcher(eq, "__name__", "m")}})
	require.NoError(t, err)
	var messages int
	seen := map[string]bool{}
	prev := ""
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		messages++
		require.LessOrEqual(t, len(resp.Series), maxSeriesPerMessage)
		for _, s := range resp.Series {
			ls := labelString(s.Labels)
			require.False(t, seen[ls], "series %s sent twice", ls)
			require.Less(t, prev, ls, "series not sorted")
			seen[ls], prev = true, ls
			require.Len(t, s.Chunks, 1)
		}
	}
	require.Len(t, seen, n)
	require.Equal(t, 4, messages)
}

func TestMetrics(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	h.mustPush("tenant-a", floats(lbls("__name__", "a"), float64(t0), 1), floats(lbls("__name__", "b"), float64(t0), 1))
	h.mustPush("tenant-b", floats(lbls("__name__", "a"), float64(t0), 1))
	_, err := h.push("tenant-b", floats(lbls("__name__", "a"), float64(t0), 2))
	require.Error(t, err)

	const want = `
# HELP strata_ingester_active_series Series in the tenant's TSDB head (in memory).
# TYPE strata_ingester_active_series gauge
strata_ingester_active_series{tenant="tenant-a"} 2
strata_ingester_active_series{tenant="tenant-b"} 1
# HELP strata_ingester_samples_appended_total Samples appended to tenant TSDBs, by type (float or histogram).
# TYPE strata_ingester_samples_appended_total counter
strata_ingester_samples_appended_total{type="float"} 3
strata_ingester_samples_appended_total{type="histogram"} 0
# HELP strata_ingester_tenants Tenants with an open TSDB.
# TYPE strata_ingester_tenants gauge
strata_ingester_tenants 2
`
	require.NoError(t, testutil.GatherAndCompare(h.reg, strings.NewReader(want),
		"strata_ingester_active_series", "strata_ingester_samples_appended_total", "strata_ingester_tenants"))
	require.Equal(t, 1.0, testutil.ToFloat64(h.ing.metrics.samplesRejected[reasonDuplicate]))

	families, err := h.reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range families {
		names[mf.GetName()] = true
	}
	for _, name := range []string{"strata_ingester_wal_bytes", "strata_ingester_push_duration_seconds", "strata_ingester_tsdb_head_chunks", "strata_ingester_tsdb_compactions_failed_total"} {
		require.True(t, names[name], "missing %s", name)
	}
}

// TestQueryWhileAppending streams a series while it is being appended to:
// with -race this proves the open head chunk is copied, not aliased, and
// every answer is a consistent prefix of what was pushed.
func TestQueryWhileAppending(t *testing.T) {
	h := start(t, defaultConfig(t), t.TempDir())
	ls := lbls("__name__", "up", "job", "a")
	const n = 400
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k := range n {
			if _, err := h.push("t", floats(ls, float64(t0+int64(k)*1000), float64(k))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for reads := 0; ; reads++ {
		select {
		case <-done:
			got := h.query("t", t0, t0+n*1000)
			require.Len(t, got[0].samples, n)
			return
		default:
		}
		for _, s := range h.query("t", t0, t0+n*1000) {
			for k, smp := range s.samples {
				require.Equal(t, t0+int64(k)*1000, smp.t)
				require.Equal(t, float64(k), smp.f)
			}
		}
		require.Less(t, reads, 100000, "bounded loop")
	}
}
