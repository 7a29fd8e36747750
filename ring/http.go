package ring

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// StatusHandler serves GET /ring: JSON for "Accept: application/json",
// an HTML table for people otherwise.
func (r *Ring) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		now := r.now()
		own := r.Ownership()
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
			RF   int
			Rows []row
		}{r.cfg.ReplicationFactor, rows})
	})
}

var statusPage = template.Must(template.New("ring").Funcs(template.FuncMap{
	"pct": func(f float64) string {
		return strings.TrimRight(strings.TrimRight(template.HTMLEscapeString(formatPct(f)), "0"), ".") + "%"
	},
}).Parse(`<!doctype html>
<html><head><title>Strata ring</title>
<style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:left}tr.bad{color:#b00}</style></head>
<body><h1>Ingester ring</h1><p>Replication factor {{.RF}}.</p>
<table><tr><th>Instance</th><th>Zone</th><th>State</th><th>Address</th><th>Tokens</th><th>Ownership</th><th>Heartbeat age</th><th>Healthy</th></tr>
{{range .Rows}}<tr{{if not .Healthy}} class="bad"{{end}}><td>{{.ID}}</td><td>{{.Zone}}</td><td>{{.State}}</td><td>{{.Addr}}</td><td>{{.Tokens}}</td><td>{{pct .Ownership}}</td><td>{{.HeartbeatAge}}</td><td>{{.Healthy}}</td></tr>
{{else}}<tr><td colspan="8">No instances.</td></tr>{{end}}
</table></body></html>
`))

func formatPct(f float64) string {
	b, _ := json.Marshal(float64(int(f*10000+0.5)) / 100)
	return string(b) + ".0"
}
