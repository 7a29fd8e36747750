package querier

import (
	"testing"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
)

// TestPromQLStartTimestamps runs Prometheus' start_timestamps.test, which
// TestPromQLConformance (over real ingesters) skips: the ingester's TSDB
// stores no start timestamps (remote-write 1.0 carries none), so it runs
// here over ingester fakes that store them, as the ingester will once
// remote-write 2.0 brings them. Every series is written to 2 of 3 fakes
// and read back through the gRPC fan-out, the replica merge and the chunk
// iterators.
func TestPromQLStartTimestamps(t *testing.T) {
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	promqltest.RunBuiltinTestsWithStorage(onlyFile{T: t, file: "testdata/start_timestamps.test"}, engine, func(t testing.TB) storage.Storage {
		c := startCluster(t, clusterOptions{startTimestamps: true})
		return &clusterStorage{c: c, tenant: "promqltest"}
	})
}

// onlyFile skips every promqltest file but one.
type onlyFile struct {
	*testing.T
	file string
}

func (o onlyFile) Run(name string, f func(*testing.T)) bool {
	return o.T.Run(name, func(t *testing.T) {
		if name != o.file {
			t.Skip("run by TestPromQLConformance, over real ingesters")
		}
		f(t)
	})
}
