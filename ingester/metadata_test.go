package ingester

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/proto/ingesterpb"
	"github.com/strata-metrics/strata/remotewrite"
)

// md is a metadata entry of family with help; counter, no unit.
func md(family, help string) remotewrite.Metadata {
	return remotewrite.Metadata{Type: remotewrite.MetricTypeCounter, FamilyName: family, Help: help}
}

// helps lists the stored entries as "family:help", in list order.
func helps(ms []*ingesterpb.MetricMetadata) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.MetricFamilyName+":"+m.Help)
	}
	return out
}

func TestMetadataStoreUpdate(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxFamilies int
		perMetric   int
		pushes      [][]remotewrite.Metadata
		want        []string
		updated     int // summed over the pushes
		dropped     int
		evicted     int
	}{
		{
			name: "one entry per family", maxFamilies: 10, perMetric: 10,
			pushes:  [][]remotewrite.Metadata{{md("a", "A."), md("b", "B.")}},
			want:    []string{"a:A.", "b:B."},
			updated: 2,
		},
		{
			name: "unchanged resend changes nothing", maxFamilies: 10, perMetric: 10,
			pushes:  [][]remotewrite.Metadata{{md("a", "A.")}, {md("a", "A.")}, {md("a", "A.")}},
			want:    []string{"a:A."},
			updated: 1,
		},
		{
			name: "exporters disagreeing on help both kept, newest first", maxFamilies: 10, perMetric: 10,
			pushes:  [][]remotewrite.Metadata{{md("a", "Old.")}, {md("a", "New.")}},
			want:    []string{"a:New.", "a:Old."},
			updated: 2,
		},
		{
			name: "type and unit make entries distinct", maxFamilies: 10, perMetric: 10,
			pushes: [][]remotewrite.Metadata{{
				md("a", "A."),
				{Type: remotewrite.MetricTypeGauge, FamilyName: "a", Help: "A."},
				{Type: remotewrite.MetricTypeCounter, FamilyName: "a", Help: "A.", Unit: "seconds"},
			}},
			want:    []string{"a:A.", "a:A.", "a:A."},
			updated: 3,
		},
		{
			name: "resend of an older entry moves it to the front", maxFamilies: 10, perMetric: 10,
			pushes:  [][]remotewrite.Metadata{{md("a", "1."), md("a", "2."), md("a", "3.")}, {md("a", "1.")}},
			want:    []string{"a:1.", "a:3.", "a:2."},
			updated: 3,
		},
		{
			name: "beyond the per-metric limit the least recently seen is evicted", maxFamilies: 10, perMetric: 2,
			pushes:  [][]remotewrite.Metadata{{md("a", "1."), md("a", "2.")}, {md("a", "1.")}, {md("a", "3."), md("b", "B.")}},
			want:    []string{"a:3.", "a:1.", "b:B."},
			updated: 4,
			evicted: 1,
		},
		{
			name: "per-metric limit of one is latest wins", maxFamilies: 10, perMetric: 1,
			pushes:  [][]remotewrite.Metadata{{md("a", "1."), md("a", "2."), md("a", "3.")}},
			want:    []string{"a:3."},
			updated: 3,
			evicted: 2,
		},
		{
			name: "no per-metric limit", maxFamilies: 10, perMetric: 0,
			pushes:  [][]remotewrite.Metadata{{md("a", "1."), md("a", "2."), md("a", "3.")}},
			want:    []string{"a:3.", "a:2.", "a:1."},
			updated: 3,
		},
		{
			name: "family limit drops new families, not new entries", maxFamilies: 1, perMetric: 10,
			pushes:  [][]remotewrite.Metadata{{md("a", "1."), md("b", "B.")}, {md("a", "2."), md("c", "C.")}},
			want:    []string{"a:2.", "a:1."},
			updated: 2,
			dropped: 2,
		},
		{
			name: "no family name ignored", maxFamilies: 10, perMetric: 10,
			pushes:  [][]remotewrite.Metadata{{md("", "X.")}},
			updated: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s metadataStore
			evicted := 0
			s.init(tc.maxFamilies, tc.perMetric, func(n int) { evicted += n })
			updated, dropped := 0, 0
			for _, p := range tc.pushes {
				u, d := s.update(p)
				updated += u
				dropped += d
			}
			require.Equal(t, tc.want, helps(s.list("", 0, 0)))
			require.Equal(t, tc.updated, updated, "updated")
			require.Equal(t, tc.dropped, dropped, "dropped")
			require.Equal(t, tc.evicted, evicted, "evicted")
		})
	}
}

func TestMetadataStoreList(t *testing.T) {
	var s metadataStore
	s.init(10, 10, nil)
	s.update([]remotewrite.Metadata{md("c", "C."), md("a", "A1."), md("a", "A2."), md("a", "A3."), md("b", "B1."), md("b", "B2.")})
	for _, tc := range []struct {
		name             string
		metric           string
		limit, perMetric int
		want             []string
	}{
		{"all", "", 0, 0, []string{"a:A3.", "a:A2.", "a:A1.", "b:B2.", "b:B1.", "c:C."}},
		{"limit counts families", "", 2, 0, []string{"a:A3.", "a:A2.", "a:A1.", "b:B2.", "b:B1."}},
		{"limit per metric keeps the newest", "", 0, 1, []string{"a:A3.", "b:B2.", "c:C."}},
		{"both", "", 1, 2, []string{"a:A3.", "a:A2."}},
		{"one family", "b", 0, 0, []string{"b:B2.", "b:B1."}},
		{"one family, limit per metric", "a", 0, 2, []string{"a:A3.", "a:A2."}},
		{"unknown family", "x", 0, 0, nil},
		{"negative means no limit", "", -1, -1, []string{"a:A3.", "a:A2.", "a:A1.", "b:B2.", "b:B1.", "c:C."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, helps(s.list(tc.metric, tc.limit, tc.perMetric)))
		})
	}
}

func TestMetadataStoreSetLimits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perMetric int
		want      []string
	}{
		{"lowered trims the least recently seen", 2, []string{"a:3.", "a:2.", "b:B."}},
		{"raised keeps all", 5, []string{"a:3.", "a:2.", "a:1.", "b:B."}},
		{"no limit keeps all", 0, []string{"a:3.", "a:2.", "a:1.", "b:B."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s metadataStore
			s.init(10, 3, nil)
			s.update([]remotewrite.Metadata{md("a", "1."), md("a", "2."), md("a", "3."), md("b", "B.")})
			s.setLimits(10, tc.perMetric)
			require.Equal(t, tc.want, helps(s.list("", 0, 0)))
			s.update([]remotewrite.Metadata{md("a", "4.")})
			got := helps(s.list("a", 0, 0))
			require.Equal(t, "a:4.", got[0])
			if tc.perMetric > 0 {
				require.LessOrEqual(t, len(got), tc.perMetric)
			}
		})
	}
}

// view returns a string sharing b's memory, as remotewrite.Decode gives.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// TestMetadataStoreStringsOwned checks that stored strings do not alias
// the pushed body, which the next decode overwrites.
func TestMetadataStoreStringsOwned(t *testing.T) {
	var s metadataStore
	s.init(10, 10, nil)
	buf := []byte("fam help unit")
	s.update([]remotewrite.Metadata{{Type: remotewrite.MetricTypeGauge, FamilyName: view(buf[0:3]), Help: view(buf[4:8]), Unit: view(buf[9:13])}})
	s.update([]remotewrite.Metadata{{Type: remotewrite.MetricTypeGauge, FamilyName: view(buf[0:3]), Help: "other", Unit: view(buf[9:13])}})
	copy(buf, "XXXXXXXXXXXXX")
	got := s.list("", 0, 0)
	require.Equal(t, []string{"fam:other", "fam:help"}, helps(got))
	require.Equal(t, "unit", got[0].Unit)
	require.Equal(t, "unit", got[1].Unit)
}

// TestMetadataStoreResendAllocs: the periodic resend of metadata the store
// has, in any order of entries, allocates nothing.
func TestMetadataStoreResendAllocs(t *testing.T) {
	var s metadataStore
	s.init(1000, 10, func(int) {})
	push := metadataPush(100, 3)
	s.update(push)
	if n := testing.AllocsPerRun(100, func() { s.update(push) }); n != 0 {
		t.Fatalf("resend allocates %v times, want 0", n)
	}
}

// metadataPush returns families × entries metadata entries, each family's
// entries differing in help (exporters disagreeing).
func metadataPush(families, entries int) []remotewrite.Metadata {
	var out []remotewrite.Metadata
	for f := range families {
		for e := range entries {
			out = append(out, remotewrite.Metadata{Type: remotewrite.MetricTypeCounter, FamilyName: fmt.Sprintf("metric_%d_total", f), Help: fmt.Sprintf("Help %d.", e), Unit: "seconds"})
		}
	}
	return out
}

func BenchmarkMetadataStoreResend(b *testing.B) {
	for _, entries := range []int{1, 3} {
		b.Run(fmt.Sprintf("entries=%d", entries), func(b *testing.B) {
			var s metadataStore
			s.init(10000, 10, func(int) {})
			push := metadataPush(1000, entries)
			s.update(push)
			b.ReportAllocs()
			for b.Loop() {
				s.update(push)
			}
		})
	}
}

// TestMetadataPerMetricOverride: max_metadata_per_metric is per tenant,
// follows the overrides file on the next push, evictions are counted by
// tenant and reason, and the Metadata RPC gives every entry.
func TestMetadataPerMetricOverride(t *testing.T) {
	def := limitsDefaults(t)
	h, ovr, file := startLimited(t, t.TempDir(), def, "overrides:\n  a:\n    max_metadata_per_metric: 2\n", nil)
	ctx := context.Background()
	push := func(tenantID string, helps ...string) {
		t.Helper()
		wr := &ingesterpb.WriteRequest{}
		for _, help := range helps {
			wr.Metadata = append(wr.Metadata, &ingesterpb.MetricMetadata{Type: ingesterpb.MetricMetadata_COUNTER, MetricFamilyName: "m_total", Help: help})
		}
		_, err := h.pushRequest(tenantID, wr)
		require.NoError(t, err)
	}
	get := func(req *ingesterpb.MetadataRequest) []string {
		t.Helper()
		resp, err := h.client.Metadata(ctx, req)
		require.NoError(t, err)
		return helps(resp.Metadata)
	}
	push("a", "1.", "2.", "3.")
	push("b", "1.", "2.", "3.")
	require.Equal(t, []string{"m_total:3.", "m_total:2."}, get(&ingesterpb.MetadataRequest{Tenant: "a"}))
	require.Equal(t, []string{"m_total:3.", "m_total:2.", "m_total:1."}, get(&ingesterpb.MetadataRequest{Tenant: "b"}), "b keeps the flag's 10")
	require.Equal(t, []string{"m_total:3."}, get(&ingesterpb.MetadataRequest{Tenant: "b", LimitPerMetric: 1}))
	require.Equal(t, []string{"m_total:3.", "m_total:2."}, get(&ingesterpb.MetadataRequest{Tenant: "b", Metric: "m_total", LimitPerMetric: 2}))

	const want = `# HELP strata_ingester_discarded_metadata_total Metric family metadata not kept, by tenant and reason (per_user_metadata_limit: the tenant has max_metadata_per_user families, -ingester.max-metadata-per-tenant; per_metric_metadata_limit: a new entry evicted the least recently seen of a family with max_metadata_per_metric entries, -ingester.max-metadata-per-metric).
# TYPE strata_ingester_discarded_metadata_total counter
strata_ingester_discarded_metadata_total{reason="per_metric_metadata_limit",tenant="a"} 1
`
	require.NoError(t, testutil.GatherAndCompare(h.reg, strings.NewReader(want), "strata_ingester_discarded_metadata_total"))

	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  a:\n    max_metadata_per_metric: 1\n"), 0o644))
	require.NoError(t, ovr.Load())
	push("a", "4.")
	require.Equal(t, []string{"m_total:4."}, get(&ingesterpb.MetadataRequest{Tenant: "a"}))
}
