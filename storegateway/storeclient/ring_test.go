package storeclient

import (
	"github.com/prometheus/prometheus/model/labels"

	"github.com/strata-metrics/strata/ring"
)

// staticRing is a fixed store-gateway ring membership.
type staticRing []ring.Instance

func (r staticRing) Index() *ring.Index { return ring.NewIndex(r) }

func lbls(v string) labels.Labels { return labels.FromStrings("l", v) }
