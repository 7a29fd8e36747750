package bucketindex

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/block"
)

func putMeta(t *testing.T, bkt objstore.Bucket, tenantID string, id ulid.ULID, mint, maxt int64) {
	t.Helper()
	b, err := json.Marshal(block.Meta{BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: mint, MaxTime: maxt, Version: 1}, Strata: block.Ext{Tenant: tenantID}})
	require.NoError(t, err)
	require.NoError(t, bkt.Upload(context.Background(), tenantID+"/"+id.String()+"/meta.json", bytes.NewReader(b)))
}

func TestBucketLister(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	ids := make([]ulid.ULID, 5)
	for i := range ids {
		ids[i] = ulid.MustNew(uint64(i+1), nil)
	}
	putMeta(t, bkt, "t1", ids[0], 0, 100)
	putMeta(t, bkt, "t1", ids[1], 100, 200)
	putMeta(t, bkt, "t1", ids[2], 200, 300)
	putMeta(t, bkt, "t2", ids[3], 0, 300)
	// A partial block (no meta.json) and something that is not a tenant.
	require.NoError(t, bkt.Upload(ctx, "t1/"+ids[4].String()+"/index", bytes.NewReader([]byte("x"))))
	require.NoError(t, bkt.Upload(ctx, "not a tenant/x", bytes.NewReader([]byte("x"))))
	require.NoError(t, bkt.Upload(ctx, "top-level-object", bytes.NewReader([]byte("x"))))
	require.NoError(t, block.MarkForDeletion(ctx, objstore.NewPrefixedBucket(bkt, "t1"), ids[2], "test", time.Unix(1, 0)))

	l := NewBucketLister(bkt)
	tenants, err := l.Tenants(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"t1", "t2"}, tenants)
	for _, tc := range []struct {
		name       string
		tenant     string
		mint, maxt int64
		want       []ulid.ULID
	}{
		{"all, the marked and the partial left out", "t1", 0, 1000, ids[:2]},
		{"half-open max time", "t1", 100, 150, ids[1:2]},
		{"inclusive query end", "t1", 50, 100, ids[:2]},
		{"other tenant", "t2", 0, 1, ids[3:4]},
		{"no blocks", "t3", 0, 1000, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Blocks(ctx, tc.tenant, tc.mint, tc.maxt)
			require.NoError(t, err)
			var gotIDs []ulid.ULID
			for _, b := range got {
				gotIDs = append(gotIDs, b.ID)
			}
			require.Equal(t, tc.want, gotIDs)
		})
	}
	_, err = l.Blocks(ctx, "../t1", 0, 1)
	require.Error(t, err)
}

func TestIndexLister(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	now := time.Unix(10_000, 0)
	a, b := ulid.MustNew(1, nil), ulid.MustNew(2, nil)
	require.NoError(t, WriteIndex(ctx, bkt, "t1", &Index{
		Version: 1, UpdatedAt: now.Unix(),
		Blocks:        []Block{{ID: a, MinTime: 0, MaxTime: 100}, {ID: b, MinTime: 100, MaxTime: 200}},
		DeletionMarks: []DeletionMark{{ID: b, DeletionTime: now.Add(-2 * time.Hour).Unix()}},
	}))
	var cfg LoaderConfig
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.RegisterFlags(fs)
	l := IndexLister(NewLoader(cfg, bkt, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), func() time.Time { return now }))
	got, err := l.Blocks(ctx, "t1", 0, 1000)
	require.NoError(t, err)
	require.Equal(t, []BlockRef{{ID: a, MinTime: 0, MaxTime: 100}}, got, "b's mark is older than the delay")
	got, err = l.Blocks(ctx, "t2", 0, 1000)
	require.NoError(t, err)
	require.Empty(t, got, "no index yet: no blocks")
}
