package bucketindex

import (
	"context"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }

// uploadBlock writes a real TSDB block of two series with samples every
// 15s in [mint, mint+1h) and uploads it to tenant's prefix of bkt.
func uploadBlock(t *testing.T, bkt objstore.Bucket, tenant string, mint int64) *block.Meta {
	t.Helper()
	var series []storage.Series
	for i := range 2 {
		var s []chunks.Sample
		for ts := mint; ts < mint+time.Hour.Milliseconds(); ts += 15000 {
			s = append(s, sample{t: ts, f: float64(i)})
		}
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "m", "i", string(rune('a'+i))), s))
	}
	dir, err := tsdb.CreateBlock(series, t.TempDir(), 2*time.Hour.Milliseconds(), promslog.NewNopLogger())
	require.NoError(t, err)
	m, err := block.Upload(context.Background(), objstore.NewPrefixedBucket(bkt, tenant), dir, block.Ext{Tenant: tenant, Source: block.SourceIngester, Ingester: "ing-1"})
	require.NoError(t, err)
	return m
}

func put(t *testing.T, bkt objstore.Bucket, name, body string) {
	t.Helper()
	require.NoError(t, bkt.Upload(context.Background(), name, strings.NewReader(body)))
}

func del(t *testing.T, bkt objstore.Bucket, name string) {
	t.Helper()
	require.NoError(t, bkt.Delete(context.Background(), name))
}

func objName(tenant string, id ulid.ULID, file string) string {
	return path.Join(tenant, id.String(), file)
}

// clock is a settable test clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testID returns a fixed ULID numbered n.
func testID(n byte) ulid.ULID {
	var id ulid.ULID
	id[0], id[15] = 1, n
	return id
}
