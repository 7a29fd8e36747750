package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/strata-metrics/strata/deploy"
	"github.com/strata-metrics/strata/internal/procs"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "deploy/local:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	bin      string
	dir      string
	basePort int
	grace    time.Duration
	wait     time.Duration
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: local start|stop|status [flags]: %w", flag.ErrHelp)
	}
	cmd := args[0]
	var cfg config
	fs := flag.NewFlagSet("local "+cmd, flag.ContinueOnError)
	fs.StringVar(&cfg.bin, "bin", "bin/strata", "The strata binary (start only).")
	fs.StringVar(&cfg.dir, "dir", "deploy/local/.data", "Data dirs, logs and the state file of the cluster.")
	fs.IntVar(&cfg.basePort, "base-port", 19000, "Node i listens on HTTP base+i, gRPC base+100+i, gossip base+200+i (start only).")
	fs.DurationVar(&cfg.grace, "grace", 30*time.Second, "How long stop waits after SIGTERM before SIGKILL.")
	fs.DurationVar(&cfg.wait, "wait", 90*time.Second, "How long start waits for every process to be ready.")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	dir, err := filepath.Abs(cfg.dir)
	if err != nil {
		return err
	}
	cfg.dir = dir
	switch cmd {
	case "start":
		return start(cfg, out)
	case "stop":
		return stop(cfg, out)
	case "status":
		return status(cfg, out)
	}
	return fmt.Errorf("unknown command %q; want start, stop or status: %w", cmd, flag.ErrHelp)
}

// state is what start leaves in <dir>/state.json for stop and status.
type state struct {
	Bin     string      `json:"bin"`
	Started time.Time   `json:"started"`
	Nodes   []nodeState `json:"nodes"`
}

type nodeState struct {
	procs.NodeSpec
	PID int    `json:"pid"`
	Log string `json:"log"`
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", statePath(dir), err)
	}
	return &s, nil
}

func writeState(dir string, s *state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(dir) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	return os.Rename(tmp, statePath(dir))
}

func start(cfg config, out io.Writer) error {
	bin, err := filepath.Abs(cfg.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("strata binary: %w (run `make build` first)", err)
	}
	if old, err := readState(cfg.dir); err == nil {
		for _, n := range old.Nodes {
			if ours(old.Bin, n) {
				return fmt.Errorf("a cluster from %s is already running (%s pid %d); stop it first with `make cluster-stop`",
					statePath(cfg.dir), n.Name, n.PID)
			}
		}
	}
	if err := os.MkdirAll(cfg.dir, 0o755); err != nil {
		return err
	}
	k := 0
	nextAddr := func() (string, error) {
		// Calls come in triples per node: HTTP, gRPC, gossip.
		port := cfg.basePort + 100*(k%3) + k/3
		k++
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
	}
	specs, err := procs.PlanCluster(deploy.LocalCluster(bin, cfg.dir), nextAddr)
	if err != nil {
		return err
	}
	for _, n := range specs {
		for _, a := range []string{n.HTTPAddr, n.GRPCAddr, n.GossipAddr} {
			if err := checkFree(a); err != nil {
				return fmt.Errorf("%s: %w; pick other ports with -base-port", n.Name, err)
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.wait)
	defer cancel()
	st := &state{Bin: bin, Started: time.Now().UTC()}
	failed := func(n nodeState, err error) error {
		fmt.Fprintf(out, "%s did not become ready: %v\nlast lines of %s:\n%s\n", n.Name, err, n.Log, tail(n.Log, 30))
		killAll(st)
		_ = os.Remove(statePath(cfg.dir))
		return fmt.Errorf("cluster did not start; processes killed")
	}
	for _, n := range specs {
		pid, logPath, err := startDetached(bin, n)
		if err != nil {
			killAll(st)
			return err
		}
		node := nodeState{NodeSpec: n, PID: pid, Log: logPath}
		st.Nodes = append(st.Nodes, node)
		// Written after every start, so that stop finds whatever runs.
		if err := writeState(cfg.dir, st); err != nil {
			killAll(st)
			return err
		}
		// Token owners join one at a time, each ACTIVE before the next
		// registers: a new instance picks its tokens in the gaps of the
		// ring it sees, and instances that register together see none of
		// each other's tokens (ownership like 20/40/40 %, not a third each).
		if n.Role == procs.RoleIngester || n.Role == procs.RoleStoreGateway {
			fmt.Fprintf(out, "Started %s; waiting for it to be ACTIVE ...\n", n.Name)
			if err := waitActive(ctx, st.Bin, node); err != nil {
				return failed(node, err)
			}
		}
	}

	fmt.Fprintf(out, "Started %d strata processes; waiting for /ready ...\n", len(st.Nodes))
	for _, n := range st.Nodes {
		if err := waitReady(ctx, st.Bin, n); err != nil {
			return failed(n, err)
		}
	}
	printURLs(out, st, cfg.dir)
	return nil
}

// checkFree reports an error if addr's port is taken for TCP or UDP.
func checkFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("tcp %s is taken", addr)
	}
	l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("udp %s is taken", addr)
	}
	u.Close()
	return nil
}

// startDetached starts the node in a session of its own, its output in
// <dir>/<name>.log, so that it outlives this command and a terminal's Ctrl-C.
func startDetached(bin string, n procs.NodeSpec) (pid int, logPath string, err error) {
	if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
		return 0, "", fmt.Errorf("make data dir of %s: %w", n.Name, err)
	}
	logPath = filepath.Join(filepath.Dir(n.DataDir), n.Name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, "", fmt.Errorf("open log of %s: %w", n.Name, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "### %s %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(n.Args, " "))
	cmd := exec.Command(bin, n.Args...)
	cmd.Dir = filepath.Dir(n.DataDir)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("start %s: %w", n.Name, err)
	}
	pid = cmd.Process.Pid
	_ = cmd.Process.Release()
	return pid, logPath, nil
}

func waitReady(ctx context.Context, bin string, n nodeState) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return procs.Poll(ctx, 100*time.Millisecond, func() (bool, string) {
		if !ours(bin, n) {
			return false, "process exited"
		}
		resp, err := client.Get(n.URL() + "/ready")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("/ready: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	})
}

// waitActive waits until n is ready and ACTIVE in the ring it owns tokens
// of, as n itself sees it.
func waitActive(ctx context.Context, bin string, n nodeState) error {
	if err := waitReady(ctx, bin, n); err != nil {
		return err
	}
	base := n.URL()
	if n.Role == procs.RoleStoreGateway {
		base += "/store-gateway"
	}
	return procs.Poll(ctx, 100*time.Millisecond, func() (bool, string) {
		r, err := procs.FetchRing(ctx, base)
		if err != nil {
			return false, err.Error()
		}
		for _, in := range r.Instances {
			if in.ID == n.Name {
				return in.State == "ACTIVE", "ring state " + in.State
			}
		}
		return false, "not in the ring"
	})
}

func printURLs(out io.Writer, st *state, dir string) {
	var push, query []string
	var ingester, compactor string
	for _, n := range st.Nodes {
		switch n.Role {
		case procs.RoleDistributor:
			push = append(push, n.URL()+"/api/v1/push")
		case procs.RoleQuerier:
			query = append(query, n.URL())
		case procs.RoleIngester:
			if ingester == "" {
				ingester = n.URL()
			}
		case procs.RoleCompactor:
			if compactor == "" {
				compactor = n.URL()
			}
		}
	}
	first := st.Nodes[0].URL()
	fmt.Fprintf(out, "\nStrata cluster is ready: %d processes, data and logs in %s\n", len(st.Nodes), dir)
	fmt.Fprintf(out, "  push (remote_write):  %s\n", strings.Join(push, "  "))
	fmt.Fprintf(out, "  query (Grafana URL):  %s\n", strings.Join(query, "  "))
	if len(query) > 0 {
		fmt.Fprintf(out, "  ring:                 %s/ring\n", query[0])
		fmt.Fprintf(out, "  store-gateway ring:   %s/store-gateway/ring\n", query[0])
		fmt.Fprintf(out, "  compactor ring:       %s/compactor/ring\n", query[0])
	}
	fmt.Fprintf(out, "  memberlist:           %s/memberlist\n", first)
	if b := bucketDir(st); b != "" {
		fmt.Fprintf(out, "  bucket (long-term):   %s\n", b)
	}
	if ingester != "" {
		fmt.Fprintf(out, "  ship blocks now:      curl -X POST %s/ingester/flush  (each ingester)\n", ingester)
	}
	if compactor != "" {
		fmt.Fprintf(out, "  compact now:          curl -X POST %s/compactor/run\n", compactor)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tPID\tZONE\tHTTP\tGRPC\tGOSSIP\tLOG")
	for _, n := range st.Nodes {
		zone := n.Zone
		if zone == "" {
			zone = "-"
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.PID, zone, n.HTTPAddr, n.GRPCAddr, n.GossipAddr, n.Log)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nStop it with `make cluster-stop`.")
}

// bucketDir is the filesystem bucket every node of st shares (the last
// -blocks-storage.filesystem.dir of the first node that names one), or "".
func bucketDir(st *state) string {
	const prefix = "-blocks-storage.filesystem.dir="
	for _, n := range st.Nodes {
		dir := ""
		for _, a := range n.Args {
			if v, ok := strings.CutPrefix(a, prefix); ok {
				dir = v
			}
		}
		if dir != "" {
			return dir
		}
	}
	return ""
}

// ours reports whether n.PID still runs the strata binary as node n (and is
// not a zombie): a PID reused by another process is never ours.
func ours(bin string, n nodeState) bool {
	if n.PID <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.PID))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i < 0 || strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z") {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n.PID))
	if err != nil {
		return false
	}
	argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(argv) == 0 || argv[0] != bin {
		return false
	}
	for _, a := range argv[1:] {
		if a == "-instance.id="+n.Name {
			return true
		}
	}
	return false
}

func killAll(st *state) {
	for _, n := range st.Nodes {
		if ours(st.Bin, n) {
			_ = syscall.Kill(n.PID, syscall.SIGKILL)
		}
	}
}

func stop(cfg config, out io.Writer) error {
	st, err := readState(cfg.dir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "no cluster state in %s: nothing to stop\n", cfg.dir)
		return nil
	}
	if err != nil {
		return err
	}
	var running []nodeState
	for _, n := range st.Nodes {
		if !ours(st.Bin, n) {
			fmt.Fprintf(out, "%s (pid %d) is not running\n", n.Name, n.PID)
			continue
		}
		if err := syscall.Kill(n.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("send SIGTERM to %s (pid %d): %w", n.Name, n.PID, err)
		}
		fmt.Fprintf(out, "SIGTERM %s (pid %d)\n", n.Name, n.PID)
		running = append(running, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.grace)
	defer cancel()
	err = procs.Poll(ctx, 100*time.Millisecond, func() (bool, string) {
		for _, n := range running {
			if ours(st.Bin, n) {
				return false, n.Name + " still running"
			}
		}
		return true, ""
	})
	if err != nil {
		for _, n := range running {
			if ours(st.Bin, n) {
				fmt.Fprintf(out, "SIGKILL %s (pid %d): still running %s after SIGTERM\n", n.Name, n.PID, cfg.grace)
				_ = syscall.Kill(n.PID, syscall.SIGKILL)
			}
		}
	}
	if err := os.Remove(statePath(cfg.dir)); err != nil {
		return err
	}
	fmt.Fprintf(out, "cluster stopped; data and logs stay in %s\n", cfg.dir)
	return nil
}

func status(cfg config, out io.Writer) error {
	st, err := readState(cfg.dir)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "no cluster state in %s: not running (start it with `make cluster`)\n", cfg.dir)
		return nil
	}
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPID\tRUNNING\tREADY\tURL")
	for _, n := range st.Nodes {
		ready := "-"
		if resp, err := client.Get(n.URL() + "/ready"); err == nil {
			ready = strconv.Itoa(resp.StatusCode)
			resp.Body.Close()
		}
		fmt.Fprintf(tw, "%s\t%d\t%v\t%s\t%s\n", n.Name, n.PID, ours(st.Bin, n), ready, n.URL())
	}
	tw.Flush()
	for _, n := range st.Nodes {
		if n.Role != procs.RoleQuerier || !ours(st.Bin, n) {
			continue
		}
		// The querier sees both rings it routes by: the ingesters' at
		// /ring, the store-gateways' at /store-gateway/ring.
		for _, r := range []struct{ title, base string }{
			{"ring", n.URL()},
			{"store-gateway ring", n.URL() + "/store-gateway"},
		} {
			printRing(out, r.title, n.Name, r.base)
		}
		break
	}
	if b := bucketDir(st); b != "" {
		fmt.Fprintf(out, "\nbucket (long-term storage): %s\n", b)
	}
	return nil
}

// printRing prints the ring at base+"/ring" as node sees it.
func printRing(out io.Writer, title, node, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	r, err := procs.FetchRing(ctx, base)
	cancel()
	if err != nil {
		fmt.Fprintf(out, "\n%s: %v\n", title, err)
		return
	}
	fmt.Fprintf(out, "\n%s as %s sees it (replication factor %d):\n", title, node, r.ReplicationFactor)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tZONE\tSTATE\tHEALTHY\tOWNERSHIP\tHEARTBEAT AGE")
	for _, in := range r.Instances {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%v\t%.1f%%\t%s\n", in.ID, in.Zone, in.State, in.Healthy, 100*in.Ownership, in.HeartbeatAge)
	}
	tw.Flush()
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
