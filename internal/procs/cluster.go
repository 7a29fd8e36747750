package procs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Role is the -target a cluster node runs.
type Role string

// The roles of a cluster: one -target each.
const (
	RoleDistributor Role = "distributor"
	RoleIngester    Role = "ingester"
	RoleQuerier     Role = "querier"
	// Long-term storage.
	RoleStoreGateway Role = "store-gateway"
	RoleCompactor    Role = "compactor"
)

// ClusterConfig is the shape of a multi-process strata cluster on loopback.
// Zero values take the defaults of `make cluster`: 3 ingesters in 3 zones,
// RF=3, 2 distributors, 1 querier.
type ClusterConfig struct {
	Bin string // the strata binary
	// Dir holds one data dir per node (<Dir>/<name>) and the log files.
	Dir string

	Ingesters, Zones, Distributors, Queriers int
	ReplicationFactor                        int
	// StoreGateways and Compactors default to none: the bucket (a shared
	// directory, <Dir>/bucket, unless Args name another) is still written
	// by the ingesters and read by the queriers through the bucket index.
	StoreGateways, Compactors int
	// ClusterLabel is -memberlist.cluster-label; empty means "strata-local".
	ClusterLabel string

	// Args are added to every process after the generated ones (a flag given
	// twice takes the last); IngesterArgs to ingesters only.
	Args, IngesterArgs []string
	// StoreGatewayArgs go to store-gateways only, CompactorArgs to
	// compactors only.
	StoreGatewayArgs, CompactorArgs []string
}

func (c *ClusterConfig) withDefaults() {
	if c.Ingesters == 0 {
		c.Ingesters = 3
	}
	if c.Zones == 0 {
		c.Zones = min(c.Ingesters, 3)
	}
	if c.Distributors == 0 {
		c.Distributors = 2
	}
	if c.Queriers == 0 {
		c.Queriers = 1
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = min(c.Ingesters, 3)
	}
	if c.ClusterLabel == "" {
		c.ClusterLabel = "strata-local"
	}
}

// NodeSpec is one planned process of a cluster.
type NodeSpec struct {
	Name string `json:"name"` // also its -instance.id
	Role Role   `json:"role"`
	Zone string `json:"zone,omitempty"` // ingesters only

	HTTPAddr   string `json:"http_addr"`
	GRPCAddr   string `json:"grpc_addr"`
	GossipAddr string `json:"gossip_addr"`
	DataDir    string `json:"data_dir"`

	Args []string `json:"args"` // without argv[0]
}

// URL is the node's HTTP base URL.
func (n *NodeSpec) URL() string { return "http://" + n.HTTPAddr }

// ZoneName is the name of the i-th zone (0-based, below 26): zone-a, zone-b, ...
func ZoneName(i int) string { return "zone-" + string(rune('a'+i)) }

// PlanCluster names the nodes of cfg, gives each three loopback addresses
// from nextAddr (HTTP, gRPC, gossip, in that order) and builds their
// arguments. Nodes come in start order: distributors first (the first
// distributor is the gossip seed that is never killed in tests), then
// ingesters (ingester-<zone>-<n>), then queriers. Every node joins the gossip
// of every other node, so any one of them alive is enough to (re)join.
func PlanCluster(cfg ClusterConfig, nextAddr func() (string, error)) ([]NodeSpec, error) {
	cfg.withDefaults()
	if cfg.Bin == "" || cfg.Dir == "" {
		return nil, errors.New("plan cluster: Bin and Dir must be set")
	}
	if cfg.Zones < 1 || cfg.Zones > cfg.Ingesters || cfg.Zones > 26 {
		return nil, fmt.Errorf("plan cluster: %d zones for %d ingesters", cfg.Zones, cfg.Ingesters)
	}
	var nodes []NodeSpec
	add := func(role Role, name, zone string) {
		nodes = append(nodes, NodeSpec{Name: name, Role: role, Zone: zone, DataDir: filepath.Join(cfg.Dir, name)})
	}
	for i := range cfg.Distributors {
		add(RoleDistributor, "distributor-"+strconv.Itoa(i+1), "")
	}
	perZone := map[string]int{}
	for i := range cfg.Ingesters {
		zone := ZoneName(i % cfg.Zones)
		perZone[zone]++
		add(RoleIngester, fmt.Sprintf("ingester-%s-%d", zone, perZone[zone]), zone)
	}
	for i := range cfg.Queriers {
		add(RoleQuerier, "querier-"+strconv.Itoa(i+1), "")
	}
	for i := range cfg.StoreGateways {
		add(RoleStoreGateway, fmt.Sprintf("store-gateway-%s-%d", ZoneName(i%cfg.Zones), i/cfg.Zones+1), ZoneName(i%cfg.Zones))
	}
	for i := range cfg.Compactors {
		add(RoleCompactor, "compactor-"+strconv.Itoa(i+1), "")
	}
	for i := range nodes {
		n := &nodes[i]
		for _, a := range []*string{&n.HTTPAddr, &n.GRPCAddr, &n.GossipAddr} {
			addr, err := nextAddr()
			if err != nil {
				return nil, fmt.Errorf("plan cluster: address for %s: %w", n.Name, err)
			}
			*a = addr
		}
	}
	for i := range nodes {
		n := &nodes[i]
		var seeds []string
		for j := range nodes {
			if j != i {
				seeds = append(seeds, nodes[j].GossipAddr)
			}
		}
		n.Args = []string{
			"-target=" + string(n.Role),
			"-instance.id=" + n.Name,
			"-server.http-listen-address=" + n.HTTPAddr,
			"-server.grpc-listen-address=" + n.GRPCAddr,
			"-instance.addr=" + n.GRPCAddr,
			"-data.dir=" + n.DataDir,
			"-memberlist.bind-address=" + n.GossipAddr,
			"-memberlist.join=" + strings.Join(seeds, ","),
			"-memberlist.cluster-label=" + cfg.ClusterLabel,
			"-ring.replication-factor=" + strconv.Itoa(cfg.ReplicationFactor),
			"-ring.zone-awareness-enabled=" + strconv.FormatBool(cfg.Zones > 1),
			// One bucket for the whole cluster, as object storage would be.
			"-blocks-storage.filesystem.dir=" + filepath.Join(cfg.Dir, "bucket"),
			"-store-gateway.replication-factor=" + strconv.Itoa(min(cfg.ReplicationFactor, max(cfg.StoreGateways, 1))),
			// The operator pages (rings, flush) are this tenant's when
			// multi-tenancy is on; FetchRing and WaitRing send it.
			"-runtime-config.admin-tenant=" + OperatorTenant,
		}
		if n.Zone != "" {
			n.Args = append(n.Args, "-instance.zone="+n.Zone)
		}
		n.Args = append(n.Args, cfg.Args...)
		switch n.Role {
		case RoleIngester:
			n.Args = append(n.Args, cfg.IngesterArgs...)
		case RoleStoreGateway:
			n.Args = append(n.Args, cfg.StoreGatewayArgs...)
		case RoleCompactor:
			n.Args = append(n.Args, cfg.CompactorArgs...)
		}
	}
	return nodes, nil
}
