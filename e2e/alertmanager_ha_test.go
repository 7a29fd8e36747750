package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-metrics/strata/internal/procs"
)

// haPeerTimeout is -alertmanager.peer-timeout of the test's replicas.
const haPeerTimeout = 3 * time.Second

// TestAlertmanagerHA: three processes run the alertmanager module (the
// alertmanager ring, replication factor 3: every replica owns the
// tenant). A client posts firing alerts continuously, each alert its own
// group, to one replica after another; one replica, the one that
// notifies first, is killed with SIGKILL while alerts fire, and restarted.
//
// Checked: every alert group a post acknowledged is notified; none more
// often than upstream's HA allows. That bound: upstream's clustering is
// at-least-once. A replica notifies a group only when no notification
// log entry for it reached it within its wait (its position among the
// owners times the peer timeout), and it logs what it sent, so each
// replica notifies a group at most once per repeat interval (1h here):
// at most 3 notifications of a group, which happen only when the replica
// that notified dies before its log entry reaches the others. With every
// replica up, entries arrive within milliseconds against a 3s wait: a
// group notified before the kill (the probe) is notified exactly once.
// A silence created before the kill mutes its alerts throughout, and
// every replica lists it once the killed one is back.
func TestAlertmanagerHA(t *testing.T) {
	bin := strataBin(t)
	root := t.TempDir()

	var mu sync.Mutex
	notified := map[string]int{} // alertname -> notifications that carried it
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if json.NewDecoder(r.Body).Decode(&msg) == nil {
			mu.Lock()
			for _, a := range msg.Alerts {
				notified[a.Labels["alertname"]]++
			}
			mu.Unlock()
		}
	}))
	defer hook.Close()
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return notified[name]
	}

	common := []string{
		"-target=alertmanager", "-auth.multitenancy-enabled",
		"-alertmanager.receivers-firewall-allow-private", // the webhook is on loopback
		"-alertmanager.poll-interval=1s", "-alertmanager.peer-timeout=" + haPeerTimeout.String(),
		"-ring.heartbeat-timeout=6s", "-ingester.heartbeat-period=1s", "-memberlist.rejoin-interval=1s",
		"-blocks-storage.filesystem.dir=" + filepath.Join(root, "bucket"),
	}
	start := func(name string, join ...string) *procs.Strata {
		args := append([]string{"-instance.id=" + name}, common...)
		for _, j := range join {
			args = append(args, "-memberlist.join="+j)
		}
		return procs.StartStrataT(t, procs.StrataConfig{Bin: bin, DataDir: filepath.Join(root, name), Args: args})
	}
	a := start("am-a")
	b := start("am-b", a.MemberlistAddr)
	c := start("am-c", a.MemberlistAddr, b.MemberlistAddr)
	reps := []*procs.Strata{a, b, c}
	names := map[*procs.Strata]string{a: "am-a", b: "am-b", c: "am-c"}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const tenantID = "team-ha"
	call := func(s *procs.Strata, method, path, body string) (int, string, error) {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		req, err := http.NewRequestWithContext(rctx, method, s.URL+path, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("X-Scope-OrgID", tenantID)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	mustCall := func(s *procs.Strata, method, path, body string, want int) string {
		t.Helper()
		code, resp, err := call(s, method, path, body)
		if err != nil || code != want {
			t.Fatalf("%s %s on %s: %d %s %v; want %d", method, path, names[s], code, resp, err, want)
		}
		return resp
	}

	// Every replica sees the three in the alertmanager ring.
	for _, s := range reps {
		if err := procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
			st, err := procs.FetchRing(ctx, s.URL+"/alertmanager")
			if err != nil {
				return false, err.Error()
			}
			healthy := 0
			for _, in := range st.Instances {
				if in.State == "ACTIVE" && in.Healthy {
					healthy++
				}
			}
			return healthy == 3, fmt.Sprintf("%s sees %d healthy replicas: %+v", names[s], healthy, st.Instances)
		}); err != nil {
			t.Fatal(err)
		}
	}

	config := fmt.Sprintf("alertmanager_config: |\n  route:\n    receiver: hook\n    group_by: ['alertname']\n    group_wait: 1s\n    group_interval: 1s\n    repeat_interval: 1h\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: %s/\n          send_resolved: false\n", hook.URL)
	mustCall(a, http.MethodPost, "/api/v1/alerts", config, http.StatusCreated)
	for _, s := range reps {
		mustCall(s, http.MethodGet, "/alertmanager/api/v2/status", "", http.StatusOK)
	}
	silence := `{"matchers":[{"name":"alertname","value":"Muted","isRegex":false,"isEqual":true}],"startsAt":"2000-01-01T00:00:00Z","endsAt":"2999-01-01T00:00:00Z","createdBy":"e2e","comment":"ha-silence"}`
	var created struct {
		SilenceID string `json:"silenceID"`
	}
	if err := json.Unmarshal([]byte(mustCall(b, http.MethodPost, "/alertmanager/api/v2/silences", silence, http.StatusOK)), &created); err != nil || created.SilenceID == "" {
		t.Fatalf("silence id: %v %+v", err, created)
	}
	silenceListed := func(s *procs.Strata) (bool, string) {
		code, body, err := call(s, http.MethodGet, "/alertmanager/api/v2/silences", "")
		if err != nil || code != http.StatusOK {
			return false, fmt.Sprintf("%s: %d %v", names[s], code, err)
		}
		return strings.Contains(body, created.SilenceID) && strings.Contains(body, `"state":"active"`), fmt.Sprintf("%s lists %s", names[s], body)
	}
	for _, s := range reps {
		if err := procs.Poll(ctx, 100*time.Millisecond, func() (bool, string) { return silenceListed(s) }); err != nil {
			t.Fatal(err)
		}
	}

	// The probe tells which replica notifies first: the one to kill.
	mustCall(a, http.MethodPost, "/alertmanager/api/v2/alerts", `[{"labels":{"alertname":"Probe"}}]`, http.StatusOK)
	if err := procs.Poll(ctx, 100*time.Millisecond, func() (bool, string) { return count("Probe") > 0, "probe not notified" }); err != nil {
		t.Fatal(err)
	}
	sentRe := regexp.MustCompile(`strata_alertmanager_notifications_total\{integration="webhook"[^}]*tenant="` + tenantID + `"\} (\d+)`)
	var victim *procs.Strata
	for _, s := range reps {
		_, metrics, err := call(s, http.MethodGet, "/metrics", "")
		if err != nil {
			t.Fatal(err)
		}
		if m := sentRe.FindStringSubmatch(metrics); m != nil && m[1] != "0" && victim == nil {
			victim = s
		}
	}
	if victim == nil {
		t.Fatal("no replica counts the probe's notification")
	}
	t.Logf("the first owner, to kill: %s", names[victim])

	// Post continuously: every round all the alerts so far again (as a
	// ruler resends firing alerts) plus a new one, and a muted one, to the
	// next replica, or the one after when it fails.
	var (
		amu   sync.Mutex
		acked = map[string]bool{}
		round int
		stop  = make(chan struct{})
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var batch []map[string]any
			for i := 0; i <= round; i++ {
				batch = append(batch, map[string]any{"labels": map[string]string{"alertname": "A" + strconv.Itoa(i)}})
			}
			batch = append(batch, map[string]any{"labels": map[string]string{"alertname": "Muted", "round": strconv.Itoa(round)}})
			body, _ := json.Marshal(batch)
			for k := range reps {
				s := reps[(round+k)%len(reps)]
				if code, _, err := call(s, http.MethodPost, "/alertmanager/api/v2/alerts", string(body)); err == nil && code == http.StatusOK {
					amu.Lock()
					for i := 0; i <= round; i++ {
						acked["A"+strconv.Itoa(i)] = true
					}
					amu.Unlock()
					break
				}
			}
			round++
		}
	}()
	time.Sleep(3 * time.Second)
	amu.Lock()
	t.Logf("killing %s at round %d", names[victim], round)
	amu.Unlock()
	if err := victim.Process().Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second) // past the ring's heartbeat timeout: the others stop counting on it
	if err := victim.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	amu.Lock()
	t.Logf("%s back at round %d", names[victim], round)
	amu.Unlock()
	time.Sleep(3 * time.Second)
	close(stop)
	<-done

	// The silence survived: every replica lists it, the restarted one too.
	for _, s := range reps {
		if err := procs.Poll(ctx, 100*time.Millisecond, func() (bool, string) { return silenceListed(s) }); err != nil {
			t.Fatal(err)
		}
	}
	amu.Lock()
	want := len(acked)
	amu.Unlock()
	if want < 10 {
		t.Fatalf("only %d alerts acknowledged", want)
	}
	// Every acknowledged alert group is notified.
	if err := procs.Poll(ctx, 250*time.Millisecond, func() (bool, string) {
		var missing []string
		amu.Lock()
		defer amu.Unlock()
		for name := range acked {
			if count(name) == 0 {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0, fmt.Sprintf("not notified: %v", missing)
	}); err != nil {
		t.Fatal(err)
	}
	// Let the last replica's wait (2 peer timeouts) and a group interval
	// pass, so that a duplicate would have arrived.
	time.Sleep(2*haPeerTimeout + 3*time.Second)
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for name, n := range notified {
		if n > 3 {
			t.Errorf("%s notified %d times; upstream's HA allows at most one per replica (3)", name, n)
		}
		if n > 1 {
			dups++
			t.Logf("%s notified %d times", name, n)
		}
	}
	if notified["Probe"] != 1 {
		t.Errorf("the probe, notified while every replica was up, was notified %d times; want 1 (replicated notification log)", notified["Probe"])
	}
	if notified["Muted"] != 0 {
		t.Errorf("the silenced alert was notified %d times", notified["Muted"])
	}
	t.Logf("%d alert groups acknowledged, %d notified more than once (at the kill)", want, dups)
}
