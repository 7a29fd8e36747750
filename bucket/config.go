package bucket

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
)

// The backends.
const (
	Filesystem = "filesystem"
	S3         = "s3"
	GCS        = "gcs"
	Azure      = "azure"
	Swift      = "swift"
)

// Config says which object storage holds the blocks and how to reach it.
// Only the section of the chosen backend is used.
type Config struct {
	Backend    string           `yaml:"backend"`
	Filesystem FilesystemConfig `yaml:"filesystem"`
	S3         S3Config         `yaml:"s3"`
	GCS        GCSConfig        `yaml:"gcs"`
	Azure      AzureConfig      `yaml:"azure"`
	Swift      SwiftConfig      `yaml:"swift"`
}

// FilesystemConfig is a bucket in a local directory: one process, or
// several sharing a network file system.
type FilesystemConfig struct {
	Dir string `yaml:"dir"`
}

// S3Config is an S3 or S3-compatible bucket.
type S3Config struct {
	Endpoint         string `yaml:"endpoint"`
	BucketName       string `yaml:"bucket_name"`
	Region           string `yaml:"region"`
	AccessKeyID      string `yaml:"access_key_id"`
	SecretAccessKey  Secret `yaml:"secret_access_key"`
	Insecure         bool   `yaml:"insecure"`
	BucketLookupType string `yaml:"bucket_lookup_type"`
}

// GCSConfig is a Google Cloud Storage bucket.
type GCSConfig struct {
	BucketName         string `yaml:"bucket_name"`
	ServiceAccountFile string `yaml:"service_account_file"`
}

// AzureConfig is an Azure Blob Storage container.
type AzureConfig struct {
	AccountName    string `yaml:"account_name"`
	AccountKey     Secret `yaml:"account_key"`
	ContainerName  string `yaml:"container_name"`
	EndpointSuffix string `yaml:"endpoint_suffix"`
}

// SwiftConfig is an OpenStack Swift container.
type SwiftConfig struct {
	AuthURL       string `yaml:"auth_url"`
	Username      string `yaml:"username"`
	Password      Secret `yaml:"password"`
	DomainName    string `yaml:"domain_name"`
	ProjectName   string `yaml:"project_name"`
	RegionName    string `yaml:"region_name"`
	ContainerName string `yaml:"container_name"`
}

// Bucket lookup styles of S3 (-blocks-storage.s3.bucket-lookup-type).
const (
	lookupAuto    = "auto"
	lookupVirtual = "virtual-hosted"
	lookupPath    = "path"
)

// RegisterFlags registers the -blocks-storage.* backend flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Backend, "blocks-storage.backend", Filesystem, "Object storage of the blocks: filesystem, s3, gcs, azure or swift.")
	fs.StringVar(&c.Filesystem.Dir, "blocks-storage.filesystem.dir", "", "Directory of the filesystem bucket; empty means <data.dir>/bucket.")

	fs.StringVar(&c.S3.Endpoint, "blocks-storage.s3.endpoint", "", "S3 endpoint host[:port] without scheme, e.g. s3.eu-west-1.amazonaws.com or minio:9000.")
	fs.StringVar(&c.S3.BucketName, "blocks-storage.s3.bucket-name", "", "S3 bucket name.")
	fs.StringVar(&c.S3.Region, "blocks-storage.s3.region", "", "S3 region; empty lets the client ask the server.")
	fs.StringVar(&c.S3.AccessKeyID, "blocks-storage.s3.access-key-id", "", "S3 access key id; empty uses the AWS environment variables, credentials file or instance role.")
	fs.Var(&c.S3.SecretAccessKey, "blocks-storage.s3.secret-access-key", "S3 secret access key (never printed). Prefer AWS_SECRET_ACCESS_KEY in the environment, or this key in the -config.file: a flag shows in process listings.")
	fs.BoolVar(&c.S3.Insecure, "blocks-storage.s3.insecure", false, "Talk plain HTTP to the S3 endpoint instead of HTTPS (a server on a trusted network or loopback).")
	fs.StringVar(&c.S3.BucketLookupType, "blocks-storage.s3.bucket-lookup-type", lookupAuto, "How requests name the bucket: auto (virtual-hosted for AWS and Google endpoints, path-style otherwise), virtual-hosted or path (http://endpoint/bucket/object, what MinIO and most S3-compatible servers expect).")

	fs.StringVar(&c.GCS.BucketName, "blocks-storage.gcs.bucket-name", "", "GCS bucket name.")
	fs.StringVar(&c.GCS.ServiceAccountFile, "blocks-storage.gcs.service-account-file", "", "JSON key file of the GCS service account; empty uses Google's default credentials (GOOGLE_APPLICATION_CREDENTIALS, workload identity).")

	fs.StringVar(&c.Azure.AccountName, "blocks-storage.azure.account-name", "", "Azure storage account name.")
	fs.Var(&c.Azure.AccountKey, "blocks-storage.azure.account-key", "Azure storage account key (never printed); empty uses the default Azure credential chain (managed identity, environment). Prefer the environment or -config.file: a flag shows in process listings.")
	fs.StringVar(&c.Azure.ContainerName, "blocks-storage.azure.container-name", "", "Azure Blob Storage container name; the container must exist.")
	fs.StringVar(&c.Azure.EndpointSuffix, "blocks-storage.azure.endpoint-suffix", "blob.core.windows.net", "Azure Blob Storage endpoint suffix (another cloud, or an emulator).")

	fs.StringVar(&c.Swift.AuthURL, "blocks-storage.swift.auth-url", "", "OpenStack Keystone URL of Swift.")
	fs.StringVar(&c.Swift.Username, "blocks-storage.swift.username", "", "OpenStack user name.")
	fs.Var(&c.Swift.Password, "blocks-storage.swift.password", "OpenStack password (never printed). Prefer -config.file: a flag shows in process listings.")
	fs.StringVar(&c.Swift.DomainName, "blocks-storage.swift.domain-name", "", "OpenStack domain of the user and the project (Keystone v3), e.g. Default.")
	fs.StringVar(&c.Swift.ProjectName, "blocks-storage.swift.project-name", "", "OpenStack project (tenant) name.")
	fs.StringVar(&c.Swift.RegionName, "blocks-storage.swift.region-name", "", "OpenStack region.")
	fs.StringVar(&c.Swift.ContainerName, "blocks-storage.swift.container-name", "", "Swift container name; the container must exist.")
}

// Resolve fills in what defaults to a place under the process' data
// directory: the filesystem bucket's directory. cmd/strata calls it once
// -data.dir is known.
func (c *Config) Resolve(dataDir string) {
	if c.Backend == Filesystem && c.Filesystem.Dir == "" {
		c.Filesystem.Dir = filepath.Join(dataDir, "bucket")
	}
}

// Validate checks the chosen backend's settings. An empty
// -blocks-storage.filesystem.dir is valid: Resolve fills it in.
func (c *Config) Validate() error {
	switch c.Backend {
	case Filesystem:
		return nil
	case S3:
		return c.S3.validate()
	case GCS:
		if c.GCS.BucketName == "" {
			return errors.New("-blocks-storage.gcs.bucket-name must be set with -blocks-storage.backend=gcs")
		}
		return nil
	case Azure:
		switch {
		case c.Azure.AccountName == "":
			return errors.New("-blocks-storage.azure.account-name must be set with -blocks-storage.backend=azure")
		case c.Azure.ContainerName == "":
			return errors.New("-blocks-storage.azure.container-name must be set with -blocks-storage.backend=azure")
		}
		return nil
	case Swift:
		switch {
		case c.Swift.AuthURL == "":
			return errors.New("-blocks-storage.swift.auth-url must be set with -blocks-storage.backend=swift")
		case c.Swift.ContainerName == "":
			return errors.New("-blocks-storage.swift.container-name must be set with -blocks-storage.backend=swift")
		}
		return nil
	}
	return fmt.Errorf("-blocks-storage.backend=%q is unknown; want filesystem, s3, gcs, azure or swift", c.Backend)
}

func (c *S3Config) validate() error {
	switch {
	case c.Endpoint == "":
		return errors.New("-blocks-storage.s3.endpoint must be set with -blocks-storage.backend=s3")
	case strings.Contains(c.Endpoint, "://"):
		return fmt.Errorf("-blocks-storage.s3.endpoint=%q must be host[:port] without a scheme (plain HTTP is -blocks-storage.s3.insecure)", c.Endpoint)
	case c.BucketName == "":
		return errors.New("-blocks-storage.s3.bucket-name must be set with -blocks-storage.backend=s3")
	case (c.AccessKeyID == "") != (c.SecretAccessKey == ""):
		return errors.New("-blocks-storage.s3.access-key-id and -blocks-storage.s3.secret-access-key must be set together (or neither, for the AWS credential chain)")
	}
	switch c.BucketLookupType {
	case "", lookupAuto, lookupVirtual, lookupPath: // "": a Config built in code
	default:
		return fmt.Errorf("-blocks-storage.s3.bucket-lookup-type=%q is unknown; want auto, virtual-hosted or path", c.BucketLookupType)
	}
	return nil
}
