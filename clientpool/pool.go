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
}

// RegisterFlags registers the client's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxMessageBytes, "ingester.client.max-message-bytes", 100<<20, "Largest gRPC message sent to or received from an ingester.")
	fs.DurationVar(&c.KeepaliveTime, "ingester.client.keepalive-time", 20*time.Second, "Ping an idle ingester connection this often to detect dead peers.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxMessageBytes < 1<<20 {
		return fmt.Errorf("-ingester.client.max-message-bytes must be at least 1 MiB, got %d", c.MaxMessageBytes)
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

// New returns an empty pool; extra dial options (TLS, interceptors) are
// appended to the defaults.
func New(cfg Config, reg prometheus.Registerer, extra ...grpc.DialOption) *Pool {
	p := &Pool{cfg: cfg, conns: map[string]*grpc.ClientConn{}}
	p.opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
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
