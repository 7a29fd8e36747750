package ruler

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-metrics/strata/proto/rulerpb"
	"github.com/strata-metrics/strata/ring"
)

// grpcPeers dials other rulers over plain gRPC.
type grpcPeers struct{ t *testing.T }

func (p grpcPeers) Get(addr string) (rulerpb.RulerClient, error) {
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	p.t.Cleanup(func() { _ = c.Close() })
	return rulerpb.NewRulerClient(c), nil
}

// rulerPair is two rulers in one ruler ring, each serving its gRPC
// service on loopback, sharing a bucket and a TSDB.
type rulerPair struct {
	a, b  *testRuler
	ring  *ring.MemStore
	srvB  *grpc.Server
	stopB func() // stops ruler b and its gRPC server

	addrs    map[string]string
	rulerIDs []string
}

// startRulerPair starts the pair; opts change both rulers' config and
// dependencies after the pair's own.
func startRulerPair(t *testing.T, opts ...func(*Config, *Deps)) *rulerPair {
	st := teststorage.New(t)
	bkt := objstore.NewInMemBucket()
	store := ring.NewMemStore()
	rng := ring.New(ring.Config{ReplicationFactor: 1}, store, time.Now)
	p := &rulerPair{addrs: map[string]string{}, rulerIDs: []string{"ruler-a", "ruler-b"}, ring: store}
	lis := map[string]net.Listener{}
	for _, id := range p.rulerIDs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lis[id], p.addrs[id] = l, l.Addr().String()
	}
	rnd := rand.New(rand.NewSource(1))
	require.NoError(t, store.Update(context.Background(), func(d *ring.Desc) bool {
		for _, id := range p.rulerIDs {
			in := ring.Instance{ID: id, Addr: p.addrs[id], State: ring.Active, Heartbeat: time.Now().UnixMilli()}
			for range 32 {
				in.Tokens = append(in.Tokens, rnd.Uint32())
			}
			slices.Sort(in.Tokens)
			d.Instances[id] = in
		}
		return true
	}))
	rulers := map[string]*testRuler{}
	for _, id := range p.rulerIDs {
		tr := newTestRuler(t, st, bkt, func(c *Config, d *Deps) {
			c.PollInterval = 100 * time.Millisecond
			d.Ring, d.InstanceID, d.Peers = rng, id, grpcPeers{t}
			for _, o := range opts {
				o(c, d)
			}
		})
		srv := grpc.NewServer()
		rulerpb.RegisterRulerServer(srv, tr.Server())
		go func() { _ = srv.Serve(lis[id]) }()
		stop := tr.run(t)
		rulers[id] = tr
		if id == "ruler-b" {
			p.srvB, p.stopB = srv, func() {
				stop()
				srv.Stop()
			}
		} else {
			t.Cleanup(srv.Stop)
			t.Cleanup(stop)
		}
	}
	p.a, p.b = rulers["ruler-a"], rulers["ruler-b"]
	return p
}

type testRules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Name   string      `json:"name"`
			Health string      `json:"health"`
			Alerts []*apiAlert `json:"alerts"`
		} `json:"rules"`
	} `json:"groups"`
	GroupNextToken string `json:"groupNextToken"`
}

func (tr *testRuler) rules(t *testing.T, query string) (testRules, []string) {
	code, body := tr.request(t, http.MethodGet, "/api/v1/rules"+query, "team-a", "")
	require.Equal(t, http.StatusOK, code, body)
	var ans struct {
		Data     testRules `json:"data"`
		Warnings []string  `json:"warnings"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &ans))
	return ans.Data, ans.Warnings
}

// TestRulesFromEveryRuler: any ruler answers /api/v1/rules and
// /api/v1/alerts with the state of every group of the tenant, the ones
// the other ruler evaluates included, and filters and pages the merged
// list; a ruler that does not answer leaves its groups unknown, named in
// a warning.
func TestRulesFromEveryRuler(t *testing.T) {
	p := startRulerPair(t)
	const groups = 12
	for i := range groups {
		code, body := p.a.request(t, http.MethodPost, "/config/v1/rules/ns", "team-a", fmt.Sprintf(`name: g%02d
interval: 100ms
rules:
- record: rec_%02d
  expr: vector(%d)
- alert: A%02d
  expr: vector(1)
`, i, i, i, i))
		require.Equal(t, http.StatusAccepted, code, body)
	}
	eventually(t, "both rulers evaluating, every group once, every alert firing", func() bool {
		la, lb := p.a.localStates("team-a"), p.b.localStates("team-a")
		firing := 0
		for _, g := range append(la, lb...) {
			for _, rs := range g.Rules {
				if len(rs.Alerts) == 1 && rs.Alerts[0].State == "firing" {
					firing++
				}
			}
		}
		return len(la) > 0 && len(lb) > 0 && len(la)+len(lb) == groups && firing == groups
	})
	onB := p.b.localStates("team-a")[0].Name

	for _, tr := range []*testRuler{p.a, p.b} {
		rs, warnings := tr.rules(t, "")
		require.Empty(t, warnings)
		require.Len(t, rs.Groups, groups)
		for _, g := range rs.Groups {
			for _, rl := range g.Rules {
				require.Equal(t, "ok", rl.Health, "group %s rule %s", g.Name, rl.Name)
			}
		}
		require.Len(t, tr.alerts(t, "team-a"), groups, "alerts of the groups both rulers evaluate")
	}

	// Filters and pages apply to the merged list.
	rs, _ := p.a.rules(t, "?rule_group[]="+onB+"&type=alert")
	require.Len(t, rs.Groups, 1)
	require.Len(t, rs.Groups[0].Rules, 1)
	require.Len(t, rs.Groups[0].Rules[0].Alerts, 1, "alert of a group the other ruler evaluates")
	rs, _ = p.a.rules(t, "?exclude_alerts=true&match[]={__name__=~\"rec_.*\"}")
	require.Len(t, rs.Groups, 0, "recording rules have no __name__ label")
	var seen []string
	token := ""
	for range groups {
		rs, _ = p.a.rules(t, "?group_limit=5&group_next_token="+token)
		for _, g := range rs.Groups {
			seen = append(seen, g.Name)
		}
		if token = rs.GroupNextToken; token == "" {
			break
		}
	}
	require.Len(t, seen, groups)
	require.True(t, slices.IsSorted(seen))

	// The gRPC service answers the asked tenant only.
	c := grpcPeers{t}
	cl, err := c.Get(p.addrs["ruler-b"])
	require.NoError(t, err)
	_, err = cl.Rules(context.Background(), &rulerpb.RulesRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	ans, err := cl.Rules(context.Background(), &rulerpb.RulesRequest{Tenant: "team-b"})
	require.NoError(t, err)
	require.Empty(t, ans.Groups, "team-a's groups answered for team-b")

	// Ruler b stops answering (its gRPC server is gone, its ring entry
	// still fresh): its groups are unknown, and a warning names it.
	p.srvB.Stop()
	rs, warnings := p.a.rules(t, "")
	require.Len(t, rs.Groups, groups)
	unknown := 0
	for _, g := range rs.Groups {
		if g.Rules[0].Health == "unknown" {
			unknown++
		}
	}
	require.Equal(t, len(p.b.localStates("team-a")), unknown)
	require.Len(t, warnings, 1)
	require.Contains(t, warnings[0], "ruler-b")
	require.Equal(t, 1.0, testutil.ToFloat64(p.a.m.peerFailures.WithLabelValues("ruler-b")))
	p.stopB()
}

// sizedPeers dials like grpcPeers and adds up the size of the answers.
type sizedPeers struct {
	grpcPeers
	mu    *sync.Mutex
	bytes *int
	calls *int
}

func (p sizedPeers) Get(addr string) (rulerpb.RulerClient, error) {
	c, err := p.grpcPeers.Get(addr)
	return sizedClient{RulerClient: c, p: p}, err
}

type sizedClient struct {
	rulerpb.RulerClient
	p sizedPeers
}

func (c sizedClient) Rules(ctx context.Context, in *rulerpb.RulesRequest, opts ...grpc.CallOption) (*rulerpb.RulesResponse, error) {
	resp, err := c.RulerClient.Rules(ctx, in, opts...)
	c.p.mu.Lock()
	*c.p.bytes += proto.Size(resp)
	*c.p.calls++
	c.p.mu.Unlock()
	return resp, err
}

// TestRulesFiltersReachPeers: rule_group[], file[], rule_name[], type and
// exclude_alerts are sent to the other rulers, which answer only what is
// asked: fewer bytes than unfiltered, the same API answer as filtering
// the unfiltered list.
func TestRulesFiltersReachPeers(t *testing.T) {
	var (
		mu           sync.Mutex
		bytes, calls int
	)
	p := startRulerPair(t, func(_ *Config, d *Deps) {
		d.Peers = sizedPeers{grpcPeers: d.Peers.(grpcPeers), mu: &mu, bytes: &bytes, calls: &calls}
	})
	defer p.stopB()
	const groups = 12
	for i := range groups {
		body := fmt.Sprintf("name: g%02d\ninterval: 100ms\nrules:\n- record: rec_g%02d\n  expr: vector(1)\n- alert: A%02d\n  expr: vector(1)\n  labels:\n    severity: page\n  annotations:\n    summary: group %02d is on\n", i, i, i, i)
		code, out := p.a.request(t, http.MethodPost, "/config/v1/rules/ns", "team-a", body)
		require.Equal(t, http.StatusAccepted, code, out)
	}
	eventually(t, "every group evaluated with its alert, on both rulers", func() bool {
		a, b := p.a.localStates("team-a"), p.b.localStates("team-a")
		n := 0
		for _, g := range append(a, b...) {
			for _, rs := range g.GetRules() {
				n += len(rs.GetAlerts())
			}
		}
		return len(a) > 0 && len(b) > 0 && n == groups
	})
	onB := p.b.localStates("team-a")[0].GetName()
	// sent is what ruler b sends ruler a for query, and a's answer.
	sent := func(query string) (int, testRules) {
		mu.Lock()
		bytes, calls = 0, 0
		mu.Unlock()
		rs, warnings := p.a.rules(t, query)
		require.Empty(t, warnings)
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, 1, calls)
		return bytes, rs
	}
	all, allRules := sent("")
	require.Len(t, allRules.Groups, groups)
	for _, query := range []string{
		"?exclude_alerts=true", "?type=record", "?type=alert", "?rule_group[]=" + onB, "?file[]=other",
		"?rule_name[]=rec_" + onB, "?rule_name[]=A00&rule_name[]=A01&exclude_alerts=true",
	} {
		n, rs := sent(query)
		require.Less(t, n, all, "%s: ruler b sent %d bytes, %d unfiltered", query, n, all)
		// The answer is the unfiltered one, filtered.
		q, err := url.ParseQuery(strings.TrimPrefix(query, "?"))
		require.NoError(t, err)
		var want []string
		for _, g := range allRules.Groups {
			if len(q["rule_group[]"]) > 0 && !slices.Contains(q["rule_group[]"], g.Name) || len(q["file[]"]) > 0 {
				continue
			}
			for _, rl := range g.Rules {
				isAlert := strings.HasPrefix(rl.Name, "A")
				if len(q["rule_name[]"]) > 0 && !slices.Contains(q["rule_name[]"], rl.Name) ||
					q.Get("type") == "record" && isAlert || q.Get("type") == "alert" && !isAlert {
					continue
				}
				alerts := len(rl.Alerts)
				if q.Get("exclude_alerts") == "true" {
					alerts = 0
				}
				want = append(want, fmt.Sprintf("%s/%s/%s/%d", g.Name, rl.Name, rl.Health, alerts))
			}
		}
		var got []string
		for _, g := range rs.Groups {
			for _, rl := range g.Rules {
				got = append(got, fmt.Sprintf("%s/%s/%s/%d", g.Name, rl.Name, rl.Health, len(rl.Alerts)))
			}
		}
		require.Equal(t, want, got, query)
	}

	// Peers refuse an unknown type.
	cl, err := grpcPeers{t}.Get(p.addrs["ruler-b"])
	require.NoError(t, err)
	_, err = cl.Rules(context.Background(), &rulerpb.RulesRequest{Tenant: "team-a", Type: "both"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}

// TestConcurrentRulesShareOneGather: identical /api/v1/rules calls at
// once (sharing the gather in flight, which they only read) each answer
// every group with its state.
func TestConcurrentRulesShareOneGather(t *testing.T) {
	release := make(chan struct{})
	p := startRulerPair(t, func(_ *Config, d *Deps) {
		d.Peers = blockingPeers{PeerClients: d.Peers, release: release}
	})
	defer p.stopB()
	for _, g := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		code, out := p.a.request(t, http.MethodPost, "/config/v1/rules/ns", "team-a", "name: "+g+"\ninterval: 100ms\nrules:\n- record: rec_"+g+"\n  expr: vector(1)\n")
		require.Equal(t, http.StatusAccepted, code, out)
	}
	eventually(t, "both rulers evaluating, every group evaluated", func() bool {
		a, b := p.a.localStates("team-a"), p.b.localStates("team-a")
		healthy := 0
		for _, g := range append(a, b...) {
			if g.GetRules()[0].GetHealth() == "ok" {
				healthy++
			}
		}
		return len(a) > 0 && len(b) > 0 && healthy == 8
	})
	var wg sync.WaitGroup
	answers := make([]testRules, 4)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], _ = p.a.rules(t, "")
		}()
	}
	eventually(t, "a call waiting on ruler b", func() bool { return testutil.ToFloat64(p.a.m.peerRequests) >= 1 })
	close(release)
	wg.Wait()
	for _, rs := range answers {
		require.Len(t, rs.Groups, 8)
		for _, g := range rs.Groups {
			require.Equal(t, "ok", g.Rules[0].Health, "group %s", g.Name)
		}
	}
}

// blockingPeers holds every answer until release is closed.
type blockingPeers struct {
	PeerClients
	release chan struct{}
}

func (p blockingPeers) Get(addr string) (rulerpb.RulerClient, error) {
	c, err := p.PeerClients.Get(addr)
	return blockingClient{RulerClient: c, release: p.release}, err
}

type blockingClient struct {
	rulerpb.RulerClient
	release chan struct{}
}

func (c blockingClient) Rules(ctx context.Context, in *rulerpb.RulesRequest, opts ...grpc.CallOption) (*rulerpb.RulesResponse, error) {
	select {
	case <-c.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.RulerClient.Rules(ctx, in, opts...)
}
