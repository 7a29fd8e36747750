package server

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Bounds on gRPC connections. gRPC is reached by other components only,
// but whoever reaches the port can open connections; without bounds 3,000
// connections that never sent the HTTP/2 preface held 3,042 file
// descriptors for minutes. Three bounds together:
//   - -server.grpc-connection-timeout: a connection must finish its TLS and
//     HTTP/2 handshake within it (gRPC's ConnectionTimeout), or is closed;
//   - -server.grpc-max-connection-idle: a connection with no RPC for that
//     long is closed with a GOAWAY (clients reconnect on their next call);
//   - -server.grpc-max-connections: past it, a new connection is closed as
//     soon as it is accepted and counted, so a flood costs this process no
//     more than that many descriptors, whatever the rate.

// limitListener closes accepted connections beyond max open ones.
type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused prometheus.Counter
}

func newLimitListener(l net.Listener, max int, reg prometheus.Registerer) *limitListener {
	ll := &limitListener{Listener: l, max: int64(max)}
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "strata_server_grpc_connections", Help: "Open gRPC connections.",
	}, func() float64 { return float64(ll.open.Load()) })
	ll.refused = f.NewCounter(prometheus.CounterOpts{
		Name: "strata_server_grpc_connections_refused_total",
		Help: "gRPC connections closed at accept because -server.grpc-max-connections were open.",
	})
	return ll
}

// Accept returns the next connection under the limit; connections over it
// are closed here and never reach gRPC.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.max > 0 && l.open.Load() >= l.max {
			l.refused.Inc()
			_ = c.Close()
			continue
		}
		l.open.Add(1)
		return &countedConn{Conn: c, l: l}, nil
	}
}

type countedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
