package querier

import (
	"testing"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
)

const startTimestampsTest = "testdata/start_timestamps.test"

// TestPromQLConformance runs Prometheus' own PromQL test files through the
// querier's read path: every series is written to 2 of 3 ingester fakes
// and read back through the gRPC fan-out, the replica merge and the chunk
// iterators. The engine is upstream's test engine (experimental syntax
// on), since the read path is under test here.
func TestPromQLConformance(t *testing.T) {
	for _, tc := range []struct {
		name            string
		startTimestamps bool
		skip            func(file string) string // reason to skip, or ""
	}{
		{
			name: "ingester TSDB options",
			skip: func(file string) string {
				if file == startTimestampsTest {
					return "needs start timestamps: remote-write 1.0 carries none and the ingester's TSDB stores none (they come with remote-write 2.0); the next case runs it with them stored"
				}
				return ""
			},
		},
		{
			name:            "start timestamps stored",
			startTimestamps: true,
			skip: func(file string) string {
				if file != startTimestampsTest {
					return "run by the previous case"
				}
				return ""
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
			promqltest.RunBuiltinTestsWithStorage(skipper{T: t, skip: tc.skip}, engine, func(t testing.TB) storage.Storage {
				c := startCluster(t, clusterOptions{startTimestamps: tc.startTimestamps})
				return &clusterStorage{c: c, tenant: "promqltest"}
			})
		})
	}
}

// skipper skips the subtests skip gives a reason for.
type skipper struct {
	*testing.T
	skip func(name string) string
}

func (s skipper) Run(name string, f func(*testing.T)) bool {
	return s.T.Run(name, func(t *testing.T) {
		if reason := s.skip(name); reason != "" {
			t.Skip(reason)
		}
		f(t)
	})
}
