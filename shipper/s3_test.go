package shipper

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucket"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/internal/procs"
)

// Shipping through a real S3-compatible server: a block not yet in the
// bucket is a 404 there, which must read as "upload it".
func TestSyncS3(t *testing.T) {
	s3 := procs.StartS3T(t)
	reg := prometheus.NewRegistry()
	bkt, err := bucket.New(bucket.Config{Backend: bucket.S3, S3: bucket.S3Config{
		Endpoint: s3.Endpoint, BucketName: s3.Bucket, Region: s3.Region, Insecure: true,
		AccessKeyID: s3.AccessKey, SecretAccessKey: bucket.Secret(s3.SecretKey),
	}}, "ingester", reg, nil)
	require.NoError(t, err)
	defer bkt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	dir := t.TempDir()
	ids := []any{writeBlock(t, dir, 0, 3), writeBlock(t, dir, 2*time.Hour.Milliseconds(), 3)}
	counting := &countingBucket{Bucket: bkt, failOnce: "/index"}
	s := newShipper(t, dir, counting, nil, nil)
	n, err := s.Sync(ctx)
	require.ErrorContains(t, err, "injected failure")
	require.Equal(t, 1, n, "the other block shipped")
	n, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the failed one retried")

	tb := objstore.NewPrefixedBucket(bkt, tenantID)
	var got []any
	require.NoError(t, tb.Iter(ctx, "", func(name string) error {
		if name == bucketindex.IndexFilename {
			return nil
		}
		id, ok := block.ParseDir(name)
		require.True(t, ok, name)
		m, err := block.ReadMeta(ctx, tb, id)
		require.NoError(t, err)
		require.NoError(t, block.Download(ctx, tb, m, t.TempDir()))
		got = append(got, id)
		return nil
	}))
	require.ElementsMatch(t, ids, got)

	uploads := counting.uploads()
	n, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, uploads, counting.uploads())

	// Asking about blocks not in the bucket yet is no failed operation.
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "strata_objstore_bucket_operation_failures_total" {
			for _, m := range mf.GetMetric() {
				require.Zero(t, m.GetCounter().GetValue(), "%v", m.GetLabel())
			}
		}
	}
}
