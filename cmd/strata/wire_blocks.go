package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/blockupload"
	"github.com/strata-metrics/strata/bucket"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/compactor"
	"github.com/strata-metrics/strata/proto/storepb"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/storegateway"
)

// blocks is the long-term storage side of the wiring: the bucket and the
// rings of the components that read and compact it.
type blocks struct {
	// buckets are closed at shutdown; one per component that opened one.
	buckets []objstore.Bucket

	compStore *ring.GossipStore
	compRing  *ring.Ring // the compactors: which one owns a tenant

	// sgRing holds the store-gateways; every process sees it (queriers
	// route by it). sharder maps a block to its store-gateways.
	sgStore *ring.GossipStore
	sgRing  *ring.Ring
	sharder *ring.BlockSharder

	// indexes is the bucket index loader the querier and the store-gateway
	// share (one per process: its metrics are registered once), reading
	// indexBucket; nil unless the bucket index loader module runs.
	indexes     *bucketindex.Loader
	indexBucket objstore.Bucket
}

// checkBucketShared refuses a multi-process target whose filesystem bucket
// would default to a directory of its own: ingesters would ship blocks
// nobody reads and then delete their local copies.
func checkBucketShared(cfg *Config, dirGiven bool) error {
	if cfg.Target == targetAll || cfg.Blocks.Backend != bucket.Filesystem || dirGiven {
		return nil
	}
	if cfg.Target == targetDistributor || cfg.Target == targetFrontend {
		return nil // a distributor or query-frontend does not use the bucket
	}
	return errors.New("-target=" + cfg.Target + " needs a bucket every ingester, querier, store-gateway and compactor shares: set -blocks-storage.backend (s3, gcs, azure, swift) or -blocks-storage.filesystem.dir to a shared directory")
}

// openBucket opens the bucket for component, to be closed at shutdown.
func (w *wiring) openBucket(component string) (objstore.Bucket, error) {
	bkt, err := bucket.New(w.cfg.Blocks, component, w.reg, w.log)
	if err != nil {
		return nil, fmt.Errorf("open bucket for %s: %w", component, err)
	}
	w.buckets = append(w.buckets, bkt)
	return bkt, nil
}

// closeBuckets closes the buckets the modules opened.
func (b *blocks) closeBuckets() error {
	var errs []error
	for _, bkt := range b.buckets {
		errs = append(errs, bkt.Close())
	}
	return errors.Join(errs...)
}

// newBlocks makes the store-gateway and compactor rings, which every
// process sees.
func (w *wiring) newBlocks() error {
	var err error
	if w.sgStore, err = ring.NewGossipStore(w.kv, ring.StoreGatewayRingKey, time.Now); err != nil {
		return err
	}
	sgRingCfg := w.cfg.StoreGateway.RingConfig(w.cfg.Ring)
	w.sgRing = ring.New(sgRingCfg, w.sgStore, time.Now)
	w.sharder = ring.NewBlockSharder(w.sgRing, sgRingCfg, time.Now)
	w.srv.Handle("/store-gateway/ring", "store_gateway_ring", w.operator(w.sgRing.StatusHandlerTitled("Store-gateway ring")))

	if w.compStore, err = ring.NewGossipStore(w.kv, compactor.RingKey, time.Now); err != nil {
		return err
	}
	w.compRing = ring.New(ring.Config{ReplicationFactor: 1, HeartbeatTimeout: w.cfg.Ring.HeartbeatTimeout}, w.compStore, time.Now)
	w.srv.Handle("/compactor/ring", "compactor_ring", w.operator(w.compRing.StatusHandlerTitled("Compactor ring")))
	return nil
}

// newCompactor: ACTIVE in the compactor ring at once (it owns tenants, not
// data); a compaction in progress is abandoned at shutdown (its partial
// output is never visible: meta.json goes last).
func newCompactor(w *wiring) (*module, error) {
	cfg := w.cfg
	bkt, err := w.openBucket("compactor")
	if err != nil {
		return nil, err
	}
	ccfg := cfg.Compactor
	if ccfg.DataDir == "" {
		ccfg.DataDir = filepath.Join(cfg.DataDir, "compactor")
	}
	comp, err := compactor.New(ccfg, compactor.Deps{
		Bucket: bkt, Ring: w.compRing, InstanceID: cfg.Instance.ID, HeartbeatTimeout: cfg.Ring.HeartbeatTimeout,
		Retention:                 func(t string) time.Duration { return w.overrides.For(t).CompactorBlocksRetentionPeriod },
		IngesterReplicationFactor: cfg.Ring.ReplicationFactor,
		Log:                       w.log.With("component", "compactor"), Reg: w.reg, Now: time.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("create compactor: %w", err)
	}
	w.srv.Handle("/compactor/run", "compactor_run", w.operator(comp.RunHandler()))
	// Block uploads (strata backfill) land here: the compactor is the one
	// writer of a tenant's blocks besides the shippers, its work directory
	// holds the block being verified, and it deletes abandoned uploads.
	blockupload.New(cfg.BlockUpload, blockupload.Deps{
		Bucket: bkt, Tenants: w.tenants, TempDir: filepath.Join(ccfg.DataDir, "upload"),
		Enabled:   func(t string) bool { return w.overrides.For(t).CompactorBlockUploadEnabled },
		Retention: func(t string) time.Duration { return w.overrides.For(t).CompactorBlocksRetentionPeriod },
		Log:       w.log.With("component", "block-upload"), Reg: w.reg, Now: time.Now,
	}).Register(w.srv)
	lcCfg := cfg.Lifecycler
	lcCfg.NumTokens, lcCfg.UnregisterOnShutdown = compactor.RingNumTokens, true
	return &module{
		run: comp.Run, stopTimeout: compactorStopTimeout,
		ring: &ringMember{ring: "compactor", lc: w.lifecycler("compactor", lcCfg, w.compStore, "")},
	}, nil
}

// newBucketIndexLoader keeps the bucket indexes the querier and the
// store-gateway read blocks by.
func newBucketIndexLoader(w *wiring) (*module, error) {
	bkt, err := w.openBucket("store-gateway")
	if err != nil {
		return nil, err
	}
	w.indexBucket = bkt
	w.indexes = bucketindex.NewLoader(w.cfg.BucketIndex, bkt, w.log.With("component", "bucket-index"), w.reg, time.Now)
	return &module{run: w.indexes.Run}, nil
}

// newStoreGateway: JOINING until its first sync of owned blocks, then
// ACTIVE. Tokens kept across restarts: a restarted store-gateway owns the
// same blocks and finds their index files on disk.
func newStoreGateway(w *wiring) (*module, error) {
	cfg, bkt := w.cfg, w.indexBucket
	sg, err := storegateway.New(cfg.StoreGateway, storegateway.Deps{
		Bucket: bkt, Blocks: bucketindex.IndexLister(w.indexes),
		Tenants: func(ctx context.Context) ([]string, error) { return bucket.Tenants(ctx, bkt) },
		Sharder: w.sharder, InstanceID: cfg.Instance.ID,
		Log: w.log.With("component", "store-gateway"), Reg: w.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("create store-gateway: %w", err)
	}
	storepb.RegisterStoreGatewayServer(w.srv.GRPC(), sg)
	lcCfg := cfg.Lifecycler
	lcCfg.UnregisterOnShutdown = true
	return &module{
		run:   sg.Run,
		ready: []readyCheck{{"store-gateway", sg.CheckReady}},
		ring: &ringMember{
			ring: "store-gateway", lc: w.lifecycler("store-gateway", lcCfg, w.sgStore, filepath.Join(cfg.StoreGateway.DataDir, ring.TokensFileName)),
			activeAfter: sg.CheckReady,
		},
	}, nil
}

// operator guards an operator page (tenant.Resolver.OperatorOnly).
func (w *wiring) operator(h http.Handler) http.Handler {
	return w.tenants.OperatorOnly(w.cfg.RuntimeConfig.AdminTenant, h)
}
