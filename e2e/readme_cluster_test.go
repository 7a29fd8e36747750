package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// readmeCommand is one process of README's loopback cluster.
type readmeCommand struct {
	name, target, httpAddr string
	args                   []string // without argv[0]
	addrs                  []string // every address it listens on
}

// readmeClusterCommands extracts the commands of README's "Running a
// cluster" block: the J= assignment, then one strata command a line
// (continued with a backslash), $J expanded.
func readmeClusterCommands(t *testing.T) []readmeCommand {
	t.Helper()
	root, err := procs.ModuleRoot()
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(b), "```sh\nJ=\"")
	require.True(t, ok, "README has no cluster block starting with J=")
	block, _, ok := strings.Cut(after, "```")
	require.True(t, ok)
	lines := strings.Split(strings.ReplaceAll("J=\""+block, "\\\n", " "), "\n")
	j, ok := strings.CutPrefix(lines[0], "J=")
	require.True(t, ok)
	j = strings.Trim(j, `"`)
	var cmds []readmeCommand
	for _, l := range lines[1:] {
		fields := strings.Fields(strings.ReplaceAll(l, "$J", j))
		if len(fields) == 0 {
			continue
		}
		require.Equal(t, "strata", fields[0], "README cluster line %q", l)
		c := readmeCommand{args: fields[1:]}
		for _, a := range c.args {
			name, v, _ := strings.Cut(a, "=")
			switch name {
			case "-instance.id":
				c.name = v
			case "-target":
				c.target = v
			case "-server.http-listen-address":
				c.httpAddr = v
				c.addrs = append(c.addrs, v)
			case "-server.grpc-listen-address", "-memberlist.bind-address":
				c.addrs = append(c.addrs, v)
			}
		}
		require.NotEmpty(t, c.name, l)
		require.NotEmpty(t, c.httpAddr, l)
		cmds = append(cmds, c)
	}
	return cmds
}

// TestClusterReadme runs README's loopback cluster as written, from the
// built binary in a temporary directory (its data/...), in the order and
// with the waits the README gives, then pushes a sample through a
// distributor and reads it back from the querier.
func TestClusterReadme(t *testing.T) {
	cmds := readmeClusterCommands(t)
	require.Len(t, cmds, 10)
	for _, c := range cmds {
		for _, a := range c.addrs {
			l, err := net.Listen("tcp", a)
			if err != nil {
				t.Skipf("README's cluster needs %s, which is taken: %v", a, err)
			}
			l.Close()
		}
	}
	bin := clusterBinary(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var distURL, queryURL string
	started := map[string]*procs.Process{}
	for _, c := range cmds {
		p := procs.StartT(t, procs.Spec{Name: c.name, Path: bin, Args: c.args, Dir: dir})
		started[c.name] = p
		// As README says: each ingester and store-gateway once the one
		// before it answers /ready.
		if c.target == "ingester" || c.target == "store-gateway" {
			require.NoError(t, procs.WaitHTTP(ctx, p, "http://"+c.httpAddr+"/ready"), c.name)
		}
		switch c.target {
		case "distributor":
			distURL = "http://" + c.httpAddr
		case "querier":
			queryURL = "http://" + c.httpAddr
		}
	}
	for _, c := range cmds {
		require.NoError(t, procs.WaitHTTP(ctx, started[c.name], "http://"+c.httpAddr+"/ready"), c.name)
	}
	require.NotEmpty(t, distURL)
	require.NotEmpty(t, queryURL)

	// Ingesters that joined one at a time own a third of the ring each.
	r, err := procs.FetchRing(ctx, queryURL)
	require.NoError(t, err)
	require.Len(t, r.Instances, 3)
	for _, in := range r.Instances {
		require.InDelta(t, 1.0/3, in.Ownership, 0.05, "%s owns %.1f%% of the ring", in.ID, 100*in.Ownership)
	}

	ts := time.Now().Truncate(time.Second)
	body := encodeWrite(&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "readme_cluster_up"}, {Name: "job", Value: "readme"}},
		Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: 42}},
	}}})
	dist, querier := newClient(distURL).withTimeout(5*time.Second), newClient(queryURL)
	// Ready comes before every distributor has seen every ingester ACTIVE:
	// retry until a push is acknowledged.
	poll(ctx, t, "push to "+distURL, 30*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, string) {
		res, err := dist.push(ctx, body)
		if err != nil {
			return false, err.Error()
		}
		return res.Status/100 == 2, fmt.Sprintf("%d %s", res.Status, truncate(res.text(), 200))
	})
	poll(ctx, t, "query "+queryURL, 30*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, string) {
		res, err := querier.query(ctx, `readme_cluster_up{job="readme"}`, ts)
		if err != nil {
			return false, err.Error()
		}
		ok := len(res.Series) == 1 && len(res.Series[0].Points) == 1 && res.Series[0].Points[0].V == 42
		return ok, fmt.Sprint(res.Series)
	})
}
