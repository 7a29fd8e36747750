package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ringView is what GET /ring answers with Accept: application/json.
type ringView struct {
	ReplicationFactor int `json:"replication_factor"`
	Instances         []struct {
		ID    string `json:"id"`
		Zone  string `json:"zone"`
		State string `json:"state"`
	} `json:"instances"`
}

func getRing(t *testing.T, base string) ringView { return getRingAt(t, base, "/ring") }

func getRingAt(t *testing.T, base, path string) ringView {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var v ringView
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	return v
}

// members returns the gossip members base's /memberlist lists.
func members(t *testing.T, base string) []string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/memberlist", nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var v struct {
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
	var out []string
	for _, m := range v.Members {
		out = append(out, m.Name)
	}
	return out
}

// activeIngesters returns the ids of the ACTIVE ingesters base's ring holds.
func activeIngesters(t *testing.T, base string) []string {
	var out []string
	for _, in := range getRing(t, base).Instances {
		if in.State == "ACTIVE" {
			out = append(out, in.ID)
		}
	}
	return out
}

// TestClusterInProcess runs a cluster of separate targets in one test
// process over loopback gRPC and memberlist: 3 ingesters in 3 zones at
// RF=3, a distributor and a querier, each a run() of its own. What is
// pushed through the distributor reads back through the querier exactly
// once; an ingester that shuts down leaves the ring (or, told to keep its
// tokens, stays LEAVING) as its flags say. What a cluster does while
// ingesters come and go is internal/clustertest's.
func TestClusterInProcess(t *testing.T) {
	common := []string{"-ring.replication-factor=3", "-ring.zone-awareness-enabled=true", "-memberlist.gossip-interval=50ms",
		"-blocks-storage.filesystem.dir=" + t.TempDir()} // one bucket, as object storage would be
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	ingester := func(i int, extra ...string) *stack {
		return startStack(t, dirs[i-1], append(append([]string{"-target=ingester", fmt.Sprintf("-instance.id=ingester-%d", i),
			fmt.Sprintf("-instance.zone=zone-%c", 'a'+i-1)}, common...), extra...)...)
	}
	ings := []*stack{ingester(1)}
	join := "-memberlist.join=" + ings[0].gossip
	ings = append(ings, ingester(2, join, "-ingester.unregister-on-shutdown=false"), ingester(3, join))
	dist := startStack(t, t.TempDir(), append([]string{"-target=distributor", "-instance.id=distributor-1", join}, common...)...)
	q := startStack(t, t.TempDir(), append([]string{"-target=querier", "-instance.id=querier-1", join}, common...)...)

	for _, s := range []*stack{dist, q} {
		require.Eventually(t, func() bool { return len(activeIngesters(t, s.base)) == 3 }, 30*time.Second, 20*time.Millisecond,
			"%s sees 3 ACTIVE ingesters", s.base)
	}
	require.Equal(t, 3, getRing(t, q.base).ReplicationFactor)
	require.Eventually(t, func() bool { return len(members(t, q.base)) == 5 }, 30*time.Second, 20*time.Millisecond, "5 gossip members")
	require.Eventually(t, func() bool {
		d := getRingAt(t, q.base, "/distributor/ring").Instances
		return len(d) == 1 && d[0].ID == "distributor-1" && d[0].State == "ACTIVE"
	}, 30*time.Second, 20*time.Millisecond, "the distributor announces itself")

	d := makeTestData(time.Now())
	d.series = d.series[:4] // http_requests_total of one instance
	push(t, dist.base, d)

	checkOnce := func() {
		t.Helper()
		got := queryStrata(t, q.base, "/api/v1/query", url.Values{"query": {"count_over_time(http_requests_total[2h])"}, "time": {fmt.Sprint(d.end.Unix())}})
		series := normalise(t, got.Result)
		require.Len(t, series, len(d.series))
		for _, sr := range series {
			require.Equal(t, fmt.Sprint(len(d.series[0].Samples)), sr.Values[0][1], "series %v: every sample once", sr.Metric)
		}
	}
	checkOnce()

	// ingester-2 keeps its tokens (-ingester.unregister-on-shutdown=false):
	// it stays in the ring as LEAVING and reads go on without it. (Its
	// restart with the same tokens and its WAL replayed is
	// internal/clustertest's TestIngesterLifecycle.)
	ings[1].stop()
	require.Eventually(t, func() bool {
		for _, in := range getRing(t, q.base).Instances {
			if in.ID == "ingester-2" {
				return in.State == "LEAVING"
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "ingester-2 stays in the ring as LEAVING")
	checkOnce()

	// ingester-3 shuts down (SIGTERM): LEAVING, drained, LEFT. A LEFT
	// ingester is not in the ring at all.
	ings[2].stop()
	require.Eventually(t, func() bool {
		for _, in := range getRing(t, q.base).Instances {
			if in.ID == "ingester-3" {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "the querier sees ingester-3 gone")
}
