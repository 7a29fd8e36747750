package procs

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPlanCluster(t *testing.T) {
	ports := func() func() (string, error) {
		n := 0
		return func() (string, error) { n++; return fmt.Sprintf("127.0.0.1:%d", 10000+n), nil }
	}
	for _, tc := range []struct {
		name      string
		cfg       ClusterConfig
		wantNames []string
		wantErr   string
	}{
		{"make cluster", ClusterConfig{Bin: "strata", Dir: "/d"},
			[]string{"distributor-1", "distributor-2", "ingester-zone-a-1", "ingester-zone-b-1", "ingester-zone-c-1", "querier-1"}, ""},
		{"two per zone", ClusterConfig{Bin: "strata", Dir: "/d", Ingesters: 4, Zones: 2, Distributors: 1},
			[]string{"distributor-1", "ingester-zone-a-1", "ingester-zone-b-1", "ingester-zone-a-2", "ingester-zone-b-2", "querier-1"}, ""},
		{"more zones than ingesters", ClusterConfig{Bin: "strata", Dir: "/d", Ingesters: 2, Zones: 3}, nil, "3 zones for 2 ingesters"},
		{"no binary", ClusterConfig{Dir: "/d"}, nil, "Bin and Dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes, err := PlanCluster(tc.cfg, ports())
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			var names []string
			addrs := map[string]bool{}
			for _, n := range nodes {
				names = append(names, n.Name)
				for _, a := range []string{n.HTTPAddr, n.GRPCAddr, n.GossipAddr} {
					require.False(t, addrs[a], "address %s twice", a)
					addrs[a] = true
				}
				require.Contains(t, n.Args, "-target="+string(n.Role))
				require.Contains(t, n.Args, "-instance.id="+n.Name)
				require.Contains(t, n.Args, "-memberlist.bind-address="+n.GossipAddr)
				require.Equal(t, n.Role == RoleIngester, slices.Contains(n.Args, "-instance.zone="+n.Zone))
				// Joins every other node, not itself.
				var join string
				for _, a := range n.Args {
					if v, ok := strings.CutPrefix(a, "-memberlist.join="); ok {
						join = v
					}
				}
				seeds := strings.Split(join, ",")
				require.Len(t, seeds, len(nodes)-1)
				require.NotContains(t, seeds, n.GossipAddr)
			}
			require.Equal(t, tc.wantNames, names)
		})
	}
}
