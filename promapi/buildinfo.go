package promapi

import (
	"runtime"
	"strconv"
)

// BuildInfo describes the running binary.
type BuildInfo struct {
	Version, Revision, Branch, BuildUser, BuildDate string
	// AlertmanagerConfigAPI: this process runs the alertmanager module,
	// which serves the tenants' configuration API (/api/v1/alerts).
	AlertmanagerConfigAPI bool
	// RulerConfigAPI: this process runs the ruler, which serves the rule
	// configuration API (/config/v1/rules).
	RulerConfigAPI bool
}

// buildInfoData is Prometheus' buildinfo with Mimir's application and
// features: Grafana's Prometheus data source takes a features object as
// the sign of a Mimir-style backend and reads which extras exist from it.
type buildInfoData struct {
	Application string            `json:"application"`
	Version     string            `json:"version"`
	Revision    string            `json:"revision"`
	Branch      string            `json:"branch"`
	BuildUser   string            `json:"buildUser"`
	BuildDate   string            `json:"buildDate"`
	GoVersion   string            `json:"goVersion"`
	Features    map[string]string `json:"features"`
}

// Data is the data of /api/v1/status/buildinfo: b, "devel" when it has no
// version, the Go version and the features Strata has.
func (b BuildInfo) Data() any {
	if b.Version == "" {
		b.Version = "devel"
	}
	return &buildInfoData{
		Application: "Strata",
		Version:     b.Version, Revision: b.Revision, Branch: b.Branch, BuildUser: b.BuildUser, BuildDate: b.BuildDate,
		GoVersion: runtime.Version(),
		// Mimir's feature names, "true" or "false" as Grafana compares them.
		// ruler_config_api: this process runs the ruler, which serves
		// /config/v1/rules. Grafana enables rule editing on it only for
		// application "Grafana Mimir", which Strata is not; it gets there by
		// the /api/v1/status/flags probe instead (README, Rules and alerts).
		Features: map[string]string{
			"ruler_config_api": strconv.FormatBool(b.RulerConfigAPI),
			// alertmanager_config_api: this process serves /api/v1/alerts,
			// the Alertmanager configuration API.
			"alertmanager_config_api": strconv.FormatBool(b.AlertmanagerConfigAPI),
			"query_sharding":          "false",
			"federated_rules":         "false",
		},
	}
}
