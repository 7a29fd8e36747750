package block

import (
	"context"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
)

// testBlock writes a real TSDB block of n series × 120 samples into dir.
func testBlock(t *testing.T, dir string, n int) string {
	t.Helper()
	var series []storage.Series
	for i := range n {
		var s []chunks.Sample
		for j := range 120 {
			s = append(s, sample{t: int64(j) * 15000, f: float64(i*1000 + j)})
		}
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "m", "i", string(rune('a'+i))), s))
	}
	bdir, err := tsdb.CreateBlock(series, dir, 2*time.Hour.Milliseconds(), promslog.NewNopLogger())
	require.NoError(t, err)
	return bdir
}

func TestUploadDownloadDelete(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	src := testBlock(t, t.TempDir(), 5)

	up, err := Upload(ctx, bkt, src, Ext{Tenant: "t1", Source: SourceIngester, Ingester: "ing-1"})
	require.NoError(t, err)
	require.NotEmpty(t, up.Strata.Files)
	require.Equal(t, IndexFilename, up.Strata.Files[len(up.Strata.Files)-1].Path, "index after chunks")

	got, err := ReadMeta(ctx, bkt, up.ULID)
	require.NoError(t, err)
	require.Equal(t, up, got)
	require.Equal(t, uint64(5), got.Stats.NumSeries)

	dst := filepath.Join(t.TempDir(), got.ULID.String())
	require.NoError(t, Download(ctx, bkt, got, dst))
	b, err := tsdb.OpenBlock(nil, dst, nil, nil)
	require.NoError(t, err)
	require.Equal(t, got.MinTime, b.Meta().MinTime)
	require.Equal(t, got.Stats.NumSamples, b.Meta().Stats.NumSamples)
	require.NoError(t, b.Close())
	local, err := ReadMetaFile(dst)
	require.NoError(t, err)
	require.Equal(t, "t1", local.Strata.Tenant)

	require.NoError(t, MarkForDeletion(ctx, bkt, got.ULID, "test", time.Unix(100, 0)))
	require.NoError(t, MarkForDeletion(ctx, bkt, got.ULID, "again", time.Unix(200, 0)))
	dm, err := ReadDeletionMark(ctx, bkt, got.ULID)
	require.NoError(t, err)
	require.Equal(t, int64(100), dm.DeletionTime, "the first mark's time counts")

	require.NoError(t, Delete(ctx, bkt, got.ULID))
	require.Empty(t, bkt.Objects())
	_, err = ReadMeta(ctx, bkt, got.ULID)
	require.True(t, IsNotFound(err), "%v", err)
	require.NoError(t, Delete(ctx, bkt, got.ULID), "deleting a deleted block")
}

// A block whose upload stopped before meta.json is partial: ReadMeta says
// not found, and a second upload completes it.
func TestPartialUploadInvisible(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	src := testBlock(t, t.TempDir(), 2)
	m, err := ReadMetaFile(src)
	require.NoError(t, err)

	failing := &failAfter{Bucket: bkt, n: 1}
	_, err = Upload(ctx, failing, src, Ext{Tenant: "t1", Source: SourceIngester})
	require.Error(t, err)
	_, err = ReadMeta(ctx, bkt, m.ULID)
	require.True(t, IsNotFound(err), "partial block must be invisible: %v", err)

	_, err = Upload(ctx, bkt, src, Ext{Tenant: "t1", Source: SourceIngester})
	require.NoError(t, err)
	_, err = ReadMeta(ctx, bkt, m.ULID)
	require.NoError(t, err)
}

func TestDownloadDetectsShortFile(t *testing.T) {
	ctx := context.Background()
	bkt := objstore.NewInMemBucket()
	m, err := Upload(ctx, bkt, testBlock(t, t.TempDir(), 2), Ext{Tenant: "t1"})
	require.NoError(t, err)
	require.NoError(t, bkt.Upload(ctx, path.Join(m.ULID.String(), IndexFilename), stringsReader("short")))
	err = Download(ctx, bkt, m, t.TempDir())
	require.ErrorContains(t, err, "meta.json says")
}

func TestParseDir(t *testing.T) {
	for name, ok := range map[string]bool{
		"01HZX3J1K9Q8S2V7W5Y4T6R0PA/":    true,
		"t1/01HZX3J1K9Q8S2V7W5Y4T6R0PA/": true,
		"01HZX3J1K9Q8S2V7W5Y4T6R0PA":     true,
		"bucket-index.json.gz":           false,
		"":                               false,
		"../x":                           false,
	} {
		_, got := ParseDir(name)
		require.Equal(t, ok, got, name)
	}
}
