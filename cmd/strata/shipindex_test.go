package main

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// In -target=all a block the ingester ships is queryable from the store
// path as soon as the shipping returns: the shipper adds it to the bucket
// index and the querier's loader reloads it, with neither the compactor's
// next run nor the loader's next reload in between. The querier asks the
// ingester only for the last minute, so before the flush the store path
// has nothing and the query is empty.
func TestStackShippedBlockQueryableAtOnce(t *testing.T) {
	s := startStack(t, t.TempDir(), "-querier.query-store-after=0", "-querier.query-ingesters-within=1m")
	d := makeTestData(time.Now())
	d.series = d.series[:4]
	push(t, s.base, d)
	at := d.end.Add(-30 * time.Minute)
	query := func() []seriesJSON {
		return normalise(t, queryStrata(t, s.base, "/api/v1/query", url.Values{
			"query": {"count_over_time(http_requests_total[1h])"}, "time": {fmt.Sprint(at.Unix())},
		}).Result)
	}
	require.Empty(t, query(), "only the ingester has the samples, and it is not asked")

	resp, err := http.Post(s.base+"/ingester/flush", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	got := query()
	require.Len(t, got, 4, "the shipped block, found through the bucket index")
	want := 0
	for _, smp := range d.series[0].Samples {
		if smp.Timestamp > at.Add(-time.Hour).UnixMilli() && smp.Timestamp <= at.UnixMilli() {
			want++
		}
	}
	for _, sr := range got {
		require.Equal(t, fmt.Sprint(want), sr.Values[0][1], "series %v", sr.Metric)
	}
}

// An idle tenant's head reaches the store path on its own: with a short
// idle timeout the ingester cuts and ships it (and indexes it) without a
// flush or a new push.
func TestStackIdleHeadShipped(t *testing.T) {
	s := startStack(t, t.TempDir(), "-querier.query-store-after=0", "-querier.query-ingesters-within=1m",
		"-blocks-storage.tsdb.head-compaction-idle-timeout=1s", "-blocks-storage.tsdb.head-compaction-interval=1s")
	d := makeTestData(time.Now())
	d.series = d.series[:4]
	push(t, s.base, d)
	at := d.end.Add(-30 * time.Minute)
	var got []seriesJSON
	for k := 0; len(got) < 4; k++ {
		require.Less(t, k, 300, "no block of the idle head reached the store path")
		time.Sleep(100 * time.Millisecond)
		got = normalise(t, queryStrata(t, s.base, "/api/v1/query", url.Values{
			"query": {"count_over_time(http_requests_total[1h])"}, "time": {fmt.Sprint(at.Unix())},
		}).Result)
	}
}
