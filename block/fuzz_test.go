package block

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeMeta: meta.json comes from the bucket, which anyone with write
// access to it can fill: decoding must never panic, and what decodes must
// encode and decode to the same meta.
func FuzzDecodeMeta(f *testing.F) {
	f.Add([]byte(`{"ulid":"01HZX3J1K9Q8S2V7W5Y4T6R0PA","minTime":0,"maxTime":7200000,"stats":{"numSamples":120,"numSeries":1},"compaction":{"level":1,"sources":["01HZX3J1K9Q8S2V7W5Y4T6R0PA"]},"version":1,"strata":{"tenant":"t1","source":"ingester","ingester":"ingester-1","files":[{"path":"chunks/000001","size":1024},{"path":"index","size":512}]}}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"ulid":"not-a-ulid","version":1}`))
	f.Add([]byte(`{"version":1,"strata":{"files":[{"path":"../../etc/passwd","size":-1}]}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("encoding a decoded meta: %v", err)
		}
		m2, err := decodeMeta(again)
		if err != nil {
			t.Fatalf("decoding a re-encoded meta: %v\n%s", err, again)
		}
		if m2.ULID != m.ULID || m2.MinTime != m.MinTime || m2.MaxTime != m.MaxTime || len(m2.Strata.Files) != len(m.Strata.Files) {
			t.Fatalf("meta changed through a round trip:\n%+v\n%+v", m, m2)
		}
	})
}
