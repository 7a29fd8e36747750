package querier

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// rangeSource records the range it was asked for.
type rangeSource struct{ mint, maxt *int64 }

func (s rangeSource) querier(_ string, mint, maxt int64) (storage.Querier, error) {
	*s.mint, *s.maxt = mint, maxt
	return storage.NoopQuerier(), nil
}

func TestWindow(t *testing.T) {
	now := time.UnixMilli(100 * 3600_000)
	h := func(n int64) int64 { return n * 3600_000 }
	for _, tc := range []struct {
		name                 string
		newerThan, olderThan time.Duration
		mint, maxt           int64
		asked                bool
		wantMint, wantMaxt   int64
	}{
		{name: "ingesters: recent range untouched", newerThan: 13 * time.Hour, mint: h(95), maxt: h(100), asked: true, wantMint: h(95), wantMaxt: h(100)},
		{name: "ingesters: start cut to 13h ago", newerThan: 13 * time.Hour, mint: h(50), maxt: h(100), asked: true, wantMint: h(87), wantMaxt: h(100)},
		{name: "ingesters: old range not asked", newerThan: 13 * time.Hour, mint: h(10), maxt: h(80)},
		{name: "store: old range untouched", olderThan: 12 * time.Hour, mint: h(10), maxt: h(80), asked: true, wantMint: h(10), wantMaxt: h(80)},
		{name: "store: end cut to 12h ago", olderThan: 12 * time.Hour, mint: h(50), maxt: h(100), asked: true, wantMint: h(50), wantMaxt: h(88)},
		{name: "store: recent range not asked", olderThan: 12 * time.Hour, mint: h(95), maxt: h(100)},
		{name: "no restriction", mint: h(1), maxt: h(100), asked: true, wantMint: h(1), wantMaxt: h(100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gotMint, gotMaxt := int64(-1), int64(-1)
			w := window{s: rangeSource{&gotMint, &gotMaxt}, now: func() time.Time { return now }, newerThan: tc.newerThan, olderThan: tc.olderThan}
			_, err := w.querier("t", tc.mint, tc.maxt)
			require.NoError(t, err)
			if !tc.asked {
				require.Equal(t, int64(-1), gotMint, "source asked for a range outside its window")
				return
			}
			require.Equal(t, []int64{tc.wantMint, tc.wantMaxt}, []int64{gotMint, gotMaxt})
		})
	}
}
