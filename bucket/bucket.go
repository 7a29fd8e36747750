package bucket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/azure"
	"github.com/thanos-io/objstore/providers/gcs"
	"github.com/thanos-io/objstore/providers/s3"
	"github.com/thanos-io/objstore/providers/swift"

	"github.com/strata-metrics/strata/tenant"
)

// New opens the bucket of cfg for component (e.g. "ingester",
// "compactor"), instrumented: its operations are counted and timed in
// strata_objstore_bucket_operations_total,
// strata_objstore_bucket_operation_failures_total,
// strata_objstore_bucket_operation_duration_seconds (and the transferred
// bytes), labelled component=<component>, bucket=<name> and operation.
// Each component of a process opens its own.
//
// It does no network I/O, except for Swift, whose client authenticates
// while it is created. reg and log may be nil. The caller closes the
// bucket.
func New(cfg Config, component string, reg prometheus.Registerer, log *slog.Logger) (objstore.InstrumentedBucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	klog := kitLogger{log.With("component", component, "backend", cfg.Backend)}
	var (
		bkt objstore.Bucket
		err error
	)
	switch cfg.Backend {
	case Filesystem:
		if cfg.Filesystem.Dir == "" {
			return nil, errors.New("-blocks-storage.filesystem.dir is empty: Config.Resolve was not called")
		}
		bkt, err = newFSBucket(cfg.Filesystem.Dir, log.With("component", component))
	case S3:
		bkt, err = s3.NewBucketWithConfig(klog, s3Config(cfg.S3), component, nil)
	case GCS:
		var gc gcs.Config
		if gc, err = gcsConfig(cfg.GCS); err == nil {
			bkt, err = gcs.NewBucketWithConfig(context.Background(), klog, gc, component, nil)
		}
	case Azure:
		bkt, err = azure.NewBucketWithConfig(klog, azureConfig(cfg.Azure), component, nil)
	case Swift:
		sc := swiftConfig(cfg.Swift)
		bkt, err = swift.NewContainerFromConfig(klog, &sc, false, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s bucket: %w", cfg.Backend, err)
	}
	// strata_ on objstore's own names: every Strata metric shares the
	// prefix, and dashboards made for Thanos' objstore_bucket_* carry over
	// with it. The component label tells the handles of one process apart.
	reg = prometheus.WrapRegistererWithPrefix("strata_",
		prometheus.WrapRegistererWith(prometheus.Labels{"component": component}, reg))
	return objstore.WrapWithMetrics(bkt, reg, bkt.Name()), nil
}

func s3Config(c S3Config) s3.Config {
	sc := s3.DefaultConfig
	sc.Endpoint = c.Endpoint
	sc.Bucket = c.BucketName
	sc.Region = c.Region
	sc.AccessKey = c.AccessKeyID
	sc.SecretKey = c.SecretAccessKey.Value()
	sc.Insecure = c.Insecure
	sc.PutUserMetadata = nil
	switch c.BucketLookupType {
	case lookupVirtual:
		sc.BucketLookupType = s3.VirtualHostLookup
	case lookupPath:
		sc.BucketLookupType = s3.PathLookup
	default:
		sc.BucketLookupType = s3.AutoLookup
	}
	return sc
}

func gcsConfig(c GCSConfig) (gcs.Config, error) {
	gc := gcs.DefaultConfig
	gc.Bucket = c.BucketName
	if c.ServiceAccountFile != "" {
		b, err := os.ReadFile(c.ServiceAccountFile)
		if err != nil {
			return gc, fmt.Errorf("reading -blocks-storage.gcs.service-account-file: %w", err)
		}
		gc.ServiceAccount = string(b)
	}
	return gc, nil
}

func azureConfig(c AzureConfig) azure.Config {
	ac := azure.DefaultConfig
	ac.StorageAccountName = c.AccountName
	ac.StorageAccountKey = c.AccountKey.Value()
	ac.ContainerName = c.ContainerName
	ac.Endpoint = c.EndpointSuffix
	// The operator creates the container: creating it would be network
	// I/O in New, and a typo in the name would silently make a new one.
	ac.StorageCreateContainer = false
	return ac
}

func swiftConfig(c SwiftConfig) swift.Config {
	sc := swift.DefaultConfig
	sc.AuthUrl = c.AuthURL
	sc.Username = c.Username
	sc.Password = c.Password.Value()
	sc.DomainName = c.DomainName
	sc.ProjectDomainName = c.DomainName
	sc.ProjectName = c.ProjectName
	sc.RegionName = c.RegionName
	sc.ContainerName = c.ContainerName
	return sc
}

// Tenants lists the tenants that have objects in bkt: the top-level
// prefixes that are valid tenant ids (tenant.Validate), sorted. Anything
// else at the top level (a stray file, a directory of another tool) is
// ignored.
func Tenants(ctx context.Context, bkt objstore.BucketReader) ([]string, error) {
	var ids []string
	err := bkt.Iter(ctx, "", func(name string) error {
		id, ok := strings.CutSuffix(name, objstore.DirDelim)
		if ok && tenant.Validate(id) == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing tenants in the bucket: %w", err)
	}
	sort.Strings(ids)
	return ids, nil
}
