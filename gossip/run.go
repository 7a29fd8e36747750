package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// Run starts gossip: it creates the memberlist, joins the seeds (retrying
// with backoff, then rejoining every -memberlist.rejoin-interval), expires
// tombstones, and serves until ctx is done. Then it sends its final state to
// a few members, leaves the cluster, shuts down and returns nil. Run is
// called once; stop writers (lifecyclers) before cancelling ctx, so their
// last change (LEFT) goes out.
func (kv *KV) Run(ctx context.Context) error {
	kv.mu.Lock()
	if kv.started {
		kv.mu.Unlock()
		return errors.New("gossip: Run called twice")
	}
	kv.started = true
	kv.mu.Unlock()

	cfg, err := kv.memberlistConfig()
	if err != nil {
		return err
	}
	if cfg.Keyring, err = kv.newKeyring(); err != nil {
		return err
	}
	// With keys, refuse whatever is not sealed with one of them, both ways.
	cfg.GossipVerifyIncoming, cfg.GossipVerifyOutgoing = cfg.Keyring != nil, cfg.Keyring != nil
	ml, err := memberlist.Create(cfg)
	if err != nil {
		return fmt.Errorf("start gossip on %s: %w", kv.cfg.BindAddress, err)
	}
	kv.log.Info("gossip started", "node", kv.name, "addr", kv.Addr(), "cluster_label", kv.cfg.ClusterLabel, "encrypted", cfg.Keyring != nil)

	loopCtx, stopLoops := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { kv.joinLoop(loopCtx, ml) })
	wg.Go(func() { kv.compactLoop(loopCtx) })
	wg.Go(func() { kv.sendLoop(loopCtx, ml) })
	if cfg.Keyring != nil {
		wg.Go(func() { kv.reloadKeysLoop(loopCtx, cfg.Keyring) })
	}
	<-ctx.Done()
	stopLoops()
	wg.Wait()

	kv.sendFinalState(ml)
	if err := ml.Leave(leaveTimeout); err != nil {
		kv.log.Warn("leave gossip cluster", "err", err)
	}
	if err := ml.Shutdown(); err != nil {
		kv.log.Warn("shut down gossip", "err", err)
	}
	kv.log.Info("gossip stopped", "node", kv.name)
	return nil
}

func (kv *KV) memberlistConfig() (*memberlist.Config, error) {
	c := memberlist.DefaultLANConfig()
	c.Name = kv.name
	bindIP, bindPort, err := splitBind(kv.cfg.BindAddress)
	if err != nil {
		return nil, fmt.Errorf("-memberlist.bind-address: %w", err)
	}
	c.BindAddr, c.BindPort, c.AdvertisePort = bindIP, bindPort, bindPort
	switch {
	case kv.cfg.AdvertiseAddress != "":
		ip, port, err := splitAdvertise(kv.cfg.AdvertiseAddress)
		if err != nil {
			return nil, fmt.Errorf("-memberlist.advertise-address: %w", err)
		}
		c.AdvertiseAddr = ip
		if port != 0 {
			c.AdvertisePort = port
		}
	case net.ParseIP(bindIP).IsUnspecified():
		// memberlist would pick a private IP and fail without one; a
		// machine with none is a laptop, where loopback is what works.
		ip, err := sockaddr.GetPrivateIP()
		if err != nil || ip == "" {
			kv.log.Warn("no private IP to advertise for gossip, using 127.0.0.1; set -memberlist.advertise-address", "err", err)
			ip = "127.0.0.1"
		}
		c.AdvertiseAddr = ip
	}
	c.Label = kv.cfg.ClusterLabel
	c.SkipInboundLabelCheck = false
	c.GossipInterval = kv.cfg.GossipInterval
	c.PushPullInterval = kv.cfg.PullPushInterval
	c.UDPBufferSize = udpBufferSize
	c.Delegate = delegate{kv}
	c.Events = &kv.members
	c.Logger = log.New(logWriter{kv.log}, "", 0)
	// A member restarted under the same name at a new address (a
	// rescheduled pod) may take its name back once the old one is gone.
	c.DeadNodeReclaimTime = time.Second
	if kv.tweakConfig != nil {
		kv.tweakConfig(c)
	}
	return c, nil
}

// compactLoop drops expired entries a few times per tombstone TTL.
func (kv *KV) compactLoop(ctx context.Context) {
	every := min(max(kv.cfg.LeftTombstoneTTL/4, 100*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			kv.compact()
		}
	}
}

// sendLoop sends changes too large for UDP to a few members over TCP.
func (kv *KV) sendLoop(ctx context.Context, ml *memberlist.Memberlist) {
	for {
		select {
		case <-ctx.Done():
			return
		case msg := <-kv.reliable:
			kv.sendReliable(ml, msg)
		}
	}
}

func (kv *KV) sendReliable(ml *memberlist.Memberlist, msgs ...[]byte) {
	for _, n := range kv.randomPeers(fanout) {
		for _, msg := range msgs {
			if err := ml.SendReliable(&n, msg); err != nil {
				kv.m.dropped.WithLabelValues(dropSendFailed).Inc()
				kv.log.Debug("gossip send over TCP", "to", n.Name, "err", err)
				break
			}
			kv.m.msgsSent.WithLabelValues(kindReliable).Inc()
			kv.m.bytesSent.WithLabelValues(kindReliable).Add(float64(len(msg)))
		}
	}
}

// sendFinalState sends every key's full value to a few members over TCP,
// so that changes still queued for gossip (the LEFT of this instance) are
// not lost with this process.
func (kv *KV) sendFinalState(ml *memberlist.Memberlist) {
	var msgs [][]byte
	for _, s := range kv.snapshot() {
		if s.value == nil {
			continue
		}
		raw, err := s.codec.Encode(s.value)
		if err != nil {
			kv.log.Warn("gossip final state not encoded", "key", s.key, "err", err)
			continue
		}
		msgs = append(msgs, encodeMessage(s.key, s.codec.ID(), raw))
	}
	kv.sendReliable(ml, msgs...)
}

// randomPeers returns up to n live members other than this one.
func (kv *KV) randomPeers(n int) []memberlist.Node {
	peers := slices.DeleteFunc(kv.members.list(), func(m memberlist.Node) bool { return m.Name == kv.name })
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	return peers[:min(n, len(peers))]
}

// hostPort joins ip and port the way memberlist's Node.Address does.
func hostPort(ip net.IP, port int) string { return net.JoinHostPort(ip.String(), strconv.Itoa(port)) }
