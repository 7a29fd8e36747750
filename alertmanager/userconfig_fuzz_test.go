package alertmanager

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeUserConfig: an upload may be refused, never panic; what is
// accepted encodes and checks again the same.
func FuzzDecodeUserConfig(f *testing.F) {
	for _, seed := range []string{
		webhookConfig("https://hooks.example.com/a"),
		webhookConfig("http://127.0.0.1/x"),
		webhookConfig("https://hooks.example.com/a") + "template_files:\n  a.tmpl: '{{ define \"x\" }}y{{ end }}'\n",
		"alertmanager_config: |\n  route:\n    receiver: r\n  receivers:\n    - name: r\n      webhook_configs:\n        - url_file: /etc/passwd\n",
		"alertmanager_config: |\n  a: &x [*x]\n",
		"template_files: {'': ''}\nalertmanager_config: x",
		"{{{",
	} {
		f.Add([]byte(seed))
	}
	lim := defaultLimits(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		uc, err := decodeUserConfig(body)
		if err != nil {
			return
		}
		p := checkPolicy{limits: lim}
		if _, err := checkUserConfig(context.Background(), uc, p); err != nil {
			return
		}
		raw, err := encodeUserConfig(uc)
		require.NoError(t, err)
		again, err := decodeUserConfig(raw)
		require.NoError(t, err)
		_, err = checkUserConfig(context.Background(), again, p)
		require.NoError(t, err, "a stored configuration no longer loads")
	})
}

func TestFirewallRefusesAtDialTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	allow := false
	dial := firewallDialer(func() bool { return allow })
	c := &http.Client{Transport: &http.Transport{DialContext: dial}}
	defer c.CloseIdleConnections()
	_, err := c.Get(srv.URL)
	var fe *FirewallError
	require.True(t, errors.As(err, &fe), "%v", err)
	allow = true
	resp, err := c.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()

	for _, tc := range []struct {
		ip        string
		forbidden bool
	}{
		{"127.0.0.1", true}, {"::1", true}, {"10.0.0.1", true}, {"192.168.1.1", true}, {"172.16.0.1", true},
		{"169.254.169.254", true}, {"fe80::1", true}, {"fd00::1", true}, {"0.0.0.0", true},
		{"100.100.100.200", true}, {"0.1.2.3", true}, {"255.255.255.255", true}, {"224.0.0.1", true}, {"::ffff:127.0.0.1", true},
		{"64:ff9b::a9fe:a9fe", true},
		{"8.8.8.8", false}, {"2001:4860:4860::8888", false}, {"100.128.0.1", false},
	} {
		require.Equal(t, tc.forbidden, forbiddenIP(net.ParseIP(tc.ip)), tc.ip)
	}
}
