package blockupload

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzValidateMeta: any meta.json a client sends is refused or taken, never
// a panic; what is taken is a block Strata can hold.
func FuzzValidateMeta(f *testing.F) {
	dir := makeBlock(f, blockStart)
	meta, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		f.Fatal(err)
	}
	id := ulidOf(f, dir)
	f.Add(meta)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"ulid":"` + id.String() + `","minTime":1,"maxTime":0,"thanos":{"labels":{"__org_id__":"x"}}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := validateMeta(body, id, "a", 90*24*time.Hour, 10*time.Minute, testNow)
		if err != nil {
			return
		}
		if m.ULID != id || m.Version != 1 || m.MinTime >= m.MaxTime || m.Compaction.Level < 1 || m.Strata.Tenant != "" {
			t.Fatalf("took a meta.json it should refuse: %+v", m)
		}
	})
}
