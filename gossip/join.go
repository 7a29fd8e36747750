package gossip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

const (
	joinBackoffMin = 100 * time.Millisecond
	joinBackoffMax = 10 * time.Second
	dnsTimeout     = 5 * time.Second
)

// JoinTried is closed once Run has tried every seed for the first time
// (at once without seeds): from then on the KV holds the state of the
// members that answered (memberlist's join is a full state exchange), for
// example the tokens a new ring instance picks its own between.
func (kv *KV) JoinTried() <-chan struct{} { return kv.joinTried }

// joinLoop joins the seeds, retrying with backoff until one answers, then
// rejoins every -memberlist.rejoin-interval those seeds that are not live
// members: this heals a partition whose sides have declared each other dead,
// and brings back a member that is alone.
func (kv *KV) joinLoop(ctx context.Context, ml *memberlist.Memberlist) {
	seeds := kv.cfg.seeds()
	if len(seeds) == 0 {
		close(kv.joinTried)
		kv.log.Info("no -memberlist.join seeds: this member starts a cluster of its own")
		return
	}
	backoff := joinBackoffMin
	for first := true; ; first = false {
		joined, tried, err := kv.join(ctx, ml, seeds, false)
		if first {
			close(kv.joinTried)
		}
		if joined > 0 || (tried == 0 && err == nil) {
			kv.log.Info("joined gossip cluster", "seeds_answering", joined, "members", ml.NumMembers())
			break
		}
		kv.log.Warn("join gossip cluster, retrying", "seeds", seeds, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
	if kv.cfg.RejoinInterval <= 0 {
		return
	}
	t := time.NewTicker(kv.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if joined, _, err := kv.join(ctx, ml, seeds, true); joined > 0 {
				kv.log.Info("rejoined gossip seeds", "seeds_answering", joined, "members", ml.NumMembers())
			} else if err != nil {
				kv.log.Debug("rejoin gossip seeds", "err", err)
			}
		}
	}
}

// join resolves seeds and joins them one at a time, so that shutdown waits
// for one connection at most. The first join tries every address; a
// rejoin tries at most a few random ones that are not live members. It
// returns how many answered and how many it tried (0: nothing to do).
func (kv *KV) join(ctx context.Context, ml *memberlist.Memberlist, seeds []string, rejoin bool) (joined, tried int, err error) {
	self, ok := kv.members.get(kv.name)
	if !ok {
		return 0, 0, errors.New("this member is not in its own member list")
	}
	addrs, err := kv.resolveSeeds(ctx, seeds, int(self.Port), func(a string) bool { return kv.isSelf(a, &self) })
	if rejoin {
		live := map[string]bool{}
		for _, m := range kv.members.list() {
			live[m.Address()] = true
		}
		addrs = slices.DeleteFunc(addrs, func(a string) bool { return live[a] })
		rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
		addrs = addrs[:min(len(addrs), fanout)]
	}
	if len(addrs) == 0 {
		return 0, 0, err
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, a := range addrs {
		if ctx.Err() != nil {
			break
		}
		tried++
		if _, err := ml.Join([]string{a}); err != nil {
			errs = append(errs, err)
			continue
		}
		joined++
	}
	outcome := "success"
	if joined == 0 {
		outcome = "failure"
	}
	kv.m.joinAttempts.WithLabelValues(outcome).Inc()
	if joined > 0 {
		return joined, tried, nil
	}
	return 0, tried, errors.Join(errs...)
}

// resolveSeeds turns seeds into ip:port addresses: every address of a DNS
// name (a headless Service's pods), defaultPort where a seed has none,
// without duplicates and without this member.
func (kv *KV) resolveSeeds(ctx context.Context, seeds []string, defaultPort int, self func(string) bool) ([]string, error) {
	var out []string
	var errs []error
	seen := map[string]bool{}
	add := func(ip net.IP, port int) {
		a := hostPort(ip, port)
		if !seen[a] && !self(a) {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, s := range seeds {
		host, port, err := splitSeed(s, defaultPort)
		if err != nil {
			errs = append(errs, fmt.Errorf("seed %q: %w", s, err))
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			add(ip, port)
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, dnsTimeout)
		ips, err := kv.lookupIP(lctx, host)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve seed %s: %w", host, err))
			continue
		}
		for _, ip := range ips {
			add(ip, port)
		}
	}
	return out, errors.Join(errs...)
}

// isSelf reports whether addr reaches this member: its advertised address,
// or loopback on its port when it listens on every interface.
func (kv *KV) isSelf(addr string, self *memberlist.Node) bool {
	if addr == self.Address() {
		return true
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != fmt.Sprint(self.Port) {
		return false
	}
	bindIP, _, _ := splitBind(kv.cfg.BindAddress)
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback() && net.ParseIP(bindIP).IsUnspecified()
}
