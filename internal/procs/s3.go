package procs

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// VersityGWModule is the S3-compatible server the tests run: `make
// test-deps` installs it with GOFLAGS= go install VersityGWModule.
const VersityGWModule = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// S3 is a running S3-compatible server (versitygw over a local directory)
// with one empty bucket, reached over plain HTTP on loopback.
type S3 struct {
	*Process
	Endpoint  string // 127.0.0.1:port, no scheme (-blocks-storage.s3.endpoint)
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
}

// LookVersityGW finds the versitygw binary on $PATH or in Go's bin
// directory ($GOBIN, else $GOPATH/bin), where go install puts it. The
// error wraps ErrNotInstalled and says how to install it.
func LookVersityGW() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	dir := os.Getenv("GOBIN")
	if dir == "" {
		dir = filepath.Join(build.Default.GOPATH, "bin")
	}
	p := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw %w on $PATH or in %s (make test-deps installs it: GOFLAGS= go install %s)", ErrNotInstalled, dir, VersityGWModule)
	}
	return p, nil
}

// StartS3 starts versitygw (found by LookVersityGW when bin is empty) on a
// free loopback port, storing objects under dir/objects with its log in
// dir, waits until it serves and creates an empty bucket through the S3
// API.
func StartS3(ctx context.Context, dir, bin string) (*S3, error) {
	if bin == "" {
		var err error
		if bin, err = LookVersityGW(); err != nil {
			return nil, err
		}
	}
	root := filepath.Join(dir, "objects")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("create versitygw root: %w", err)
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	s := &S3{Endpoint: addr, Bucket: "strata-test", Region: "us-east-1", AccessKey: "strata-access", SecretKey: "strata-secret-key"}
	s.Process, err = Start(Spec{Name: "versitygw", Path: bin, Dir: dir, Args: []string{
		"--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
		"--port", addr, "--health", "/health", "--quiet",
		"posix", root,
	}})
	if err != nil {
		return nil, err
	}
	if err := s.init(ctx); err != nil {
		return nil, errors.Join(err, s.Kill())
	}
	return s, nil
}

func (s *S3) init(ctx context.Context) error {
	if err := WaitHTTP(ctx, s.Process, "http://"+s.Endpoint+"/health"); err != nil {
		return err
	}
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return fmt.Errorf("s3 client of versitygw: %w", err)
	}
	if err := c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		return fmt.Errorf("create bucket %s in versitygw: %w\n%s", s.Bucket, err, s.LogTail(20))
	}
	return nil
}

// StartS3T is StartS3 for tests: it skips the test when versitygw is not
// installed (fails it when $CI is set) and stops the server when the test
// ends.
func StartS3T(t testing.TB) *S3 {
	t.Helper()
	bin, err := LookVersityGW()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := StartS3(ctx, t.TempDir(), bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupT(t, s.Process) })
	return s
}
