package compactor

import (
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
)

func TestPlan(t *testing.T) {
	now := time.Unix(1_000_000_000, 0) // 2001-09-09 01:46:40 UTC
	nowMs := now.UnixMilli()
	const h = hourMs
	day := (nowMs/dayMs - 2) * dayMs // midnight two days ago
	id := func(n byte) ulid.ULID {
		var u ulid.ULID
		u[15] = n
		return u
	}
	ing := func(n byte, mint, maxt int64, uploadedAgo time.Duration) bucketindex.Block {
		return bucketindex.Block{ID: id(n), MinTime: mint, MaxTime: maxt, Source: block.SourceIngester, CompactionLevel: 1, UploadedAt: now.Add(-uploadedAgo).Unix()}
	}
	comp := func(n byte, mint, maxt int64) bucketindex.Block {
		return bucketindex.Block{ID: id(n), MinTime: mint, MaxTime: maxt, Source: block.SourceCompactor, CompactionLevel: 2, UploadedAt: now.Unix()}
	}
	p := &planner{ranges: []int64{2 * h, 12 * h, 24 * h}, firstLevelWait: 25 * time.Minute}
	for _, tc := range []struct {
		name  string
		live  []bucketindex.Block
		stage int
		now   int64 // ms; 0: now
		want  [][]byte
	}{
		{"three copies of a range", []bucketindex.Block{
			ing(3, day, day+2*h, time.Hour), ing(1, day, day+2*h, time.Hour), ing(2, day+1, day+2*h-5, time.Hour),
		}, 0, 0, [][]byte{{1, 2, 3}}},
		{"one block alone", []bucketindex.Block{ing(1, day, day+2*h, time.Hour)}, 0, 0, nil},
		{"a copy uploaded within the wait period", []bucketindex.Block{
			ing(1, day, day+2*h, time.Hour), ing(2, day, day+2*h, 10*time.Minute),
		}, 0, 0, nil},
		{"two ranges, oldest first", []bucketindex.Block{
			ing(4, day+2*h, day+4*h, time.Hour), ing(3, day+2*h, day+4*h, time.Hour),
			ing(1, day, day+2*h, time.Hour), ing(2, day, day+2*h, time.Hour),
		}, 0, 0, [][]byte{{1, 2}, {3, 4}}},
		{"a late copy joins a compacted block", []bucketindex.Block{
			comp(1, day, day+2*h), ing(2, day, day+2*h, time.Hour),
		}, 0, 0, [][]byte{{1, 2}}},
		{"a block across the range boundary waits for a wider stage", []bucketindex.Block{
			ing(1, day+h, day+3*h, time.Hour), ing(2, day, day+2*h, time.Hour),
		}, 0, 0, nil},
		{"the wider stage takes it", []bucketindex.Block{
			ing(1, day+h, day+3*h, time.Hour), ing(2, day, day+2*h, time.Hour),
		}, 1, 0, [][]byte{{1, 2}}},
		{"half day still receiving blocks", []bucketindex.Block{
			comp(1, day, day+2*h), comp(2, day+10*h, day+12*h),
		}, 1, day + 14*h - 1, nil},
		{"half day complete", []bucketindex.Block{
			comp(1, day, day+2*h), comp(2, day+10*h, day+12*h),
		}, 1, day + 14*h, [][]byte{{1, 2}}},
		{"a 12h block and a late 2h block", []bucketindex.Block{
			comp(1, day, day+12*h), ing(2, day+4*h, day+6*h, time.Hour),
		}, 1, 0, [][]byte{{1, 2}}},
		{"12h blocks wait for the day", []bucketindex.Block{
			comp(1, day, day+12*h), comp(2, day+12*h, day+24*h),
		}, 1, 0, nil},
		{"a day of two halves", []bucketindex.Block{
			comp(1, day, day+12*h), comp(2, day+12*h, day+24*h),
		}, 2, 0, [][]byte{{1, 2}}},
		{"negative times align down", []bucketindex.Block{
			ing(1, -2*h, -h, time.Hour), ing(2, -2*h+1, -1, time.Hour), ing(3, -h, 0, time.Hour),
		}, 0, 0, [][]byte{{1, 2, 3}}},
		{"negative times across zero", []bucketindex.Block{
			ing(1, -h, h, time.Hour), ing(2, -h, 0, time.Hour),
		}, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := now
			if tc.now != 0 {
				at = time.UnixMilli(tc.now)
			}
			var got [][]byte
			for _, g := range p.plan(tc.live, tc.stage, at) {
				var ns []byte
				for _, b := range g.blocks {
					ns = append(ns, b.ID[15])
					require.LessOrEqual(t, g.minT, b.MinTime)
					require.LessOrEqual(t, b.MaxTime, g.maxT)
				}
				got = append(got, ns)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestPlanNoWait(t *testing.T) {
	now := time.Unix(1_000_000_000, 0)
	p := &planner{ranges: []int64{2 * hourMs}}
	bs := []bucketindex.Block{
		{ID: ulid.ULID{1}, Source: block.SourceIngester, MaxTime: 10, UploadedAt: now.Add(time.Hour).Unix()},
		{ID: ulid.ULID{2}, Source: block.SourceIngester, MaxTime: 10, UploadedAt: now.Unix()},
	}
	require.Len(t, p.plan(bs, 0, now), 1, "a wait period of 0 does not look at upload times")
}

func TestFloorDiv(t *testing.T) {
	for _, tc := range []struct{ a, b, want int64 }{
		{7, 2, 3}, {6, 2, 3}, {0, 2, 0}, {-1, 2, -1}, {-2, 2, -1}, {-3, 2, -2},
	} {
		require.Equal(t, tc.want, floorDiv(tc.a, tc.b), "%d/%d", tc.a, tc.b)
	}
}
