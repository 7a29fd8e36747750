package block

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/thanos-io/objstore"
)

type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }

// failAfter lets n uploads through, then fails every one.
type failAfter struct {
	objstore.Bucket
	n int
}

func (f *failAfter) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	if f.n == 0 {
		return errors.New("injected upload failure")
	}
	f.n--
	return f.Bucket.Upload(ctx, name, r, opts...)
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
