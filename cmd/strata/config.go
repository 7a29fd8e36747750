package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/strata-metrics/strata/alertmanager"
	"github.com/strata-metrics/strata/auth"
	"github.com/strata-metrics/strata/blockupload"
	"github.com/strata-metrics/strata/bucket"
	"github.com/strata-metrics/strata/bucketindex"
	"github.com/strata-metrics/strata/clientpool"
	"github.com/strata-metrics/strata/compactor"
	"github.com/strata-metrics/strata/distributor"
	"github.com/strata-metrics/strata/frontend"
	"github.com/strata-metrics/strata/gossip"
	"github.com/strata-metrics/strata/ingester"
	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/querier"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/ruler"
	"github.com/strata-metrics/strata/server"
	"github.com/strata-metrics/strata/storegateway"
	"github.com/strata-metrics/strata/tenant"
)

// Config is the whole process: every component's configuration.
type Config struct {
	Target         string                   `yaml:"target"`
	DataDir        string                   `yaml:"data_dir"`
	Instance       InstanceConfig           `yaml:"instance"`
	Auth           auth.Config              `yaml:"auth"`
	Server         server.Config            `yaml:"server"`
	Memberlist     gossip.Config            `yaml:"memberlist"`
	Ring           ring.Config              `yaml:"ring"`
	Lifecycler     ring.LifecyclerConfig    `yaml:"lifecycler"`
	IngesterClient clientpool.Config        `yaml:"ingester_client"`
	Distributor    distributor.Config       `yaml:"distributor"`
	Ingester       ingester.Config          `yaml:"ingester"`
	Querier        querier.Config           `yaml:"querier"`
	Frontend       frontend.Config          `yaml:"frontend"`
	Limits         limits.Limits            `yaml:"limits"`
	RuntimeConfig  limits.RuntimeConfig     `yaml:"runtime_config"`
	Blocks         bucket.Config            `yaml:"blocks_storage"`
	BucketIndex    bucketindex.LoaderConfig `yaml:"bucket_index"`
	Compactor      compactor.Config         `yaml:"compactor"`
	BlockUpload    blockupload.Config       `yaml:"block_upload"`
	Ruler          ruler.Config             `yaml:"ruler"`
	StoreGateway   storegateway.Config      `yaml:"store_gateway"`
	Metrics        tenant.MetricsConfig     `yaml:"metrics"`
	Alertmanager   alertmanager.Config      `yaml:"alertmanager"`

	configFile   string
	printVersion bool // -version: print the build and exit
}

// The targets: what one process runs.
const (
	targetAll          = "all"
	targetDistributor  = "distributor"
	targetIngester     = "ingester"
	targetQuerier      = "querier"
	targetCompactor    = "compactor"
	targetStoreGateway = "store-gateway"
	targetRuler        = "ruler"
	targetAlertmanager = "alertmanager"
	targetFrontend     = "query-frontend"
)

// InstanceConfig names this process in the ring.
type InstanceConfig struct {
	ID   string `yaml:"id"`
	Zone string `yaml:"zone"`
	Addr string `yaml:"addr"`
}

// RegisterFlags registers every flag of the process on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	fs.StringVar(&c.Target, "target", targetAll, "Components this process runs: all (every component in one process, gossip and gRPC on loopback unless -memberlist.join is given, replication factor 1, blocks in a filesystem bucket under -data.dir), distributor, ingester, querier, query-frontend (in front of the queriers at -frontend.downstream-url), store-gateway, compactor, ruler or alertmanager (one component; a cluster of them joins with -memberlist.join).")
	fs.StringVar(&c.configFile, "config.file", "", "YAML file with the configuration; flags given on the command line win over it.")
	fs.BoolVar(&c.printVersion, "version", false, "Print the version, revision, branch, build date and Go version, and exit.")
	fs.StringVar(&c.DataDir, "data.dir", "./data", "Directory for the ingesters' TSDBs and WAL.")
	fs.StringVar(&c.Instance.ID, "instance.id", host, "This instance's id in the ring; unique in the cluster.")
	fs.StringVar(&c.Instance.Zone, "instance.zone", "", "Availability zone of this instance, for zone-aware replication.")
	fs.StringVar(&c.Instance.Addr, "instance.addr", "", "gRPC host:port other components reach this instance at; default: the gRPC listen address, an unspecified host replaced by this machine's first non-loopback IPv4 (127.0.0.1 with -target=all).")
	c.Auth.RegisterFlags(fs)
	c.Server.RegisterFlags(fs)
	c.Memberlist.RegisterFlags(fs)
	c.Ring.RegisterFlags(fs)
	c.Lifecycler.RegisterFlags(fs)
	c.IngesterClient.RegisterFlags(fs)
	c.Distributor.RegisterFlags(fs)
	c.Ingester.RegisterFlags(fs)
	c.Querier.RegisterFlags(fs)
	c.Frontend.RegisterFlags(fs)
	c.Limits.RegisterFlags(fs)
	c.RuntimeConfig.RegisterFlags(fs)
	c.Blocks.RegisterFlags(fs)
	c.BucketIndex.RegisterFlags(fs)
	c.Compactor.RegisterFlags(fs)
	c.BlockUpload.RegisterFlags(fs)
	c.Ruler.RegisterFlags(fs)
	c.StoreGateway.RegisterFlags(fs)
	c.Metrics.RegisterFlags(fs)
	c.Alertmanager.RegisterFlags(fs)
}

// Validate checks every component's configuration.
func (c *Config) Validate() error {
	switch c.Target {
	case targetAll, targetDistributor, targetIngester, targetQuerier, targetFrontend, targetStoreGateway, targetCompactor, targetRuler, targetAlertmanager:
	default:
		return fmt.Errorf("-target=%q is unknown; want all, distributor, ingester, querier, query-frontend, store-gateway, compactor, ruler or alertmanager", c.Target)
	}
	if c.Target == targetFrontend && c.Frontend.DownstreamURL == "" {
		return errors.New("-target=query-frontend needs -frontend.downstream-url, the queriers' base URL")
	}
	if c.DataDir == "" {
		return errors.New("-data.dir must not be empty")
	}
	if c.Instance.ID == "" {
		return errors.New("-instance.id must not be empty")
	}
	if c.Instance.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Instance.Addr); err != nil {
			return fmt.Errorf("-instance.addr=%q is not host:port: %w", c.Instance.Addr, err)
		}
	}
	for _, v := range []interface{ Validate() error }{
		&c.Server, &c.Memberlist, &c.Ring, &c.Lifecycler, &c.IngesterClient, &c.Distributor, &c.Ingester, &c.Querier, &c.Frontend, &c.Limits, &c.RuntimeConfig, &c.Auth,
		&c.Blocks, &c.BucketIndex, &c.Compactor, &c.BlockUpload, &c.StoreGateway, &c.Metrics, &c.Ruler, &c.Alertmanager,
	} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if c.Compactor.DeletionDelay <= c.BucketIndex.IgnoreDeletionMarksDelay+c.BucketIndex.MaxStalePeriod {
		return fmt.Errorf("-compactor.deletion-delay (%s) must be above -blocks-storage.bucket-index.ignore-deletion-marks-delay plus -blocks-storage.bucket-index.max-stale-period (%s): a querier may still read a block that long after it was marked", c.Compactor.DeletionDelay, c.BucketIndex.IgnoreDeletionMarksDelay+c.BucketIndex.MaxStalePeriod)
	}
	if q := c.Querier.QueryIngestersWithin; q > 0 && c.Querier.QueryStoreAfter > 0 && c.Ingester.RetainShippedFor < c.Querier.QueryStoreAfter {
		return fmt.Errorf("-ingester.retain-shipped-for (%s) must be at least -querier.query-store-after (%s): ingesters would delete blocks the querier still expects them to hold and the store-gateways are not asked for", c.Ingester.RetainShippedFor, c.Querier.QueryStoreAfter)
	}
	if c.Compactor.CleanupInterval >= c.BucketIndex.MaxStalePeriod {
		return fmt.Errorf("-compactor.cleanup-interval (%s) must be below -blocks-storage.bucket-index.max-stale-period (%s), or queriers fail on an index they think stale", c.Compactor.CleanupInterval, c.BucketIndex.MaxStalePeriod)
	}
	return nil
}

// parseConfig fills a Config from defaults, then the YAML file, then the
// flags given on the command line. -target=all replicates once unless the
// replication factor was given (flag or file): one process, one copy.
func parseConfig(args []string) (*Config, *flag.FlagSet, error) {
	cfg := &Config{}
	fs := flag.NewFlagSet("strata", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, fmt.Errorf("unexpected arguments %q: every option is a flag", fs.Args())
	}
	if cfg.printVersion {
		return cfg, fs, nil
	}
	rfGiven, sgRFGiven := false, false
	fs.Visit(func(f *flag.Flag) {
		rfGiven = rfGiven || f.Name == "ring.replication-factor"
		sgRFGiven = sgRFGiven || f.Name == "store-gateway.replication-factor"
	})
	if cfg.configFile != "" {
		b, err := os.ReadFile(cfg.configFile)
		if err != nil {
			return nil, fs, fmt.Errorf("read -config.file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true) // a misspelt field is an error, not silently ignored
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, fs, fmt.Errorf("parse -config.file %s: %w", filepath.Base(cfg.configFile), err)
		}
		var probe struct {
			Ring struct {
				ReplicationFactor *int `yaml:"replication_factor"`
			} `yaml:"ring"`
			StoreGateway struct {
				ReplicationFactor *int `yaml:"replication_factor"`
			} `yaml:"store_gateway"`
		}
		if err := yaml.Unmarshal(b, &probe); err == nil {
			rfGiven = rfGiven || probe.Ring.ReplicationFactor != nil
			sgRFGiven = sgRFGiven || probe.StoreGateway.ReplicationFactor != nil
		}
		// Flags given on the command line win over the file.
		if err := fs.Parse(args); err != nil {
			return nil, fs, err
		}
	}
	if cfg.Target == targetAll && !rfGiven {
		cfg.Ring.ReplicationFactor = 1
	}
	if cfg.Target == targetAll && !sgRFGiven {
		cfg.StoreGateway.ReplicationFactor = 1
	}
	cfg.Server.GRPCListenAddress = grpcListenAddress(cfg)
	cfg.StoreGateway.Resolve(cfg.DataDir)
	cfg.Alertmanager.Resolve(cfg.DataDir)
	bucketDirGiven := cfg.Blocks.Filesystem.Dir != ""
	cfg.Blocks.Resolve(cfg.DataDir)
	if err := cfg.Validate(); err != nil {
		return cfg, fs, err
	}
	return cfg, fs, checkBucketShared(cfg, bucketDirGiven)
}
