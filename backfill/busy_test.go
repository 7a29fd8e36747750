package backfill

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
)

// gatedBucket holds the download of a block's index (at finish) until
// open is closed, telling entered first.
type gatedBucket struct {
	objstore.Bucket
	block   string
	entered chan struct{}
	open    chan struct{}
}

func (b gatedBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if strings.HasSuffix(name, b.block+"/index") {
		b.entered <- struct{}{}
		<-b.open
	}
	return b.Bucket.Get(ctx, name)
}

// A finish answered 429 (the server verifying another block) waits the
// answer's Retry-After and tries again, for up to BusyWait.
func TestUploadWaitsOutBusyServer(t *testing.T) {
	dir := t.TempDir()
	_, err := BuildOpenMetrics(context.Background(), openMetrics(3), dir)
	require.NoError(t, err)
	blocks, err := FindBlocks(dir)
	require.NoError(t, err)
	require.Len(t, blocks, 2)
	mem := objstore.NewInMemBucket()
	gb := gatedBucket{Bucket: mem, block: blocks[0].ID.String(), entered: make(chan struct{}, 1), open: make(chan struct{})}
	bkt, url := startServerOn(t, gb, "127.0.0.1:0")
	var once sync.Once
	release := func() { once.Do(func() { close(gb.open) }) }
	t.Cleanup(release) // before the server closes: nothing stays held
	c := &Client{URL: url, Tenant: "team-a"}
	ctx := context.Background()

	// blocks[0] is being verified, held at its index.
	_, err = c.Start(ctx, blocks[0].ID, blocks[0].Meta)
	require.NoError(t, err)
	for _, f := range blocks[0].Files {
		body, err := os.ReadFile(filepath.Join(blocks[0].Dir, f.Path))
		require.NoError(t, err)
		require.NoError(t, c.File(ctx, blocks[0].ID, f.Path, bytes.NewReader(body), f.Size))
	}
	verified := make(chan error, 1)
	go func() { verified <- c.Finish(ctx, blocks[0].ID) }()
	<-gb.entered

	// Bounded: with the server busy throughout, it gives up after
	// BusyWait and says why.
	var waits []time.Duration
	u := &Uploader{Client: c, BusyWait: 25 * time.Second,
		OnRetry: func(_ error, wait time.Duration) { waits = append(waits, wait) },
		sleep:   func(context.Context, time.Duration) error { return nil }}
	err = u.Upload(ctx, blocks[1:])
	var se *ServerError
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusTooManyRequests, se.Status)
	require.Equal(t, 10*time.Second, se.RetryAfter)
	require.ErrorContains(t, err, "[strata-block-upload-busy]")
	require.Equal(t, []time.Duration{10 * time.Second, 10 * time.Second}, waits, "Retry-After honoured, within BusyWait")

	// The server frees up during the wait: the finish goes through.
	waits = nil
	u.sleep = func(context.Context, time.Duration) error {
		release()
		return <-verified
	}
	require.NoError(t, u.Upload(ctx, blocks[1:]))
	require.Equal(t, []time.Duration{10 * time.Second}, waits)
	require.True(t, visible(t, bkt, "team-a", blocks[0]))
	require.True(t, visible(t, bkt, "team-a", blocks[1]))
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t, 7*time.Second, retryAfter("7", now))
	require.Equal(t, 90*time.Second, retryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
	require.Zero(t, retryAfter("", now))
	require.Zero(t, retryAfter("soon", now))
	require.Zero(t, retryAfter("-3", now))
}
