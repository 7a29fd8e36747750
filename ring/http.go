package ring

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// StatusHandler serves GET /ring: JSON for "Accept: application/json",
// an HTML table for people otherwise; POST forgets an unhealthy instance.
func (r *Ring) StatusHandler() http.Handler { return r.StatusHandlerTitled("Ingester ring") }

// StatusHandlerTitled is StatusHandler with another page title, for the
// other rings that place keys on their members (store-gateways, compactors).
func (r *Ring) StatusHandlerTitled(title string) http.Handler { return r.statusHandler(title, true) }

// MembershipHandler is StatusHandlerTitled for a ring whose members own no
// keys and only count each other (distributors share global limits among
// the healthy ones): each member's zone, state, heartbeat age and health,
// without the replication factor, addresses, tokens or ownership, which
// mean nothing there.
func (r *Ring) MembershipHandler(title string) http.Handler { return r.statusHandler(title, false) }

func (r *Ring) statusHandler(title string, placement bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost {
			r.forget(w, req)
			return
		}
		now := r.now()
		var own map[string]float64
		if placement {
			own = r.Ownership()
		}
		type row struct {
			Instance
			Tokens       int     `json:"tokens"`
			Ownership    float64 `json:"ownership"`
			HeartbeatAge string  `json:"heartbeat_age"`
			Healthy      bool    `json:"healthy"`
		}
		var rows []row
		for _, in := range r.Instances() {
			rows = append(rows, row{
				Instance: in, Tokens: len(in.Tokens), Ownership: own[in.ID],
				HeartbeatAge: now.Sub(time.UnixMilli(in.Heartbeat)).Truncate(time.Millisecond).String(),
				Healthy:      in.Healthy(Read, r.cfg.HeartbeatTimeout, now),
			})
		}
		if strings.Contains(req.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			if !placement {
				type memberRow struct {
					ID           string `json:"id"`
					Zone         string `json:"zone"`
					State        State  `json:"state"`
					HeartbeatAge string `json:"heartbeat_age"`
					Healthy      bool   `json:"healthy"`
				}
				out := struct {
					Instances []memberRow `json:"instances"`
				}{Instances: []memberRow{}}
				for _, x := range rows {
					out.Instances = append(out.Instances, memberRow{x.ID, x.Zone, x.State, x.HeartbeatAge, x.Healthy})
				}
				_ = json.NewEncoder(w).Encode(out)
				return
			}
			type jsonRow struct {
				ID           string  `json:"id"`
				Addr         string  `json:"addr"`
				Zone         string  `json:"zone"`
				State        State   `json:"state"`
				Tokens       int     `json:"tokens"`
				Ownership    float64 `json:"ownership"`
				HeartbeatAge string  `json:"heartbeat_age"`
				Healthy      bool    `json:"healthy"`
			}
			out := struct {
				ReplicationFactor int       `json:"replication_factor"`
				Instances         []jsonRow `json:"instances"`
			}{ReplicationFactor: r.cfg.ReplicationFactor, Instances: []jsonRow{}}
			for _, x := range rows {
				out.Instances = append(out.Instances, jsonRow{x.ID, x.Addr, x.Zone, x.State, x.Tokens, x.Ownership, x.HeartbeatAge, x.Healthy})
			}
			_ = json.NewEncoder(w).Encode(out)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = statusPage.Execute(w, struct {
			Title     string
			Placement bool
			RF        int
			Rows      []row
		}{title, placement, r.cfg.ReplicationFactor, rows})
	})
}

var statusPage = template.Must(template.New("ring").Funcs(template.FuncMap{
	"pct": func(f float64) string {
		return strings.TrimRight(strings.TrimRight(template.HTMLEscapeString(formatPct(f)), "0"), ".") + "%"
	},
}).Parse(`<!doctype html>
<html><head><title>Strata {{.Title}}</title>
<style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:left}tr.bad{color:#b00}</style></head>
<body><h1>{{.Title}}</h1>{{if .Placement}}<p>Replication factor {{.RF}}.</p>{{end}}
{{if .Placement -}}
<table><tr><th>Instance</th><th>Zone</th><th>State</th><th>Address</th><th>Tokens</th><th>Ownership</th><th>Heartbeat age</th><th>Healthy</th><th></th></tr>
{{range .Rows}}<tr{{if not .Healthy}} class="bad"{{end}}><td>{{.ID}}</td><td>{{.Zone}}</td><td>{{.State}}</td><td>{{.Addr}}</td><td>{{.Tokens}}</td><td>{{pct .Ownership}}</td><td>{{.HeartbeatAge}}</td><td>{{.Healthy}}</td><td>{{if not .Healthy}}<form method="post"><button name="forget" value="{{.ID}}">Forget</button></form>{{end}}</td></tr>
{{else}}<tr><td colspan="9">No instances.</td></tr>{{end}}
{{- else -}}
<table><tr><th>Instance</th><th>Zone</th><th>State</th><th>Heartbeat age</th><th>Healthy</th><th></th></tr>
{{range .Rows}}<tr{{if not .Healthy}} class="bad"{{end}}><td>{{.ID}}</td><td>{{.Zone}}</td><td>{{.State}}</td><td>{{.HeartbeatAge}}</td><td>{{.Healthy}}</td><td>{{if not .Healthy}}<form method="post"><button name="forget" value="{{.ID}}">Forget</button></form>{{end}}</td></tr>
{{else}}<tr><td colspan="6">No instances.</td></tr>{{end}}
{{- end}}
</table></body></html>
`))

func formatPct(f float64) string {
	b, _ := json.Marshal(float64(int(f*10000+0.5)) / 100)
	return string(b) + ".0"
}

// forget serves POST /ring with forget=<id>: it removes an unhealthy
// instance from the ring at once (through a GossipStore, a tombstone that
// gossip does not undo). A healthy instance is not forgotten: its next
// heartbeat would bring it back anyway.
func (r *Ring) forget(w http.ResponseWriter, req *http.Request) {
	id := req.PostFormValue("forget")
	if id == "" {
		http.Error(w, "missing form field forget=<instance id>", http.StatusBadRequest)
		return
	}
	var status int
	err := r.store.Update(req.Context(), func(d *Desc) bool {
		in, ok := d.Instances[id]
		switch {
		case !ok || in.State == Left:
			status = http.StatusNotFound
			return false
		case in.Healthy(Read, r.cfg.HeartbeatTimeout, r.now()):
			status = http.StatusConflict
			return false
		}
		delete(d.Instances, id)
		status = http.StatusSeeOther
		return true
	})
	switch {
	case err != nil:
		http.Error(w, fmt.Sprintf("forget %s: %v", id, err), http.StatusServiceUnavailable)
	case status == http.StatusNotFound:
		http.Error(w, fmt.Sprintf("instance %q is not in the ring", id), status)
	case status == http.StatusConflict:
		http.Error(w, fmt.Sprintf("instance %q is healthy; only an unhealthy instance can be forgotten", id), status)
	default:
		http.Redirect(w, req, req.URL.Path, http.StatusSeeOther)
	}
}
