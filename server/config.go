package server

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Config is the process's listeners and logging.
type Config struct {
	HTTPListenAddress  string        `yaml:"http_listen_address"`
	GRPCListenAddress  string        `yaml:"grpc_listen_address"`
	GRPCMaxRecvBytes   int           `yaml:"grpc_max_recv_bytes"`
	ShutdownTimeout    time.Duration `yaml:"shutdown_timeout"`
	HTTPReadTimeout    time.Duration `yaml:"http_read_timeout"`
	HTTPWriteTimeout   time.Duration `yaml:"http_write_timeout"`
	HTTPIdleTimeout    time.Duration `yaml:"http_idle_timeout"`
	LogFormat          string        `yaml:"log_format"`
	LogLevel           string        `yaml:"log_level"`
	RegisterPprof      bool          `yaml:"register_pprof"`
	MaxConcurrentGRPCS uint          `yaml:"grpc_max_concurrent_streams"`
	// gRPC connection bounds: grpc_conns.go.
	GRPCMaxConnections    int           `yaml:"grpc_max_connections"`
	GRPCConnectionTimeout time.Duration `yaml:"grpc_connection_timeout"`
	GRPCMaxConnectionIdle time.Duration `yaml:"grpc_max_connection_idle"`

	HTTPTLS TLSConfig `yaml:"http_tls"`
	GRPCTLS TLSConfig `yaml:"grpc_tls"`
}

// TLSConfig is one listener's certificate files; all empty means plain text.
type TLSConfig struct {
	CertPath     string `yaml:"cert_path"`
	KeyPath      string `yaml:"key_path"`
	ClientCAPath string `yaml:"client_ca_path"`
}

// Enabled says whether the listener serves TLS.
func (c *TLSConfig) Enabled() bool { return c.CertPath != "" }

func (c *TLSConfig) registerFlags(fs *flag.FlagSet, proto, what string) {
	fs.StringVar(&c.CertPath, "server."+proto+"-tls-cert-path", "", "PEM certificate (chain) the "+what+" listener serves; set with the key to serve TLS (1.2 or later). Reloaded on change.")
	fs.StringVar(&c.KeyPath, "server."+proto+"-tls-key-path", "", "PEM private key of -server."+proto+"-tls-cert-path. Reloaded on change.")
	fs.StringVar(&c.ClientCAPath, "server."+proto+"-tls-client-ca-path", "", "PEM CA certificates; when set the "+what+" listener requires a client certificate signed by one of them (mutual TLS). Reloaded on change.")
}

func (c *TLSConfig) validate(proto string) error {
	switch {
	case (c.CertPath == "") != (c.KeyPath == ""):
		return fmt.Errorf("-server.%[1]s-tls-cert-path and -server.%[1]s-tls-key-path must be set together", proto)
	case c.ClientCAPath != "" && c.CertPath == "":
		return fmt.Errorf("-server.%[1]s-tls-client-ca-path needs -server.%[1]s-tls-cert-path and -server.%[1]s-tls-key-path", proto)
	}
	return nil
}

// RegisterFlags registers the server's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPListenAddress, "server.http-listen-address", ":9009", "HTTP listen address (host:port) for the push, query, ring and metrics endpoints.")
	fs.StringVar(&c.GRPCListenAddress, "server.grpc-listen-address", ":9095", "gRPC listen address (host:port) for traffic between components.")
	fs.IntVar(&c.GRPCMaxRecvBytes, "server.grpc-max-recv-bytes", 100<<20, "Largest gRPC message the server accepts.")
	fs.UintVar(&c.MaxConcurrentGRPCS, "server.grpc-max-concurrent-streams", 1000, "Concurrent gRPC streams per client connection.")
	fs.IntVar(&c.GRPCMaxConnections, "server.grpc-max-connections", 4096, "Open gRPC connections at most; more are closed as they are accepted (counted in strata_server_grpc_connections_refused_total). Each distributor and querier process holds about one per instance it calls. 0: no limit.")
	fs.DurationVar(&c.GRPCConnectionTimeout, "server.grpc-connection-timeout", 5*time.Second, "A new gRPC connection must finish its TLS and HTTP/2 handshake within this, or is closed.")
	fs.DurationVar(&c.GRPCMaxConnectionIdle, "server.grpc-max-connection-idle", 5*time.Minute, "A gRPC connection with no call for this long is closed; the client reconnects on its next call.")
	fs.DurationVar(&c.ShutdownTimeout, "server.shutdown-timeout", 30*time.Second, "How long shutdown waits for in-flight requests before closing connections.")
	fs.DurationVar(&c.HTTPReadTimeout, "server.http-read-timeout", 30*time.Second, "Deadline to read a whole HTTP request, body included.")
	fs.DurationVar(&c.HTTPWriteTimeout, "server.http-write-timeout", 3*time.Minute, "Deadline to write an HTTP response; keep it above -querier.timeout.")
	fs.DurationVar(&c.HTTPIdleTimeout, "server.http-idle-timeout", 2*time.Minute, "How long an idle keep-alive HTTP connection stays open.")
	fs.StringVar(&c.LogFormat, "log.format", "logfmt", "Log format: logfmt or json.")
	fs.StringVar(&c.LogLevel, "log.level", "info", "Lowest level logged: debug, info, warn or error.")
	fs.BoolVar(&c.RegisterPprof, "server.register-pprof", true, "Serve Go profiles under /debug/pprof/.")
	c.HTTPTLS.registerFlags(fs, "http", "HTTP")
	c.GRPCTLS.registerFlags(fs, "grpc", "gRPC")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	for flagName, addr := range map[string]string{
		"-server.http-listen-address": c.HTTPListenAddress,
		"-server.grpc-listen-address": c.GRPCListenAddress,
	} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s=%q is not host:port: %w", flagName, addr, err)
		}
	}
	if c.GRPCMaxRecvBytes < 1<<20 {
		return fmt.Errorf("-server.grpc-max-recv-bytes must be at least 1 MiB, got %d", c.GRPCMaxRecvBytes)
	}
	if c.GRPCMaxConnections < 0 {
		return fmt.Errorf("-server.grpc-max-connections must not be negative, got %d", c.GRPCMaxConnections)
	}
	if c.GRPCConnectionTimeout <= 0 {
		return fmt.Errorf("-server.grpc-connection-timeout must be positive, got %s", c.GRPCConnectionTimeout)
	}
	if c.GRPCMaxConnectionIdle <= 0 {
		return fmt.Errorf("-server.grpc-max-connection-idle must be positive, got %s", c.GRPCMaxConnectionIdle)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("-server.shutdown-timeout must be positive, got %s", c.ShutdownTimeout)
	}
	if err := c.HTTPTLS.validate("http"); err != nil {
		return err
	}
	if err := c.GRPCTLS.validate("grpc"); err != nil {
		return err
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.LogFormat != "logfmt" && c.LogFormat != "json" {
		return fmt.Errorf("-log.format must be logfmt or json, got %q", c.LogFormat)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("-log.level=%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// NewLogger returns the process logger the configuration asks for.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	level, err := parseLevel(c.LogLevel)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(c.LogFormat, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	// slog's text handler writes logfmt: key=value pairs, quoted as needed.
	return slog.New(slog.NewTextHandler(w, opts))
}
