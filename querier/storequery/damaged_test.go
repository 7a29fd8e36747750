package storequery

import (
	"context"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/ring"
)

func ingesterCopy(id uint64, ingester string, mint, maxt int64) bucketindex.BlockRef {
	return bucketindex.BlockRef{ID: ulid.MustNew(id, nil), MinTime: mint, MaxTime: maxt, Source: block.SourceIngester, Ingester: ingester}
}

func TestCoveredByCopies(t *testing.T) {
	const h2 = 2 * 3600 * 1000
	a, b, c := ingesterCopy(1, "ing-a", 0, h2), ingesterCopy(2, "ing-b", 0, h2), ingesterCopy(3, "ing-c", 0, h2)
	bLate := ingesterCopy(4, "ing-b", 600_000, h2) // ing-b's copy, from its first sample on
	next := ingesterCopy(5, "ing-b", h2, 2*h2)     // the next range: not a copy
	aAgain := ingesterCopy(6, "ing-a", 0, h2)      // a second block of ing-a in the range
	merged := bucketindex.BlockRef{ID: ulid.MustNew(7, nil), MinTime: 0, MaxTime: h2, Source: block.SourceCompactor, CompactionLevel: 2}
	failed := func(bs ...bucketindex.BlockRef) map[ulid.ULID]bool {
		m := map[ulid.ULID]bool{}
		for _, b := range bs {
			m[b.ID] = true
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		bad    bucketindex.BlockRef
		blocks []bucketindex.BlockRef
		failed map[ulid.ULID]bool
		rf     int
		want   bool
	}{
		{"rf 2: the other copy covers", a, []bucketindex.BlockRef{a, b}, failed(a), 2, true},
		{"rf 2: a copy starting later still covers", a, []bucketindex.BlockRef{a, bLate}, failed(a), 2, true},
		{"rf 2: both copies damaged", a, []bucketindex.BlockRef{a, b}, failed(a, b), 2, false},
		{"rf 2: no other copy", a, []bucketindex.BlockRef{a, next}, failed(a), 2, false},
		{"rf 3: two others served cover one", a, []bucketindex.BlockRef{a, b, c}, failed(a), 3, true},
		{"rf 3: one other copy is not enough", a, []bucketindex.BlockRef{a, b}, failed(a), 3, false},
		{"rf 3: two damaged copies are not covered", a, []bucketindex.BlockRef{a, b, c}, failed(a, b), 3, false},
		{"rf 3: another copy failed otherwise", a, []bucketindex.BlockRef{a, b, c}, failed(a, c), 3, false},
		{"rf 2: the damaged ingester's other block does not count", a, []bucketindex.BlockRef{a, aAgain}, failed(a), 2, false},
		{"rf 1: never", a, []bucketindex.BlockRef{a, b}, failed(a), 1, false},
		{"rf unknown: never", a, []bucketindex.BlockRef{a, b}, failed(a), 0, false},
		{"a compactor's block is never skipped", merged, []bucketindex.BlockRef{merged, a, b}, failed(merged), 2, false},
		{"a compactor's block is not a copy", a, []bucketindex.BlockRef{a, merged}, failed(a), 2, false},
		{"no ingester named", bucketindex.BlockRef{ID: a.ID, MaxTime: h2, Source: block.SourceIngester}, []bucketindex.BlockRef{a, b}, failed(a), 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := coveredByCopies(tc.bad, tc.blocks, tc.failed, tc.rf)
			require.Equal(t, tc.want, got, why)
		})
	}
}

// A block one store-gateway fails alone is retried alone on the other
// replica; a damaged one is not retried, and is skipped only when other
// ingesters' copies of its range were served.
func TestFetchPerBlockErrors(t *testing.T) {
	r := staticRing{
		{ID: "a", Addr: "a:1", State: ring.Active, Tokens: []uint32{1 << 30, 3 << 30}},
		{ID: "b", Addr: "b:1", State: ring.Active, Tokens: []uint32{2 << 30, 4<<30 - 1}},
	}
	const h2 = 2 * 3600 * 1000
	copyA, copyB := ingesterCopy(1, "ing-a", 0, h2), ingesterCopy(2, "ing-b", 0, h2)
	other := ingesterCopy(3, "ing-a", h2, 2*h2)
	blocks := []bucketindex.BlockRef{copyA, copyB, other}
	lister := bucketindex.BlockListerFunc(func(context.Context, string, int64, int64) ([]bucketindex.BlockRef, error) { return blocks, nil })
	bad := copyA.ID.String()
	for _, tc := range []struct {
		name        string
		code        codes.Code // of block copyA on every store-gateway
		rf          int
		wantErr     string
		wantSkipped float64
		wantAsked   int // times copyA was asked for
	}{
		{"damaged copy skipped: the other is served", codes.DataLoss, 2, "", 1, 1},
		{"damaged copy fails without the replication factor", codes.DataLoss, 0, "block " + bad + " is damaged", 0, 1},
		{"damaged copy fails with rf 3 and one other copy", codes.DataLoss, 3, "block " + bad + " is damaged", 0, 1},
		{"other failures are retried, then fail the block alone", codes.Internal, 2, "1 block(s) of tenant t1 not served; block " + bad + ":", 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := map[string]codes.Code{bad: tc.code}
			clients := fakeClients{"a:1": {name: "a", blockErrs: errs}, "b:1": {name: "b", blockErrs: errs}}
			reg := prometheus.NewRegistry()
			c := New(Deps{Blocks: lister, Sharder: ring.NewBlockSharder(r, ring.Config{ReplicationFactor: 2}, nowFunc), Clients: clients, IngesterReplicationFactor: tc.rf, Reg: reg})
			got, err := c.LabelNames(context.Background(), "t1", 0, 2*h2, nil, 0)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				var ue *UnavailableError
				require.ErrorAs(t, err, &ue)
				require.Len(t, ue.Blocks, 1, "only the failing block is blamed")
				require.Equal(t, copyA.ID, ue.Blocks[0].ID)
				require.Equal(t, tc.code == codes.DataLoss, ue.DataLoss())
				require.Equal(t, tc.code, status.Code(ue.Blocks[0].Attempts[0].Err))
			} else {
				require.NoError(t, err)
				require.NotEmpty(t, got)
			}
			asked := 0
			for _, g := range clients {
				for _, id := range g.blocks {
					if id == bad {
						asked++
					}
				}
			}
			require.Equal(t, tc.wantAsked, asked, "times the failing block was asked for")
			require.Equal(t, tc.wantSkipped, testutil.ToFloat64(c.m.blocksSkipped))
			// The other blocks were each asked once.
			require.Equal(t, float64(tc.wantAsked-1), testutil.ToFloat64(c.m.blockRetries))
		})
	}
}
