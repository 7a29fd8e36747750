package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/strata-metrics/strata/bucket"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/clientpool"
	"github.com/strata-metrics/strata/compactor"
	"github.com/strata-metrics/strata/gossip"
	"github.com/strata-metrics/strata/proto/storepb"
	"github.com/strata-metrics/strata/querier/storequery"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/server"
	"github.com/strata-metrics/strata/storegateway"
	"github.com/strata-metrics/strata/tenant"
)

// blocksComponents are the long-term storage side of a process: the bucket
// and what writes and reads it. Nil fields are not part of the target.
type blocksComponents struct {
	// buckets are closed at shutdown; one per component that opened one.
	buckets []objstore.Bucket

	compRing *ring.Ring // the compactors: which one owns a tenant
	comp     *compactor.Compactor
	compLC   *ring.Lifecycler
	// indexes is the bucket index loader the querier and the store-gateway
	// share (one per process: its metrics are registered once).
	indexes *bucketindex.Loader

	// sgRing holds the store-gateways; every process sees it (queriers
	// route by it). sharder maps a block to its store-gateways.
	sgRing  *ring.Ring
	sharder *ring.BlockSharder
	sg      *storegateway.StoreGateway
	sgLC    *ring.Lifecycler
	// sgClient is the querier's way to the store-gateways.
	sgClient *storequery.Client
}

// checkBucketShared refuses a multi-process target whose filesystem bucket
// would default to a directory of its own: ingesters would ship blocks
// nobody reads and then delete their local copies.
func checkBucketShared(cfg *Config, dirGiven bool) error {
	if cfg.Target == targetAll || cfg.Blocks.Backend != bucket.Filesystem || dirGiven {
		return nil
	}
	if cfg.Target == targetDistributor {
		return nil // a distributor does not use the bucket
	}
	return errors.New("-target=" + cfg.Target + " needs a bucket every ingester, querier, store-gateway and compactor shares: set -blocks-storage.backend (s3, gcs, azure, swift) or -blocks-storage.filesystem.dir to a shared directory")
}

// openBucket opens the bucket for component, to be closed at shutdown.
func (b *blocksComponents) openBucket(cfg *Config, component string, log *slog.Logger, reg prometheus.Registerer) (objstore.Bucket, error) {
	bkt, err := bucket.New(cfg.Blocks, component, reg, log)
	if err != nil {
		return nil, fmt.Errorf("open bucket for %s: %w", component, err)
	}
	b.buckets = append(b.buckets, bkt)
	return bkt, nil
}

// newBlocksComponents creates the compactor (and its ring, which every
// process sees) and the bucket index loader of targets that read blocks.
func newBlocksComponents(cfg *Config, srv *server.Server, kv *gossip.KV, pool *clientpool.Pool, tenants tenant.Resolver, advertise string, runs func(string) bool, retention func(string) time.Duration, log *slog.Logger, reg prometheus.Registerer) (*blocksComponents, error) {
	b := &blocksComponents{}
	sgStore, err := ring.NewGossipStore(kv, ring.StoreGatewayRingKey, time.Now)
	if err != nil {
		return nil, err
	}
	sgRingCfg := cfg.StoreGateway.RingConfig(cfg.Ring)
	b.sgRing = ring.New(sgRingCfg, sgStore, time.Now)
	b.sharder = ring.NewBlockSharder(b.sgRing, sgRingCfg, time.Now)
	srv.Handle("/store-gateway/ring", "store_gateway_ring", b.sgRing.StatusHandlerTitled("Store-gateway ring"))

	compStore, err := ring.NewGossipStore(kv, compactor.RingKey, time.Now)
	if err != nil {
		return nil, err
	}
	b.compRing = ring.New(ring.Config{ReplicationFactor: 1, HeartbeatTimeout: cfg.Ring.HeartbeatTimeout}, compStore, time.Now)
	srv.Handle("/compactor/ring", "compactor_ring", b.compRing.StatusHandlerTitled("Compactor ring"))

	if runs(targetCompactor) {
		bkt, err := b.openBucket(cfg, "compactor", log, reg)
		if err != nil {
			return nil, err
		}
		ccfg := cfg.Compactor
		if ccfg.DataDir == "" {
			ccfg.DataDir = filepath.Join(cfg.DataDir, "compactor")
		}
		b.comp, err = compactor.New(ccfg, compactor.Deps{
			Bucket: bkt, Ring: b.compRing, InstanceID: cfg.Instance.ID, HeartbeatTimeout: cfg.Ring.HeartbeatTimeout,
			Retention: retention, IngesterReplicationFactor: cfg.Ring.ReplicationFactor,
			Log: log.With("component", "compactor"), Reg: reg, Now: time.Now,
		})
		if err != nil {
			return nil, fmt.Errorf("create compactor: %w", err)
		}
		srv.Handle("/compactor/run", "compactor_run", adminOnly(tenants, cfg.RuntimeConfig.AdminTenant, b.comp.RunHandler()))
		lcCfg := cfg.Lifecycler
		lcCfg.NumTokens, lcCfg.UnregisterOnShutdown = compactor.RingNumTokens, true
		b.compLC = ring.NewLifecycler(lcCfg, ring.LifecyclerDeps{
			ID: cfg.Instance.ID, Addr: advertise, Zone: cfg.Instance.Zone, Store: compStore,
			Log: log.With("component", "ring", "ring", "compactor"),
			Reg: prometheus.WrapRegistererWith(prometheus.Labels{"ring": "compactor"}, reg),
		})
	}

	if runs(targetStoreGateway) || runs(targetQuerier) {
		bkt, err := b.openBucket(cfg, "store-gateway", log, reg)
		if err != nil {
			return nil, err
		}
		b.indexes = bucketindex.NewLoader(cfg.BucketIndex, bkt, log.With("component", "bucket-index"), reg, time.Now)
		if runs(targetStoreGateway) {
			b.sg, err = storegateway.New(cfg.StoreGateway, storegateway.Deps{
				Bucket: bkt, Blocks: bucketindex.IndexLister(b.indexes),
				Tenants: func(ctx context.Context) ([]string, error) { return bucket.Tenants(ctx, bkt) },
				Sharder: b.sharder, InstanceID: cfg.Instance.ID,
				Log: log.With("component", "store-gateway"), Reg: reg,
			})
			if err != nil {
				return nil, fmt.Errorf("create store-gateway: %w", err)
			}
			storepb.RegisterStoreGatewayServer(srv.GRPC(), b.sg)
			// Tokens kept across restarts: a restarted store-gateway owns
			// the same blocks and finds their index files on disk.
			lcCfg := cfg.Lifecycler
			lcCfg.UnregisterOnShutdown = true
			b.sgLC = ring.NewLifecycler(lcCfg, ring.LifecyclerDeps{
				ID: cfg.Instance.ID, Addr: advertise, Zone: cfg.Instance.Zone, Store: sgStore,
				TokensFile: filepath.Join(cfg.StoreGateway.DataDir, ring.TokensFileName),
				Log:        log.With("component", "ring", "ring", "store-gateway"),
				Reg:        prometheus.WrapRegistererWith(prometheus.Labels{"ring": "store-gateway"}, reg),
			})
		}
		if runs(targetQuerier) {
			b.sgClient = storequery.New(storequery.Deps{
				Blocks: bucketindex.IndexLister(b.indexes), Sharder: b.sharder,
				Clients: storequery.ConnFunc(pool.Conn), IngesterReplicationFactor: cfg.Ring.ReplicationFactor,
				Log: log.With("component", "querier"), Reg: reg,
			})
		}
	}
	return b, nil
}

// close closes the buckets.
func (b *blocksComponents) close() error {
	var errs []error
	for _, bkt := range b.buckets {
		errs = append(errs, bkt.Close())
	}
	return errors.Join(errs...)
}

// adminOnly guards an operator endpoint (/ingester/flush, /compactor/run)
// that acts on every tenant's data. Without multi-tenancy anyone who reaches
// the port is the operator; with it, only -runtime-config.admin-tenant may
// call it, and every other tenant gets 403 (none at all when no admin
// tenant is configured).
func adminOnly(tenants tenant.Resolver, admin string, h http.Handler) http.Handler {
	if !tenants.MultitenancyEnabled && tenants.Auth == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := tenants.FromHTTP(r)
		if err != nil {
			tenant.WriteError(w, err)
			return
		}
		if admin == "" || id != admin {
			http.Error(w, fmt.Sprintf("%s acts on every tenant's data: only the operator's tenant (-runtime-config.admin-tenant) may call it, not tenant %q", r.URL.Path, id), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
