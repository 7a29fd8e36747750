package bucket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	"github.com/strata-metrics/strata/internal/procs"
)

// backends are the bucket configurations every test here runs against:
// the default filesystem bucket and a real S3-compatible server.
var backends = []struct {
	name string
	cfg  func(t *testing.T) Config
}{
	{"filesystem", func(t *testing.T) Config {
		c := defaults(t)
		c.Resolve(t.TempDir())
		return c
	}},
	{"s3", func(t *testing.T) Config {
		s := procs.StartS3T(t)
		return defaults(t, "-blocks-storage.backend=s3",
			"-blocks-storage.s3.endpoint="+s.Endpoint, "-blocks-storage.s3.bucket-name="+s.Bucket,
			"-blocks-storage.s3.region="+s.Region, "-blocks-storage.s3.insecure",
			"-blocks-storage.s3.access-key-id="+s.AccessKey, "-blocks-storage.s3.secret-access-key="+s.SecretKey,
			"-blocks-storage.s3.bucket-lookup-type=path")
	}},
}

func openT(t *testing.T, cfg Config, reg prometheus.Registerer) objstore.InstrumentedBucket {
	t.Helper()
	bkt, err := New(cfg, "test", reg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { bkt.Close() })
	return bkt
}

func TestObjects(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			reg := prometheus.NewRegistry()
			bkt := openT(t, be.cfg(t), reg)

			body := []byte("0123456789abcdef")
			for _, name := range []string{"t1/a/obj", "t1/a/other", "t1/b", "t2/x", "top-level-file"} {
				require.NoError(t, bkt.Upload(ctx, name, bytes.NewReader(body)), name)
			}

			r, err := bkt.Get(ctx, "t1/a/obj")
			require.NoError(t, err)
			require.Equal(t, body, readAll(t, r))
			r, err = bkt.GetRange(ctx, "t1/a/obj", 4, 6)
			require.NoError(t, err)
			require.Equal(t, "456789", string(readAll(t, r)))
			attrs, err := bkt.Attributes(ctx, "t1/a/obj")
			require.NoError(t, err)
			require.Equal(t, int64(len(body)), attrs.Size)

			_, err = bkt.Get(ctx, "t1/missing")
			require.True(t, bkt.IsObjNotFoundErr(err), "%v", err)
			ok, err := bkt.Exists(ctx, "t1/missing")
			require.NoError(t, err)
			require.False(t, ok)

			require.ElementsMatch(t, []string{"t1/a/", "t1/b"}, iter(t, bkt, "t1/"), "S3 servers need not list in order")
			require.ElementsMatch(t, []string{"t1/a/obj", "t1/a/other", "t1/b"}, iter(t, bkt, "t1/", objstore.WithRecursiveIter()))

			// An upload that breaks off leaves no object, as in an object
			// store (the filesystem bucket writes aside and renames).
			broken := io.MultiReader(bytes.NewReader(body), iotest.ErrReader(errors.New("connection lost")))
			require.Error(t, bkt.Upload(ctx, "t3/broken", broken))
			ok, err = bkt.Exists(ctx, "t3/broken")
			require.NoError(t, err)
			require.False(t, ok)

			tenants, err := Tenants(ctx, bkt)
			require.NoError(t, err)
			require.Equal(t, []string{"t1", "t2"}, tenants, "files at the top level are not tenants, nor are empty prefixes")

			require.NoError(t, bkt.Delete(ctx, "t1/a/obj"))
			ok, err = bkt.Exists(ctx, "t1/a/obj")
			require.NoError(t, err)
			require.False(t, ok)

			require.Equal(t, 6.0, opsCount(t, reg, "upload"), "uploads counted with component and operation labels")
		})
	}
}

// A block uploaded under a tenant's prefix comes back whole and opens as a
// TSDB block.
func TestBlockRoundTrip(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			bkt := openT(t, be.cfg(t), nil)
			tb := objstore.NewPrefixedBucket(bkt, "tenant-a")

			src := testBlock(t, t.TempDir(), 20)
			up, err := block.Upload(ctx, tb, src, block.Ext{Tenant: "tenant-a", Source: block.SourceIngester, Ingester: "ing-1"})
			require.NoError(t, err)

			got, err := block.ReadMeta(ctx, tb, up.ULID)
			require.NoError(t, err)
			require.Equal(t, up, got)
			dst := filepath.Join(t.TempDir(), got.ULID.String())
			require.NoError(t, block.Download(ctx, tb, got, dst))
			b, err := tsdb.OpenBlock(nil, dst, nil, nil)
			require.NoError(t, err)
			require.Equal(t, uint64(20), b.Meta().Stats.NumSeries)
			require.Equal(t, up.Stats.NumSamples, b.Meta().Stats.NumSamples)
			require.NoError(t, b.Close())

			tenants, err := Tenants(ctx, bkt)
			require.NoError(t, err)
			require.Equal(t, []string{"tenant-a"}, tenants)

			require.NoError(t, block.Delete(ctx, tb, up.ULID))
			_, err = block.ReadMeta(ctx, tb, up.ULID)
			require.True(t, block.IsNotFound(err), "%v", err)
			require.Empty(t, iter(t, bkt, "tenant-a/", objstore.WithRecursiveIter()))
		})
	}
}

func readAll(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}

func iter(t *testing.T, bkt objstore.BucketReader, dir string, opts ...objstore.IterOption) []string {
	t.Helper()
	var names []string
	require.NoError(t, bkt.Iter(context.Background(), dir, func(name string) error {
		names = append(names, name)
		return nil
	}, opts...))
	return names
}

// opsCount is strata_objstore_bucket_operations_total{component="test",operation=op}.
func opsCount(t *testing.T, reg *prometheus.Registry, op string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "strata_objstore_bucket_operations_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var component, operation string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "component":
					component = l.GetValue()
				case "operation":
					operation = l.GetValue()
				}
			}
			if component == "test" && operation == op {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no strata_objstore_bucket_operations_total{component=\"test\",operation=%q}", op)
	return 0
}

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

// testBlock writes a real TSDB block of n series × 120 samples into dir.
func testBlock(t *testing.T, dir string, n int) string {
	t.Helper()
	var series []storage.Series
	for i := range n {
		var s []chunks.Sample
		for j := range 120 {
			s = append(s, sample{t: int64(j) * 15000, f: float64(i*1000 + j)})
		}
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "m", "i", strings.Repeat("x", i+1)), s))
	}
	bdir, err := tsdb.CreateBlock(series, dir, 2*time.Hour.Milliseconds(), promslog.NewNopLogger())
	require.NoError(t, err)
	return bdir
}
