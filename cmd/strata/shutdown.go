package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/strata-metrics/strata/ingester"
	"github.com/strata-metrics/strata/ring"
)

// task is one component's Run in its own goroutine, with its own context
// so that shutdown stops components one at a time, in order.
type task struct {
	name     string
	cancel   context.CancelFunc
	done     chan struct{}
	err      error
	stopping atomic.Bool
}

// goTask runs f until the task is stopped. When f returns before that, the
// task's name goes to died (which holds one: the first is enough to shut
// the process down).
func goTask(name string, died chan string, f func(context.Context) error) *task {
	ctx, cancel := context.WithCancel(context.Background())
	t := &task{name: name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.err = f(ctx)
		if !t.stopping.Load() {
			if t.err == nil {
				t.err = errors.New("stopped unexpectedly")
			}
			select {
			case died <- name:
			default:
			}
		}
	}()
	return t
}

// stop cancels the task and waits for it, at most timeout. A nil task (a
// component the target does not run) is stopped already.
func (t *task) stop(timeout time.Duration) error {
	if t == nil {
		return nil
	}
	t.stopping.Store(true)
	t.cancel()
	select {
	case <-t.done:
	case <-time.After(timeout):
		return fmt.Errorf("%s did not stop within %s", t.name, timeout)
	}
	if t.err != nil {
		return fmt.Errorf("%s: %w", t.name, t.err)
	}
	return nil
}

// Deadlines of the shutdown steps that have none of their own.
const (
	leaveStateTimeout = 5 * time.Second  // one ring write
	stopTimeout       = 10 * time.Second // a component's Run after its work drained
	// compactorStopTimeout: a compaction in progress is abandoned (its
	// partial output is never visible: meta.json goes last).
	compactorStopTimeout = 30 * time.Second
	// flushTimeout is what -ingester.flush-on-shutdown adds to the
	// ingester's stop: cutting and uploading every tenant's head.
	flushTimeout = ingester.FlushOnShutdownTimeout + time.Minute
)

// shutdown stops the process in order, each step with a deadline, the
// modules in the reverse of their start order in every step:
//  1. the activations stop and /ready fails: a load balancer stops
//     sending new requests;
//  2. the modules with ringMember.leaveFirst (the ingester) go LEAVING:
//     distributors stop sending them writes once gossip tells them (a few
//     gossip intervals), while they still take what is in flight;
//  3. the server stops taking requests and drains those in flight (HTTP
//     pushes and queries, gRPC pushes into the ingester), at most
//     -server.shutdown-timeout;
//  4. the modules stop: distributor and querier before the ingester, which
//     closes its TSDBs;
//  5. the lifecyclers write their last state: LEFT, or the ingester keeps
//     its tokens with -ingester.unregister-on-shutdown=false;
//  6. the buckets and clients close, and gossip sends that last state to a
//     few members and leaves the cluster.
//
// It returns every error met on the way.
func (p *process) shutdown() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			p.log.Warn("shutdown", "err", err)
			errs = append(errs, err)
		}
	}
	mods := slices.Clone(p.mods)
	slices.Reverse(mods)
	add(p.announce.stop(stopTimeout))
	for _, m := range mods {
		add(m.activation.stop(stopTimeout))
		m.active.Store(false)
	}
	leaving := false
	for _, m := range mods {
		if m.registered && m.ring.leaveFirst {
			ctx, cancel := context.WithTimeout(context.Background(), leaveStateTimeout)
			add(m.ring.lc.SetState(ctx, ring.Leaving))
			cancel()
			leaving = true
		}
	}
	if leaving {
		p.waitGossip(context.Background())
	}
	add(p.server.stop(p.cfg.Server.ShutdownTimeout + stopTimeout))
	for _, m := range mods {
		add(m.runTask.stop(cmp.Or(m.stopTimeout, stopTimeout)))
	}
	for _, m := range mods {
		add(m.lcTask.stop(leaveStateTimeout + stopTimeout))
	}
	add(p.w.closeBuckets())
	if p.w.pool != nil {
		add(p.w.pool.Close())
	}
	add(p.runtime.stop(stopTimeout))
	add(p.authn.stop(stopTimeout))
	add(p.gossip.stop(stopTimeout + 5*time.Second)) // + memberlist's leave timeout
	return errors.Join(errs...)
}

// waitGossip gives a change a few gossip rounds to reach the other members,
// or until ctx ends; no wait when there are none.
func (p *process) waitGossip(ctx context.Context) {
	if len(p.w.kv.Members()) <= 1 {
		return
	}
	t := time.NewTimer(3 * p.cfg.Memberlist.GossipInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
