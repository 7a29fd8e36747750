package frontend

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// The results cache keeps, per tenant, query, step grid and split
// interval, the extents of a leg already evaluated: [start, end] on the
// step's grid with the answer for those points. A later request for the
// same leg takes what the extents cover and asks the queriers only for
// the points they do not (before them, between them, after them); the new
// answers join the extents, adjoining or overlapping extents become one.
//
// What is safe to cache:
//   - Nothing newer than now - max_cache_freshness: samples may still
//     arrive for it (late or out-of-order pushes, a replica catching up),
//     so the points after that bound are queried every time and never
//     stored.
//   - A negative offset reads the future of a step: the bound moves back
//     by the largest one.
//   - @ start() and @ end() are replaced by the request's start and end
//     before splitting (each leg has its own start and end), so the key
//     holds the absolute time and a later request with another end shares
//     nothing with it: correct, and what Mimir does.
//   - An @ time within the freshness bound (or after it) reads data that
//     may still change: such a query is split but not cached.
//   - Answers with warnings (a truncated or partial answer, an ingester
//     missing) are not cached.
//   - A request with Cache-Control: no-store neither reads nor writes it.

// cacheBackend stores opaque values by key. Get returns ok=false for a
// miss; an error is counted and treated as a miss by the caller. Both are
// goroutine-safe; Get's value belongs to the caller.
type cacheBackend interface {
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// extent is the cached answer of the points [start, end] of a leg.
type extent struct {
	start, end int64 // milliseconds, on the step's grid
	body       []byte
}

// cacheKey names a leg's entry: the tenant, the query text as the legs
// send it, the step, the grid's phase (start mod step: requests whose
// points fall elsewhere never share an entry), the lookback delta, and the
// split interval bucket the leg lies in. Hashed: memcached keys are at
// most 250 bytes, a query is up to megabytes. The whole key is also
// stored in the value, so that a hash collision reads as a miss.
func cacheKey(tenantID, query string, step, phase int64, lookback string, interval, bucket int64) (hashed, full string) {
	full = "strata-frontend-v1\x00" + tenantID + "\x00" + strconv.FormatInt(step, 10) + "\x00" + strconv.FormatInt(phase, 10) +
		"\x00" + lookback + "\x00" + strconv.FormatInt(interval, 10) + "\x00" + strconv.FormatInt(bucket, 10) + "\x00" + query
	sum := sha256.Sum256([]byte(full))
	return "qfe:" + hex.EncodeToString(sum[:]), full
}

var errCorruptEntry = errors.New("results cache entry is corrupt")

// encodeExtents is the cached value: the full key, then each extent's
// start, end and body, lengths as uvarints.
func encodeExtents(fullKey string, es []extent) []byte {
	n := len(fullKey) + 10
	for _, e := range es {
		n += len(e.body) + 30
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(fullKey)))
	b = append(b, fullKey...)
	b = binary.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		b = binary.AppendVarint(b, e.start)
		b = binary.AppendVarint(b, e.end)
		b = binary.AppendUvarint(b, uint64(len(e.body)))
		b = append(b, e.body...)
	}
	return b
}

// decodeExtents parses a cached value; ok is false when it belongs to
// another key. The extents' bodies point into b.
func decodeExtents(fullKey string, b []byte) (_ []extent, ok bool, _ error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, false, errCorruptEntry
	}
	if string(b[k:k+int(n)]) != fullKey {
		return nil, false, nil
	}
	b = b[k+int(n):]
	count, k := binary.Uvarint(b)
	if k <= 0 || count > uint64(len(b)) {
		return nil, false, errCorruptEntry
	}
	b = b[k:]
	es := make([]extent, 0, count)
	for range count {
		var e extent
		if e.start, k = binary.Varint(b); k <= 0 {
			return nil, false, errCorruptEntry
		}
		b = b[k:]
		if e.end, k = binary.Varint(b); k <= 0 {
			return nil, false, errCorruptEntry
		}
		b = b[k:]
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, false, errCorruptEntry
		}
		e.body = b[k : k+int(l)]
		b = b[k+int(l):]
		es = append(es, e)
	}
	if len(b) != 0 {
		return nil, false, errCorruptEntry
	}
	return es, true, nil
}

// gaps returns the sub-ranges of [start, end] on the grid of step that
// no extent covers, in time order. es must be sorted by start.
func gaps(es []extent, start, end, step int64) [][2]int64 {
	var out [][2]int64
	next := start // the first point not yet covered
	for _, e := range es {
		if e.end < next {
			continue
		}
		if e.start > end {
			break
		}
		if e.start > next {
			out = append(out, [2]int64{next, e.start - step})
		}
		next = e.end + step
		if next > end {
			return out
		}
	}
	if next <= end {
		out = append(out, [2]int64{next, end})
	}
	return out
}

// joinExtents merges es (sorted by start or not) into the fewest extents:
// those that overlap or adjoin on the grid of step become one, their
// answers merged. Merging decodes; an extent that does not decode is
// dropped.
func joinExtents(es []extent, step int64) ([]extent, error) {
	slices.SortFunc(es, func(a, b extent) int { return cmpInt(a.start, b.start) })
	var out []extent
	for i := 0; i < len(es); {
		j := i + 1
		end := es[i].end
		for j < len(es) && es[j].start <= end+step {
			end = max(end, es[j].end)
			j++
		}
		if j == i+1 {
			out = append(out, es[i])
			i = j
			continue
		}
		ms := make([]*matrix, 0, j-i)
		for _, e := range es[i:j] {
			m, err := decodeMatrix(e.body)
			if err != nil {
				return nil, fmt.Errorf("join cached extents: %w", err)
			}
			ms = append(ms, m)
		}
		body, err := encodeBody(mergeMatrices(ms))
		if err != nil {
			return nil, err
		}
		out = append(out, extent{start: es[i].start, end: end, body: body})
		i = j
	}
	return out, nil
}
