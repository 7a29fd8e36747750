package procs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrNotInstalled wraps the error of a binary that is not on $PATH; tests may
// skip on it where installing is impossible.
var ErrNotInstalled = errors.New("not installed")

// LookPath finds a binary on $PATH, wrapping ErrNotInstalled with the Debian
// package that provides it when it is missing.
func LookPath(name, debianPackage string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s %w (apt-get install %s): %v", name, ErrNotInstalled, debianPackage, err)
	}
	return p, nil
}

// ScrapeJob is one scrape_configs entry with static targets.
type ScrapeJob struct {
	Name        string
	Targets     []string // host:port
	MetricsPath string   // default /metrics
}

// PrometheusConfig says how to run Debian's prometheus (2.42).
type PrometheusConfig struct {
	// Bin is the prometheus binary; empty means LookPath("prometheus").
	Bin            string
	ScrapeInterval time.Duration // global scrape_interval and scrape_timeout; zero leaves Prometheus' default
	// ExternalLabels are global.external_labels: added to every series sent
	// by remote-write (e.g. cluster and __replica__ of an HA pair).
	ExternalLabels map[string]string
	Jobs           []ScrapeJob
	// ScrapeSelf adds job "prometheus" scraping the server's own /metrics.
	ScrapeSelf bool
	// RemoteWriteURL, when set, adds one remote_write entry tuned to deliver
	// within about a second (batch_send_deadline 1s, short backoffs).
	RemoteWriteURL string
	// RemoteWriteMaxShards is the remote_write queue's max_shards: 1 keeps
	// one request in flight and the samples in order. Zero leaves
	// Prometheus' default.
	RemoteWriteMaxShards int
	// RemoteWriteReceiver turns on /api/v1/write (--web.enable-remote-write-receiver).
	RemoteWriteReceiver bool
	ExtraArgs           []string
}

// Prometheus is a running prometheus server.
type Prometheus struct {
	*Process
	Addr string // 127.0.0.1:port
	URL  string // http://127.0.0.1:port
	Dir  string // config, TSDB and log live here
}

// StartPrometheus writes a config into dir, starts prometheus with its TSDB in
// dir/data on a free loopback port and waits until /-/ready answers 200. On
// error nothing is left running.
func StartPrometheus(ctx context.Context, dir string, cfg PrometheusConfig) (*Prometheus, error) {
	bin := cfg.Bin
	if bin == "" {
		var err error
		if bin, err = LookPath("prometheus", "prometheus"); err != nil {
			return nil, err
		}
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	if cfg.ScrapeSelf {
		cfg.Jobs = append(cfg.Jobs[:len(cfg.Jobs):len(cfg.Jobs)], ScrapeJob{Name: "prometheus", Targets: []string{addr}})
	}
	yml, err := prometheusYAML(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, yml, 0o644); err != nil {
		return nil, fmt.Errorf("write prometheus config: %w", err)
	}
	args := []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=info",
	}
	if cfg.RemoteWriteReceiver {
		args = append(args, "--web.enable-remote-write-receiver")
	}
	args = append(args, cfg.ExtraArgs...)
	p, err := Start(Spec{Name: "prometheus", Path: bin, Args: args, Dir: dir})
	if err != nil {
		return nil, err
	}
	prom := &Prometheus{Process: p, Addr: addr, URL: "http://" + addr, Dir: dir}
	if err := WaitHTTP(ctx, p, prom.URL+"/-/ready"); err != nil {
		p.Kill()
		return nil, err
	}
	return prom, nil
}

// StartPrometheusT is StartPrometheus for tests: dir is a fresh t.TempDir(),
// errors fail the test, and the process is stopped when the test ends.
func StartPrometheusT(t testing.TB, cfg PrometheusConfig) *Prometheus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := StartPrometheus(ctx, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupT(t, p.Process) })
	return p
}

// prometheusYAML renders cfg as a prometheus.yml.
func prometheusYAML(cfg PrometheusConfig) ([]byte, error) {
	type staticConfig struct {
		Targets []string `yaml:"targets"`
	}
	type scrapeConfig struct {
		JobName       string         `yaml:"job_name"`
		MetricsPath   string         `yaml:"metrics_path,omitempty"`
		StaticConfigs []staticConfig `yaml:"static_configs"`
	}
	type queueConfig struct {
		Capacity          int    `yaml:"capacity"`
		MaxSamplesPerSend int    `yaml:"max_samples_per_send"`
		MaxShards         int    `yaml:"max_shards,omitempty"`
		BatchSendDeadline string `yaml:"batch_send_deadline"`
		MinBackoff        string `yaml:"min_backoff"`
		MaxBackoff        string `yaml:"max_backoff"`
	}
	type remoteWrite struct {
		URL           string      `yaml:"url"`
		RemoteTimeout string      `yaml:"remote_timeout"`
		QueueConfig   queueConfig `yaml:"queue_config"`
	}
	type global struct {
		ScrapeInterval string            `yaml:"scrape_interval,omitempty"`
		ScrapeTimeout  string            `yaml:"scrape_timeout,omitempty"`
		ExternalLabels map[string]string `yaml:"external_labels,omitempty"`
	}
	var doc struct {
		Global        global         `yaml:"global"`
		ScrapeConfigs []scrapeConfig `yaml:"scrape_configs,omitempty"`
		RemoteWrite   []remoteWrite  `yaml:"remote_write,omitempty"`
	}
	if cfg.ScrapeInterval > 0 {
		doc.Global.ScrapeInterval = model(cfg.ScrapeInterval)
		doc.Global.ScrapeTimeout = model(cfg.ScrapeInterval)
	}
	doc.Global.ExternalLabels = cfg.ExternalLabels
	for _, j := range cfg.Jobs {
		doc.ScrapeConfigs = append(doc.ScrapeConfigs, scrapeConfig{
			JobName:       j.Name,
			MetricsPath:   j.MetricsPath,
			StaticConfigs: []staticConfig{{Targets: j.Targets}},
		})
	}
	if cfg.RemoteWriteURL != "" {
		doc.RemoteWrite = append(doc.RemoteWrite, remoteWrite{
			URL:           cfg.RemoteWriteURL,
			RemoteTimeout: "10s",
			QueueConfig: queueConfig{
				Capacity:          10000,
				MaxSamplesPerSend: 2000,
				BatchSendDeadline: "1s",
				MinBackoff:        "50ms",
				MaxBackoff:        "1s",
				MaxShards:         cfg.RemoteWriteMaxShards,
			},
		})
	}
	b, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("render prometheus config: %w", err)
	}
	return b, nil
}

// model formats d the way Prometheus' config parser accepts (no "1m0s").
func model(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// LookPathT finds a binary for a test. When it is missing the test is skipped
// with a message saying what to install, except when $CI is set: there the
// binaries are installed by `make test` and a missing one fails the test.
func LookPathT(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := LookPath(name, debianPackage)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}
