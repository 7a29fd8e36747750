package ingester

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/prometheus/tsdb/wlog"
)

// Finishing an interrupted WAL repair.
//
// Prometheus' repair of a corrupted WAL (wlog.WL.Repair, v0.315.1) renames
// the corrupted segment to <segment>.repair, creates an empty segment of the
// same number, copies the records before the corruption into it and only
// then removes the .repair file. If the copy fails (the disk is full) or the
// process dies, the .repair file is the only complete copy of the segment,
// and the next repair renames the partial copy over it: the records the
// first repair had not copied yet, acknowledged ones among them, are gone.
// So before a tenant's TSDB opens, a .repair file left in its WAL or WBL
// directory is put back in place of the partial segment; the repair that
// follows starts again from the original.

// restoreInterruptedRepairs puts back every <segment>.repair under the WAL
// and WBL directories of the TSDB in dir and returns the segments restored.
func restoreInterruptedRepairs(dir string) ([]string, error) {
	var restored []string
	for _, sub := range []string{"wal", wlog.WblDirName} {
		d := filepath.Join(dir, sub)
		entries, err := os.ReadDir(d)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return restored, fmt.Errorf("list %s: %w", d, err)
		}
		n := len(restored)
		for _, e := range entries {
			seg, ok := strings.CutSuffix(e.Name(), ".repair")
			if !ok || !e.Type().IsRegular() {
				continue
			}
			orig, partial := filepath.Join(d, e.Name()), filepath.Join(d, seg)
			if err := os.Rename(orig, partial); err != nil {
				return restored, fmt.Errorf("restore segment %s of an interrupted repair: %w", partial, err)
			}
			restored = append(restored, partial)
		}
		if len(restored) > n {
			if err := syncDir(d); err != nil {
				return restored, err
			}
		}
	}
	return restored, nil
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s to sync it: %w", dir, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// restoreRepairs runs restoreInterruptedRepairs on the TSDB of tenantID in
// dir before it opens, and logs what it put back.
func (i *Ingester) restoreRepairs(tenantID, dir string) error {
	restored, err := restoreInterruptedRepairs(dir)
	for _, seg := range restored {
		i.log.Warn("a WAL repair was interrupted; its original segment is put back and the repair starts again from it", "tenant", tenantID, "segment", seg)
	}
	if err != nil {
		return fmt.Errorf("finish interrupted wal repair: %w", err)
	}
	return nil
}
