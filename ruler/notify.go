package ruler

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
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

// dnsRefresh is how often the addresses of dns+ Alertmanager URLs are
// looked up again.
const dnsRefresh = 30 * time.Second

// tenantNotifier sends one tenant's alerts to its Alertmanagers: upstream's
// notifier.Manager (a bounded queue per Alertmanager, batches, retries on
// the next send, the dropped-alerts count), with the tenant's
// X-Scope-OrgID on every request. Targets are fed to it here: the URLs as
// given, or for dns+ URLs every address their name resolves to.
type tenantNotifier struct {
	mgr    *notifier.Manager
	urls   []*url.URL
	tsets  chan map[string][]*targetgroup.Group
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *slog.Logger
}

func newTenantNotifier(tenantID, amURLs string, cfg Config, external labels.Labels, reg prometheus.Registerer, log *slog.Logger) (*tenantNotifier, error) {
	urls, err := parseAlertmanagerURLs(amURLs)
	if err != nil {
		return nil, fmt.Errorf("alertmanager URLs of tenant %s: %w", tenantID, err)
	}
	mgr := notifier.NewManager(&notifier.Options{
		QueueCapacity: cfg.NotificationQueueCapacity, DrainOnShutdown: true, Registerer: reg,
		Do: func(ctx context.Context, client *http.Client, req *http.Request) (*http.Response, error) {
			req.Header.Set(tenant.Header, tenantID)
			return client.Do(req.WithContext(ctx))
		},
	}, model.UTF8Validation, log.With("tenant", tenantID, "component", "notifier"))
	var amCfgs config.AlertmanagerConfigs
	for _, u := range urls {
		scheme := u.Scheme
		if len(scheme) > 4 && scheme[:4] == "dns+" {
			scheme = scheme[4:]
		}
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
		GlobalConfig:   config.GlobalConfig{ExternalLabels: external},
		AlertingConfig: config.AlertingConfig{AlertmanagerConfigs: amCfgs},
	}
	if err := mgr.ApplyConfig(conf); err != nil {
		return nil, fmt.Errorf("configure notifier of tenant %s: %w", tenantID, err)
	}
	return &tenantNotifier{mgr: mgr, urls: urls, tsets: make(chan map[string][]*targetgroup.Group), log: log}, nil
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
		needDNS = needDNS || len(u.Scheme) > 4 && u.Scheme[:4] == "dns+"
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
			var addrs []string
			if len(u.Scheme) > 4 && u.Scheme[:4] == "dns+" {
				host, port := u.Hostname(), u.Port()
				lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				ips, err := net.DefaultResolver.LookupHost(lctx, host)
				cancel()
				if err != nil {
					n.log.Warn("resolve alertmanager", "host", host, "err", err)
				}
				for _, ip := range ips {
					addrs = append(addrs, net.JoinHostPort(ip, port))
				}
			} else {
				addrs = []string{u.Host}
			}
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

// stop sends what is queued, then stops.
func (n *tenantNotifier) stop() {
	n.cancel()
	n.mgr.Stop()
	n.wg.Wait()
}
