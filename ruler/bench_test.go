package ruler

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"google.golang.org/protobuf/proto"

	"github.com/strata-metrics/strata/proto/rulerpb"
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

// BenchmarkPeerRulesAnswer: what a ruler does per peer request for one
// group of 10 alerting rules with 50 active alerts each and 10 recording
// rules: its state built and serialised, unfiltered (every request before
// the filters were sent) and with exclude_alerts or type=record.
//
// go test ./ruler -run '^$' -bench PeerRulesAnswer -count 8
func BenchmarkPeerRulesAnswer(b *testing.B) {
	var rs []rules.Rule
	ctx, ts := context.Background(), time.Unix(1e9, 0)
	vec := make(promql.Vector, 50)
	for i := range vec {
		vec[i] = promql.Sample{Metric: labels.FromStrings("job", "api", "instance", "host-"+strconv.Itoa(i)), F: 1}
	}
	query := func(context.Context, string, time.Time) (promql.Vector, error) { return vec, nil }
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(`up == 0`)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10 {
		a := rules.NewAlertingRule("Down"+strconv.Itoa(i), expr, time.Minute, 0, labels.FromStrings("severity", "page"),
			labels.FromStrings("summary", "{{ $labels.instance }} is down"), labels.EmptyLabels(), "", false, nil)
		if _, err := a.Eval(ctx, 0, ts, query, nil, 0); err != nil {
			b.Fatal(err)
		}
		rs = append(rs, a, rules.NewRecordingRule("rec"+strconv.Itoa(i), expr, labels.EmptyLabels()))
	}
	g := rules.NewGroup(rules.GroupOptions{Name: "g", File: "ns", Interval: time.Minute, Rules: rs, Opts: &rules.ManagerOptions{}})
	for _, c := range []struct {
		name string
		req  *rulerpb.RulesRequest
	}{
		{"all", &rulerpb.RulesRequest{}},
		{"exclude_alerts", &rulerpb.RulesRequest{ExcludeAlerts: true}},
		{"type=record", &rulerpb.RulesRequest{Type: "record"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			size := 0
			for b.Loop() {
				out, err := proto.Marshal(&rulerpb.RulesResponse{Groups: []*rulerpb.RuleGroupState{groupState(g, keepRule(c.req), !c.req.GetExcludeAlerts())}})
				if err != nil {
					b.Fatal(err)
				}
				size = len(out)
			}
			b.ReportMetric(float64(size), "bytes/answer")
		})
	}
}
