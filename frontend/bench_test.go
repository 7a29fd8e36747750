package frontend

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// benchLegs returns the answers of legs legs of series series each, a
// point a minute, as the querier writes them: a 7-day panel split by day.
func benchLegs(b *testing.B, legs, seriesN int) [][]byte {
	b.Helper()
	const pointsPerLeg = 1440
	var out [][]byte
	for l := range legs {
		m := &matrix{}
		for s := range seriesN {
			lbls := labels.FromStrings("job", fmt.Sprintf("job-%03d", s), "cluster", "bench")
			sr := series{lbls: lbls, metric: []byte(fmt.Sprintf(`{"cluster":"bench","job":"job-%03d"}`, s))}
			for p := range pointsPerLeg {
				t := int64(l*pointsPerLeg+p) * 60_000
				sr.floats = append(sr.floats, fpoint{t: t, f: float64(p) * 1.25})
			}
			m.series = append(m.series, sr)
		}
		body, err := encodeBody(m)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, body)
	}
	return out
}

// BenchmarkMergeLegs decodes seven daily legs, merges and encodes them:
// the frontend's own cost on a warm 7-day refresh.
func BenchmarkMergeLegs(b *testing.B) {
	bodies := benchLegs(b, 7, 10)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		ms := make([]*matrix, len(bodies))
		for i, body := range bodies {
			m, err := decodeMatrix(body)
			if err != nil {
				b.Fatal(err)
			}
			ms[i] = m
		}
		buf.Reset()
		if err := mergeMatrices(ms).encode(&buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJoinExtents joins a day's cached extent with the newest
// minutes, as each refresh of a dashboard does.
func BenchmarkJoinExtents(b *testing.B) {
	bodies := benchLegs(b, 2, 10)
	es := []extent{{start: 0, end: 1439 * 60_000, body: bodies[0]}, {start: 1440 * 60_000, end: 2879 * 60_000, body: bodies[1]}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := joinExtents(append([]extent(nil), es...), 60_000); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCacheKeyAndExtents is a leg's lookup: its key, the entry
// decoded, the gaps computed.
func BenchmarkCacheKeyAndExtents(b *testing.B) {
	bodies := benchLegs(b, 1, 10)
	_, full := cacheKey("tenant", `sum by (job) (rate({cluster="bench"}[5m]))`, 60_000, 0, "", 86_400_000, 20000)
	v := encodeExtents(full, []extent{{start: 0, end: 1439 * 60_000, body: bodies[0]}})
	b.ReportAllocs()
	for b.Loop() {
		_, full := cacheKey("tenant", `sum by (job) (rate({cluster="bench"}[5m]))`, 60_000, 0, "", 86_400_000, 20000)
		es, ok, err := decodeExtents(full, v)
		if err != nil || !ok {
			b.Fatal(err)
		}
		gaps(es, 0, 1445*60_000, 60_000)
	}
}
