package ruler

import (
	"context"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/strata-metrics/strata/remotewrite"
)

// BenchmarkGroupAppend: one group iteration's results (100 rules of 10
// series each) appended and sent as one push; the cost the ruler adds per
// recorded sample on top of the query.
//
// go test ./ruler -run '^$' -bench GroupAppend -count 8
func BenchmarkGroupAppend(b *testing.B) {
	series := make([]labels.Labels, 1000)
	for i := range series {
		series[i] = labels.FromStrings("__name__", "job:rate5m", "job", "j"+strconv.Itoa(i%10), "instance", strconv.Itoa(i))
	}
	a := &pushAppendable{tenantID: "t", push: func(context.Context, string, *remotewrite.Request) error { return nil }}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		batch := &groupBatch{}
		bctx := withBatch(ctx, batch)
		for r := 0; r < 100; r++ {
			app := a.Appender(bctx)
			for _, l := range series[r*10 : r*10+10] {
				if _, err := app.Append(0, l, 1000, 1); err != nil {
					b.Fatal(err)
				}
			}
			if err := app.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.flush(ctx, "t", a.push); err != nil {
			b.Fatal(err)
		}
	}
}
