package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// localGroups returns the groups base's ruler evaluates itself (the others
// it lists from storage with health "unknown").
func localGroups(ctx context.Context, c *client) (map[string]bool, error) {
	b, err := c.ok(ctx, http.MethodGet, "/api/v1/rules", nil, nil)
	if err != nil {
		return nil, err
	}
	var rules rulesAnswer
	if err := decodeData(b, &rules); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, g := range rules.Groups {
		if len(g.Rules) > 0 && g.Rules[0].Health == "ok" {
			out[g.Name] = true
		}
	}
	return out, nil
}

// TestRulerCluster: two rulers split the rule groups, each group evaluated
// by exactly one of them; when one is killed with SIGKILL the other takes
// its groups over within the ring's heartbeat timeout.
func TestRulerCluster(t *testing.T) {
	bin := strataBin(t)
	root := t.TempDir()
	common := []string{
		"-auth.multitenancy-enabled", "-ruler.poll-interval=1s",
		"-ring.heartbeat-timeout=6s", "-ingester.heartbeat-period=1s",
		"-blocks-storage.filesystem.dir=" + filepath.Join(root, "bucket"),
	}
	a := procs.StartStrataT(t, procs.StrataConfig{Bin: bin, DataDir: filepath.Join(root, "a"), Args: append([]string{"-instance.id=node-a"}, common...)})
	b := procs.StartStrataT(t, procs.StrataConfig{Bin: bin, DataDir: filepath.Join(root, "b"), Args: append([]string{
		"-target=ruler", "-instance.id=ruler-b", "-memberlist.join=" + a.MemberlistAddr,
		"-ring.replication-factor=1", "-store-gateway.replication-factor=1",
	}, common...)})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ca, cb := newClient(a.URL, "team-a"), newClient(b.URL, "team-a")

	const groups = 20
	for i := range groups {
		body := fmt.Sprintf("name: g%02d\ninterval: 1s\nrules:\n- record: rec_g%02d\n  expr: vector(%d)\n", i, i, i)
		ans, err := ca.do(ctx, http.MethodPost, "/config/v1/rules/ns", nil, map[string]string{"Content-Type": "application/yaml"}, []byte(body))
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, ans.Status, ans.text())
	}

	require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		la, err1 := localGroups(ctx, ca)
		lb, err2 := localGroups(ctx, cb)
		if err1 != nil || err2 != nil {
			return false, fmt.Sprintf("%v %v", err1, err2)
		}
		for g := range la {
			if lb[g] {
				return false, fmt.Sprintf("group %s evaluated by both rulers", g)
			}
		}
		return len(la) > 0 && len(lb) > 0 && len(la)+len(lb) == groups, fmt.Sprintf("a evaluates %d groups, b %d", len(la), len(lb))
	}))
	// Both rulers' results reach the ingester.
	r, err := ca.query(ctx, `count({__name__=~"rec_g.*"})`, time.Now())
	require.NoError(t, err)
	require.Len(t, r.Series, 1)

	require.NoError(t, b.Process().Kill())
	require.NoError(t, procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		la, err := localGroups(ctx, ca)
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
}
