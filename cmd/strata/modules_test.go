package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestModuleOrder: every target starts its modules after the ones they
// depend on; the names and the targets are those of -target.
func TestModuleOrder(t *testing.T) {
	for target, want := range map[string][]string{
		targetAll:          {"ingester", "distributor", "bucket index loader", "store-gateway", "querier", "query-frontend", "compactor", "ruler", "alertmanager"},
		targetFrontend:     {"query-frontend"},
		targetIngester:     {"ingester"},
		targetDistributor:  {"distributor"},
		targetQuerier:      {"bucket index loader", "querier"},
		targetStoreGateway: {"bucket index loader", "store-gateway"},
		targetCompactor:    {"compactor"},
		targetRuler:        {"bucket index loader", "ruler"},
		targetAlertmanager: {"alertmanager"},
	} {
		order, err := orderModules(modules(), target)
		require.NoError(t, err, target)
		require.Equal(t, want, names(order), target)
	}
}

func TestModuleOrderErrors(t *testing.T) {
	none := func(*wiring) (*module, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		defs []moduleDef
		want string
	}{
		{"unknown dependency", []moduleDef{{name: "a", deps: []string{"b"}, new: none}}, `"a" depends on "b", which is not a module`},
		{"twice", []moduleDef{{name: "a", new: none}, {name: "a", new: none}}, `"a" is in the list twice`},
		{"cycle", []moduleDef{{name: "a", deps: []string{"b"}, new: none}, {name: "b", deps: []string{"a"}, new: none}}, "cycle: [a b]"},
	} {
		_, err := orderModules(tc.defs, targetAll)
		require.ErrorContains(t, err, tc.want, tc.name)
	}
	// A dependency the target does not run is skipped, a later one in the
	// list goes first.
	order, err := orderModules([]moduleDef{
		{name: "a", targets: []string{"x"}, deps: []string{"b", "c"}, new: none},
		{name: "b", targets: []string{"y"}, new: none},
		{name: "c", targets: []string{"x"}, new: none},
	}, "x")
	require.NoError(t, err)
	require.Equal(t, []string{"c", "a"}, names(order))
}
