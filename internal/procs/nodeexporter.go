package procs

import (
	"context"
	"testing"
	"time"
)

// NodeExporter is a running prometheus-node-exporter.
type NodeExporter struct {
	*Process
	Addr string // 127.0.0.1:port, the scrape target
}

// nodeExporterCollectors are the collectors turned on: quick, present on any
// Linux machine or container, and free of slow or flaky sources (systemd,
// hwmon, textfile, ...). The set of series they expose is stable over a run.
var nodeExporterCollectors = []string{
	"cpu", "meminfo", "loadavg", "stat", "vmstat", "netdev", "diskstats",
	"filesystem", "time", "uname", "filefd", "sockstat", "netstat",
}

// StartNodeExporter starts prometheus-node-exporter (found on $PATH when bin is
// empty) on a free loopback port with log in dir and waits until /metrics
// answers 200.
func StartNodeExporter(ctx context.Context, dir, bin string) (*NodeExporter, error) {
	if bin == "" {
		var err error
		if bin, err = LookPath("prometheus-node-exporter", "prometheus-node-exporter"); err != nil {
			return nil, err
		}
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--web.listen-address=" + addr, "--collector.disable-defaults"}
	for _, c := range nodeExporterCollectors {
		args = append(args, "--collector."+c)
	}
	p, err := Start(Spec{Name: "node-exporter", Path: bin, Args: args, Dir: dir})
	if err != nil {
		return nil, err
	}
	if err := WaitHTTP(ctx, p, "http://"+addr+"/metrics"); err != nil {
		p.Kill()
		return nil, err
	}
	return &NodeExporter{Process: p, Addr: addr}, nil
}

// StartNodeExporterT is StartNodeExporter for tests.
func StartNodeExporterT(t testing.TB) *NodeExporter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := StartNodeExporter(ctx, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupT(t, n.Process) })
	return n
}
