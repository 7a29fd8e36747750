package main

import (
	"context"
	"errors"
	"fmt"
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

// shutdown stops the process in order, each step with a deadline:
//  1. the ingester goes LEAVING: distributors stop sending it writes once
//     gossip tells them (a few gossip intervals), while it still takes
//     what is in flight;
//  2. the server stops taking requests and drains those in flight (HTTP
//     pushes and queries, gRPC pushes into the ingester), at most
//     -server.shutdown-timeout;
//  3. distributor and querier stop; the ingester closes its TSDBs;
//  4. the lifecyclers write their last state: LEFT, or the ingester keeps
//     its tokens with -ingester.unregister-on-shutdown=false;
//  5. gossip sends that state to a few members and leaves the cluster.
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
	add(p.announce.stop(stopTimeout))
	add(p.activate.stop(stopTimeout))
	add(p.sgActivate.stop(stopTimeout))
	// Not ready any more: a load balancer stops sending new requests.
	p.ingActive.Store(false)
	p.distActive.Store(false)
	if p.ingRegistered {
		ctx, cancel := context.WithTimeout(context.Background(), leaveStateTimeout)
		add(p.c.ingLC.SetState(ctx, ring.Leaving))
		cancel()
		p.waitGossip()
	}
	add(p.server.stop(p.cfg.Server.ShutdownTimeout + stopTimeout))
	add(p.distributor.stop(stopTimeout))
	add(p.querier.stop(stopTimeout))
	add(p.storeGateway.stop(stopTimeout))
	add(p.compactor.stop(compactorStopTimeout))
	ingTimeout := p.cfg.Server.ShutdownTimeout + stopTimeout
	if p.cfg.Ingester.FlushOnShutdown {
		ingTimeout += flushTimeout // cut every head into a block and upload it
	}
	add(p.ingester.stop(ingTimeout))
	add(p.ingLC.stop(leaveStateTimeout + stopTimeout))
	add(p.distLC.stop(leaveStateTimeout + stopTimeout))
	add(p.sgLC.stop(leaveStateTimeout + stopTimeout))
	add(p.compLC.stop(leaveStateTimeout + stopTimeout))
	add(p.bucketIndex.stop(stopTimeout))
	add(p.c.blocks.close())
	if p.c.pool != nil {
		add(p.c.pool.Close())
	}
	add(p.runtime.stop(stopTimeout))
	add(p.authn.stop(stopTimeout))
	add(p.gossip.stop(stopTimeout + 5*time.Second)) // + memberlist's leave timeout
	return errors.Join(errs...)
}

// waitGossip gives a change a few gossip rounds to reach the other members;
// no wait when there are none.
func (p *process) waitGossip() {
	if len(p.c.kv.Members()) <= 1 {
		return
	}
	time.Sleep(3 * p.cfg.Memberlist.GossipInterval)
}
