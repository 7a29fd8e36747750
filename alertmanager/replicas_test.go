package alertmanager

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-metrics/strata/limits"
	"github.com/strata-metrics/strata/proto/alertmanagerpb"
	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/tenant"
)

// testCluster is replicas of the module on one bucket and one ring, each
// with a real gRPC server on loopback.
type testCluster struct {
	t     *testing.T
	bkt   objstore.Bucket
	store *ring.MemStore
	ring  *ring.Ring
	peers *testDialer
	reps  map[string]*testReplica
}

type testReplica struct {
	*harness
	id, addr string
	reg      *prometheus.Registry
	stop     func()
}

type testDialer struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (d *testDialer) Conn(addr string) (grpc.ClientConnInterface, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.conns[addr]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	d.conns[addr] = c
	return c, nil
}

func newTestCluster(t *testing.T, rf int) *testCluster {
	store := ring.NewMemStore()
	c := &testCluster{
		t: t, bkt: objstore.NewInMemBucket(), store: store,
		// No heartbeat timeout: an instance is healthy while ACTIVE.
		ring:  ring.New(ring.Config{ReplicationFactor: rf}, store, time.Now),
		peers: &testDialer{conns: map[string]*grpc.ClientConn{}},
		reps:  map[string]*testReplica{},
	}
	t.Cleanup(func() {
		for _, r := range c.reps {
			r.stop()
		}
		for _, conn := range c.peers.conns {
			conn.Close()
		}
	})
	return c
}

// start runs replica id (data in dir) and puts it in the ring ACTIVE,
// with 32 tokens of its own and extra.
func (c *testCluster) start(id, dir string, lim *limits.Limits, extra ...uint32) *testReplica {
	return c.startOn(c.store, c.ring, id, dir, lim, extra...)
}

// startOn is start with the ring view (store, rg) of the replica's own.
func (c *testCluster) startOn(store *ring.MemStore, rg *ring.Ring, id, dir string, lim *limits.Limits, extra ...uint32) *testReplica {
	t := c.t
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var cfg Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-alertmanager.peer-timeout=2s"}))
	cfg.DataDir = dir
	reg := prometheus.NewRegistry()
	am, err := New(cfg, Deps{
		Bucket: c.bkt, Limits: limits.NewOverrides(*lim), Tenants: tenant.Resolver{MultitenancyEnabled: true},
		Ring: rg, Peers: c.peers, InstanceID: id, Reg: reg,
	})
	require.NoError(t, err)
	srv := grpc.NewServer()
	alertmanagerpb.RegisterAlertmanagerServer(srv, am.GRPCServer())
	go func() { _ = srv.Serve(lis) }()
	rnd := rand.New(rand.NewPCG(uint64(len(id)), uint64(id[len(id)-1])))
	tokens := map[uint32]bool{}
	for _, tok := range extra {
		tokens[tok] = true
	}
	for len(tokens) < 32+len(extra) {
		tokens[rnd.Uint32()] = true
	}
	var sorted []uint32
	for tok := range tokens {
		sorted = append(sorted, tok)
	}
	slices.Sort(sorted)
	require.NoError(t, store.Update(context.Background(), func(d *ring.Desc) bool {
		d.Instances[id] = ring.Instance{ID: id, Addr: lis.Addr().String(), State: ring.Active, Tokens: sorted, Heartbeat: time.Now().UnixMilli()}
		return true
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- am.Run(ctx) }()
	var once sync.Once
	r := &testReplica{
		harness: &harness{t: t, am: am, bkt: c.bkt, cfg: am.ConfigHandler(), api: am.APIHandler()},
		id:      id, addr: lis.Addr().String(), reg: reg,
		stop: func() {
			once.Do(func() {
				cancel()
				require.NoError(t, <-done)
				srv.Stop()
			})
		},
	}
	c.reps[id] = r
	eventually(t, "the first sync", func() bool { return am.CheckReady(ctx) == nil })
	return r
}

// leave takes replica id out of the ring.
func (c *testCluster) leave(id string) {
	require.NoError(c.t, c.store.Update(context.Background(), func(d *ring.Desc) bool {
		delete(d.Instances, id)
		return true
	}))
}

func (c *testCluster) owners(id string) []string {
	var out []string
	for _, in := range c.ring.Snapshot().HealthyOwners(tenantToken(id), ring.Write, nil) {
		out = append(out, in.ID)
	}
	return out
}

func activeSilences(t *testing.T, in *instance) int {
	if in == nil {
		return -1
	}
	n, err := in.silences.CountState(context.Background(), silence.SilenceStateActive)
	require.NoError(t, err)
	return n
}

const testSilence = `{"matchers":[{"name":"alertname","value":"Muted","isRegex":false,"isEqual":true}],
	"startsAt":"2000-01-01T00:00:00Z","endsAt":"2999-01-01T00:00:00Z","createdBy":"test","comment":"mute"}`

// TestTenantsShardedAcrossReplicas: with a replication factor of 2 among
// 3 replicas, each tenant runs on its 2 owners only, and every replica
// answers every tenant's API: alerts posted through a replica that does
// not own the tenant reach both owners, reads are forwarded to one.
func TestTenantsShardedAcrossReplicas(t *testing.T) {
	c := newTestCluster(t, 2)
	lim := defaultLimits(t)
	for _, id := range []string{"am-0", "am-1", "am-2"} {
		c.start(id, t.TempDir(), lim)
	}
	tenants := []string{"t0", "t1", "t2", "t3", "t4", "t5"}
	for _, id := range tenants {
		c.reps["am-0"].mustUpload(id, webhookConfig("https://hooks.example.com/"+id))
	}
	for _, r := range c.reps {
		require.NoError(t, r.am.sync(context.Background()))
	}
	for _, id := range tenants {
		owners := c.owners(id)
		require.Len(t, owners, 2)
		for rid, r := range c.reps {
			require.Equal(t, slices.Contains(owners, rid), r.am.running(id) != nil, "tenant %s on %s, owners %v", id, rid, owners)
		}
		// Through the replica that does not own it.
		var other *testReplica
		for rid, r := range c.reps {
			if !slices.Contains(owners, rid) {
				other = r
			}
		}
		other.postAlerts(id, "Disk-"+id)
		for _, o := range owners {
			_, body := c.reps[o].do(c.reps[o].api, http.MethodGet, "/alertmanager/api/v2/alerts", id, "")
			require.Contains(t, body, "Disk-"+id, "alerts of %s on owner %s", id, o)
		}
		code, body := other.do(other.api, http.MethodGet, "/alertmanager/api/v2/alerts", id, "")
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, "Disk-"+id)
		// A silence through the non-owner reaches both owners.
		code, body = other.do(other.api, http.MethodPost, "/alertmanager/api/v2/silences", id, testSilence)
		require.Equal(t, http.StatusOK, code, body)
		for _, o := range owners {
			eventually(t, "the silence on every owner", func() bool { return activeSilences(t, c.reps[o].am.running(id)) == 1 })
		}
	}
	// A tenant without a configuration: 404 through any replica.
	code, body := c.reps["am-1"].do(c.reps["am-1"].api, http.MethodGet, "/alertmanager/api/v2/status", "nobody", "")
	require.Equal(t, http.StatusNotFound, code, body)
}

// TestPostAlertsInProcess: PostAlerts, the ruler's way in without an HTTP
// URL, reaches every owner of the tenant from a replica that is not one.
func TestPostAlertsInProcess(t *testing.T) {
	c := newTestCluster(t, 1)
	lim := defaultLimits(t)
	c.start("am-0", t.TempDir(), lim)
	c.start("am-1", t.TempDir(), lim)
	c.reps["am-0"].mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	owner := c.reps[c.owners("t1")[0]]
	other := c.reps["am-0"]
	if owner == other {
		other = c.reps["am-1"]
	}
	require.NoError(t, other.am.PostAlerts(context.Background(), "t1", []byte(`[{"labels":{"alertname":"FromRuler"}}]`)))
	_, body := owner.do(owner.api, http.MethodGet, "/alertmanager/api/v2/alerts", "t1", "")
	require.Contains(t, body, "FromRuler")
	require.Nil(t, other.am.running("t1"))
	var nc *NotConfiguredError
	require.ErrorAs(t, other.am.PostAlerts(context.Background(), "nobody", []byte(`[]`)), &nc)
}

// TestSenderFromAnotherProcess: a Sender in a process without the module
// (a ruler) posts a tenant's alerts to every owner over gRPC; it says no
// built-in Alertmanager is available while the ring is empty, and names
// the refusal when no owner has the tenant.
func TestSenderFromAnotherProcess(t *testing.T) {
	c := newTestCluster(t, 2)
	s := NewSender(c.ring, c.peers, func() *MultitenantAlertmanager { return nil })
	require.False(t, s.Available(), "no replica in the ring yet")
	lim := defaultLimits(t)
	for _, id := range []string{"am-0", "am-1", "am-2"} {
		c.start(id, t.TempDir(), lim)
	}
	require.True(t, s.Available())
	c.reps["am-0"].mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	for _, r := range c.reps {
		require.NoError(t, r.am.sync(context.Background()))
	}
	require.NoError(t, s.PostAlerts(context.Background(), "t1", []byte(`[{"labels":{"alertname":"FromRuler"}}]`)))
	for _, o := range c.owners("t1") {
		_, body := c.reps[o].do(c.reps[o].api, http.MethodGet, "/alertmanager/api/v2/alerts", "t1", "")
		require.Contains(t, body, "FromRuler", "owner %s", o)
	}
	var nc *NotConfiguredError
	require.ErrorAs(t, s.PostAlerts(context.Background(), "nobody", []byte(`[]`)), &nc, "every owner answered: no configuration")
	require.Error(t, s.PostAlerts(context.Background(), "../x", []byte(`[]`)), "a hostile tenant id is refused before any call")
}

// TestNotificationLogReplicates: the first owner notifies at once and its
// notification log entry reaches the second owner, which waits one peer
// timeout before it would notify and then skips what the entry says is
// sent (upstream's dedup stage).
func TestNotificationLogReplicates(t *testing.T) {
	c := newTestCluster(t, 2)
	lim := defaultLimits(t, "-alertmanager.receivers-firewall-allow-private")
	a := c.start("am-0", t.TempDir(), lim)
	b := c.start("am-1", t.TempDir(), lim)
	rec := newReceiver(t)
	a.mustUpload("t1", webhookConfig(rec.srv.URL))
	require.NoError(t, b.am.sync(context.Background()))
	owners := c.owners("t1")
	require.ElementsMatch(t, []string{"am-0", "am-1"}, owners)
	first, second := c.reps[owners[0]], c.reps[owners[1]]
	require.Equal(t, 0, first.am.position("t1"))
	require.Equal(t, 1, second.am.position("t1"))

	second.postAlerts("t1", "A")
	eventually(t, "the notification", func() bool { return rec.alertnames()["A"] })
	nflogBytes := func(r *testReplica) int {
		b, err := r.am.running("t1").nflog.MarshalBinary()
		require.NoError(t, err)
		return len(b)
	}
	eventually(t, "the first owner's log entry on the second", func() bool { return nflogBytes(second) > 0 })
	require.Positive(t, testutil.ToFloat64(first.am.metrics.replicationSends.WithLabelValues("nflog")))
	require.Positive(t, testutil.ToFloat64(second.am.metrics.merges.WithLabelValues("nflog")))
	eventually(t, "the replication lag observed", func() bool {
		n, err := testutil.GatherAndCount(first.reg, "strata_alertmanager_replication_lag_seconds")
		return err == nil && n > 0
	})
	// The second merged it without sending it back.
	require.Zero(t, testutil.ToFloat64(second.am.metrics.replicationSends.WithLabelValues("nflog")))
}

// TestRestartedReplicaReadsStateFromAPeer: a replica that comes back
// without its disk gets the tenant's silences from the other owner.
func TestRestartedReplicaReadsStateFromAPeer(t *testing.T) {
	c := newTestCluster(t, 2)
	lim := defaultLimits(t)
	a := c.start("am-0", t.TempDir(), lim)
	b := c.start("am-1", t.TempDir(), lim)
	a.mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	code, body := a.do(a.api, http.MethodPost, "/alertmanager/api/v2/silences", "t1", testSilence)
	require.Equal(t, http.StatusOK, code, body)
	b.stop() // it wrote the state to the bucket if it was the first owner
	c.leave("am-1")
	if err := c.bkt.Delete(context.Background(), statePrefix+"t1"); !c.bkt.IsObjNotFoundErr(err) {
		require.NoError(t, err) // only the peer has it now
	}
	b2 := c.start("am-1", t.TempDir(), lim)
	eventually(t, "the tenant on the restarted replica", func() bool { return b2.am.running("t1") != nil })
	require.Equal(t, 1, activeSilences(t, b2.am.running("t1")))
	require.Equal(t, 1.0, testutil.ToFloat64(b2.am.metrics.stateSyncs.WithLabelValues("peer")))
}

// TestLateJoinReadsTheOwnersState: a replica that started a tenant before
// it saw the other owners (its gossip joined late: a restarted seed) reads
// their state once they appear, and holds its notifications meanwhile.
func TestLateJoinReadsTheOwnersState(t *testing.T) {
	c := newTestCluster(t, 2)
	lim := defaultLimits(t)
	a := c.start("am-0", t.TempDir(), lim)
	a.mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	code, body := a.do(a.api, http.MethodPost, "/alertmanager/api/v2/silences", "t1", testSilence)
	require.Equal(t, http.StatusOK, code, body)

	// am-1 sees only itself.
	own := ring.NewMemStore()
	b := c.startOn(own, ring.New(ring.Config{ReplicationFactor: 2}, own, time.Now), "am-1", t.TempDir(), lim)
	eventually(t, "the tenant on the late replica", func() bool { return b.am.running("t1") != nil })
	require.Equal(t, 0, activeSilences(t, b.am.running("t1")))
	select {
	case <-b.am.running("t1").settled:
		t.Fatal("notifications not held while the replica settles")
	default:
	}
	// Its gossip joins: am-0 appears in its view.
	require.NoError(t, own.Update(context.Background(), func(d *ring.Desc) bool {
		d.Instances["am-0"] = c.store.Get().Instances["am-0"]
		return true
	}))
	eventually(t, "the silence read from the owner that appeared", func() bool { return activeSilences(t, b.am.running("t1")) == 1 })
}

// TestTenantMovesWithItsSilences: a replica that joins and takes a tenant
// over (its token) gets the tenant's silences from the replica that ran
// it, directly or through the bucket, whichever of the two follows the
// ring first.
func TestTenantMovesWithItsSilences(t *testing.T) {
	c := newTestCluster(t, 1)
	lim := defaultLimits(t)
	a := c.start("am-0", t.TempDir(), lim)
	a.mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	code, body := a.do(a.api, http.MethodPost, "/alertmanager/api/v2/silences", "t1", testSilence)
	require.Equal(t, http.StatusOK, code, body)

	b := c.start("am-1", t.TempDir(), lim, tenantToken("t1"))
	require.Equal(t, []string{"am-1"}, c.owners("t1"))
	eventually(t, "the tenant moved", func() bool { return b.am.running("t1") != nil && a.am.running("t1") == nil })
	require.Equal(t, 1, activeSilences(t, b.am.running("t1")))
}

// TestStateSurvivesLosingTheDisk: a single replica writes its tenants'
// state to the bucket at shutdown; started again on an empty disk, it
// reads the silences back from there.
func TestStateSurvivesLosingTheDisk(t *testing.T) {
	bkt := objstore.NewInMemBucket()
	lim := defaultLimits(t)
	h := newReplica(t, lim, bkt, "")
	h.mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	code, body := h.do(h.api, http.MethodPost, "/alertmanager/api/v2/silences", "t1", testSilence)
	require.Equal(t, http.StatusOK, code, body)
	h.am.persistAll(context.Background())
	require.Equal(t, 1.0, testutil.ToFloat64(h.am.metrics.persists))

	h2 := newReplica(t, lim, bkt, "") // another data dir: the disk is lost
	_, body = h2.do(h2.api, http.MethodGet, "/alertmanager/api/v2/silences", "t1", "")
	require.Contains(t, body, `"comment":"mute"`)
	require.Equal(t, 1.0, testutil.ToFloat64(h2.am.metrics.stateSyncs.WithLabelValues("bucket")))
}

// listHook runs a function in the middle of a listing of the bucket.
type listHook struct {
	objstore.Bucket
	during func()
}

func (l *listHook) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	err := l.Bucket.Iter(ctx, dir, f, opts...)
	if l.during != nil {
		l.during()
	}
	return err
}

// TestUploadDuringListingKeepsTheInstance: a configuration uploaded while
// a sync lists the bucket is not in that listing; its Alertmanager keeps
// running, with its alerts and silences.
func TestUploadDuringListingKeepsTheInstance(t *testing.T) {
	bkt := &listHook{Bucket: objstore.NewInMemBucket()}
	h := newReplica(t, defaultLimits(t), bkt, "")
	var made *instance
	bkt.during = func() {
		bkt.during = nil
		h.mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
		made = h.am.running("t1")
	}
	require.NoError(t, h.am.sync(context.Background()))
	require.NotNil(t, made)
	require.Same(t, made, h.am.running("t1"), "the instance was torn down")
}

// TestIdleFallbackInstanceIsRemoved: an Alertmanager made from the
// fallback configuration is removed once it holds no alert and no
// silence and nobody used it for fallbackIdle; one with an alert stays.
func TestIdleFallbackInstanceIsRemoved(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/fallback.yml"
	require.NoError(t, writeFile(file, "route:\n  receiver: hook\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: https://hooks.example.com/fallback\n"))
	h := newReplicaArgs(t, defaultLimits(t), objstore.NewInMemBucket(), "-alertmanager.fallback-config-file="+file)
	var clock sync.Mutex
	now := time.Now()
	h.am.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	code, body := h.do(h.api, http.MethodGet, "/alertmanager/api/v2/status", "quiet", "")
	require.Equal(t, http.StatusOK, code, body)
	h.postAlerts("busy", "Firing")
	require.ElementsMatch(t, []string{"quiet", "busy"}, h.am.tenantIDs())

	h.am.reconcile(context.Background())
	require.ElementsMatch(t, []string{"quiet", "busy"}, h.am.tenantIDs(), "not idle for long yet")
	clock.Lock()
	now = now.Add(fallbackIdleAfter + time.Second)
	clock.Unlock()
	h.am.reconcile(context.Background())
	require.ElementsMatch(t, []string{"busy"}, h.am.tenantIDs())
}

// TestTenantToken pins where tenants sit on the alertmanager ring: a
// change would move every tenant in a running cluster.
func TestTenantToken(t *testing.T) {
	require.Equal(t, uint32(0x3eb8e9dd), tenantToken("team-a"))
	require.Equal(t, fmt.Sprint(tenantToken("t1")), fmt.Sprint(ring.StringToken("t1")))
}

// TestForwardedRequestChecksTheTenant: a forwarded request's tenant is
// checked like one from HTTP: never a path into the bucket.
func TestForwardedRequestChecksTheTenant(t *testing.T) {
	h := newHarness(t, defaultLimits(t))
	h.mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	_, err := h.am.GRPCServer().HandleRequest(context.Background(), &alertmanagerpb.HTTPRequest{Tenant: "../configs/t1", Method: http.MethodGet, Url: "/alertmanager/api/v2/status"})
	require.ErrorContains(t, err, "InvalidArgument")
	res, err := h.am.GRPCServer().HandleRequest(context.Background(), &alertmanagerpb.HTTPRequest{Tenant: "t1", Method: http.MethodGet, Url: "/alertmanager/api/v2/status"})
	require.NoError(t, err)
	require.Equal(t, int32(http.StatusOK), res.GetCode())
}

// TestNoOwnerIs503: with no healthy replica in the ring, a tenant's API
// answers 503 naming the cause, counted.
func TestNoOwnerIs503(t *testing.T) {
	c := newTestCluster(t, 1)
	r := c.start("am-0", t.TempDir(), defaultLimits(t))
	r.mustUpload("t1", webhookConfig("https://hooks.example.com/a"))
	c.leave("am-0")
	code, body := r.do(r.api, http.MethodGet, "/alertmanager/api/v2/status", "t1", "")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, `no healthy alertmanager replica owns tenant "t1"`)
	require.Equal(t, 1.0, testutil.ToFloat64(r.am.metrics.noOwner))
	eventually(t, "the tenant handed over", func() bool { return r.am.running("t1") == nil })
	ok, err := c.bkt.Exists(context.Background(), statePrefix+"t1")
	require.NoError(t, err)
	require.True(t, ok, "the hand-over writes the state to the bucket")
}
