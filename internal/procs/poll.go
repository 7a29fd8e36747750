package procs

import (
	"context"
	"fmt"
	"time"
)

// Poll calls cond every interval until it reports done, returns an error, or
// ctx ends. On ctx's end the error includes cond's last "not yet" reason
// given before the deadline (a try that the deadline cut short usually
// reports only that). cond returns (done, reason): reason explains why it is
// not done yet.
func Poll(ctx context.Context, interval time.Duration, cond func() (done bool, reason string)) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := ""
	for {
		done, reason := cond()
		if done {
			return nil
		}
		if ctx.Err() == nil || last == "" {
			last = reason
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("poll: %s: %w", last, ctx.Err())
		case <-tick.C:
		}
	}
}
