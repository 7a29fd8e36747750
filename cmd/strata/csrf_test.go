package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStackRefusesOtherSitesWrites: a page of another site that makes a
// browser post a form here (text/plain, YAML in the field name) changes
// nothing: not the tenant's Alertmanager configuration, not its rules.
// The browser marks such a request with Sec-Fetch-Site or an Origin of
// another host; clients that are not browsers send neither.
func TestStackRefusesOtherSitesWrites(t *testing.T) {
	s := startStack(t, t.TempDir())
	send := func(method, path, ctype, body string, hdr map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", ctype)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	good := "alertmanager_config: |\n  route: {receiver: ops}\n  receivers: [{name: ops, webhook_configs: [{url: 'https://hooks.example.com/ops'}]}]\n"
	code, body := send(http.MethodPost, "/api/v1/alerts", "application/yaml", good, nil)
	require.Equal(t, http.StatusCreated, code, body)
	group := "name: g\nrules:\n- record: r\n  expr: vector(1)\n"
	code, body = send(http.MethodPost, "/config/v1/rules/ns", "application/yaml", group, nil)
	require.Equal(t, http.StatusAccepted, code, body)

	evilAM := "alertmanager_config: |\n  route: {receiver: x}\n  receivers: [{name: x, webhook_configs: [{url: 'https://evil.example/'}]}]\n#"
	evilGroup := "name: g\nrules:\n- record: r\n  expr: vector(666)\n#"
	base, err := url.Parse(s.base)
	require.NoError(t, err)
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "https://evil.example"},
	} {
		code, body = send(http.MethodPost, "/api/v1/alerts", "text/plain", evilAM+"=", hdr)
		require.Equal(t, http.StatusForbidden, code, "%v: %s", hdr, body)
		require.Contains(t, body, "/api/v1/alerts refuses a POST")
		code, body = send(http.MethodPost, "/config/v1/rules/ns", "text/plain", evilGroup+"=", hdr)
		require.Equal(t, http.StatusForbidden, code, "%v: %s", hdr, body)
		code, body = send(http.MethodDelete, "/api/v1/alerts", "text/plain", "", hdr)
		require.Equal(t, http.StatusForbidden, code, "%v: %s", hdr, body)
	}
	// The page of this origin (the Alertmanager's UI) may.
	code, body = send(http.MethodPost, "/alertmanager/api/v2/silences", "application/json",
		`{"matchers":[{"name":"alertname","value":"X","isRegex":false}],"startsAt":"2000-01-01T00:00:00Z","endsAt":"2999-01-01T00:00:00Z","createdBy":"ui","comment":"c"}`,
		map[string]string{"Origin": "http://" + base.Host, "Sec-Fetch-Site": "same-origin"})
	require.Equal(t, http.StatusOK, code, body)

	code, body = send(http.MethodGet, "/api/v1/alerts", "", "", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "hooks.example.com/ops", "the configuration is the tenant's own")
	require.NotContains(t, body, "evil.example")
	code, body = send(http.MethodGet, "/config/v1/rules/ns", "", "", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "vector(1)")
	require.NotContains(t, body, "666")
}
