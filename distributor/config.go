package distributor

import (
	"flag"
	"fmt"
	"time"

	"github.com/golang/snappy"
)

// Name validation schemes of -distributor.name-validation-scheme.
const (
	// SchemeLegacy accepts the classic Prometheus charsets: metric names
	// [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*.
	SchemeLegacy = "legacy"
	// SchemeUTF8 accepts any non-empty valid UTF-8 name, as Prometheus 3
	// does with metric_name_validation_scheme: utf8.
	SchemeUTF8 = "utf8"
)

// Config is the distributor's configuration.
type Config struct {
	// MaxRecvMsgSize bounds the decompressed body; the compressed body may be
	// at most snappy.MaxEncodedLen of it (the worst case of snappy).
	MaxRecvMsgSize       int   `yaml:"max_recv_msg_size"`
	MaxInflightPushBytes int64 `yaml:"max_inflight_push_bytes"`
	// RemoteTimeout is the deadline of one Push to one ingester.
	RemoteTimeout time.Duration `yaml:"remote_timeout"`
	// NameValidationScheme is SchemeLegacy or SchemeUTF8.
	NameValidationScheme string `yaml:"name_validation_scheme"`
}

// RegisterFlags registers the distributor's flags with their defaults.
//
// The 32 MiB body limit is Prometheus' own receiver's (maxDecodedSize in
// client_golang's remote write handler), so whatever Prometheus accepts,
// Strata accepts. A Prometheus sender's default batch (2,000 samples) is
// about 0.5 MiB, so it leaves 60x headroom, while one request in flight
// costs at most body + decompressed body + decoded request, about 3x the
// limit: a third of what Cortex' and Mimir's 100 MiB would let a client
// make the distributor hold. It also stays well below the 100 MiB gRPC
// message limit towards the ingesters (-ingester.client.max-message-bytes):
// a per-ingester push is never larger than the decompressed body plus the
// request's metadata.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxRecvMsgSize, "distributor.max-recv-msg-size", 32<<20, "Largest push body after snappy decompression, in bytes; larger pushes get 413 (the sender drops them).")
	fs.Int64Var(&c.MaxInflightPushBytes, "distributor.max-inflight-push-bytes", 1<<30, "Push bytes this process holds at once, at most: bodies compressed and decompressed, and what decoding made of them (the decoded request; for OTLP also its pdata and translated series). A push that would go over gets 429 and is retried by the sender, before its body is read when it announces its length (Content-Length, as Prometheus does), else as soon as the part counted so far would go over. 0: no limit.")
	fs.DurationVar(&c.RemoteTimeout, "distributor.remote-timeout", 2*time.Second, "Deadline of one push to one ingester, for every started 8 MiB of the batch sent to it (a Prometheus batch gets this; a push of hundreds of thousands of series gets a multiple).")
	fs.StringVar(&c.NameValidationScheme, "distributor.name-validation-scheme", SchemeLegacy, "Metric and label names accepted: legacy (Prometheus' classic [a-zA-Z_:][a-zA-Z0-9_:]* charset) or utf8 (any UTF-8, as Prometheus 3 allows).")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.MaxRecvMsgSize < 1<<10:
		return fmt.Errorf("-distributor.max-recv-msg-size must be at least 1024, got %d", c.MaxRecvMsgSize)
	case snappy.MaxEncodedLen(c.MaxRecvMsgSize) < 0:
		return fmt.Errorf("-distributor.max-recv-msg-size %d is too large for snappy", c.MaxRecvMsgSize)
	case c.MaxInflightPushBytes < 0:
		return fmt.Errorf("-distributor.max-inflight-push-bytes must not be negative, got %d", c.MaxInflightPushBytes)
	case c.RemoteTimeout <= 0:
		return fmt.Errorf("-distributor.remote-timeout must be positive, got %s", c.RemoteTimeout)
	case c.NameValidationScheme != SchemeLegacy && c.NameValidationScheme != SchemeUTF8:
		return fmt.Errorf("-distributor.name-validation-scheme must be %q or %q, got %q", SchemeLegacy, SchemeUTF8, c.NameValidationScheme)
	}
	return nil
}
