package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// evaluatedGroups returns the groups base's ruler evaluates itself: those
// with a strata_ruler_group_last_evaluation_timestamp_seconds (its
// rule_group label is namespace;group). The rule APIs of every ruler
// answer for every group, so they cannot tell.
func evaluatedGroups(ctx context.Context, c *client) (map[string]bool, error) {
	b, err := c.ok(ctx, http.MethodGet, "/metrics", nil, map[string]string{"Accept": "text/plain"})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	const name = "strata_ruler_group_last_evaluation_timestamp_seconds{"
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), name)
		if !ok {
			continue
		}
		for _, m := range metricLabelRE.FindAllStringSubmatch(line[:strings.LastIndexByte(line, '}')], -1) {
			if m[1] == "rule_group" {
				out[strings.TrimPrefix(m[2], "ns;")] = true
			}
		}
	}
	return out, sc.Err()
}

// allRulesOK reports whether c's /api/v1/rules lists groups groups, every
// rule with health "ok" (evaluated by the ruler that answered or by the
// one it asked).
func allRulesOK(ctx context.Context, c *client, groups int) (bool, string) {
	b, err := c.ok(ctx, http.MethodGet, "/api/v1/rules", nil, nil)
	if err != nil {
		return false, err.Error()
	}
	var rules rulesAnswer
	if err := decodeData(b, &rules); err != nil {
		return false, err.Error()
	}
	ok := 0
	for _, g := range rules.Groups {
		healthy := len(g.Rules) == 3
		for _, r := range g.Rules {
			healthy = healthy && r.Health == "ok"
		}
		if healthy {
			ok++
		}
	}
	return ok == groups && len(rules.Groups) == groups, fmt.Sprintf("%s: %d of %d groups listed, %d healthy", c.base, len(rules.Groups), groups, ok)
}

// alertsOf returns c's /prometheus/api/v1/alerts (with -target=all the
// root path is the Alertmanager's) by alert name.
func alertsOf(ctx context.Context, c *client) (map[string]time.Time, map[string]string, error) {
	b, err := c.ok(ctx, http.MethodGet, "/prometheus/api/v1/alerts", nil, nil)
	if err != nil {
		return nil, nil, err
	}
	var as alertsAnswer
	if err := decodeData(b, &as); err != nil {
		return nil, nil, err
	}
	activeAt, state := map[string]time.Time{}, map[string]string{}
	for _, a := range as.Alerts {
		if a.ActiveAt != nil {
			activeAt[a.Labels["alertname"]] = *a.ActiveAt
		}
		state[a.Labels["alertname"]] = a.State
	}
	return activeAt, state, nil
}

// senderLog is an Alertmanager in the test: which ruler sent each alert,
// told by the host of its generatorURL (each ruler has its own
// -ruler.external.url).
type senderLog struct {
	mu      sync.Mutex
	senders map[string]map[string]bool // alertname -> generator hosts
}

func newSenderLog(t *testing.T) (*senderLog, string) {
	l := &senderLog{senders: map[string]map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var alerts []struct {
			Labels       map[string]string `json:"labels"`
			GeneratorURL string            `json:"generatorURL"`
		}
		if err := json.NewDecoder(r.Body).Decode(&alerts); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, a := range alerts {
			u, err := url.Parse(a.GeneratorURL)
			if err != nil {
				continue
			}
			n := a.Labels["alertname"]
			if l.senders[n] == nil {
				l.senders[n] = map[string]bool{}
			}
			l.senders[n][u.Host] = true
		}
	}))
	t.Cleanup(srv.Close)
	return l, srv.URL
}

// reset forgets what was sent so far.
func (l *senderLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.senders = map[string]map[string]bool{}
}

// snapshot returns alertname -> sorted generator hosts.
func (l *senderLog) snapshot() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for n, hosts := range l.senders {
		for h := range hosts {
			out[n] = append(out[n], h)
		}
		sort.Strings(out[n])
	}
	return out
}

// TestRulerCluster: two rulers split the rule groups, each group evaluated
// by exactly one of them, and either answers for all of them (state and
// alerts); when one is killed with SIGKILL the other takes its groups
// over once the ring's heartbeat timeout passed. Each group's firing alert
// is sent to the Alertmanager by the one ruler evaluating it, never by
// both (a test Alertmanager tells the rulers apart by generatorURL);
// after the kill by a only: their series keep going
// (no gap much longer than the handover observed), and their pending
// alerts resume their `for` from ALERTS_FOR_STATE (none fires before its
// `for` has elapsed since it first went pending). A machine too slow to
// kill b while the alert is pending tests the move of a firing alert
// (logged), not a failure.
func TestRulerCluster(t *testing.T) {
	bin := strataBin(t)
	root := t.TempDir()
	const (
		hbTimeout = 6 * time.Second
		hbPeriod  = time.Second
		interval  = time.Second
		forTime   = 40 * time.Second
	)
	am, amURL := newSenderLog(t)
	common := []string{
		"-auth.multitenancy-enabled", "-ruler.poll-interval=1s", "-ruler.alertmanager-url=" + amURL,
		// Firing alerts are sent again every second: what each ruler sends
		// now shows within a few seconds.
		"-ruler.resend-delay=1s",
		// Upstream restores the `for` of alerts whose `for` is at least
		// the grace period only; the others start over.
		"-ruler.for-grace-period=" + (forTime / 4).String(),
		"-ring.heartbeat-timeout=" + hbTimeout.String(), "-ingester.heartbeat-period=" + hbPeriod.String(),
		"-blocks-storage.filesystem.dir=" + filepath.Join(root, "bucket"),
	}
	a := procs.StartStrataT(t, procs.StrataConfig{Bin: bin, DataDir: filepath.Join(root, "a"), Args: append([]string{"-instance.id=node-a", "-ruler.external.url=http://node-a.test/"}, common...)})
	b := procs.StartStrataT(t, procs.StrataConfig{Bin: bin, DataDir: filepath.Join(root, "b"), Args: append([]string{
		"-target=ruler", "-instance.id=ruler-b", "-memberlist.join=" + a.MemberlistAddr, "-ruler.external.url=http://ruler-b.test/",
		"-ring.replication-factor=1", "-store-gateway.replication-factor=1",
	}, common...)})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ca, cb := newClient(a.URL, "team-a"), newClient(b.URL, "team-a")
	start := time.Now()

	const groups = 20
	for i := range groups {
		body := fmt.Sprintf("name: g%02d\ninterval: %s\nrules:\n- record: rec_g%02d\n  expr: vector(%d)\n- alert: Ag%02d\n  expr: vector(1)\n  for: %s\n- alert: Ig%02d\n  expr: vector(1)\n", i, interval, i, i, i, forTime, i)
		ans, err := ca.do(ctx, http.MethodPost, "/config/v1/rules/ns", nil, map[string]string{"Content-Type": "application/yaml"}, []byte(body))
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, ans.Status, ans.text())
	}

	var onB map[string]bool
	require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		la, err1 := evaluatedGroups(ctx, ca)
		lb, err2 := evaluatedGroups(ctx, cb)
		if err1 != nil || err2 != nil {
			return false, fmt.Sprintf("%v %v", err1, err2)
		}
		for g := range la {
			if lb[g] {
				return false, fmt.Sprintf("group %s evaluated by both rulers", g)
			}
		}
		onB = lb
		return len(la) > 0 && len(lb) > 0 && len(la)+len(lb) == groups, fmt.Sprintf("a evaluates %d groups, b %d", len(la), len(lb))
	}))
	// Either ruler answers for every group, and lists the alerts of the
	// groups the other evaluates.
	for _, c := range []*client{ca, cb} {
		require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) { return allRulesOK(ctx, c, groups) }))
		require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
			activeAt, _, err := alertsOf(ctx, c)
			if err != nil {
				return false, err.Error()
			}
			return len(activeAt) == 2*groups, fmt.Sprintf("%s lists %d of %d alerts", c.base, len(activeAt), 2*groups)
		}))
	}
	// Every group's firing alert reaches the Alertmanager from the ruler
	// that evaluates the group only (before b joined, a evaluated them
	// all: what was sent before now is forgotten).
	am.reset()
	owner := func(g string) string {
		if onB[g] {
			return "ruler-b.test"
		}
		return "node-a.test"
	}
	require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		got := am.snapshot()
		for i := range groups {
			if len(got[fmt.Sprintf("Ig%02d", i)]) == 0 {
				return false, fmt.Sprintf("Ig%02d not notified yet", i)
			}
		}
		return true, ""
	}))
	for n, hosts := range am.snapshot() {
		if g, ok := strings.CutPrefix(n, "I"); ok {
			require.Equal(t, []string{owner(g)}, hosts, "%s sent by %v, evaluated by %s", n, hosts, owner(g))
		}
	}
	// Both rulers' results reach the ingester.
	r, err := ca.query(ctx, `count({__name__=~"rec_g.*"})`, time.Now())
	require.NoError(t, err)
	require.Len(t, r.Series, 1)

	// One of b's alerts, pending there long enough that a restored `for`
	// differs from one started over on a (restored, its activeAt predates
	// the kill).
	var moved string
	for g := range onB {
		moved = "A" + g
		break
	}
	var pendingSince time.Time
	var state string
	require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		activeAt, states, err := alertsOf(ctx, ca)
		if err != nil {
			return false, err.Error()
		}
		pendingSince, state = activeAt[moved], states[moved]
		return state == "pending" && time.Since(pendingSince) > 3*hbTimeout || state == "firing", fmt.Sprintf("%s %s since %s", moved, state, pendingSince)
	}))
	killed := time.Now()
	require.NoError(t, b.Process().Kill())
	if state == "firing" || killed.Sub(pendingSince) >= forTime {
		// Not a failure: the machine was too slow to kill b within the
		// `for`. The alert is restored firing instead of pending; the
		// checks below hold for both.
		t.Logf("%s may have fired on b before the kill (pending since %s, killed at %s): checking the move of a firing alert, not of a pending one", moved, pendingSince, killed)
	}
	require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		la, err := evaluatedGroups(ctx, ca)
		if err != nil {
			return false, err.Error()
		}
		return len(la) == groups, fmt.Sprintf("a evaluates %d of %d groups", len(la), groups)
	}))
	// Every group's series is fresh again: a sample within the last 3s.
	require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		r, err := ca.query(ctx, `{__name__=~"rec_g.*"}[3s]`, time.Now())
		if err != nil {
			return false, err.Error()
		}
		return len(r.Series) == groups, fmt.Sprintf("%d of %d groups written in the last 3s", len(r.Series), groups)
	}))

	// After the kill a sends every group's alerts, b none.
	am.reset()
	require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		got := am.snapshot()
		for g := range onB {
			if len(got["I"+g]) == 0 {
				return false, fmt.Sprintf("I%s not notified by a yet: %v", g, got["I"+g])
			}
		}
		return true, ""
	}))
	for n, hosts := range am.snapshot() {
		if g, ok := strings.CutPrefix(n, "I"); ok {
			require.Equal(t, []string{"node-a.test"}, hosts, "%s sent by %v after the kill (%s)", n, hosts, g)
		}
	}

	// The handover as observed: for each moved group, its last sample
	// before the kill (b's) and its first after (a's first evaluation).
	window := func() string { return fmt.Sprintf("[%ds]", int(time.Since(start).Seconds())+5) }
	res, err := ca.query(ctx, `{__name__=~"rec_g.*"}`+window(), time.Now())
	require.NoError(t, err)
	require.Len(t, res.Series, groups)
	lastOnB, firstOnA, points := map[string]int64{}, map[string]int64{}, map[string][]point{}
	var firstTakeover int64
	for _, s := range res.Series {
		g := strings.TrimPrefix(s.Labels.Get("__name__"), "rec_")
		if !onB[g] {
			continue
		}
		points[g] = s.Points
		for _, p := range s.Points {
			if p.T < killed.UnixMilli() {
				lastOnB[g] = p.T
				continue
			}
			firstOnA[g] = p.T
			break
		}
		require.NotZero(t, firstOnA[g], "%s not evaluated on a after the kill", g)
		if firstTakeover == 0 || firstOnA[g] < firstTakeover {
			firstTakeover = firstOnA[g]
		}
	}

	// The moved alert resumes its `for` (restored from ALERTS_FOR_STATE
	// in the first evaluation on a): active since before that evaluation
	// (upstream shifts it by the time b was down), where one started
	// over would be active since that evaluation.
	handoverEval := time.UnixMilli(firstOnA[strings.TrimPrefix(moved, "A")])
	var restoredAt time.Time
	require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		activeAt, state, err := alertsOf(ctx, ca)
		if err != nil {
			return false, err.Error()
		}
		restoredAt = activeAt[moved]
		return !restoredAt.IsZero() && restoredAt.Before(handoverEval) || state[moved] == "firing", fmt.Sprintf("%s %s since %s", moved, state[moved], restoredAt)
	}))
	require.True(t, restoredAt.Before(handoverEval), "%s active since %s on a: its `for` started over at a's first evaluation of it (%s)", moved, restoredAt, handoverEval)
	require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		_, state, err := alertsOf(ctx, ca)
		if err != nil {
			return false, err.Error()
		}
		return state[moved] == "firing", fmt.Sprintf("%s %s", moved, state[moved])
	}))
	res, err = ca.query(ctx, `ALERTS{alertname="`+moved+`",alertstate="firing"}`+window(), time.Now())
	require.NoError(t, err)
	require.Len(t, res.Series, 1)
	firstFiring := res.Series[0].Points[0].T
	require.GreaterOrEqual(t, firstFiring, pendingSince.Add(forTime).UnixMilli(),
		"%s fired at %s, before its `for` (%s) elapsed since it went pending at %s", moved, time.UnixMilli(firstFiring), forTime, pendingSince)

	// The moved groups' series have no gap much longer than the handover
	// observed (kill to a's first evaluation of a moved group): a takes
	// every moved group over in one ring change, so each one's gap is
	// that, up to one interval before the kill since b's last
	// evaluation, and up to one interval after it to its own first
	// evaluation; twice it bounds a gap with room for a loaded machine.
	handover := time.UnixMilli(firstTakeover).Sub(killed)
	t.Logf("handover observed: %s from the kill to a's first evaluation of a moved group", handover)
	maxGap := 2 * (handover + interval)
	for g, ps := range points {
		for i := 1; i < len(ps); i++ {
			gap := time.Duration(ps[i].T-ps[i-1].T) * time.Millisecond
			require.LessOrEqual(t, gap, maxGap, "rec_%s has no sample from %s to %s, the handover took %s", g, time.UnixMilli(ps[i-1].T), time.UnixMilli(ps[i].T), handover)
		}
	}
	require.Len(t, lastOnB, len(onB), "every moved group had samples from b")
}
