package clientpool

import (
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/strata-metrics/strata/proto/ingesterpb"
)

// Config is how components dial ingesters.
type Config struct {
	MaxMessageBytes int           `yaml:"max_message_bytes"`
	KeepaliveTime   time.Duration `yaml:"keepalive_time"`

	TLSEnabled            bool   `yaml:"tls_enabled"`
	TLSCertPath           string `yaml:"tls_cert_path"`
	TLSKeyPath            string `yaml:"tls_key_path"`
	TLSCAPath             string `yaml:"tls_ca_path"`
	TLSServerName         string `yaml:"tls_server_name"`
	TLSInsecureSkipVerify bool   `yaml:"tls_insecure_skip_verify"`
}

// RegisterFlags registers the client's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxMessageBytes, "ingester.client.max-message-bytes", 100<<20, "Largest gRPC message sent to or received from an ingester.")
	fs.DurationVar(&c.KeepaliveTime, "ingester.client.keepalive-time", 20*time.Second, "Ping an idle ingester connection this often to detect dead peers.")
	fs.BoolVar(&c.TLSEnabled, "ingester.client.tls-enabled", false, "Dial ingesters over TLS (1.2 or later); they serve it with -server.grpc-tls-cert-path.")
	fs.StringVar(&c.TLSCertPath, "ingester.client.tls-cert-path", "", "PEM client certificate presented to ingesters (mutual TLS, for -server.grpc-tls-client-ca-path). Reloaded on change.")
	fs.StringVar(&c.TLSKeyPath, "ingester.client.tls-key-path", "", "PEM private key of -ingester.client.tls-cert-path. Reloaded on change.")
	fs.StringVar(&c.TLSCAPath, "ingester.client.tls-ca-path", "", "PEM CA certificates that sign the ingesters' certificates; default: the system roots. Reloaded on change.")
	fs.StringVar(&c.TLSServerName, "ingester.client.tls-server-name", "", "Name checked in ingesters' certificates; default: the host of the ingester address in the ring.")
	fs.BoolVar(&c.TLSInsecureSkipVerify, "ingester.client.tls-insecure-skip-verify", false, "Accept any ingester certificate without checking it. For tests only: it allows a man in the middle.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxMessageBytes < 1<<20 {
		return fmt.Errorf("-ingester.client.max-message-bytes must be at least 1 MiB, got %d", c.MaxMessageBytes)
	}
	if (c.TLSCertPath == "") != (c.TLSKeyPath == "") {
		return fmt.Errorf("-ingester.client.tls-cert-path and -ingester.client.tls-key-path must be set together")
	}
	if !c.TLSEnabled && (c.TLSCertPath != "" || c.TLSCAPath != "" || c.TLSServerName != "" || c.TLSInsecureSkipVerify) {
		return fmt.Errorf("-ingester.client.tls-* options are set but -ingester.client.tls-enabled is false")
	}
	return nil
}

// Pool hands out one client per address. It is goroutine-safe.
type Pool struct {
	cfg   Config
	opts  []grpc.DialOption
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	open  prometheus.GaugeFunc
}

// New returns an empty pool; extra dial options (interceptors) are appended
// to the defaults. With -ingester.client.tls-enabled it dials over TLS;
// the files are read at each handshake when they changed, so a bad file
// fails the dial with its flag's name, and a rotated one serves the next
// connection.
func New(cfg Config, reg prometheus.Registerer, extra ...grpc.DialOption) *Pool {
	p := &Pool{cfg: cfg, conns: map[string]*grpc.ClientConn{}}
	creds := insecure.NewCredentials()
	if cfg.TLSEnabled {
		creds = newTLSCreds(cfg, reg)
	}
	p.opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes), grpc.MaxCallSendMsgSize(cfg.MaxMessageBytes)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: cfg.KeepaliveTime, Timeout: cfg.KeepaliveTime, PermitWithoutStream: true}),
	}, extra...)
	p.open = promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_ingester_client_connections", Help: "Open gRPC connections to ingesters.",
	}, func() float64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return float64(len(p.conns))
	})
	return p
}

// Get returns the client for addr, creating its connection on first use.
func (p *Pool) Get(addr string) (ingesterpb.IngesterClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return ingesterpb.NewIngesterClient(c), nil
	}
	c, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("dial ingester %s: %w", addr, err)
	}
	p.conns[addr] = c
	return ingesterpb.NewIngesterClient(c), nil
}

// Conn returns the connection to addr, creating it on first use, for the
// clients of other services reached the same way (store-gateways). It is
// shared: the caller must not close it.
func (p *Pool) Conn(addr string) (grpc.ClientConnInterface, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

// Prune closes the connections whose address keep rejects.
func (p *Pool) Prune(keep func(addr string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		if !keep(addr) {
			_ = c.Close()
			delete(p.conns, addr)
		}
	}
}

// Close closes every connection.
func (p *Pool) Close() error {
	p.Prune(func(string) bool { return false })
	return nil
}
