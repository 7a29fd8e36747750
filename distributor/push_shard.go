package distributor

import (
	"fmt"

	"github.com/strata-metrics/strata/remotewrite"
	"github.com/strata-metrics/strata/ring"
)

// seriesToken is the ring token of a series: ring.KeyToken of
//
//	tenant 0xff name1 0xff value1 0xff name2 0xff value2 0xff ...
//
// over the labels sorted by name with empty values removed (as validate
// leaves them). 0xff never occurs in valid UTF-8, so distinct label sets
// never hash the same bytes.
//
// NEVER CHANGE THIS FUNCTION once a cluster holds data: a series hashed
// differently moves to other ingesters, which then hold half of its
// history each and count it twice against series limits. TestSeriesToken
// pins its output.
func seriesToken(key []byte, tenantID string, ls []remotewrite.Label) (uint32, []byte) {
	key = append(key[:0], tenantID...)
	key = append(key, 0xff)
	for i := range ls {
		key = append(key, ls[i].Name...)
		key = append(key, 0xff)
		key = append(key, ls[i].Value...)
		key = append(key, 0xff)
	}
	return ring.KeyToken(key), key
}

// metadataToken is the token of a metric family's metadata: the token of
// the bare series {__name__="family"} of the tenant, so that metadata is
// sharded by family like series (no ingester holds all of it) and lands on
// RF ingesters. Never change it either, for the same reason.
func metadataToken(key []byte, tenantID, family string) (uint32, []byte) {
	key = append(key[:0], tenantID...)
	key = append(key, 0xff)
	key = append(key, metricNameLabel...)
	key = append(key, 0xff)
	key = append(key, family...)
	key = append(key, 0xff)
	return ring.KeyToken(key), key
}

// item is one series or metadata entry of a request in flight, with what
// its quorum needs.
type item struct {
	quorum    int32 // acks needed: ReplicationSet.Quorum()
	maxErrors int32 // failures tolerated: ReplicationSet.MaxErrors
	acks      int32
	fails     int32
	done      bool // reached its quorum
}

// batch is what one ingester receives of a request.
type batch struct {
	inst  ring.Instance
	buf   *[]byte // the WriteRequest body, from Distributor.bufs
	items []int32 // indexes into pushState.items, in encoding order
}

// shard assigns every series and metadata entry of st.req to its replicas
// and encodes it into their batches: each series is encoded once, into its
// first replica's buffer, and copied from there into the others'. Items are indexed
// series first, then metadata. It fails (with a ring error) as soon as one
// item cannot be placed, before anything is sent.
func (d *Distributor) shard(st *pushState, tenantID string) error {
	r := st.req
	st.resetShard()
	for i := range r.Series {
		s := &r.Series[i]
		var tok uint32
		tok, st.key = seriesToken(st.key, tenantID, s.Labels)
		rs, err := d.ring.Get(tok, ring.Write, st.replicas)
		if err != nil {
			return fmt.Errorf("find ingesters for series %s: %w", remotewrite.FormatLabels(s.Labels), err)
		}
		st.replicas = rs.Instances[:0]
		it := st.addItem(rs)
		// Encoded once, into the first replica's buffer, and copied from
		// there into the others'.
		// (first is not used after the next batchFor, which may move it.)
		first := d.batchFor(st, &rs.Instances[0])
		first.items = append(first.items, it)
		enc := first.buf
		from := len(*enc)
		*enc = remotewrite.AppendSeries(*enc, s)
		for j := 1; j < len(rs.Instances); j++ {
			b := d.batchFor(st, &rs.Instances[j])
			*b.buf = append(*b.buf, (*enc)[from:]...)
			b.items = append(b.items, it)
		}
	}
	for i := range r.Metadata {
		m := &r.Metadata[i]
		var tok uint32
		tok, st.key = metadataToken(st.key, tenantID, m.FamilyName)
		rs, err := d.ring.Get(tok, ring.Write, st.replicas)
		if err != nil {
			return fmt.Errorf("find ingesters for metadata of %q: %w", m.FamilyName, err)
		}
		st.replicas = rs.Instances[:0]
		it := st.addItem(rs)
		st.scratch = remotewrite.AppendMetadata(st.scratch[:0], m)
		for j := range rs.Instances {
			b := d.batchFor(st, &rs.Instances[j])
			*b.buf = append(*b.buf, st.scratch...)
			b.items = append(b.items, it)
		}
	}
	return nil
}

func (st *pushState) addItem(rs ring.ReplicationSet) int32 {
	q := int32(rs.Quorum())
	st.items = append(st.items, item{quorum: q, maxErrors: int32(rs.MaxErrors), done: q <= 0})
	return int32(len(st.items) - 1)
}

// batchFor returns the batch of inst, starting one (with a pooled buffer)
// on its first series.
func (d *Distributor) batchFor(st *pushState, inst *ring.Instance) *batch {
	if len(st.batches) <= batchScan {
		for i := range st.batches {
			if st.batches[i].inst.ID == inst.ID {
				return &st.batches[i]
			}
		}
	} else if i, ok := st.batchOf[inst.ID]; ok {
		return &st.batches[i]
	}
	st.batchOf[inst.ID] = len(st.batches)
	if len(st.batches) < cap(st.batches) {
		st.batches = st.batches[:len(st.batches)+1] // reuse the items slice
	} else {
		st.batches = append(st.batches, batch{})
	}
	b := &st.batches[len(st.batches)-1]
	b.inst = *inst
	b.buf = d.getBuf()
	b.items = b.items[:0]
	return b
}

// releaseBatches returns the buffers of batches that were not sent.
func (d *Distributor) releaseBatches(st *pushState) {
	for i := range st.batches {
		if b := &st.batches[i]; b.buf != nil {
			d.putBuf(b.buf)
			b.buf = nil
		}
	}
}

// batchScan is how many batches batchFor scans before it uses the map:
// comparing a few ids beats hashing one.
const batchScan = 8

// resetShard forgets the previous request's sharding, keeping capacity.
func (st *pushState) resetShard() {
	clear(st.batchOf)
	st.batches = st.batches[:0]
	st.items = st.items[:0]
}
