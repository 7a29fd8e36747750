package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// Helpers of the long-term storage fault tests: a fault-injecting
// S3 proxy, bucket listings, deterministic old data and exact checks.

// ltfProxy is an HTTP reverse proxy on loopback in front of an S3 server.
// While failing is set, a request that fail matches is forwarded with only
// the first half of its body and then both connections are dropped (the
// client's with a TCP reset): the server sees an upload cut half way, the
// client a connection reset. Everything else passes unchanged (the Host
// header too, so SigV4 signatures stay valid).
type ltfProxy struct {
	Addr    string
	failing atomic.Bool
	fail    func(r *http.Request) bool

	upstream *url.URL
	rp       *httputil.ReverseProxy
	srv      *http.Server

	mu      sync.Mutex
	faulted []string // paths of the requests cut
}

func startLTFProxy(t *testing.T, upstream string, fail func(r *http.Request) bool) *ltfProxy {
	t.Helper()
	u, err := url.Parse("http://" + upstream)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &ltfProxy{Addr: ln.Addr().String(), fail: fail, upstream: u}
	p.rp = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Host = pr.In.Host // signed by the client
	}}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = p.srv.Close()
		<-done
	})
	return p
}

// Faulted returns the paths of the requests cut so far.
func (p *ltfProxy) Faulted() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.faulted...)
}

func (p *ltfProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.failing.Load() || !p.fail(r) {
		p.rp.ServeHTTP(w, r)
		return
	}
	p.mu.Lock()
	p.faulted = append(p.faulted, r.URL.Path)
	p.mu.Unlock()
	// Half the body reaches the server, then the upstream connection
	// breaks (the transport cannot finish the body it announced).
	half := max(r.ContentLength/2, 1)
	body := io.MultiReader(io.LimitReader(r.Body, half), ltfErrReader{})
	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.upstream.String()+r.URL.RequestURI(), body)
	if err == nil {
		out.Header = r.Header.Clone()
		out.Host = r.Host
		out.ContentLength = r.ContentLength
		tr := &http.Transport{DisableKeepAlives: true}
		if resp, err := tr.RoundTrip(out); err == nil {
			resp.Body.Close()
		}
		tr.CloseIdleConnections()
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("BUG: the proxy's ResponseWriter cannot hijack")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST
	}
	_ = conn.Close()
}

type ltfErrReader struct{}

func (ltfErrReader) Read([]byte) (int, error) {
	return 0, errors.New("fault injected: connection cut half way through the upload")
}

// ltfFSObjects lists every file under root/prefix as slash paths relative
// to root (a filesystem bucket).
func ltfFSObjects(root, prefix string) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(filepath.Join(root, prefix), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	sort.Strings(keys)
	return keys, err
}

// ltfBlockFiles groups object keys <tenant>/<ULID>/<file...> by block id;
// other keys (the bucket index) are left out.
func ltfBlockFiles(keys []string, tenant string) map[string][]string {
	out := map[string][]string{}
	for _, k := range keys {
		rest, ok := strings.CutPrefix(k, tenant+"/")
		if !ok {
			continue
		}
		id, file, ok := strings.Cut(rest, "/")
		if !ok || len(id) != 26 {
			continue
		}
		out[id] = append(out[id], file)
	}
	return out
}

func ltfHas(files []string, name string) bool {
	for _, f := range files {
		if f == name {
			return true
		}
	}
	return false
}

// ltfMeta is the part of a block's meta.json the tests read.
type ltfMeta struct {
	ULID    string `json:"ulid"`
	MinTime int64  `json:"minTime"`
	MaxTime int64  `json:"maxTime"`
	Stats   struct {
		NumSamples uint64 `json:"numSamples"`
	} `json:"stats"`
	Strata struct {
		Tenant   string `json:"tenant"`
		Source   string `json:"source"`
		Ingester string `json:"ingester"`
	} `json:"strata"`
}

// ltfData is a deterministic set of series with samples every step from
// base: series s (label series="<s>", group="<s%groups>") has value
// s*1e6 + k at base + k*step. Every value is unique, so a misplaced
// sample shows.
type ltfData struct {
	metric          string
	series, samples int
	groups          int
	base            int64 // ms
	step            time.Duration
}

func (d ltfData) ts(k int) int64         { return d.base + int64(k)*d.step.Milliseconds() }
func (d ltfData) value(s, k int) float64 { return float64(s)*1e6 + float64(k) }
func (d ltfData) last() int64            { return d.ts(d.samples - 1) }

// push sends the data in time order, perRequest samples of every series
// per request, to dist's /api/v1/push.
func (d ltfData) push(ctx context.Context, dist *client, perRequest int) error {
	for k0 := 0; k0 < d.samples; k0 += perRequest {
		wr := &prompb.WriteRequest{}
		for s := range d.series {
			ts := prompb.TimeSeries{Labels: []prompb.Label{
				{Name: "__name__", Value: d.metric},
				{Name: "group", Value: strconv.Itoa(s % max(d.groups, 1))},
				{Name: "series", Value: strconv.Itoa(s)},
			}}
			for k := k0; k < min(k0+perRequest, d.samples); k++ {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: d.ts(k), Value: d.value(s, k)})
			}
			wr.Timeseries = append(wr.Timeseries, ts)
		}
		res, err := dist.push(ctx, encodeWrite(wr))
		if err != nil {
			return err
		}
		if res.Status/100 != 2 {
			return fmt.Errorf("push samples %d..: status %d: %s", k0, res.Status, res.Body)
		}
	}
	return nil
}

// rawQuery is an instant query returning the raw samples of samples
// [from, to) of every series (the range selector is left-open).
func (d ltfData) rawQuery(from, to int) (q string, at time.Time) {
	window := d.ts(to-1) - d.ts(from) + 1
	return fmt.Sprintf("%s[%dms]", d.metric, window), time.UnixMilli(d.ts(to - 1))
}

// check compares a raw answer with samples [from, to) of every series,
// exactly: every series, every sample once, bit for bit.
func (d ltfData) check(r apiResult, from, to int) error {
	if len(r.Series) != d.series {
		return fmt.Errorf("%d series, want %d", len(r.Series), d.series)
	}
	for _, se := range r.Series {
		s, err := strconv.Atoi(se.Labels.Get("series"))
		if err != nil {
			return fmt.Errorf("series %s: no series label", se.Labels)
		}
		if len(se.Points) != to-from {
			return fmt.Errorf("series %d: %d samples, want %d", s, len(se.Points), to-from)
		}
		for i, p := range se.Points {
			k := from + i
			if p.T != d.ts(k) || !sameBits(p.V, d.value(s, k)) {
				return fmt.Errorf("series %d sample %d: got %v@%d, want %v@%d", s, k, p.V, p.T, d.value(s, k), d.ts(k))
			}
		}
	}
	return nil
}

// ltfCorruptChunk flips one byte in the data of the chunk in the middle
// of a TSDB chunk segment file (8-byte header, then chunks of uvarint
// length, encoding byte, data, CRC32), leaving the length fields and the
// file size alone: the chunk's checksum no longer matches. It returns the
// offset of the byte flipped.
func ltfCorruptChunk(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	var starts []int // offset of each chunk's data
	var lens []int
	for off := 8; off < len(b); {
		l, n := binary.Uvarint(b[off:])
		if n <= 0 || l == 0 {
			break // padding or end
		}
		data := off + n + 1
		if data+int(l)+4 > len(b) {
			break
		}
		starts, lens = append(starts, data), append(lens, int(l))
		off = data + int(l) + 4
	}
	if len(starts) == 0 {
		return 0, fmt.Errorf("%s: no chunk found", file)
	}
	i := len(starts) / 2
	at := starts[i] + lens[i]/2
	b[at] ^= 0xff
	info, err := os.Stat(file)
	if err != nil {
		return 0, err
	}
	return int64(at), os.WriteFile(file, b, info.Mode().Perm())
}

// ltfAlive fails the test if a process of c (other than those in except)
// has exited.
func ltfAlive(t *testing.T, c *procs.Cluster, except ...string) {
	t.Helper()
	for _, name := range c.Exited() {
		skip := false
		for _, e := range except {
			skip = skip || e == name
		}
		if !skip {
			t.Errorf("%s exited; log:\n%s", name, c.Node(name).Process().LogTail(30))
		}
	}
}

// ltfPathIsBlockIndex matches an S3 PUT of a block's index object
// (/<bucket>/<tenant>/<ULID>/index).
func ltfPathIsBlockIndex(r *http.Request) bool {
	if r.Method != http.MethodPut || path.Base(r.URL.Path) != "index" {
		return false
	}
	return len(path.Base(path.Dir(r.URL.Path))) == 26
}

// ltfLogLine returns the first line of the log at path that holds every
// one of words ("" if none).
func ltfLogLine(t *testing.T, path string, words ...string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(b), "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return line
		}
	}
	return ""
}
