package procs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// Cluster is a running multi-process strata cluster on loopback ports, for
// tests. Every node keeps its ports and data dir across Kill and Restart.
type Cluster struct {
	Nodes []*Node
}

// Node is one process of a Cluster.
type Node struct {
	NodeSpec
	Bin string

	dir  string
	mu   sync.Mutex
	proc *Process // the current incarnation
}

// StartCluster plans cfg on free loopback ports, starts every node and waits
// until each answers 200 on /ready. On error nothing is left running.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	specs, err := PlanCluster(cfg, FreeAddr)
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for _, s := range specs {
		if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("make data dir of %s: %w", s.Name, err)
		}
		c.Nodes = append(c.Nodes, &Node{NodeSpec: s, Bin: cfg.Bin, dir: cfg.Dir})
	}
	// Start everything first, then wait: nodes become ready only once they
	// see each other.
	for _, n := range c.Nodes {
		p, err := Start(n.spec())
		if err != nil {
			c.Kill()
			return nil, err
		}
		n.proc = p
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, n := range c.Nodes {
		g.Go(func() error { return WaitHTTP(gctx, n.proc, n.URL()+"/ready") })
	}
	if err := g.Wait(); err != nil {
		c.Kill()
		var tails strings.Builder
		for _, n := range c.Nodes {
			fmt.Fprintf(&tails, "\n--- %s (%s):\n%s", n.Name, n.proc.LogPath, n.proc.LogTail(15))
		}
		return nil, fmt.Errorf("start cluster: %w%s", err, tails.String())
	}
	return c, nil
}

// StartClusterT is StartCluster for tests: cfg.Dir defaults to t.TempDir(),
// errors fail the test, and every node's current incarnation is stopped when
// the test ends (continued first, in case it was paused).
func StartClusterT(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range c.Nodes {
			wg.Go(func() {
				p := n.Process()
				_ = n.Signal(syscall.SIGCONT)
				cleanupT(t, p)
			})
		}
		wg.Wait()
	})
	return c
}

// Kill sends SIGKILL to every node that runs.
func (c *Cluster) Kill() {
	for _, n := range c.Nodes {
		if p := n.Process(); p != nil {
			_ = p.Kill()
		}
	}
}

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// ByRole returns the nodes of role in start order.
func (c *Cluster) ByRole(role Role) []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Role == role {
			out = append(out, n)
		}
	}
	return out
}

// Exited returns the names of nodes whose current incarnation has exited.
func (c *Cluster) Exited() []string {
	var out []string
	for _, n := range c.Nodes {
		if p := n.Process(); p == nil || p.Exited() {
			out = append(out, n.Name)
		}
	}
	return out
}

func (n *Node) spec() Spec {
	return Spec{Name: n.Name, Path: n.Bin, Args: n.Args, Dir: n.dir}
}

// Process returns the current incarnation (nil before the first start).
func (n *Node) Process() *Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Kill sends SIGKILL (kill -9) and waits until the process is reaped.
func (n *Node) Kill() error { return n.Process().Kill() }

// Stop sends SIGTERM and waits up to grace for a clean exit (see Process.Stop).
func (n *Node) Stop(grace time.Duration) error { return n.Process().Stop(grace) }

// Signal sends sig (SIGSTOP, SIGCONT) to the current incarnation; nothing
// when it has exited.
func (n *Node) Signal(sig syscall.Signal) error {
	p := n.Process()
	if p == nil || p.Exited() {
		return nil
	}
	if err := syscall.Kill(p.PID(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("send %v to %s (pid %d): %w", sig, n.Name, p.PID(), err)
	}
	return nil
}

// Restart starts a new incarnation with the same arguments, ports and data
// dir and waits until /ready answers 200. The previous one must have exited.
func (n *Node) Restart(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.Exited() {
		return fmt.Errorf("restart %s: pid %d still running", n.Name, n.proc.PID())
	}
	p, err := Start(n.spec())
	if err != nil {
		return err
	}
	n.proc = p // even if not ready: cleanup must find it
	if err := WaitHTTP(ctx, p, n.URL()+"/ready"); err != nil {
		_ = p.Kill()
		return err
	}
	return nil
}

// RingStatus is GET /ring as JSON.
type RingStatus struct {
	ReplicationFactor int            `json:"replication_factor"`
	Instances         []RingInstance `json:"instances"`
}

// RingInstance is one instance in RingStatus.
type RingInstance struct {
	ID           string  `json:"id"`
	Addr         string  `json:"addr"`
	Zone         string  `json:"zone"`
	State        string  `json:"state"`
	Tokens       int     `json:"tokens"`
	Ownership    float64 `json:"ownership"`
	HeartbeatAge string  `json:"heartbeat_age"`
	Healthy      bool    `json:"healthy"`
}

// Instance returns the instance with id, if the ring has it.
func (r RingStatus) Instance(id string) (RingInstance, bool) {
	for _, in := range r.Instances {
		if in.ID == id {
			return in, true
		}
	}
	return RingInstance{}, false
}

// MemberlistStatus is GET /memberlist as JSON.
type MemberlistStatus struct {
	Node         string `json:"node"`
	ClusterLabel string `json:"cluster_label"`
	Members      []struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		State   string `json:"state"`
	} `json:"members"`
}

// OperatorTenant is the -runtime-config.admin-tenant of every strata these
// tools start: with multi-tenancy the operator pages (/ring, /memberlist,
// /ingester/flush) answer only it, and FetchRing and FetchMemberlist send
// it. Args given later on the command line may name another.
const OperatorTenant = "strata-operator"

// FetchRing reads base's /ring as JSON.
func FetchRing(ctx context.Context, base string) (RingStatus, error) {
	var r RingStatus
	return r, getJSON(ctx, base+"/ring", &r)
}

// FetchMemberlist reads base's /memberlist as JSON.
func FetchMemberlist(ctx context.Context, base string) (MemberlistStatus, error) {
	var m MemberlistStatus
	return m, getJSON(ctx, base+"/memberlist", &m)
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Scope-OrgID", OperatorTenant) // ignored without multi-tenancy
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: status %d: %.200s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w (body %.200s)", url, err, b)
	}
	return nil
}

// WaitRing polls /ring of every node in at until cond holds for each, or ctx
// ends; the error names the node and cond's last reason.
func WaitRing(ctx context.Context, at []*Node, cond func(RingStatus) (ok bool, reason string)) error {
	return Poll(ctx, 100*time.Millisecond, func() (bool, string) {
		for _, n := range at {
			r, err := FetchRing(ctx, n.URL())
			if err != nil {
				return false, err.Error()
			}
			if ok, reason := cond(r); !ok {
				return false, n.Name + ": " + reason
			}
		}
		return true, ""
	})
}

// InstanceIs returns a WaitRing condition: instance id is in the ring in
// state, with health healthy.
func InstanceIs(id, state string, healthy bool) func(RingStatus) (bool, string) {
	return func(r RingStatus) (bool, string) {
		in, ok := r.Instance(id)
		if !ok {
			return false, fmt.Sprintf("%s not in the ring", id)
		}
		if in.State != state || in.Healthy != healthy {
			return false, fmt.Sprintf("%s is %s healthy=%v (heartbeat age %s), want %s healthy=%v",
				id, in.State, in.Healthy, in.HeartbeatAge, state, healthy)
		}
		return true, ""
	}
}

// InstanceUnhealthy returns a WaitRing condition: instance id is in the ring
// and unhealthy, whatever its state.
func InstanceUnhealthy(id string) func(RingStatus) (bool, string) {
	return func(r RingStatus) (bool, string) {
		in, ok := r.Instance(id)
		if !ok {
			return false, fmt.Sprintf("%s not in the ring", id)
		}
		if in.Healthy {
			return false, fmt.Sprintf("%s still healthy (%s, heartbeat age %s)", id, in.State, in.HeartbeatAge)
		}
		return true, ""
	}
}
