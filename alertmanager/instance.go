package alertmanager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/api"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/labelset"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/store"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"

	"github.com/strata-metrics/strata/proto/alertmanagerpb"
)

// routePrefix is where every tenant's upstream API is mounted: Mimir's.
const routePrefix = "/alertmanager"

// maintenanceInterval is how often silences and the notification log are
// garbage collected and written to disk, as upstream's default.
const maintenanceInterval = 15 * time.Minute

// instance is one tenant's Alertmanager: upstream's components, wired as
// upstream's app package wires them, with the tenant's other replicas in
// place of upstream's cluster (the silences and notification log
// broadcast their changes through deps.broadcast; the pipeline waits
// deps.wait before it notifies). The alerts,
// silences, notification log and API live as long as the instance; the
// routes, receivers, inhibitor and dispatcher are rebuilt by apply.
type instance struct {
	tenant string
	log    *slog.Logger
	reg    *prometheus.Registry

	alerts   *mem.Alerts
	silences *silence.Silences
	silencer *silence.Silencer
	nflog    *nflog.Log
	api      *api.API
	handler  http.Handler

	groupLimit        groupLimit
	rates             *rateLimits
	pipeline          *notify.PipelineBuilder
	dispatcherMetrics *dispatch.DispatcherMetrics
	externalURL       *url.URL
	httpOpts          []commoncfg.HTTPClientOption
	retention         time.Duration
	started           time.Time
	wait              func() time.Duration
	limiter           *alertLimiter
	settled           settleGate

	pullMu sync.Mutex
	pulled map[string]bool // the other owners whose whole state was read

	mu         sync.Mutex // serialises apply and stop
	dispatcher atomic.Pointer[dispatch.Dispatcher]
	inhibitor  atomic.Pointer[inhibit.Inhibitor]
	applied    string // the stored configuration running now
	stopped    bool

	stopc chan struct{}
	wg    sync.WaitGroup
}

type instanceDeps struct {
	tenant      string
	dir         string // the tenant's own directory, made here
	externalURL *url.URL
	retention   time.Duration
	// allowPrivate is the tenant's firewall setting, read at each dial.
	allowPrivate func() bool
	// maxAlerts is the tenant's alert limit, read at each new alert.
	maxAlerts func() int
	// maxSilences and maxSilenceBytes are the tenant's silence limits,
	// read at each new silence.
	maxSilences, maxSilenceBytes func() int
	// maxGroups is the tenant's aggregation group limit, read at each
	// new group.
	maxGroups func() int
	// received counts the tenant's alerts as they arrive.
	received func(n int)
	// broadcast sends a change of the silences or of the notification
	// log (upstream's broadcast payload) to the tenant's other replicas.
	broadcast func(kind alertmanagerpb.StateKind, b []byte)
	// wait is how long the notification pipeline waits before it sends:
	// the replica's position among the tenant's owners times the peer
	// timeout, as upstream's clustering.
	wait func() time.Duration
	// settle, when settleAfter is positive, runs settleAfter after the
	// instance is made; notifications wait until it returns (upstream's
	// gossip settle stage).
	settle      func(in *instance)
	settleAfter time.Duration
	log         *slog.Logger
	// rates are the tenant's notification rate limits.
	rates *rateLimits
}

// settleGate holds notifications until it is closed: the notify.Peer of
// upstream's pipeline, whose settle stage waits for it.
type settleGate chan struct{}

func (g settleGate) WaitReady(ctx context.Context) error {
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// alertLimiter refuses a new alert beyond the tenant's limit; updates of
// alerts held are always taken.
type alertLimiter struct {
	max   func() int
	count atomic.Int64
}

// ErrTooManyAlerts is an alert refused by alertmanager_max_alerts_count.
var ErrTooManyAlerts = errors.New("too many alerts")

func (l *alertLimiter) PreStore(_ *alert.Alert, existing bool) error {
	if existing {
		return nil
	}
	if n := l.max(); n > 0 && l.count.Load() >= int64(n) {
		return fmt.Errorf("%w: the tenant holds %d alerts, limit %d (-alertmanager.max-alerts-count, override alertmanager_max_alerts_count)", ErrTooManyAlerts, l.count.Load(), n)
	}
	return nil
}

func (l *alertLimiter) PostStore(_ *alert.Alert, existing bool) {
	if !existing {
		l.count.Add(1)
	}
}

func (l *alertLimiter) PostDelete(*alert.Alert) { l.count.Add(-1) }

func (l *alertLimiter) PostGC(model.Fingerprints) {}

// groupLimit is the dispatcher's limit on aggregation groups.
type groupLimit func() int

func (g groupLimit) MaxNumberOfAggregationGroups() int { return g() }

func newInstance(d instanceDeps) (*instance, error) {
	if err := os.MkdirAll(d.dir, 0o750); err != nil {
		return nil, fmt.Errorf("create alertmanager dir of tenant %q: %w", d.tenant, err)
	}
	reg := prometheus.NewRegistry()
	ff := featurecontrol.NoopFlags{}
	var rec eventrecorder.Recorder // zero: records nothing
	in := &instance{
		tenant: d.tenant, log: d.log, reg: reg,
		pipeline:          notify.NewPipelineBuilder(reg, ff, rec),
		dispatcherMetrics: dispatch.NewDispatcherMetrics(false, reg, ff),
		externalURL:       d.externalURL,
		httpOpts:          []commoncfg.HTTPClientOption{commoncfg.WithDialContextFunc(firewallDialer(d.allowPrivate))},
		retention:         d.retention,
		groupLimit:        groupLimit(d.maxGroups),
		rates:             d.rates,
		started:           time.Now(),
		wait:              d.wait,
		settled:           make(settleGate),
		stopc:             make(chan struct{}),
	}
	nflogFile := filepath.Join(d.dir, "nflog")
	var err error
	in.nflog, err = nflog.New(nflog.Options{SnapshotFile: nflogFile, Retention: d.retention, Logger: d.log.With("component", "nflog"), Metrics: reg})
	if err != nil {
		return nil, fmt.Errorf("create notification log of tenant %q: %w", d.tenant, err)
	}
	silFile := filepath.Join(d.dir, "silences")
	in.silences, err = silence.New(silence.Options{
		SnapshotFile: silFile, Retention: d.retention, Logger: d.log.With("component", "silences"), Metrics: reg, EventRecorder: rec,
		Limits: silence.Limits{MaxSilences: d.maxSilences, MaxSilenceSizeBytes: d.maxSilenceBytes},
	})
	if err != nil {
		return nil, fmt.Errorf("create silences of tenant %q: %w", d.tenant, err)
	}
	in.silences.SetBroadcast(func(b []byte) { d.broadcast(alertmanagerpb.StateKind_STATE_KIND_SILENCES, b) })
	in.nflog.SetBroadcast(func(b []byte) { d.broadcast(alertmanagerpb.StateKind_STATE_KIND_NFLOG, b) })
	in.silencer = silence.NewSilencer(in.silences, d.log, rec)
	in.wg.Go(func() { in.nflog.Maintenance(maintenanceInterval, nflogFile, in.stopc, nil) })
	in.wg.Go(func() { in.silences.Maintenance(maintenanceInterval, silFile, in.stopc, nil) })
	if d.settleAfter > 0 {
		in.wg.Go(func() {
			defer close(in.settled)
			t := time.NewTimer(d.settleAfter)
			defer t.Stop()
			select {
			case <-t.C:
				d.settle(in)
			case <-in.stopc:
			}
		})
	} else {
		close(in.settled)
	}

	limiter := &alertLimiter{max: d.maxAlerts}
	in.limiter = limiter
	in.alerts, err = mem.NewAlerts(context.Background(), 30*time.Minute, 0, limiter, d.log, rec, reg, ff)
	if err != nil {
		in.stopMaintenance()
		return nil, fmt.Errorf("create alert store of tenant %q: %w", d.tenant, err)
	}
	in.api, err = api.New(api.Options{
		Alerts:   limitedAlerts{Alerts: in.alerts, limiter: limiter, received: d.received},
		Silences: in.silences,
		Timeout:  time.Minute,
		Logger:   d.log.With("component", "api"),
		Registry: reg,
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "alertmanager_http_request_duration_seconds", Help: "Duration of HTTP requests.",
		}, []string{"handler", "method", "code"}),
		GroupFunc: func(ctx context.Context, rf func(*dispatch.Route) bool, af dispatch.AlertFilter) (dispatch.AlertGroups, map[model.Fingerprint][]string, error) {
			d := in.dispatcher.Load()
			if d == nil {
				return nil, nil, nil
			}
			return d.Groups(ctx, rf, af)
		},
	})
	if err != nil {
		in.alerts.Close()
		in.stopMaintenance()
		return nil, fmt.Errorf("create api of tenant %q: %w", d.tenant, err)
	}
	in.handler = in.api.Register(route.New().WithPrefix(routePrefix), routePrefix)
	return in, nil
}

// limitedAlerts counts the alerts posted through the API and refuses a
// batch that would take the tenant over its alert limit, whole: upstream's
// store would drop the extra alerts with only a log line.
type limitedAlerts struct {
	*mem.Alerts
	limiter  *alertLimiter
	received func(n int)
}

func (c limitedAlerts) Put(ctx context.Context, alerts ...*alert.Alert) error {
	c.received(len(alerts))
	if n := c.limiter.max(); n > 0 {
		fresh := 0
		for _, a := range alerts {
			if _, err := c.Alerts.Get(a.Fingerprint()); errors.Is(err, store.ErrNotFound) {
				fresh++
			}
		}
		if held := c.limiter.count.Load(); fresh > 0 && held+int64(fresh) > int64(n) {
			err := fmt.Errorf("%w: the tenant holds %d alerts and posted %d new ones, limit %d (-alertmanager.max-alerts-count, override alertmanager_max_alerts_count)", ErrTooManyAlerts, held, fresh, n)
			if slot, ok := ctx.Value(refusalKey{}).(*error); ok {
				*slot = err
			}
			return err
		}
	}
	return c.Alerts.Put(ctx, alerts...)
}

// refusalKey carries a *error to the API's Put: upstream answers any Put
// error with 500, the handler turns a limit into 400.
type refusalKey struct{}

// apply runs the configuration p (stored as raw) in place of the one
// running, as upstream's reload does: everything that can fail is built
// first, so a failure leaves the old configuration running.
func (in *instance) apply(raw string, p *parsed) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return errors.New("alertmanager stopped")
	}
	if raw == in.applied {
		return nil
	}
	conf := p.am
	p.tmpl.ExternalURL = in.externalURL
	routes := dispatch.NewRoute(conf.Route, nil)
	active := map[string]bool{}
	routes.Walk(func(r *dispatch.Route) { active[r.RouteOpts.Receiver] = true })
	receivers := map[string][]notify.Integration{}
	for _, rcv := range conf.Receivers {
		if !active[rcv.Name] {
			continue
		}
		ints, err := receiver.BuildReceiverIntegrations(rcv, p.tmpl, in.log, in.httpOpts...)
		if err != nil {
			return fmt.Errorf("build receiver %q: %w", rcv.Name, err)
		}
		receivers[rcv.Name] = in.rates.wrap(rcv.Name, ints)
	}
	intervals := map[string][]timeinterval.TimeInterval{}
	for _, ti := range conf.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range conf.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	intervener := timeinterval.NewIntervener(intervals)

	if old := in.inhibitor.Load(); old != nil {
		old.Stop()
	}
	if old := in.dispatcher.Load(); old != nil {
		old.Stop()
	}
	var rec eventrecorder.Recorder
	inhibitor := inhibit.NewInhibitor(in.alerts, conf.InhibitRules, in.log, rec)
	pipeline := in.pipeline.New(receivers, in.wait, inhibitor, in.silencer, intervener, in.nflog, in.settled)
	in.api.Update(conf, func(ctx context.Context, ls labelset.LabelSet) {
		if inh := in.inhibitor.Load(); inh != nil { // nil until the first apply ends
			inh.Mutes(ctx, ls)
		}
		in.silencer.Mutes(ctx, ls)
	})
	timeout := func(d time.Duration) time.Duration { return max(d, notify.MinTimeout) }
	dispatcher := dispatch.NewDispatcher(in.alerts, routes, pipeline, intervener, timeout, time.Minute, in.groupLimit, in.log, rec, in.dispatcherMetrics, p.tmpl)
	go inhibitor.Run()
	inhibitor.WaitForLoading()
	in.inhibitor.Store(inhibitor)
	go dispatcher.Run(in.started)
	dispatcher.WaitForLoading()
	in.dispatcher.Store(dispatcher)
	in.applied = raw
	return nil
}

func (in *instance) markPulled(id string) {
	in.pullMu.Lock()
	defer in.pullMu.Unlock()
	if in.pulled == nil {
		in.pulled = map[string]bool{}
	}
	in.pulled[id] = true
}

func (in *instance) pulledFrom(id string) bool {
	in.pullMu.Lock()
	defer in.pullMu.Unlock()
	return in.pulled[id]
}

// keepPulled forgets the replicas that are not owners any more: read
// again when they come back.
func (in *instance) keepPulled(owners []string) {
	in.pullMu.Lock()
	defer in.pullMu.Unlock()
	for id := range in.pulled {
		if !slices.Contains(owners, id) {
			delete(in.pulled, id)
		}
	}
}

// idle reports whether the instance holds no alert and no active or
// pending silence.
func (in *instance) idle(ctx context.Context) bool {
	if in.limiter.count.Load() > 0 {
		return false
	}
	n, err := in.silences.CountState(ctx, silence.SilenceStateActive, silence.SilenceStatePending)
	return err == nil && n == 0
}

// state is the instance's whole replicated state.
func (in *instance) state() (*alertmanagerpb.FullState, error) {
	sil, err := in.silences.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode silences of tenant %q: %w", in.tenant, err)
	}
	nfl, err := in.nflog.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode notification log of tenant %q: %w", in.tenant, err)
	}
	return &alertmanagerpb.FullState{Silences: sil, Nflog: nfl}, nil
}

// running reports whether the instance runs the stored configuration raw.
func (in *instance) running(raw string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.applied == raw
}

// stop stops the instance and writes its silences and notification log
// to disk (upstream's maintenance does on stop).
func (in *instance) stop() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return
	}
	in.stopped = true
	if d := in.dispatcher.Load(); d != nil {
		d.Stop()
	}
	if i := in.inhibitor.Load(); i != nil {
		i.Stop()
	}
	in.api.Shutdown()
	in.alerts.Close()
	in.stopMaintenance()
}

func (in *instance) stopMaintenance() {
	close(in.stopc)
	in.wg.Wait()
}
