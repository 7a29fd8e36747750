package blockupload

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/block"
)

// rawSeries is a series written as given: its labels in the order given
// (names unsorted or repeated if so), one chunk per element of ts with its
// samples' timestamps in the order given.
type rawSeries struct {
	labels []string // name, value, ...
	ts     [][]int64
}

// writeRawBlock writes a block with Prometheus' index and chunk writers
// but none of the sorting tsdb.CreateBlock does: what a buggy or hostile
// tool can produce. Timestamps are offsets from mint in seconds.
func writeRawBlock(t *testing.T, mint int64, series []rawSeries) string {
	t.Helper()
	id := ulid.MustNew(ulid.Timestamp(testNow), nil)
	dir := filepath.Join(t.TempDir(), id.String())
	cw, err := chunks.NewWriter(filepath.Join(dir, block.ChunksDirname))
	require.NoError(t, err)
	syms := map[string]struct{}{}
	type written struct {
		lset labels.Labels
		chks []chunks.Meta
	}
	var all []written
	var samples uint64
	for _, s := range series {
		var b labels.ScratchBuilder
		for i := 0; i < len(s.labels); i += 2 {
			b.Add(s.labels[i], s.labels[i+1])
			syms[s.labels[i]], syms[s.labels[i+1]] = struct{}{}, struct{}{}
		}
		w := written{lset: b.Labels()}
		for _, ts := range s.ts {
			c := chunkenc.NewXORChunk()
			app, err := c.Appender()
			require.NoError(t, err)
			m := chunks.Meta{Chunk: c, MinTime: mint + ts[0]*1000, MaxTime: mint + ts[0]*1000}
			for _, x := range ts {
				app.Append(0, mint+x*1000, float64(x))
				m.MinTime, m.MaxTime = min(m.MinTime, mint+x*1000), max(m.MaxTime, mint+x*1000)
				samples++
			}
			w.chks = append(w.chks, m)
		}
		require.NoError(t, cw.WriteChunks(w.chks...))
		all = append(all, w)
	}
	require.NoError(t, cw.Close())
	iw, err := index.NewWriter(context.Background(), filepath.Join(dir, block.IndexFilename))
	require.NoError(t, err)
	var sorted []string
	for s := range syms {
		sorted = append(sorted, s)
	}
	slicesSort(sorted)
	for _, s := range sorted {
		require.NoError(t, iw.AddSymbol(s))
	}
	for i, w := range all {
		require.NoError(t, iw.AddSeries(storageRef(i), w.lset, w.chks...))
	}
	require.NoError(t, iw.Close())
	m := &block.Meta{BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: mint, MaxTime: mint + 2*time.Hour.Milliseconds(), Version: 1,
		Stats: tsdb.BlockStats{NumSamples: samples, NumSeries: uint64(len(series))}, Compaction: tsdb.BlockMetaCompaction{Level: 1, Sources: []ulid.ULID{id}}}}
	require.NoError(t, block.WriteMetaFile(dir, m))
	return dir
}

// patchSymbols rewrites consecutive symbols of the index's symbol table
// (from, to the same lengths; its checksum fixed): the series that named
// one name another, giving what Prometheus' index writer never writes
// (series out of order, a label name twice).
func patchSymbols(t *testing.T, dir string, from, to []string) {
	t.Helper()
	enc := func(syms []string) string {
		var s string
		for _, sym := range syms {
			require.Less(t, len(sym), 128)
			s += string([]byte{byte(len(sym))}) + sym
		}
		return s
	}
	old, repl := enc(from), enc(to)
	require.Len(t, repl, len(old))
	p := filepath.Join(dir, block.IndexFilename)
	buf, err := os.ReadFile(p)
	require.NoError(t, err)
	toc := buf[len(buf)-6*8-4:]
	off := int(binary.BigEndian.Uint64(toc))
	n := int(binary.BigEndian.Uint32(buf[off:]))
	content := buf[off+4 : off+4+n]
	i := strings.Index(string(content), old)
	require.GreaterOrEqual(t, i, 0, "symbols %q not in the table", from)
	copy(content[i:], repl)
	binary.BigEndian.PutUint32(buf[off+4+n:], crc32.Checksum(content, crc32.MakeTable(crc32.Castagnoli)))
	require.NoError(t, os.WriteFile(p, buf, 0o644))
}

// patchSeries rewrites the bytes from of the first series entry holding
// them (the same length; its checksum fixed): symbol references, so that
// the series names a label twice, which Prometheus' index writer refuses.
func patchSeries(t *testing.T, dir string, from, to []byte) {
	t.Helper()
	require.Len(t, to, len(from))
	p := filepath.Join(dir, block.IndexFilename)
	buf, err := os.ReadFile(p)
	require.NoError(t, err)
	toc := buf[len(buf)-6*8-4:]
	off := int(binary.BigEndian.Uint64(toc[8:]))
	i := bytes.Index(buf[off:], from)
	require.Greater(t, i, 0, "series bytes %v not in the index", from)
	i += off
	// An entry: its length as a uvarint (one byte here), its bytes, their
	// CRC32; the bytes start with the labels.
	start := i - 1
	n := int(buf[start])
	require.Less(t, n, 128)
	copy(buf[i:], to)
	content := buf[start+1 : start+1+n]
	binary.BigEndian.PutUint32(buf[start+1+n:], crc32.Checksum(content, crc32.MakeTable(crc32.Castagnoli)))
	require.NoError(t, os.WriteFile(p, buf, 0o644))
}

// A block out of order passes Prometheus' readers but fails the
// compactor's merge of its group on every run: finish refuses it, saying
// what is wrong, and nothing of it stays.
func TestFinishRefusesBlockOutOfOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		series []rawSeries
		edit   func(t *testing.T, dir string)
		want   string
	}{
		{name: "series unsorted", series: []rawSeries{
			{labels: []string{"__name__", "m", "i", "x"}, ts: [][]int64{{0, 15}}},
			{labels: []string{"__name__", "m", "i", "y"}, ts: [][]int64{{0, 15}}},
		}, edit: func(t *testing.T, dir string) { patchSymbols(t, dir, []string{"x", "y"}, []string{"y", "x"}) },
			want: `index: series not sorted by labels ({__name__="m", i="x"} after {__name__="m", i="y"})`},
		{name: "label names unsorted", series: []rawSeries{
			{labels: []string{"i", "x", "__name__", "m"}, ts: [][]int64{{0, 15}}},
		}, want: `label names not sorted ("__name__" after "i")`},
		{name: "label name twice", series: []rawSeries{
			{labels: []string{"__name__", "m", "i", "x", "j", "y"}, ts: [][]int64{{0, 15}}},
		}, edit: func(t *testing.T, dir string) {
			// Symbols: __name__ 0, i 1, j 2, m 3, x 4, y 5; the series
			// starts with 3 labels, 0=3, 1=4, 2=5: make it 1=5.
			patchSeries(t, dir, []byte{3, 0, 3, 1, 4, 2, 5}, []byte{3, 0, 3, 1, 4, 1, 5})
		}, want: `label name "i" appears twice`},
		{name: "samples out of order", series: []rawSeries{
			{labels: []string{"__name__", "m"}, ts: [][]int64{{0, 30, 15}}},
		}, want: "sample timestamps not increasing (" + "%d after %d)"},
		{name: "sample repeated", series: []rawSeries{
			{labels: []string{"__name__", "m"}, ts: [][]int64{{0, 15, 15}}},
		}, want: "sample timestamps not increasing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, defaultConfig())
			dir := writeRawBlock(t, blockStart, tc.series)
			if tc.edit != nil {
				tc.edit(t, dir)
			}
			want := tc.want
			if strings.Contains(want, "%d") {
				want = "sample timestamps not increasing (" + itoa(blockStart+15000) + " after " + itoa(blockStart+30000) + ")"
			}
			id, a := f.upload(t, "a", dir)
			require.Equal(t, http.StatusBadRequest, a.code, a.body)
			require.Contains(t, a.body, want)
			require.Contains(t, a.body, "["+ReasonCorrupt+"]")
			require.Empty(t, objects(t, f.bkt, ""), "nothing of a refused block stays")
			require.Equal(t, StateAbsent, f.check(t, "a", id).State)
			require.Equal(t, 1.0, testutil.ToFloat64(f.h.m.failed.WithLabelValues(ReasonCorrupt)))
		})
	}

	t.Run("in order", func(t *testing.T) {
		f := newFixture(t, defaultConfig())
		_, a := f.upload(t, "a", writeRawBlock(t, blockStart, []rawSeries{
			{labels: []string{"__name__", "m", "i", "x"}, ts: [][]int64{{0, 15}, {30, 45}}},
			{labels: []string{"__name__", "m", "i", "y"}, ts: [][]int64{{0}}},
		}))
		require.Equal(t, http.StatusOK, a.code, a.body)
	})
}

// Chunk metadata out of order or overlapping cannot be written with
// Prometheus' index writer, so checkOrder is tested on its own.
func TestCheckOrderChunks(t *testing.T) {
	ls := labels.FromStrings("__name__", "m")
	for _, tc := range []struct {
		name string
		chks []chunks.Meta
		want string
	}{
		{"ok", []chunks.Meta{{MinTime: 0, MaxTime: 10}, {MinTime: 11, MaxTime: 20}}, ""},
		{"one sample chunks", []chunks.Meta{{MinTime: 5, MaxTime: 5}, {MinTime: 6, MaxTime: 6}}, ""},
		{"overlapping", []chunks.Meta{{MinTime: 0, MaxTime: 10}, {MinTime: 5, MaxTime: 20}}, "chunk [5, 20] does not start after the previous chunk [0, 10] ends"},
		{"touching", []chunks.Meta{{MinTime: 0, MaxTime: 10}, {MinTime: 10, MaxTime: 20}}, "does not start after the previous chunk"},
		{"out of order", []chunks.Meta{{MinTime: 20, MaxTime: 30}, {MinTime: 0, MaxTime: 10}}, "chunks out of order or overlapping"},
		{"ends before it starts", []chunks.Meta{{MinTime: 10, MaxTime: 0}}, "chunk [10, 0] ends before it starts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkOrder(labels.EmptyLabels(), ls, tc.chks)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.ErrorContains(t, checkOrder(ls, ls, nil), "series not sorted by labels", "a series twice")
	require.NoError(t, checkOrder(labels.FromStrings("__name__", "a"), ls, nil))
}

func slicesSort(s []string) { slices.Sort(s) }

func storageRef(i int) storage.SeriesRef { return storage.SeriesRef(i + 1) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
