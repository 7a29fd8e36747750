package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"

	"github.com/strata-metrics/strata/auth/authtest"
	"github.com/strata-metrics/strata/internal/procs"
	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// tlsPKI is the certificate files of the TLS tests: one CA signs every
// legitimate certificate, a second one signs the intruder's.
type tlsPKI struct {
	dir       string
	ca, other *authtest.CA
	// ingester is the ingesters' gRPC server pair; its CA file (ca) is
	// what they require client certificates to be signed by.
	ingester authtest.Files
	// client is the distributors' and queriers' pair for mutual TLS; its
	// CA file (ca) verifies the ingesters.
	client authtest.Files
	// intruder is a client pair signed by other; its CA file is ca, so
	// that it trusts the ingesters and only its own certificate is wrong.
	intruder authtest.Files
	// http is the HTTP listener's server pair.
	http authtest.Files
}

// Serial numbers of the certificates, to tell which one a server presents.
const (
	serialIngester        = 100
	serialIngesterRotated = 101
	serialClient          = 200
	serialIntruder        = 300
	serialHTTP            = 400
)

func newTLSPKI(t *testing.T) *tlsPKI {
	t.Helper()
	p := &tlsPKI{dir: t.TempDir(), ca: authtest.NewCA(t, "strata-test-ca"), other: authtest.NewCA(t, "intruder-ca")}
	c, k := p.ca.Issue(t, "ingester", serialIngester)
	p.ingester = authtest.WriteFiles(t, p.dir, "ingester", c, k, p.ca)
	c, k = p.ca.Issue(t, "distributor", serialClient)
	p.client = authtest.WriteFiles(t, p.dir, "client", c, k, p.ca)
	c, k = p.other.Issue(t, "intruder", serialIntruder)
	p.intruder = authtest.WriteFiles(t, p.dir, "intruder", c, k, p.ca)
	c, k = p.ca.Issue(t, "http", serialHTTP)
	p.http = authtest.WriteFiles(t, p.dir, "http", c, k, p.ca)
	return p
}

// clientConfig trusts ca and presents cert's pair when cert is not nil.
// The pair is presented whatever CAs the server names as acceptable (as
// strata's own client does): with tls.Config.Certificates, crypto/tls
// would quietly send no certificate rather than one of another CA.
// presented, when not nil, counts the handshakes that sent it.
func (p *tlsPKI) clientConfig(t *testing.T, cert *authtest.Files, presented *atomic.Int64) *tls.Config {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		kp, err := tls.LoadX509KeyPair(cert.Cert, cert.Key)
		require.NoError(t, err)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if presented != nil {
				presented.Add(1)
			}
			return &kp, nil
		}
	}
	return cfg
}

// ingesterConn is one fresh gRPC connection to an ingester, closed when
// the test ends; creds nil means plain text.
func ingesterConn(t *testing.T, addr string, creds credentials.TransportCredentials) ingesterpb.IngesterClient {
	t.Helper()
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return ingesterpb.NewIngesterClient(cc)
}

// directPush sends one write request straight to an ingester's Push and
// returns the serial number of the certificate the ingester presented
// (0 over plain text or on error).
func directPush(c ingesterpb.IngesterClient, tenantID string, wr []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pr peer.Peer
	_, err := c.Push(ctx, &ingesterpb.PushRequest{Tenant: tenantID, WriteRequest: wr}, grpc.Peer(&pr))
	if err != nil {
		return 0, err
	}
	if info, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
		return info.State.PeerCertificates[0].SerialNumber.Int64(), nil
	}
	return 0, nil
}

// metricNames asks one ingester for tenantID's metric names of the last hour.
func metricNames(t *testing.T, c ingesterpb.IngesterClient, tenantID string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	resp, err := c.LabelValues(ctx, &ingesterpb.LabelValuesRequest{
		Tenant: tenantID, Name: "__name__", StartMs: now.Add(-time.Hour).UnixMilli(), EndMs: now.Add(time.Minute).UnixMilli(),
	})
	require.NoError(t, err)
	return resp.GetValues()
}

// writeRequest is a remote-write 1.0 WriteRequest, uncompressed: n series
// of metric, each with samples samples one second apart from t0.
func writeRequest(t *testing.T, metric string, n, samples int, t0 time.Time) []byte {
	t.Helper()
	var req prompb.WriteRequest
	for s := range n {
		ts := prompb.TimeSeries{Labels: lbls("__name__", metric, "series", strconv.Itoa(s))}
		for i := range samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: t0.Add(time.Duration(i) * time.Second).UnixMilli(), Value: float64(i)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	b, err := req.Marshal()
	require.NoError(t, err)
	return b
}

// httpDo sends one request with client and returns its status and body;
// body, when not nil, is a WriteRequest to snappy-compress.
func httpDo(t *testing.T, client *http.Client, method, url string, wr []byte, hdr map[string]string) (int, string) {
	t.Helper()
	code, body, _ := httpDoProto(t, client, method, url, wr, hdr)
	return code, body
}

// httpDoProto is httpDo that also returns the response's protocol.
func httpDoProto(t *testing.T, client *http.Client, method, url string, wr []byte, hdr map[string]string) (int, string, string) {
	t.Helper()
	var body io.Reader
	if wr != nil {
		body = bytes.NewReader(snappy.Encode(nil, wr))
	}
	r, err := http.NewRequest(method, url, body)
	require.NoError(t, err)
	if wr != nil {
		r.Header.Set("Content-Encoding", "snappy")
		r.Header.Set("Content-Type", "application/x-protobuf")
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	resp, err := client.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), resp.Proto
}

// metricSum adds up the samples of metric on base's /metrics whose label
// set contains every one of labelPairs (`name="value"`).
func metricSum(t *testing.T, base, metric string, labelPairs ...string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		match := true
		for _, lp := range labelPairs {
			match = match && strings.Contains(line[:i], lp)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		sum += v
	}
	require.NoError(t, sc.Err())
	return sum
}

// waitHTTPS polls url with client until it answers 200, the process exits
// or 30s pass (procs.WaitHTTP speaks plain HTTP only).
func waitHTTPS(t *testing.T, p *procs.Process, client *http.Client, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := procs.Poll(ctx, 50*time.Millisecond, func() (bool, string) {
		if p.Exited() {
			return true, ""
		}
		resp, err := client.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	require.False(t, p.Exited(), "%s exited before %s answered 200; log:\n%s", p.Name, url, p.LogTail(30))
	require.NoError(t, err, "log:\n%s", p.LogTail(30))
}
