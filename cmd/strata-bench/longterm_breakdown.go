package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/strata-metrics/strata/block"
)

// familyBytes is what one metric family costs in a tenant's compacted
// blocks: chunk bytes only (the index is shared and reported apart).
type familyBytes struct {
	Family     string
	Kinds      string // value models of its series, e.g. "counter 75%, constant 25%"
	Series     int
	Samples    int64
	ChunkBytes int64
}

// familyBreakdown opens every block of a tenant's directory in the
// filesystem bucket and sums chunk bytes and samples per metric name.
func familyBreakdown(ctx context.Context, tenantDir string) ([]familyBytes, error) {
	entries, err := os.ReadDir(tenantDir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", tenantDir, err)
	}
	by := map[string]*familyBytes{}
	kinds := map[string]map[valueKind]int{}
	seen := map[string]bool{}
	for _, e := range entries {
		if _, ok := block.ParseDir(e.Name()); !ok || !e.IsDir() {
			continue
		}
		if err := addBlockFamilies(ctx, filepath.Join(tenantDir, e.Name()), by, kinds, seen); err != nil {
			return nil, err
		}
	}
	out := make([]familyBytes, 0, len(by))
	for name, f := range by {
		k := kinds[name]
		n := k[kindCounter] + k[kindGauge] + k[kindConstant]
		f.Kinds = ""
		for _, kk := range []struct {
			k    valueKind
			name string
		}{{kindCounter, "counter"}, {kindGauge, "gauge"}, {kindConstant, "constant"}} {
			if k[kk.k] > 0 {
				if f.Kinds != "" {
					f.Kinds += ", "
				}
				f.Kinds += fmt.Sprintf("%s %.0f%%", kk.name, float64(k[kk.k])/float64(n)*100)
			}
		}
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b familyBytes) int {
		return cmp.Compare(bytesPerSample(b.ChunkBytes, b.Samples), bytesPerSample(a.ChunkBytes, a.Samples))
	})
	return out, nil
}

func addBlockFamilies(ctx context.Context, dir string, by map[string]*familyBytes, kinds map[string]map[valueKind]int, seen map[string]bool) error {
	b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), dir, nil, nil)
	if err != nil {
		return fmt.Errorf("open block %s: %w", dir, err)
	}
	defer b.Close()
	ir, err := b.Index()
	if err != nil {
		return fmt.Errorf("open index of %s: %w", dir, err)
	}
	defer ir.Close()
	cr, err := b.Chunks()
	if err != nil {
		return fmt.Errorf("open chunks of %s: %w", dir, err)
	}
	defer cr.Close()
	k, v := index.AllPostingsKey()
	p, err := ir.Postings(ctx, k, v)
	if err != nil {
		return fmt.Errorf("read postings of %s: %w", dir, err)
	}
	var (
		sb   labels.ScratchBuilder
		chks []chunks.Meta
	)
	for p.Next() {
		if err := ir.Series(p.At(), &sb, &chks); err != nil {
			return fmt.Errorf("read series of %s: %w", dir, err)
		}
		ls := sb.Labels()
		name := ls.Get(labels.MetricName)
		f := by[name]
		if f == nil {
			f = &familyBytes{Family: name}
			by[name] = f
			kinds[name] = map[valueKind]int{}
		}
		if key := ls.String(); !seen[key] {
			seen[key] = true
			f.Series++
			if i, ok := seriesIndex(ls); ok {
				kinds[name][newSeriesModel(i).kind]++
			}
		}
		for _, m := range chks {
			c, _, err := cr.ChunkOrIterable(m)
			if err != nil {
				return fmt.Errorf("read chunk of %s: %w", dir, err)
			}
			f.Samples += int64(c.NumSamples())
			f.ChunkBytes += int64(len(c.Bytes()))
		}
	}
	return p.Err()
}

// seriesIndex finds which generated series carries ls by regenerating the
// labels of the host's series of the same family; false if none.
func seriesIndex(ls labels.Labels) (int, bool) {
	var host int
	if _, err := fmt.Sscanf(ls.Get("instance"), "host-%05d:9100", &host); err != nil {
		return 0, false
	}
	name := ls.Get(labels.MetricName)
	for fi, f := range families {
		if f.name != name {
			continue
		}
		for j := fi; j < seriesPerHost; j += len(families) {
			i := host*seriesPerHost + j
			match := true
			for _, l := range seriesLabels(i) {
				if ls.Get(l[0]) != l[1] {
					match = false
					break
				}
			}
			if match {
				return i, true
			}
		}
	}
	return 0, false
}
