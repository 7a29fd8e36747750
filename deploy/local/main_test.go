package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// TestOurs: stop signals a PID only while it still runs the strata binary
// as that node; a PID reused by anything else is left alone.
func TestOurs(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	sleep := exec.Command("sleep", "60")
	require.NoError(t, sleep.Start())
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	for _, tc := range []struct {
		name string
		bin  string
		node nodeState
		want bool
	}{
		{"no pid", self, nodeState{PID: 0}, false},
		{"gone", self, nodeState{PID: 1 << 30}, false},
		{"other binary", "/bin/strata", nodeState{PID: os.Getpid()}, false},
		{"same binary without the node's -instance.id", self, nodeState{NodeSpec: procs.NodeSpec{Name: "ingester-zone-a-1"}, PID: os.Getpid()}, false},
		{"another program", "/usr/bin/sleep", nodeState{NodeSpec: procs.NodeSpec{Name: "x"}, PID: sleep.Process.Pid}, false},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, ours(tc.bin, tc.node)) })
	}
}

// TestStartStatusStop runs the real cluster of `make cluster` from the
// built binary: start, status, then stop, which must end exactly its own
// processes and leave a process whose PID it was handed alone.
func TestStartStatusStop(t *testing.T) {
	binDir := t.TempDir()
	bin, err := procs.BuildStrata(binDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var out bytes.Buffer
	// Node i takes base+i, base+100+i and base+200+i: try a few bases,
	// all below 20000: under Linux's ephemeral range (32768-60999), where
	// outgoing connections of other tests take ports between our check and
	// our bind, and under internal/procs' range (20000-31999).
	started := false
	for range 5 {
		base := 10000 + rand.IntN(9700)
		out.Reset()
		err = run([]string{"start", "-bin", bin, "-dir", dir, "-base-port", fmt.Sprint(base)}, &out)
		if err == nil {
			started = true
			break
		}
		require.Contains(t, err.Error(), "is taken", out.String())
	}
	require.True(t, started, "no free port range")
	t.Cleanup(func() { _ = run([]string{"stop", "-dir", dir, "-grace", "10s"}, &bytes.Buffer{}) })
	require.Contains(t, out.String(), "/api/v1/push")
	st, err := readState(dir)
	require.NoError(t, err)
	require.Len(t, st.Nodes, 10)
	require.Contains(t, out.String(), "bucket (long-term):   "+filepath.Join(dir, "bucket"))

	// Ready (200) comes before every member has gossiped that ACTIVE state
	// to the querier: poll until it has, with a deadline. Both rings the
	// querier routes by are printed: 3 ingesters and 3 store-gateways.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out.Reset()
		require.NoError(t, run([]string{"status", "-dir", dir}, &out))
		if strings.Count(out.String(), "ACTIVE") == 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Len(t, regexp.MustCompile(`(?m) true +200 +http`).FindAllString(out.String(), -1), 10, out.String())
	require.Contains(t, out.String(), "ring as querier-1 sees it (replication factor 3)")
	require.Contains(t, out.String(), "store-gateway ring as querier-1 sees it (replication factor 3)")
	require.Equal(t, 6, strings.Count(out.String(), "ACTIVE"), out.String())
	// Instances joined one at a time, each seeing the others' tokens: a
	// third of each ring each.
	for _, n := range st.Nodes {
		if n.Role != procs.RoleQuerier {
			continue
		}
		for _, base := range []string{n.URL(), n.URL() + "/store-gateway"} {
			r, err := procs.FetchRing(t.Context(), base)
			require.NoError(t, err)
			require.Len(t, r.Instances, 3)
			for _, in := range r.Instances {
				require.InDelta(t, 1.0/3, in.Ownership, 0.05, "%s owns %.1f%% of %s/ring", in.ID, 100*in.Ownership, base)
			}
		}
	}

	// A state file whose PID now belongs to another process: stop must
	// leave that process alone.
	sleep := exec.Command("sleep", "60")
	require.NoError(t, sleep.Start())
	t.Cleanup(func() { _ = sleep.Process.Kill() })
	foreign := st.Nodes[len(st.Nodes)-1]
	foreign.Name, foreign.PID = "foreign", sleep.Process.Pid
	st.Nodes = append(st.Nodes, foreign)
	require.NoError(t, writeState(dir, st))

	out.Reset()
	require.NoError(t, run([]string{"stop", "-dir", dir, "-grace", "20s"}, &out))
	require.Contains(t, out.String(), "foreign (pid")
	require.NotContains(t, out.String(), "SIGKILL", out.String())
	for _, n := range st.Nodes[:10] {
		require.False(t, ours(st.Bin, n), "%s still running", n.Name)
	}
	// Had stop signalled it, it would have died of SIGTERM.
	require.NoError(t, sleep.Process.Signal(syscall.SIGINT))
	require.ErrorContains(t, sleep.Wait(), "signal: interrupt", "stop signalled a process it did not start")
	_, err = os.Stat(filepath.Join(dir, "state.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
