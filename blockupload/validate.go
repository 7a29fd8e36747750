package blockupload

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/strata-metrics/strata/block"
)

// maxMetaBytes bounds the meta.json a start request may carry; Prometheus'
// are under a kilobyte, a compacted block's list of sources a few more.
const maxMetaBytes = 1 << 20

// maxCompactionLevel is the highest compaction level taken: Prometheus'
// largest blocks (a tenth of a long retention) are level 6 or 7.
const maxCompactionLevel = 16

// tenantLabels are the external label names that say which tenant a block
// belongs to in Thanos, Cortex and Mimir: a block carrying one with another
// value came from another tenant.
var tenantLabels = []string{"__tenant_id__", "tenant_id", "__org_id__", "org_id"}

// uploadedMeta is the meta.json a client sends: Prometheus' block meta,
// Strata's section when the block came from Strata, and Thanos' external
// labels when it came from Thanos.
type uploadedMeta struct {
	block.Meta
	Thanos struct {
		Labels map[string]string `json:"labels"`
	} `json:"thanos"`
}

// validateMeta decodes and checks the meta.json of block id for tenant:
// what a block must be for the compactor and the store-gateways to take it.
// retention 0 means the tenant keeps everything.
func validateMeta(body []byte, id ulid.ULID, tenant string, retention, grace time.Duration, now time.Time) (*block.Meta, error) {
	var um uploadedMeta
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&um); err != nil {
		return nil, refuse(ReasonBadMeta, http.StatusBadRequest, "block %s: meta.json does not decode: %v", id, err)
	}
	m := &um.Meta
	bad := func(format string, args ...any) (*block.Meta, error) {
		return nil, refuse(ReasonBadMeta, http.StatusBadRequest, "block %s: meta.json: "+format, append([]any{id}, args...)...)
	}
	switch {
	case m.Version != 1:
		return bad("version %d, want 1 (a Prometheus TSDB block)", m.Version)
	case m.ULID != id:
		return bad("ulid %s differs from the block named in the URL", m.ULID)
	case m.MinTime >= m.MaxTime:
		return bad("min_time %d is not before max_time %d", m.MinTime, m.MaxTime)
	case m.Compaction.Level < 1 || m.Compaction.Level > maxCompactionLevel:
		return bad("compaction level %d, want 1 to %d", m.Compaction.Level, maxCompactionLevel)
	case m.MaxTime > now.Add(grace).UnixMilli():
		return bad("block ends at %s, after now plus -compactor.block-upload-future-grace (%s): is the clock of the machine that made it right?",
			time.UnixMilli(m.MaxTime).UTC().Format(time.RFC3339), grace)
	case retention > 0 && m.MaxTime <= now.Add(-retention).UnixMilli():
		return bad("every sample is older than the tenant's retention (%s, compactor_blocks_retention_period): the compactor would delete the block at once", retention)
	}
	if t := m.Strata.Tenant; t != "" && t != tenant {
		return nil, refuse(ReasonOtherTenant, http.StatusBadRequest, "block %s: meta.json says it belongs to tenant %q, not to %q", id, t, tenant)
	}
	for _, name := range tenantLabels {
		if v, ok := um.Thanos.Labels[name]; ok && v != tenant {
			return nil, refuse(ReasonOtherTenant, http.StatusBadRequest, "block %s: external label %s=%q names another tenant than %q", id, name, v, tenant)
		}
	}
	// Strata's section is the server's to write at finish.
	m.Strata = block.Ext{}
	return m, nil
}

// filePath is the whitelist of a block's files: the index and chunk
// segments, as Prometheus names them. Anything else (meta.json, marks,
// "../", absolute paths) is refused.
var filePath = regexp.MustCompile(`^(index|chunks/[0-9]{6})$`)

func validatePath(id ulid.ULID, p string) error {
	if !filePath.MatchString(p) {
		return refuse(ReasonBadFile, http.StatusBadRequest, "block %s: file %q is not a block file: want index or chunks/NNNNNN", id, p)
	}
	return nil
}
