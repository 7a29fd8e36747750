package gossip

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strings"

	"github.com/hashicorp/memberlist"
)

// Member is one gossip member as this one sees it.
type Member struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	State   string `json:"state"` // "alive": dead and left members are not listed
	Meta    string `json:"meta,omitempty"`
	Self    bool   `json:"self"`
}

// Members returns the members alive as of the last membership change
// (a suspect member shows as alive until it is declared dead), sorted by
// name; nil before Run.
func (kv *KV) Members() []Member {
	var out []Member
	for _, n := range kv.members.list() {
		out = append(out, Member{
			Name: n.Name, Address: n.Address(), State: nodeState(n.State), Meta: string(n.Meta), Self: n.Name == kv.name,
		})
	}
	return out
}

func nodeState(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

type keyStatus struct {
	Key   string `json:"key"`
	Codec string `json:"codec"`
	Bytes int    `json:"bytes"`
}

func (kv *KV) keyStatuses() []keyStatus {
	snaps := kv.snapshot()
	out := make([]keyStatus, 0, len(snaps))
	for _, s := range snaps {
		st := keyStatus{Key: s.key, Codec: s.codec.ID()}
		if s.value != nil {
			if raw, err := s.codec.Encode(s.value); err == nil {
				st.Bytes = len(raw)
			}
		}
		out = append(out, st)
	}
	return out
}

// MembersHandler serves GET /memberlist: the gossip members and keys, as
// JSON for "Accept: application/json" and an HTML page otherwise.
func (kv *KV) MembersHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		page := struct {
			Node         string      `json:"node"`
			Address      string      `json:"address"`
			ClusterLabel string      `json:"cluster_label"`
			Members      []Member    `json:"members"`
			Keys         []keyStatus `json:"keys"`
		}{kv.name, kv.Addr(), kv.cfg.ClusterLabel, kv.Members(), kv.keyStatuses()}
		if page.Members == nil {
			page.Members = []Member{}
		}
		if strings.Contains(req.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(page)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = membersPage.Execute(w, page)
	})
}

var membersPage = template.Must(template.New("memberlist").Parse(`<!doctype html>
<html><head><title>Strata gossip members</title>
<style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:left}tr.bad{color:#b00}</style></head>
<body><h1>Gossip members</h1>
<p>This member: {{.Node}} at {{.Address}}{{if .ClusterLabel}}, cluster label {{.ClusterLabel}}{{end}}.</p>
<table><tr><th>Name</th><th>Address</th><th>State</th><th>Meta</th></tr>
{{range .Members}}<tr{{if ne .State "alive"}} class="bad"{{end}}><td>{{.Name}}{{if .Self}} (this one){{end}}</td><td>{{.Address}}</td><td>{{.State}}</td><td>{{.Meta}}</td></tr>
{{else}}<tr><td colspan="4">Not started.</td></tr>{{end}}
</table>
<h2>Keys</h2>
<table><tr><th>Key</th><th>Codec</th><th>Bytes</th></tr>
{{range .Keys}}<tr><td>{{.Key}}</td><td>{{.Codec}}</td><td>{{.Bytes}}</td></tr>
{{end}}</table></body></html>
`))
