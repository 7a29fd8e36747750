package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// Cluster tests run real memberlist on loopback with ports the kernel picks.

const wait = 15 * time.Second

func testConfig(seeds ...string) Config {
	c := defaultConfig()
	c.BindAddress = "127.0.0.1:0"
	c.Join = strings.Join(seeds, ",")
	c.GossipInterval = 20 * time.Millisecond
	c.PullPushInterval = 500 * time.Millisecond
	c.RejoinInterval = 200 * time.Millisecond
	return c
}

type testNode struct {
	*KV
	stop func()
}

// start runs a KV until stop or the end of the test; setup runs before Run.
func start(t *testing.T, name string, cfg Config, setup func(*KV)) *testNode {
	t.Helper()
	kv := newTestKV(t, cfg, name)
	if setup != nil {
		setup(kv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	require.Eventually(t, func() bool { return kv.Addr() != "" }, wait, 5*time.Millisecond, "%s starts", name)
	return &testNode{kv, stop}
}

func (n *testNode) put(t *testing.T, key, value string) {
	t.Helper()
	require.NoError(t, n.CAS(context.Background(), "k", set(key, value, time.Now().UnixMilli())))
}

func (n *testNode) has(key, value string) bool { return lwwOf(n.Get("k"))[key].S == value }

func hasAll(nodes []*testNode, key, value string) func() bool {
	return func() bool {
		for _, n := range nodes {
			if !n.has(key, value) {
				return false
			}
		}
		return true
	}
}

func membersOf(nodes ...*testNode) func() bool {
	return func() bool {
		for _, n := range nodes {
			if n.numMembers() != len(nodes) {
				return false
			}
		}
		return true
	}
}

// TestClusterConverges: members joined by IP and by a DNS name agree; a
// change too large for UDP travels over TCP; GET /memberlist lists them.
func TestClusterConverges(t *testing.T) {
	a := start(t, "a", testConfig(), nil)
	_, port, _ := net.SplitHostPort(a.Addr())
	b := start(t, "b", testConfig(a.Addr()), nil)
	c := start(t, "c", testConfig("peers.strata.test:"+port), func(kv *KV) {
		kv.lookupIP = func(_ context.Context, host string) ([]net.IP, error) {
			if host != "peers.strata.test" {
				return nil, errors.New("no such host")
			}
			return []net.IP{net.ParseIP("127.0.0.1")}, nil
		}
	})
	nodes := []*testNode{a, b, c}
	require.Eventually(t, membersOf(nodes...), wait, 5*time.Millisecond)
	for _, n := range nodes {
		n.put(t, "from-"+n.name, "v1")
	}
	for _, n := range nodes {
		require.Eventually(t, hasAll(nodes, "from-"+n.name, "v1"), wait, 5*time.Millisecond)
	}

	big := strings.Repeat("x", 3*udpBufferSize)
	c.put(t, "big", big)
	require.Eventually(t, hasAll(nodes, "big", big), wait, 5*time.Millisecond)
	// The receiver may apply the change before the sender's SendReliable
	// returns and counts it.
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(c.m.msgsSent.WithLabelValues(kindReliable)) > 0
	}, wait, 5*time.Millisecond)

	req := httptest.NewRequest(http.MethodGet, "/memberlist", nil)
	req.Header.Set("Accept", "application/json")
	w := httptest.NewRecorder()
	a.MembersHandler().ServeHTTP(w, req)
	var page struct {
		Node    string
		Members []Member
		Keys    []keyStatus
	}
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &page))
	require.Equal(t, "a", page.Node)
	require.Len(t, page.Members, 3)
	require.Equal(t, Member{Name: "a", Address: a.Addr(), State: "alive", Self: true}, page.Members[0])
	require.Equal(t, "k", page.Keys[0].Key)
	require.Positive(t, page.Keys[0].Bytes)

	w = httptest.NewRecorder()
	a.MembersHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/memberlist", nil))
	require.Contains(t, w.Header().Get("Content-Type"), "text/html")
	require.Contains(t, w.Body.String(), "<td>a (this one)</td><td>"+a.Addr()+"</td><td>alive</td>")
}

// TestClusterLabel: a member with another cluster label, given this
// cluster's member as its seed, never joins; one with the same label does.
func TestClusterLabel(t *testing.T) {
	labelled := func(label string, seeds ...string) Config {
		c := testConfig(seeds...)
		c.ClusterLabel = label
		return c
	}
	blue := start(t, "blue-1", labelled("blue"), nil)
	green := start(t, "green-1", labelled("green", blue.Addr()), nil)
	blue2 := start(t, "blue-2", labelled("blue", blue.Addr()), nil)
	blue.put(t, "blue", "1")
	green.put(t, "green", "1")

	require.Eventually(t, func() bool {
		return testutil.ToFloat64(green.m.joinAttempts.WithLabelValues("failure")) >= 3
	}, wait, 5*time.Millisecond, "green keeps trying")
	require.Eventually(t, hasAll([]*testNode{blue, blue2}, "blue", "1"), wait, 5*time.Millisecond)
	require.Eventually(t, membersOf(blue, blue2), wait, 5*time.Millisecond)
	require.Equal(t, 1, green.numMembers())
	require.False(t, blue.has("green", "1"))
	require.False(t, blue2.has("green", "1"))
	require.False(t, green.has("blue", "1"))
	require.Zero(t, testutil.ToFloat64(green.m.joinAttempts.WithLabelValues("success")))
}

// TestRejoinWhenAlone: a member whose only peer left (its member count
// drops to 1) rejoins the seed on its own once a process is back there.
func TestRejoinWhenAlone(t *testing.T) {
	b := start(t, "b", testConfig(), nil)
	addr := b.Addr()
	a := start(t, "a", testConfig(addr), nil)
	require.Eventually(t, membersOf(a, b), wait, 5*time.Millisecond)
	a.put(t, "a", "1")
	require.Eventually(t, hasAll([]*testNode{b}, "a", "1"), wait, 5*time.Millisecond)

	b.stop()
	require.Eventually(t, func() bool { return a.numMembers() == 1 }, wait, 5*time.Millisecond)

	// A new process at the same address, with no seeds of its own: only a's
	// rejoin can bring the two together.
	cfg := testConfig()
	cfg.BindAddress = addr
	b2 := start(t, "b", cfg, nil)
	b2.put(t, "b2", "1")
	nodes := []*testNode{a, b2}
	require.Eventually(t, membersOf(nodes...), wait, 5*time.Millisecond)
	require.Eventually(t, hasAll(nodes, "a", "1"), wait, 5*time.Millisecond)
	require.Eventually(t, hasAll(nodes, "b2", "1"), wait, 5*time.Millisecond)
	require.GreaterOrEqual(t, testutil.ToFloat64(a.m.joinAttempts.WithLabelValues("success")), 2.0)
}

// partition cuts the network between groups of addresses, both ways.
type partition struct {
	mu    sync.Mutex
	group map[string]int
}

func (p *partition) set(groups ...[]*testNode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.group = map[string]int{}
	for i, g := range groups {
		for _, n := range g {
			p.group[n.Addr()] = i
		}
	}
}

func (p *partition) blocked(from, to string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	g1, ok1 := p.group[from]
	g2, ok2 := p.group[to]
	return ok1 && ok2 && g1 != g2
}

// cutTransport is memberlist's network transport behind a partition.
type cutTransport struct {
	*memberlist.NetTransport
	p    *partition
	self string
}

var errCut = errors.New("partitioned")

func (t *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.p.blocked(t.self, addr) {
		return time.Now(), nil // lost on the way
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.p.blocked(t.self, a.Addr) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.p.blocked(t.self, addr) {
		return nil, errCut
	}
	return t.NetTransport.DialTimeout(addr, timeout)
}

func (t *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.p.blocked(t.self, a.Addr) {
		return nil, errCut
	}
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

// behind returns a setup that puts a KV behind p, with failure detection
// fast enough for a test.
func behind(t *testing.T, p *partition) func(*KV) {
	return func(kv *KV) {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}})
		require.NoError(t, err)
		port := nt.GetAutoBindPort()
		tr := &cutTransport{NetTransport: nt, p: p, self: fmt.Sprintf("127.0.0.1:%d", port)}
		kv.tweakConfig = func(c *memberlist.Config) {
			c.Transport, c.BindPort, c.AdvertisePort = tr, port, port
			c.ProbeInterval, c.ProbeTimeout = 50*time.Millisecond, 25*time.Millisecond
			c.SuspicionMult, c.SuspicionMaxTimeoutMult = 1, 1
			c.GossipToTheDeadTime, c.TCPTimeout = 50*time.Millisecond, time.Second
		}
	}
}

// TestPartitionHeal: two halves of a cluster declare each other dead and
// live on apart; once the network is back, rejoining the seeds merges both
// the membership and the values.
func TestPartitionHeal(t *testing.T) {
	p := &partition{}
	a := start(t, "a", testConfig(), behind(t, p))
	b := start(t, "b", testConfig(a.Addr()), behind(t, p))
	c := start(t, "c", testConfig(a.Addr(), b.Addr()), behind(t, p))
	d := start(t, "d", testConfig(a.Addr(), b.Addr(), c.Addr()), behind(t, p))
	all := []*testNode{a, b, c, d}
	require.Eventually(t, membersOf(all...), wait, 5*time.Millisecond)

	p.set([]*testNode{a, b}, []*testNode{c, d})
	require.Eventually(t, func() bool { return membersOf(a, b)() && membersOf(c, d)() }, wait, 5*time.Millisecond, "each half sees only itself")
	a.put(t, "left-half", "1")
	c.put(t, "right-half", "1")
	require.Eventually(t, hasAll([]*testNode{b}, "left-half", "1"), wait, 5*time.Millisecond)
	require.Eventually(t, hasAll([]*testNode{d}, "right-half", "1"), wait, 5*time.Millisecond)
	require.False(t, c.has("left-half", "1"))
	// Keep the network cut until c's rejoins have failed twice: long past
	// the time memberlist still gossips to dead members, so from now on
	// only a rejoin can bring the halves together.
	failed := testutil.ToFloat64(c.m.joinAttempts.WithLabelValues("failure"))
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(c.m.joinAttempts.WithLabelValues("failure")) >= failed+2
	}, wait, 5*time.Millisecond)
	joined := testutil.ToFloat64(c.m.joinAttempts.WithLabelValues("success"))

	p.set()
	require.Eventually(t, membersOf(all...), wait, 5*time.Millisecond, "the halves merge")
	require.Eventually(t, hasAll(all, "left-half", "1"), wait, 5*time.Millisecond)
	require.Eventually(t, hasAll(all, "right-half", "1"), wait, 5*time.Millisecond)
	require.Greater(t, testutil.ToFloat64(c.m.joinAttempts.WithLabelValues("success"))+
		testutil.ToFloat64(d.m.joinAttempts.WithLabelValues("success")), joined, "a rejoin healed it")
}

// TestShutdownSendsFinalState: a member that changes its value and stops at
// once still gets the change out.
func TestShutdownSendsFinalState(t *testing.T) {
	// No push/pull after the join, and b's broadcast is lost: only the
	// final state can carry the change.
	cfg := testConfig()
	cfg.PullPushInterval = time.Hour
	a := start(t, "a", cfg, nil)
	cfg.Join = a.Addr()
	b := start(t, "b", cfg, nil)
	require.Eventually(t, membersOf(a, b), wait, 5*time.Millisecond)
	b.put(t, "last-words", "1")
	b.queue.Reset()
	require.False(t, a.has("last-words", "1"))
	b.stop()
	require.Eventually(t, hasAll([]*testNode{a}, "last-words", "1"), wait, 5*time.Millisecond)
	require.Eventually(t, func() bool { return a.numMembers() == 1 }, wait, 5*time.Millisecond, "b left")
}
