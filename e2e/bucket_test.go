package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// bucket reads the S3 bucket of the tests straight from the S3 server (not
// through any fault proxy): the test's view of object storage.
type bucket struct {
	c    *minio.Client
	name string
}

func newBucket(t *testing.T, s3 *procs.S3) *bucket {
	t.Helper()
	c, err := minio.New(s3.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(s3.AccessKey, s3.SecretKey, ""), Region: s3.Region, BucketLookup: minio.BucketLookupPath,
	})
	require.NoError(t, err)
	return &bucket{c: c, name: s3.Bucket}
}

// objects lists every object under prefix: key → size.
func (b *bucket) objects(ctx context.Context, prefix string) (map[string]int64, error) {
	out := map[string]int64{}
	for o := range b.c.ListObjects(ctx, b.name, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s/%s: %w", b.name, prefix, o.Err)
		}
		out[o.Key] = o.Size
	}
	return out, nil
}

// keys lists every object key under prefix, sorted.
func (b *bucket) keys(ctx context.Context, prefix string) ([]string, error) {
	objs, err := b.objects(ctx, prefix)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(objs))
	for k := range objs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// get reads one object.
func (b *bucket) get(ctx context.Context, key string) ([]byte, error) {
	o, err := b.c.GetObject(ctx, b.name, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

// bucketIndex is the part of a tenant's bucket-index.json.gz the tests read.
type bucketIndex struct {
	UpdatedAt int64 `json:"updated_at"`
	Blocks    []struct {
		ID              string `json:"id"`
		MinTime         int64  `json:"min_time"`
		MaxTime         int64  `json:"max_time"`
		Source          string `json:"source"`
		CompactionLevel int    `json:"compaction_level"`
		Ingester        string `json:"ingester"`
		SizeBytes       int64  `json:"size_bytes"`
	} `json:"blocks"`
	DeletionMarks []struct {
		ID string `json:"id"`
	} `json:"deletion_marks"`
}

// index reads a tenant's bucket index; nil if there is none yet.
func (b *bucket) index(ctx context.Context, tenantID string) (*bucketIndex, error) {
	raw, err := b.get(ctx, path.Join(tenantID, "bucket-index.json.gz"))
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, nil
		}
		return nil, fmt.Errorf("read bucket index of %s: %w", tenantID, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("bucket index of %s: %w", tenantID, err)
	}
	var ix bucketIndex
	if err := json.NewDecoder(zr).Decode(&ix); err != nil {
		return nil, fmt.Errorf("bucket index of %s: %w", tenantID, err)
	}
	return &ix, nil
}

// requireIndex reads a tenant's bucket index, which must exist.
func (b *bucket) requireIndex(ctx context.Context, t *testing.T, tenantID string) *bucketIndex {
	t.Helper()
	ix, err := b.index(ctx, tenantID)
	require.NoError(t, err)
	require.NotNil(t, ix, "no bucket index of %s", tenantID)
	return ix
}
