package ingester

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Detecting a failed WAL write.
//
// Prometheus' WAL (tsdb/wlog, v0.315.1) keeps appending after a failed
// write: a record torn by a short write (a full disk) stays in the log and
// the records of later commits land behind it. A replay stops at the torn
// record and its repair drops everything after it, so a push acknowledged
// after another push's failed write would be lost. Nothing in the WAL's API
// says it failed, except the counter it increments on every failed write,
// prometheus_tsdb_wal_writes_failed_total. WL.Log increments it while it
// holds the WAL's mutex, before releasing it; a later write takes that
// mutex first. So once a push's Commit returns, every failed write that
// precedes its records in the WAL has been counted, and a push is
// acknowledged only if its Commit succeeded and the counter did not move
// since the tenant's TSDB opened (push.go: appendRequest). The same holds
// for the out-of-order WBL (prometheus_tsdb_out_of_order_wbl_writes_failed_total),
// whose failures Commit does not even return.
//
// The counters are registered on the tenant's own registry (openDB); the
// registry is wrapped so that they are captured by their fully qualified
// names as the TSDB registers them. TestWALFailureCountersCaptured pins the
// names: a Prometheus upgrade that renames them fails it. Should the WAL's
// counter still be missing at run time, a failed Commit is the only signal
// left (it misses the push that commits after another's failed write), and
// the ingester logs that once as a BUG.

const (
	walWritesFailedName = "prometheus_tsdb_wal_writes_failed_total"
	wblWritesFailedName = "prometheus_tsdb_out_of_order_wbl_writes_failed_total"
)

// walWatch holds one tenant TSDB's failed-write counters.
type walWatch struct {
	wal, wbl atomic.Pointer[watchedCounter]
}

// watchedCounter is a counter of the TSDB and its value when captured (the
// TSDB's WAL and WBL counters start at 0 with each TSDB, but a write may fail
// while the TSDB opens: a failed repair leaves no TSDB to push to).
type watchedCounter struct {
	m    prometheus.Metric
	base float64
}

func (c *watchedCounter) value() float64 {
	var out dto.Metric
	if err := c.m.Write(&out); err != nil {
		return -1 // cannot happen for a counter; reads as moved
	}
	return out.GetCounter().GetValue()
}

// captured reports whether the WAL's counter was found.
func (w *walWatch) captured() bool { return w.wal.Load() != nil }

// failed reports whether a write to the WAL or the WBL failed since the
// counters were captured. It reads one or two atomics and the counters:
// it runs after every commit.
func (w *walWatch) failed() bool {
	for _, p := range [...]*atomic.Pointer[watchedCounter]{&w.wal, &w.wbl} {
		if c := p.Load(); c != nil && c.value() != c.base {
			return true
		}
	}
	return false
}

// watchingRegisterer is the tenant registry handed to tsdb.Open: it
// registers on reg and captures the failed-write counters into w.
type watchingRegisterer struct {
	*prometheus.Registry
	w *walWatch
}

func (r watchingRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	r.capture(c)
	return nil
}

func (r watchingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// capture keeps c if it is one of the failed-write counters. The WAL
// registers its counter wrapped (WrapRegistererWithPrefix): its fully
// qualified name shows only in its Desc, and the metric it collects is
// the counter itself behind a thin wrapper whose Write reads it live.
func (r watchingRegisterer) capture(c prometheus.Collector) {
	var target *atomic.Pointer[watchedCounter]
	descs := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(descs); close(descs) }()
	for d := range descs {
		switch descName(d) {
		case walWritesFailedName:
			target = &r.w.wal
		case wblWritesFailedName:
			target = &r.w.wbl
		}
	}
	if target == nil {
		return
	}
	ms := make(chan prometheus.Metric, 1)
	go func() { c.Collect(ms); close(ms) }()
	var m prometheus.Metric
	for got := range ms {
		if m == nil {
			m = got
		}
	}
	if m == nil {
		return
	}
	wc := &watchedCounter{m: m}
	wc.base = wc.value()
	target.Store(wc)
}

// descName is the fully qualified name of d. Desc keeps it unexported;
// its String form is `Desc{fqName: "<name>", ...}`.
func descName(d *prometheus.Desc) string {
	s := d.String()
	const pre = `Desc{fqName: "`
	if len(s) < len(pre) || s[:len(pre)] != pre {
		return ""
	}
	s = s[len(pre):]
	for k := 0; k < len(s); k++ {
		if s[k] == '"' {
			return s[:k]
		}
	}
	return ""
}

// checkWALWatch logs once, as a BUG, a TSDB whose WAL counter was not
// captured: its pushes then rely on Commit's error alone.
func (i *Ingester) checkWALWatch(u *tenantDB) {
	if u.health.wal.captured() {
		return
	}
	i.recov.bugOnce.Do(func() {
		i.log.Error("BUG: the TSDB registered no " + walWritesFailedName + " (renamed by a Prometheus upgrade?): a push committed after another push's failed WAL write can be acknowledged and then lost; fix wal_failure.go")
	})
}
