package main

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/strata-metrics/strata/ring"
	"github.com/strata-metrics/strata/server"
)

// A moduleDef is one entry of the module list (wire.go: modules): a
// component, the targets that run it, what it uses, and how it is made.
// Adding a component is adding one moduleDef.
type moduleDef struct {
	name string
	// targets run the module besides -target=all.
	targets []string
	// deps are the modules this one uses: made and started before it,
	// stopped after it. A dependency the target does not run is skipped.
	deps []string
	// new makes the module and registers its handlers on w.srv. It does no
	// network I/O; the modules it depends on are made already.
	new func(w *wiring) (*module, error)
}

// A module is a component made for this process: what runs it, what /ready
// waits for, and how it is in its ring.
type module struct {
	name string
	// run serves until ctx is done, then stops the component and returns
	// nil; nil when the module only joins a ring.
	run func(ctx context.Context) error
	// stopTimeout bounds run's return once its context is done; 0 means
	// stopTimeout (shutdown.go).
	stopTimeout time.Duration
	// ready are the checks /ready fails while they fail.
	ready []readyCheck
	// ring is the module's instance in its ring; nil for none.
	ring *ringMember
}

type readyCheck struct {
	name  string
	check server.ReadyCheck
}

// ringMember is a module's instance in its ring and the rule that makes it
// ACTIVE.
type ringMember struct {
	// ring names the ring in task names and messages ("ingester").
	ring string
	lc   *ring.Lifecycler
	// activeAfter keeps the instance JOINING until it passes (an instance
	// that must load data first), then makes it ACTIVE; nil makes it
	// ACTIVE as it registers (an instance that owns no data).
	activeAfter server.ReadyCheck
	// readyWhenActive adds the /ready check "<ring> ring": ready only
	// while ACTIVE (with activeAfter: and a few gossip rounds after it
	// turned ACTIVE), not ready again once shutdown starts.
	readyWhenActive bool
	// leaveFirst makes the instance LEAVING before the server drains:
	// others stop sending it writes (once gossip tells them) while it
	// still takes those in flight.
	leaveFirst bool
}

// running is a started module: its tasks and its ring state.
type running struct {
	*module
	runTask, lcTask, activation *task
	registered                  bool        // in the ring: shutdown may make it LEAVING
	active                      atomic.Bool // ACTIVE in the ring, until shutdown starts
}

// runsTarget reports whether -target=target runs d.
func (d moduleDef) runsTarget(target string) bool {
	return target == targetAll || slices.Contains(d.targets, target)
}

// orderModules returns the modules target runs, each after the ones it
// depends on (list order otherwise). A dependency on a module that does not
// exist, or a cycle, is an error: the list is wrong.
func orderModules(defs []moduleDef, target string) ([]moduleDef, error) {
	known := map[string]bool{}
	for _, d := range defs {
		if known[d.name] {
			return nil, fmt.Errorf("module %q is in the list twice", d.name)
		}
		known[d.name] = true
	}
	selected := map[string]bool{}
	var todo []moduleDef
	for _, d := range defs {
		for _, dep := range d.deps {
			if !known[dep] {
				return nil, fmt.Errorf("module %q depends on %q, which is not a module", d.name, dep)
			}
		}
		if d.runsTarget(target) {
			selected[d.name] = true
			todo = append(todo, d)
		}
	}
	placed := map[string]bool{}
	var order []moduleDef
	for len(todo) > 0 {
		next := slices.IndexFunc(todo, func(d moduleDef) bool {
			return !slices.ContainsFunc(d.deps, func(dep string) bool { return selected[dep] && !placed[dep] })
		})
		if next < 0 {
			return nil, fmt.Errorf("modules depend on each other in a cycle: %v", names(todo))
		}
		placed[todo[next].name] = true
		order = append(order, todo[next])
		todo = slices.Delete(todo, next, next+1)
	}
	return order, nil
}

func names(defs []moduleDef) []string {
	var s []string
	for _, d := range defs {
		s = append(s, d.name)
	}
	return s
}

// addReadyChecks makes /ready fail until m is ready; start calls it before
// the server serves, so that /ready never passes before m started.
func (p *process) addReadyChecks(m *running) {
	for _, c := range m.ready {
		p.srv.AddReadyCheck(c.name, c.check)
	}
	if r := m.ring; r != nil && r.readyWhenActive {
		p.srv.AddReadyCheck(r.ring+" ring", func(context.Context) error {
			if !m.active.Load() {
				return fmt.Errorf("%s not ACTIVE in the %s ring", m.name, r.ring)
			}
			return nil
		})
	}
}

// startModule registers m in its ring (JOINING, or ACTIVE at once without
// an activation rule), then runs its lifecycler, the module itself and its
// activation.
func (p *process) startModule(ctx context.Context, m *running) error {
	r := m.ring
	if r != nil {
		rctx, cancel := context.WithTimeout(ctx, startTimeout)
		err := r.lc.Register(rctx)
		if err == nil {
			m.registered = true
			if r.activeAfter == nil {
				err = r.lc.SetState(rctx, ring.Active)
			}
		}
		cancel()
		if err != nil {
			return err
		}
		m.active.Store(r.activeAfter == nil)
		m.lcTask = goTask(r.ring+" lifecycler", p.died, r.lc.Run)
	}
	if m.run != nil {
		m.runTask = goTask(m.name, p.died, m.run)
	}
	if r != nil && r.activeAfter != nil {
		m.activation = goTask(r.ring+" activation", p.died, func(ctx context.Context) error {
			if err := waitReady(ctx, r.activeAfter); err != nil {
				<-ctx.Done()
				return nil // shutting down before it was ready
			}
			if err := r.lc.SetState(ctx, ring.Active); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			// Ready once the others have heard: the next instance of a
			// rolling start then picks its tokens around this one's.
			p.waitGossip(ctx)
			if ctx.Err() != nil {
				return nil
			}
			m.active.Store(true)
			<-ctx.Done()
			return nil
		})
	}
	return nil
}

// runs reports whether the process runs the module name.
func (p *process) runs(name string) bool {
	return slices.ContainsFunc(p.mods, func(m *running) bool { return m.name == name })
}
