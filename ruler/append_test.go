package ruler

import (
	"context"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/remotewrite"
)

// TestMovedGroupWritesNoStaleMarkers: the stale markers upstream writes
// for a group that left this ruler are dropped when another ruler
// evaluates it now (they would cut its series), kept otherwise.
func TestMovedGroupWritesNoStaleMarkers(t *testing.T) {
	var pushed []string
	a := &pushAppendable{tenantID: "t", push: func(_ context.Context, _ string, req *remotewrite.Request) error {
		for _, s := range req.Series {
			pushed = append(pushed, s.Labels[0].Value)
		}
		return nil
	}}
	a.foreign.Store(&ruleNames{records: map[string]bool{"moved": true}, alerts: map[string]bool{"MovedAlert": true}})
	stale := math.Float64frombits(value.StaleNaN)
	app := a.Appender(context.Background()) // no group batch: a removed group's cleanup
	for _, tc := range []struct {
		l labels.Labels
		v float64
	}{
		{labels.FromStrings("__name__", "moved"), stale},
		{labels.FromStrings("__name__", "deleted"), stale},
		{labels.FromStrings("__name__", "ALERTS", "alertname", "MovedAlert"), stale},
		{labels.FromStrings("__name__", "ALERTS_FOR_STATE", "alertname", "DeletedAlert"), stale},
		{labels.FromStrings("__name__", "moved"), 1}, // not a marker
	} {
		_, err := app.Append(0, tc.l, 1000, tc.v)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	require.Equal(t, []string{"deleted", "ALERTS_FOR_STATE", "moved"}, pushed)
}
