package remotewrite

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/prompb"
)

var update = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz/FuzzDecode")

// FuzzDecode checks that Decode never panics, and that what it accepts
//   - prompb's generated Unmarshal accepts too, with the same content, and
//   - AppendSeries and AppendMetadata encode so that both decode it back.
//
// Deliberate differences with prompb (Decode is stricter; see the
// gogoAccepts cases of TestDecodeErrors): groups (wire types 3 and 4) are
// rejected, not skipped; a varint whose 10th byte is above 1 is an
// overflow; field numbers above 2^29-1 are invalid instead of truncated; a
// packed varint or double may not run past the end of its packed field.
//
// go test ./remotewrite -run '^$' -fuzz FuzzDecode -fuzztime 60s
func FuzzDecode(f *testing.F) {
	// The seeds are in testdata/fuzz/FuzzDecode; see TestFuzzCorpus.
	r := NewRequest()
	f.Fuzz(func(t *testing.T, body []byte) {
		err := Decode(body, r)
		var wr prompb.WriteRequest
		gogoErr := wr.Unmarshal(body)
		if err != nil {
			if len(r.Series)+len(r.Metadata) != 0 {
				t.Fatalf("Decode failed (%v) but left %d series, %d metadata", err, len(r.Series), len(r.Metadata))
			}
			return
		}
		if gogoErr != nil {
			t.Fatalf("Decode accepts a body prompb rejects (%v)", gogoErr)
		}
		if d := diffRequest(r, fromPrompb(&wr)); d != "" {
			t.Fatalf("Decode and prompb disagree: %s", d)
		}
		roundTrip(t, r)
	})
}

// fuzzSeeds returns the seed corpus: realistic requests, the wire
// variants, and a few malformed bodies.
func fuzzSeeds() map[string][]byte {
	seeds := map[string][]byte{
		"empty-request":  mustMarshal(&prompb.WriteRequest{}),
		"node-exporter":  mustMarshal(nodeExporterRequest(20)),
		"rich":           mustMarshal(richRequest()),
		"truncated":      mustMarshal(nodeExporterRequest(2))[:150],
		"group":          cat(msg(1, label("a", "b")), tag(9, wireStartGroup), tag(9, wireEndGroup)),
		"wrong-wiretype": msg(1, msg(2, vint(1, 1))),
		"ragged-counts":  msg(1, msg(4, msg(13, make([]byte, 12)))),
		"overflow":       msg(1, msg(2, tag(2, wireVarint), bytes.Repeat([]byte{0xff}, 11))),
	}
	rich := richRequest()
	for i, ts := range rich.Timeseries {
		seeds[fmt.Sprintf("rich-series-%d", i)] = mustMarshal(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}})
		for j, h := range ts.Histograms {
			seeds[fmt.Sprintf("histogram-%d", j)] = mustMarshal(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				{Labels: []prompb.Label{{Name: "__name__", Value: "h"}}, Histograms: []prompb.Histogram{h}},
			}})
		}
	}
	seeds["metadata-only"] = mustMarshal(&prompb.WriteRequest{Metadata: rich.Metadata})
	for _, v := range wireVariants {
		seeds["variant-"+strings.ReplaceAll(v.name, " ", "-")] = v.body
	}
	return seeds
}

// TestFuzzCorpus checks that testdata/fuzz/FuzzDecode holds the seeds of
// fuzzSeeds, and rewrites them with -update.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for name, body := range fuzzSeeds() {
		path := filepath.Join(dir, "seed-"+name)
		want := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", body))
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("seed %s is missing or stale (%v): run go test ./remotewrite -run TestFuzzCorpus -update", path, err)
		}
	}
}
