package storequery

import (
	"fmt"

	"github.com/oklog/ulid/v2"

	"github.com/strata-metrics/strata/block"
	"github.com/strata-metrics/strata/bucketindex"
)

// skipCovered returns the failures left once those of damaged ingester
// copies covered by other copies (coveredByCopies) are dropped, each of
// these logged and counted.
func (c *Client) skipCovered(rpc, tenantID string, blocks []bucketindex.BlockRef, failed []BlockFailure) []BlockFailure {
	bad := make(map[ulid.ULID]bool, len(failed))
	for _, f := range failed {
		bad[f.ID] = true
	}
	byID := make(map[ulid.ULID]bucketindex.BlockRef, len(blocks))
	for _, b := range blocks {
		byID[b.ID] = b
	}
	var left []BlockFailure
	for _, f := range failed {
		if f.DataLoss {
			if ok, why := coveredByCopies(byID[f.ID], blocks, bad, c.rf); ok {
				c.m.blocksSkipped.Inc()
				c.log.Warn("skipping a damaged block: other ingesters' copies of its range were served", "rpc", rpc, "tenant", tenantID,
					"block", f.ID, "ingester", byID[f.ID].Ingester, "copies", why, "err", f.Attempts[len(f.Attempts)-1].Err)
				continue
			}
		}
		left = append(left, f)
	}
	return left
}

// coveredByCopies reports whether every acknowledged sample of the damaged
// block bad is also in a served block of the query, so that bad may be
// left out: failed holds the blocks of the query that were not served, rf
// the ingesters' replication factor. The second result describes the
// copies, for the log.
//
// The rule: a write is acknowledged once Q = rf/2+1 of its rf ingesters
// hold it, so each acknowledged sample is in at least Q ingesters' blocks
// of its range (first-level blocks, Source ingester, one per ingester and
// range). Losing the copies of L ingesters loses no sample while L <= Q-1
// (each sample keeps at least Q-L >= 1 holder), provided the holders'
// copies are in the query: we require the copies of at least rf distinct
// ingesters overlapping bad's range to exist, every one of them served
// but those of the L lost ingesters. So: rf 2 (Q 2) — one intact copy
// covers the other; rf 3 (Q 2) — one damaged copy is covered by the two
// others, both served, but two damaged copies are not (a sample may be on
// exactly those two); rf 1 — never.
//
// Limits: a block the compactor wrote (Source compactor) is never skipped,
// nor counted as a copy (how many copies it merged is unknown here). With
// more ingesters than rf each copy holds only its ingesters' series, so
// "rf copies served" cannot prove that a given series' holders were among
// them; the rule assumes every holder's copy of the range reached the
// bucket index (ingesters ship every block before deleting it).
func coveredByCopies(bad bucketindex.BlockRef, blocks []bucketindex.BlockRef, failed map[ulid.ULID]bool, rf int) (bool, string) {
	if rf < 2 || bad.Source != block.SourceIngester || bad.Ingester == "" || bad.MaxTime <= bad.MinTime {
		return false, ""
	}
	lost := map[string]bool{}
	served := map[string]bool{}
	for _, b := range blocks {
		if b.Source != block.SourceIngester || b.Ingester == "" || !b.Overlaps(bad.MinTime, bad.MaxTime-1) {
			continue
		}
		if failed[b.ID] {
			lost[b.Ingester] = true
		} else {
			served[b.Ingester] = true
		}
	}
	for ing := range lost {
		delete(served, ing) // an ingester with one lost copy of the range counts as lost
	}
	why := fmt.Sprintf("%d ingester(s) served, %d lost, replication factor %d", len(served), len(lost), rf)
	quorum := rf/2 + 1
	return len(lost) <= quorum-1 && len(served)+len(lost) >= rf, why
}
