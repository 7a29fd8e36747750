package storegateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/prometheus/prometheus/tsdb/index"
	"golang.org/x/sync/errgroup"
)

// An index-header is the part of a block's index a store-gateway keeps on
// local disk: the index's TOC, its symbol table and its postings offset
// table, each copied with one range read of the index object (which is
// never read whole). Postings lists and series entries are read from the
// bucket by range when a query needs them (blockIndex).
//
// File layout (integers big endian):
//
//	magic u32 | format u8 | index version u8 | 2 bytes zero
//	index size u64 | the index's TOC: 6 × u64
//	symbols section length u64 | postings table section length u64
//	CRC32 (Castagnoli) of the 80 bytes above
//	the index's symbol table, as in the index (length, count, symbols, CRC)
//	the index's postings offset table, as in the index
const (
	headerFilename             = "index-header"
	headerMagic         uint32 = 0x53474948 // "SGIH"
	headerFormat               = 1
	headerFixedLen             = 84
	indexMagicLen              = 5 // magic u32 and version u8
	indexTOCLen                = 6*8 + 4
	postingsSampleEvery        = 32 // values of a label name kept in memory: 1 in this many
)

// byteSlice is a []byte as Prometheus' decoders take it.
type byteSlice []byte

func (b byteSlice) Len() int                    { return len(b) }
func (b byteSlice) Range(start, end int) []byte { return b[start:end] }

// headerFixed is the fixed-size start of an index-header.
type headerFixed struct {
	indexVersion int
	indexSize    int64
	toc          index.TOC
	symbolsLen   int64
	tableLen     int64
}

func (f *headerFixed) marshal() []byte {
	b := make([]byte, headerFixedLen)
	binary.BigEndian.PutUint32(b[0:], headerMagic)
	b[4], b[5] = headerFormat, byte(f.indexVersion)
	for i, v := range []uint64{uint64(f.indexSize), f.toc.Symbols, f.toc.Series, f.toc.LabelIndices, f.toc.LabelIndicesTable, f.toc.Postings, f.toc.PostingsTable, uint64(f.symbolsLen), uint64(f.tableLen)} {
		binary.BigEndian.PutUint64(b[8+8*i:], v)
	}
	binary.BigEndian.PutUint32(b[80:], crc32.Checksum(b[:80], castagnoli))
	return b
}

func unmarshalHeaderFixed(b []byte) (headerFixed, error) {
	var f headerFixed
	switch {
	case len(b) < headerFixedLen:
		return f, fmt.Errorf("%d bytes, shorter than the fixed part", len(b))
	case binary.BigEndian.Uint32(b) != headerMagic:
		return f, fmt.Errorf("bad magic %x", b[:4])
	case b[4] != headerFormat:
		return f, fmt.Errorf("unknown format %d", b[4])
	case crc32.Checksum(b[:80], castagnoli) != binary.BigEndian.Uint32(b[80:]):
		return f, errors.New("checksum mismatch in the fixed part")
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[8+8*i:]) }
	f.indexVersion = int(b[5])
	f.indexSize = int64(u(0))
	f.toc = index.TOC{Symbols: u(1), Series: u(2), LabelIndices: u(3), LabelIndicesTable: u(4), Postings: u(5), PostingsTable: u(6)}
	f.symbolsLen, f.tableLen = int64(u(7)), int64(u(8))
	if f.symbolsLen < 0 || f.tableLen < 0 || int64(len(b)) != headerFixedLen+f.symbolsLen+f.tableLen {
		return f, fmt.Errorf("%d bytes, the fixed part says %d+%d+%d", len(b), headerFixedLen, f.symbolsLen, f.tableLen)
	}
	return f, f.check()
}

// check verifies that the TOC's sections are in order inside the index.
func (f *headerFixed) check() error {
	t := f.toc
	if f.indexVersion != index.FormatV2 && f.indexVersion != index.FormatV3 {
		return fmt.Errorf("index format version %d not supported", f.indexVersion)
	}
	if !(indexMagicLen <= t.Symbols && t.Symbols < t.Series && t.Series <= t.LabelIndices && t.LabelIndices <= t.Postings &&
		t.Postings <= t.LabelIndicesTable && t.LabelIndicesTable <= t.PostingsTable && t.PostingsTable < uint64(f.indexSize-indexTOCLen)) {
		return fmt.Errorf("table of contents out of order or past the index's %d bytes: %+v", f.indexSize, t)
	}
	return nil
}

// rangeReader reads byte ranges of one object; the store-gateway's counts
// them (blockIndex.readRange).
type rangeReader func(ctx context.Context, what string, off, length int64) (io.ReadCloser, error)

// buildHeader writes the index-header of an index of size bytes to file
// (through a temporary file renamed into place) from four range reads,
// two at a time, and returns its size. A malformed index is a dataLossError.
func buildHeader(ctx context.Context, read rangeReader, size int64, file string) (int64, error) {
	readAll := func(ctx context.Context, off, n int64) ([]byte, error) {
		r, err := read(ctx, "header", off, n)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("reading %d bytes at %d: %w", n, off, err)
		}
		return b, nil
	}
	if size < indexMagicLen+indexTOCLen {
		return 0, &dataLossError{fmt.Errorf("index of %d bytes is too short", size)}
	}
	// The magic and the TOC at once, then the two sections at once.
	var head, tocb []byte
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() (err error) { head, err = readAll(ectx, 0, indexMagicLen); return err })
	eg.Go(func() (err error) { tocb, err = readAll(ectx, size-indexTOCLen, indexTOCLen); return err })
	if err := eg.Wait(); err != nil {
		return 0, err
	}
	if m := binary.BigEndian.Uint32(head); m != index.MagicIndex {
		return 0, &dataLossError{fmt.Errorf("bad index magic %x", m)}
	}
	toc, err := index.NewTOCFromByteSlice(byteSlice(tocb))
	if err != nil {
		return 0, &dataLossError{fmt.Errorf("reading the index's table of contents: %w", err)}
	}
	f := headerFixed{indexVersion: int(head[4]), indexSize: size, toc: *toc}
	if err := f.check(); err != nil {
		return 0, &dataLossError{err}
	}
	// The symbol table up to the series (with at most 15 bytes of
	// padding), and the postings offset table up to the TOC.
	f.symbolsLen = int64(toc.Series - toc.Symbols)
	f.tableLen = size - indexTOCLen - int64(toc.PostingsTable)

	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return 0, err
	}
	tmp := file + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	err = func() error {
		if _, err := out.Write(f.marshal()); err != nil {
			return err
		}
		eg, ctx := errgroup.WithContext(ctx)
		at := int64(headerFixedLen)
		for _, s := range []struct{ off, n int64 }{{int64(toc.Symbols), f.symbolsLen}, {int64(toc.PostingsTable), f.tableLen}} {
			w := io.NewOffsetWriter(out, at)
			at += s.n
			eg.Go(func() error {
				r, err := read(ctx, "header", s.off, s.n)
				if err != nil {
					return err
				}
				defer r.Close()
				n, err := io.Copy(w, r)
				if err == nil && n != s.n {
					err = fmt.Errorf("got %d bytes at %d, want %d", n, s.off, s.n)
				}
				return err
			})
		}
		if err := eg.Wait(); err != nil {
			return err
		}
		return out.Close()
	}()
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		_ = out.Close()
		_ = os.Remove(tmp)
		return 0, err
	}
	return headerFixedLen + f.symbolsLen + f.tableLen, nil
}

// indexHeader is an open index-header: the file memory-mapped, and in
// memory only the symbol table's sampled offsets (index.Symbols) and, per
// label name, every postingsSampleEvery-th value with where its entry is.
type indexHeader struct {
	headerFixed
	mf          *fileutil.MmapFile // nil when opened from bytes
	b           []byte
	symbols     *index.Symbols
	tableEnd    int                         // of the postings offset table's entries in b
	names       map[string][]postingsSample // by label name; "" is all postings
	sortedNames []string                    // without ""
	nameSymbols map[uint32]string           // the label names' symbols, looked up without allocating
}

// postingsSample is one label value of the postings offset table and the
// position of its entry in the header.
type postingsSample struct {
	value string
	pos   int
}

// openHeader opens the index-header file; any error but a missing file
// means the file is damaged.
func openHeader(file string) (*indexHeader, error) {
	mf, err := fileutil.OpenMmapFile(file)
	if err != nil {
		return nil, err
	}
	h, err := decodeHeader(mf.Bytes())
	if err != nil {
		_ = mf.Close()
		return nil, err
	}
	h.mf = mf
	return h, nil
}

// decodeHeader reads an index-header's bytes, checking every checksum.
// It keeps b.
func decodeHeader(b []byte) (*indexHeader, error) {
	f, err := unmarshalHeaderFixed(b)
	if err != nil {
		return nil, err
	}
	h := &indexHeader{headerFixed: f, b: b, names: map[string][]postingsSample{}}
	symEnd := headerFixedLen + int(f.symbolsLen)
	// index.NewSymbols sizes its offsets by the count: bound it by the
	// bytes first (a symbol takes at least one).
	if f.symbolsLen < 8 {
		return nil, errors.New("reading symbols: short")
	}
	if l, cnt := binary.BigEndian.Uint32(b[headerFixedLen:]), binary.BigEndian.Uint32(b[headerFixedLen+4:]); cnt > l {
		return nil, fmt.Errorf("reading symbols: %d of them in %d bytes", cnt, l)
	}
	if h.symbols, err = index.NewSymbols(byteSlice(b[:symEnd]), f.indexVersion, headerFixedLen); err != nil {
		return nil, fmt.Errorf("reading symbols: %w", err)
	}
	if len(b) < symEnd+4 {
		return nil, errors.New("postings offset table: short")
	}
	h.tableEnd = symEnd + 4 + int(binary.BigEndian.Uint32(b[symEnd:]))
	var (
		last      string
		lastPos   = -1
		lastValue []byte
		count     int
	)
	flush := func() {
		if lastPos >= 0 && count%postingsSampleEvery != 1 {
			// Every name keeps its last value too.
			h.names[last] = append(h.names[last], postingsSample{string(lastValue), lastPos})
		}
	}
	err = index.ReadPostingsOffsetTable(byteSlice(b), uint64(symEnd), func(name, value []byte, _ uint64, off int) error {
		pos := symEnd + 4 + off
		if lastPos < 0 || string(name) != last {
			if lastPos >= 0 && string(name) < last {
				return fmt.Errorf("label name %q after %q", name, last)
			}
			flush()
			last, count = string(name), 0
			h.names[last] = nil
		} else if string(value) <= string(lastValue) {
			return fmt.Errorf("label %q: value %q after %q", name, value, lastValue)
		}
		if count%postingsSampleEvery == 0 {
			h.names[last] = append(h.names[last], postingsSample{string(value), pos})
		}
		count++
		lastPos, lastValue = pos, value
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading postings offset table: %w", err)
	}
	flush()
	for n, s := range h.names {
		h.names[n] = slices.Clip(s)
		if n != "" {
			h.sortedNames = append(h.sortedNames, n)
		}
	}
	slices.Sort(h.sortedNames)
	h.nameSymbols = make(map[uint32]string, len(h.sortedNames))
	for _, n := range h.sortedNames {
		o, err := h.symbols.ReverseLookup(n)
		if err != nil {
			return nil, fmt.Errorf("label name %q not in the symbols: %w", n, err)
		}
		h.nameSymbols[o] = n
	}
	return h, nil
}

func (h *indexHeader) close() error {
	if h.mf == nil {
		return nil
	}
	return h.mf.Close()
}

// postingsEntry is one entry of the postings offset table: a label value
// and where its postings list is in the index ([start, end) holds the
// list and perhaps padding).
type postingsEntry struct {
	value      string
	start, end int64
}

// entryAt decodes the postings offset table entry at pos and returns it
// with the position of the next one.
func (h *indexHeader) entryAt(pos int) (name, value []byte, off uint64, next int, err error) {
	if pos >= h.tableEnd {
		return nil, nil, 0, 0, io.EOF
	}
	d := encoding.Decbuf{B: h.b[pos:h.tableEnd]}
	if n := d.Uvarint(); n != 2 && d.Err() == nil {
		return nil, nil, 0, 0, fmt.Errorf("postings offset table entry with %d keys", n)
	}
	name = d.UvarintBytes()
	value = d.UvarintBytes()
	off = d.Uvarint64()
	if d.Err() != nil {
		return nil, nil, 0, 0, fmt.Errorf("postings offset table entry at %d: %w", pos, d.Err())
	}
	return name, value, off, h.tableEnd - d.Len(), nil
}

// scan calls f with the entries of label name from the first with a value
// at least from (every one when from is ""), in value order, until f
// returns false.
func (h *indexHeader) scan(name, from string, f func(e postingsEntry) bool) error {
	samples, ok := h.names[name]
	if !ok || len(samples) == 0 {
		return nil
	}
	i := sort.Search(len(samples), func(i int) bool { return samples[i].value > from })
	if i > 0 {
		i--
	}
	pos := samples[i].pos
	n, v, off, next, err := h.entryAt(pos)
	if err != nil {
		return err
	}
	for {
		if string(n) != name {
			return nil
		}
		nn, nv, noff, nnext, err := h.entryAt(next)
		end := noff
		if errors.Is(err, io.EOF) {
			// The last list ends where the postings section does.
			end, err = h.toc.LabelIndicesTable, nil
		}
		if err != nil {
			return err
		}
		if end <= off || end > h.toc.LabelIndicesTable || off < h.toc.Postings {
			return fmt.Errorf("postings of %s=%q at [%d, %d) outside the postings section or out of order", name, v, off, end)
		}
		if string(v) >= from && !f(postingsEntry{value: string(v), start: int64(off), end: int64(end)}) {
			return nil
		}
		if nn == nil {
			return nil
		}
		n, v, off, next = nn, nv, noff, nnext
	}
}

// lookup returns the entries of the values of name that exist, values
// sorted.
func (h *indexHeader) lookup(name string, values []string) ([]postingsEntry, error) {
	if len(values) == 0 {
		return nil, nil
	}
	var out []postingsEntry
	// Values close together share a scan; one far ahead starts again
	// from its sample.
	i := 0
	for i < len(values) {
		start := i
		err := h.scan(name, values[i], func(e postingsEntry) bool {
			for i < len(values) && values[i] < e.value {
				i++
			}
			if i == len(values) {
				return false
			}
			if values[i] == e.value {
				out = append(out, e)
				i++
			}
			if i == len(values) {
				return false
			}
			// Walk on while the next value is before the next sample;
			// otherwise start again from that value's sample.
			next, ok := nextSample(h.names[name], e.value)
			return !ok || values[i] < next
		})
		if err != nil {
			return nil, err
		}
		if i == start {
			i++ // past every value of name
		}
	}
	return out, nil
}

// nextSample is the first sampled value above v; false when there is none.
func nextSample(samples []postingsSample, v string) (string, bool) {
	j := sort.Search(len(samples), func(j int) bool { return samples[j].value > v })
	if j == len(samples) {
		return "", false
	}
	return samples[j].value, true
}

// values returns the values of label name, sorted, at most limit of them
// unless limit is 0.
func (h *indexHeader) values(name string, limit int) ([]string, error) {
	var out []string
	err := h.scan(name, "", func(e postingsEntry) bool {
		out = append(out, e.value)
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

// lookupSymbol returns symbol o, a label name from memory.
func (h *indexHeader) lookupSymbol(o uint32) (string, error) {
	if n, ok := h.nameSymbols[o]; ok {
		return n, nil
	}
	return h.symbols.Lookup(o)
}
