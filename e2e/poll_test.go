package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/strata-metrics/strata/internal/procs"
)

// poll calls cond every interval until it holds. If it does not before
// timeout passes (0: before ctx ends), the test fails with what and cond's
// last reason. cond gets the polling context, for its requests. Call poll
// only from the test's goroutine.
func poll(ctx context.Context, t testing.TB, what string, timeout, interval time.Duration, cond func(ctx context.Context) (ok bool, reason string)) {
	t.Helper()
	if err := waitFor(ctx, timeout, interval, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitFor is poll returning the failure instead: for callers that check
// something else first or run off the test's goroutine.
func waitFor(ctx context.Context, timeout, interval time.Duration, cond func(ctx context.Context) (ok bool, reason string)) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return procs.Poll(ctx, interval, func() (bool, string) { return cond(ctx) })
}

// waitActive polls the /ring page of every node in at until each node of ns
// is ACTIVE and healthy there; the test fails after timeout (0: when ctx
// ends) with the last node and instance that was not.
func waitActive(ctx context.Context, t testing.TB, at, ns []*procs.Node, timeout time.Duration) {
	t.Helper()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := procs.WaitRing(ctx, at, allActive(ns)); err != nil {
		t.Fatalf("wait for every instance ACTIVE and healthy in the ring: %v", err)
	}
}

// allActive is a ring condition: every node of ns is ACTIVE and healthy.
func allActive(ns []*procs.Node) func(procs.RingStatus) (bool, string) {
	return func(r procs.RingStatus) (bool, string) {
		for _, n := range ns {
			if ok, why := procs.InstanceIs(n.Name, "ACTIVE", true)(r); !ok {
				return false, why
			}
		}
		return true, ""
	}
}
