package deploy

import "github.com/strata-metrics/strata/internal/procs"

// LocalCluster is the topology `make cluster` (deploy/local) starts, with
// bin the strata binary and dir the cluster's state dir: 2 distributors, 3
// ingesters and 3 store-gateways in 3 zones (zone-aware, RF=3 for both),
// 1 querier and 1 compactor. Every node shares one filesystem bucket,
// <dir>/bucket, the way they would share object storage.
func LocalCluster(bin, dir string) procs.ClusterConfig {
	return procs.ClusterConfig{
		Bin: bin, Dir: dir,
		Ingesters: 3, Zones: 3, ReplicationFactor: 3,
		Distributors: 2, Queriers: 1,
		StoreGateways: 3, Compactors: 1,
	}
}
