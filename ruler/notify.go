package ruler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"golang.org/x/sync/errgroup"

	"github.com/strata-metrics/strata/tenant"
)

// dnsRefresh is how often the addresses of dns+ and dnssrv+ Alertmanager
// URLs are looked up again.
const dnsRefresh = 30 * time.Second

// resolver looks up the addresses of dns+ (A/AAAA) and dnssrv+ (SRV)
// Alertmanager URLs; *net.Resolver is one. Goroutine-safe.
type resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// discovery splits a URL scheme into how its host is looked up ("dns",
// "dnssrv", or "" for not at all) and the scheme spoken.
func discovery(scheme string) (lookup, rest string) {
	for _, l := range []string{"dnssrv", "dns"} {
		if r, ok := strings.CutPrefix(scheme, l+"+"); ok {
			return l, r
		}
	}
	return "", scheme
}

// notifierDeps are what a tenant's notifier is made with besides its
// URLs and the ruler's config.
type notifierDeps struct {
	external labels.Labels
	reg      prometheus.Registerer
	log      *slog.Logger
	resolver resolver
	// builtin takes the posts to builtinAlertmanagerURL; nil refuses them.
	builtin BuiltinAlertmanager
}

// unconfiguredName counts, in a tenant's notifier registry, the batches
// the built-in Alertmanager did not take for want of a configuration.
const unconfiguredName = "strata_ruler_tenant_notifications_unconfigured_total"

// notConfigured is an error of BuiltinAlertmanager.PostAlerts saying the
// tenant has no Alertmanager configuration (alertmanager.Sender's).
type notConfigured interface{ NotConfigured() bool }

// BuiltinAlertmanager is the cluster's own Alertmanager, which the ruler
// sends to when no Alertmanager URL is configured
// (alertmanager.Sender): in process, or over gRPC to the tenant's
// replicas, without an HTTP URL.
type BuiltinAlertmanager interface {
	// Available reports whether the cluster runs one now.
	Available() bool
	// PostAlerts posts tenantID's alerts, the body of a POST
	// /api/v2/alerts.
	// A tenant without a configuration gets an error with a
	// NotConfigured() bool method that says so.
	PostAlerts(ctx context.Context, tenantID string, body []byte) error
}

// builtinHost is the host of builtinAlertmanagerURL: under .invalid
// (RFC 6761), so that it can never name a real Alertmanager.
const builtinHost = "built-in-alertmanager.invalid"

// builtinAlertmanagerURL stands for the built-in Alertmanager in a
// tenant's notifier (and in its metrics' alertmanager label): the
// notifier's posts to it go to BuiltinAlertmanager, never to the network.
const builtinAlertmanagerURL = "http://" + builtinHost + "/alertmanager"

// postBuiltin answers the notifier's request to builtinAlertmanagerURL
// with what the built-in Alertmanager said. A tenant that has alerting
// rules but no Alertmanager configuration is not an error of every
// evaluation: its alerts are dropped and counted in unconfigured.
func postBuiltin(ctx context.Context, b BuiltinAlertmanager, tenantID string, req *http.Request, unconfigured prometheus.Counter) (*http.Response, error) {
	if b == nil {
		return nil, errors.New("no built-in alertmanager in this process")
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxBuiltinBody+1))
	if err != nil {
		return nil, fmt.Errorf("read alerts for the built-in alertmanager: %w", err)
	}
	if len(body) > maxBuiltinBody {
		return nil, fmt.Errorf("alerts for the built-in alertmanager: body over %d bytes", maxBuiltinBody)
	}
	res := &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Header: http.Header{}, Body: http.NoBody, Request: req}
	err = b.PostAlerts(ctx, tenantID, body)
	var nc notConfigured
	if errors.As(err, &nc) && nc.NotConfigured() {
		unconfigured.Inc()
		return res, nil
	}
	if err != nil {
		msg := err.Error()
		res.StatusCode, res.Status = http.StatusServiceUnavailable, "503 Service Unavailable"
		res.Body = io.NopCloser(strings.NewReader(msg))
		res.ContentLength = int64(len(msg))
	}
	return res, nil
}

// maxBuiltinBody bounds one batch for the built-in Alertmanager: its API's
// own bound on a request body.
const maxBuiltinBody = 10 << 20

// tenantNotifier sends one tenant's alerts to its Alertmanagers: upstream's
// notifier.Manager (a bounded queue per Alertmanager, batches, retries on
// the next send, the dropped-alerts count), with the tenant's
// X-Scope-OrgID on every request. Targets are fed to it here: the URLs as
// given, for dns+ URLs every address their name resolves to, for dnssrv+
// URLs every target and port of their name's SRV records.
type tenantNotifier struct {
	mgr      *notifier.Manager
	urls     []*url.URL
	tsets    chan map[string][]*targetgroup.Group
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	log      *slog.Logger
	resolver resolver
	// cut, once cancelled, fails every request to an Alertmanager at
	// once: a drain past -ruler.notification-drain-timeout.
	cut    context.Context
	cutNow context.CancelFunc
}

func newTenantNotifier(tenantID, amURLs string, cfg Config, d notifierDeps) (*tenantNotifier, error) {
	urls, err := parseAlertmanagerURLs(amURLs)
	if err != nil {
		return nil, fmt.Errorf("alertmanager URLs of tenant %s: %w", tenantID, err)
	}
	cut, cutNow := context.WithCancel(context.Background())
	unconfigured := prometheus.NewCounter(prometheus.CounterOpts{Name: unconfiguredName, Help: "Batches the built-in Alertmanager did not take: no configuration."})
	if d.reg != nil {
		if err := d.reg.Register(unconfigured); err != nil {
			cutNow()
			return nil, fmt.Errorf("register the notifier metrics of tenant %s: %w", tenantID, err)
		}
	}
	mgr := notifier.NewManager(&notifier.Options{
		QueueCapacity: cfg.NotificationQueueCapacity, DrainOnShutdown: true, Registerer: d.reg,
		Do: func(ctx context.Context, client *http.Client, req *http.Request) (*http.Response, error) {
			if req.URL.Host == builtinHost {
				return postBuiltin(ctx, d.builtin, tenantID, req, unconfigured)
			}
			req.Header.Set(tenant.Header, tenantID)
			// Cancelled by cut too. Upstream cancels ctx once it has read
			// the answer, which unhooks it from cut.
			ctx, cancel := context.WithCancel(ctx)
			unhook := context.AfterFunc(cut, cancel)
			context.AfterFunc(ctx, func() { unhook() })
			return client.Do(req.WithContext(ctx))
		},
	}, model.UTF8Validation, d.log.With("tenant", tenantID, "component", "notifier"))
	var amCfgs config.AlertmanagerConfigs
	for _, u := range urls {
		_, scheme := discovery(u.Scheme)
		hc := commoncfg.DefaultHTTPClientConfig
		if u.User != nil {
			pw, _ := u.User.Password()
			hc.BasicAuth = &commoncfg.BasicAuth{Username: u.User.Username(), Password: commoncfg.Secret(pw)}
		}
		amCfgs = append(amCfgs, &config.AlertmanagerConfig{
			HTTPClientConfig: hc, Scheme: scheme, PathPrefix: u.Path,
			Timeout: model.Duration(cfg.NotificationTimeout), APIVersion: config.AlertmanagerAPIVersionV2,
		})
	}
	conf := &config.Config{
		GlobalConfig:   config.GlobalConfig{ExternalLabels: d.external},
		AlertingConfig: config.AlertingConfig{AlertmanagerConfigs: amCfgs},
	}
	if err := mgr.ApplyConfig(conf); err != nil {
		cutNow()
		return nil, fmt.Errorf("configure notifier of tenant %s: %w", tenantID, err)
	}
	res := d.resolver
	if res == nil {
		res = net.DefaultResolver
	}
	return &tenantNotifier{
		mgr: mgr, urls: urls, tsets: make(chan map[string][]*targetgroup.Group), log: d.log,
		resolver: res, cut: cut, cutNow: cutNow,
	}, nil
}

// start runs the notifier and the loop that feeds it targets.
func (n *tenantNotifier) start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.mgr.Run(n.tsets)
	}()
	go func() {
		defer n.wg.Done()
		n.feed(ctx)
	}()
}

// feed sends the targets now and every dnsRefresh while a URL needs DNS.
func (n *tenantNotifier) feed(ctx context.Context) {
	needDNS := false
	for _, u := range n.urls {
		lookup, _ := discovery(u.Scheme)
		needDNS = needDNS || lookup != ""
	}
	t := time.NewTicker(dnsRefresh)
	defer t.Stop()
	for {
		select {
		case n.tsets <- n.targets(ctx):
		case <-ctx.Done():
			return
		}
		if !needDNS {
			<-ctx.Done()
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// targets returns the target groups of every URL (config-<i>, as
// config.AlertmanagerConfigs.ToMap names them).
func (n *tenantNotifier) targets(ctx context.Context) map[string][]*targetgroup.Group {
	out := make(map[string][]*targetgroup.Group, len(n.urls))
	var mu sync.Mutex
	var g errgroup.Group
	for i, u := range n.urls {
		g.Go(func() error {
			key := fmt.Sprintf("config-%d", i)
			addrs := n.lookup(ctx, u)
			tg := &targetgroup.Group{Source: key}
			for _, a := range addrs {
				tg.Targets = append(tg.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(a)})
			}
			mu.Lock()
			out[key] = []*targetgroup.Group{tg}
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// lookup returns the addresses (host:port) alerts to u go to.
func (n *tenantNotifier) lookup(ctx context.Context, u *url.URL) []string {
	how, _ := discovery(u.Scheme)
	if how == "" {
		return []string{u.Host}
	}
	host, port := u.Hostname(), u.Port()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var addrs []string
	switch how {
	case "dns":
		ips, err := n.resolver.LookupHost(ctx, host)
		if err != nil {
			n.log.Warn("resolve alertmanager", "host", host, "err", err)
		}
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip, port))
		}
	case "dnssrv":
		_, srvs, err := n.resolver.LookupSRV(ctx, "", "", host)
		if err != nil {
			n.log.Warn("resolve alertmanager SRV records", "name", host, "err", err)
		}
		for _, srv := range srvs {
			addrs = append(addrs, net.JoinHostPort(strings.TrimSuffix(srv.Target, "."), strconv.Itoa(int(srv.Port))))
		}
	}
	return addrs
}

// stop sends what is queued, then stops; when that takes longer than
// timeout it fails the sends left at once (their alerts are dropped) and
// returns false.
func (n *tenantNotifier) stop(timeout time.Duration) (drained bool) {
	defer n.cutNow()
	n.cancel()
	n.mgr.Stop()
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	}
	n.cutNow()
	<-done
	return false
}
