package gossip

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func newTestKV(t testing.TB, cfg Config, name string) *KV {
	t.Helper()
	kv, err := New(cfg, name, discard, prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, kv.RegisterKey("k", lwwCodec{}))
	return kv
}

func TestNew(t *testing.T) {
	cfg := defaultConfig()
	_, err := New(cfg, "", discard, prometheus.NewRegistry())
	require.ErrorContains(t, err, "node name is empty")
	cfg.NodeName = "from-flag"
	kv, err := New(cfg, "instance-id", discard, prometheus.NewRegistry())
	require.NoError(t, err)
	require.Equal(t, "from-flag", kv.name)
	require.Empty(t, kv.Addr())
	require.Nil(t, kv.Members())
	cfg.GossipInterval = 0
	_, err = New(cfg, "x", discard, prometheus.NewRegistry())
	require.ErrorContains(t, err, "-memberlist.gossip-interval")

	require.ErrorContains(t, kv.RegisterKey("", lwwCodec{}), "1 to 255 bytes")
	require.NoError(t, kv.RegisterKey("k", lwwCodec{}))
	require.ErrorContains(t, kv.RegisterKey("k", lwwCodec{}), "already registered")
}

func TestCAS(t *testing.T) {
	ctx := context.Background()
	kv := newTestKV(t, defaultConfig(), "a")
	require.Nil(t, kv.Get("k"))
	require.ErrorContains(t, kv.CAS(ctx, "nope", set("x", "1", 1)), `"nope": not registered`)

	require.NoError(t, kv.CAS(ctx, "k", set("x", "1", 10)))
	require.Equal(t, lww{"x": {10, "1"}}, kv.Get("k"))
	require.Equal(t, 1, kv.queue.NumQueued(), "the change is queued for gossip")

	// An older write loses; nothing to broadcast.
	require.NoError(t, kv.CAS(ctx, "k", set("x", "0", 5)))
	require.Equal(t, lww{"x": {10, "1"}}, kv.Get("k"))
	require.Equal(t, 1, kv.queue.NumQueued())

	// A newer write of the same entry supersedes the queued one.
	require.NoError(t, kv.CAS(ctx, "k", set("x", "2", 11)))
	require.Equal(t, 1, kv.queue.NumQueued())

	// nil next: no change.
	require.NoError(t, kv.CAS(ctx, "k", func(Mergeable) (Mergeable, bool, error) { return nil, false, nil }))

	// f's error without retry is returned as is.
	boom := errors.New("boom")
	err := kv.CAS(ctx, "k", func(Mergeable) (Mergeable, bool, error) { return nil, false, boom })
	require.ErrorIs(t, err, boom)

	// With retry, f runs again until it succeeds.
	calls := 0
	require.NoError(t, kv.CAS(ctx, "k", func(Mergeable) (Mergeable, bool, error) {
		if calls++; calls < 3 {
			return nil, true, boom
		}
		return lww{"y": {1, "y"}}, true, nil
	}))
	require.Equal(t, 3, calls)

	// A change that lands while f runs makes CAS call f again with it.
	calls = 0
	var seen []Mergeable
	require.NoError(t, kv.CAS(ctx, "k", func(cur Mergeable) (Mergeable, bool, error) {
		seen = append(seen, cur)
		if calls++; calls == 1 {
			kv.mergeRemote("k", "test.lww/1", []byte(`{"z":{"V":1,"S":"z"}}`), kindBroadcast)
		}
		return lww{"w": {1, "w"}}, true, nil
	}))
	require.Equal(t, 2, calls)
	require.NotContains(t, seen[0], "z")
	require.Contains(t, seen[1], "z")

	// A writer that keeps losing the race gives up.
	err = kv.CAS(ctx, "k", func(Mergeable) (Mergeable, bool, error) {
		kv.mu.Lock()
		kv.publishLocked(kv.key("k"), kv.key("k").get()) // a concurrent change
		kv.mu.Unlock()
		return lww{"v": {1, "v"}}, true, nil
	})
	require.ErrorContains(t, err, "gave up after 10 attempts")
	require.ErrorIs(t, err, errConcurrentChange)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, kv.CAS(cctx, "k", set("x", "3", 12)), context.Canceled)
	require.Equal(t, 2.0, testutil.ToFloat64(kv.m.cas.WithLabelValues("k", "unchanged")))
}

func TestWatchKey(t *testing.T) {
	kv := newTestKV(t, defaultConfig(), "a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan Mergeable)
	done := make(chan struct{})
	go func() {
		defer close(done)
		kv.WatchKey(ctx, "k", func(v Mergeable) bool {
			got <- v
			return len(lwwOf(v)) < 2
		})
	}()
	require.Nil(t, <-got, "the current value first")
	require.NoError(t, kv.CAS(ctx, "k", set("a", "1", 1)))
	require.Equal(t, lww{"a": {1, "1"}}, <-got)
	require.NoError(t, kv.CAS(ctx, "k", set("b", "1", 1)))
	require.Len(t, lwwOf(<-got), 2)
	<-done // fn returned false

	// A cancelled watch returns too; an unknown key at once.
	go func() { kv.WatchKey(ctx, "k", func(Mergeable) bool { return true }); got <- nil }()
	cancel()
	<-got
	kv.WatchKey(context.Background(), "unknown", func(Mergeable) bool { panic("not called") })
}

func lwwOf(v Mergeable) lww {
	l, _ := v.(lww)
	return l
}

// TestDelegateDrops: what a peer sends that cannot be merged is dropped and
// counted, never merged and never a crash.
func TestDelegateDrops(t *testing.T) {
	cfg := defaultConfig()
	cfg.ClusterLabel = "blue"
	kv := newTestKV(t, cfg, "a")
	d := delegate{kv}
	value := []byte(`{"x":{"V":1,"S":"x"}}`)
	for _, tc := range []struct {
		name   string
		send   func()
		reason string
	}{
		{"empty message", func() { d.NotifyMsg(nil) }, dropMalformed},
		{"future format", func() { d.NotifyMsg([]byte{9, 1, 2}) }, dropMalformed},
		{"truncated", func() { d.NotifyMsg(encodeMessage("k", "test.lww/1", value)[:5]) }, dropMalformed},
		{"unknown key", func() { d.NotifyMsg(encodeMessage("other", "test.lww/1", value)) }, dropUnknownKey},
		{"other codec", func() { d.NotifyMsg(encodeMessage("k", "test.lww/2", value)) }, dropCodec},
		{"undecodable value", func() { d.NotifyMsg(encodeMessage("k", "test.lww/1", []byte("{"))) }, dropMalformed},
		{"state of another cluster", func() {
			d.MergeRemoteState(encodeState("green", []keyValue{{"k", "test.lww/1", value}}), false)
		}, dropLabel},
		{"state too large", func() { d.MergeRemoteState(make([]byte, maxStateBytes+1), false) }, dropTooLarge},
		{"malformed state", func() { d.MergeRemoteState([]byte{wireVersion, 0xff}, true) }, dropMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(kv.m.dropped.WithLabelValues(tc.reason))
			tc.send()
			require.Equal(t, before+1, testutil.ToFloat64(kv.m.dropped.WithLabelValues(tc.reason)))
			require.Nil(t, kv.Get("k"))
		})
	}

	// What is fine is merged, and passed on.
	d.MergeRemoteState(encodeState("blue", []keyValue{{"k", "test.lww/1", value}}), false)
	require.Equal(t, lww{"x": {1, "x"}}, kv.Get("k"))
	d.NotifyMsg(encodeMessage("k", "test.lww/1", []byte(`{"y":{"V":1,"S":"y"}}`)))
	require.Len(t, lwwOf(kv.Get("k")), 2)
	require.Equal(t, 2, kv.queue.NumQueued())

	// The local state round-trips.
	label, kvs, err := decodeState(d.LocalState(false))
	require.NoError(t, err)
	require.Equal(t, "blue", label)
	require.Len(t, kvs, 1)
	require.JSONEq(t, `{"x":{"V":1,"S":"x"},"y":{"V":1,"S":"y"}}`, string(kvs[0].value))
}

// TestLargeChanges: a change larger than a UDP packet goes to the TCP send
// queue when it is news from here or from a broadcast, and is left to
// push/pull when it came from a push/pull.
func TestLargeChanges(t *testing.T) {
	kv := newTestKV(t, defaultConfig(), "a")
	big := strings.Repeat("v", 2*udpBufferSize)
	require.NoError(t, kv.CAS(context.Background(), "k", set("big", big, 1)))
	require.Zero(t, kv.queue.NumQueued())
	require.Len(t, kv.reliable, 1)

	raw, _ := lwwCodec{}.Encode(lww{"big2": {1, big}})
	delegate{kv}.MergeRemoteState(encodeState("", []keyValue{{"k", "test.lww/1", raw}}), false)
	require.Len(t, kv.reliable, 1)
	require.Equal(t, 1.0, testutil.ToFloat64(kv.m.dropped.WithLabelValues(dropRelayTooBig)))

	raw, _ = lwwCodec{}.Encode(lww{"big3": {1, big}})
	delegate{kv}.NotifyMsg(encodeMessage("k", "test.lww/1", raw))
	require.Len(t, kv.reliable, 2)
}

func TestCompact(t *testing.T) {
	cfg := defaultConfig()
	cfg.LeftTombstoneTTL = time.Minute
	kv := newTestKV(t, cfg, "a")
	now := time.UnixMilli(10 * 60 * 1000)
	kv.now = func() time.Time { return now }
	old := now.Add(-2 * time.Minute).UnixMilli()
	require.NoError(t, kv.CAS(context.Background(), "k", func(Mergeable) (Mergeable, bool, error) {
		return lww{"gone": {old, ""}, "live": {old, "x"}, "fresh": {now.UnixMilli(), ""}}, false, nil
	}))
	kv.compact()
	require.Equal(t, lww{"live": {old, "x"}, "fresh": {now.UnixMilli(), ""}}, kv.Get("k"))
	require.Equal(t, 1.0, testutil.ToFloat64(kv.m.compactedEntries.WithLabelValues("k")))

	// An expired tombstone arriving from a stale peer is dropped before
	// merging.
	delegate{kv}.NotifyMsg(encodeMessage("k", "test.lww/1", []byte(`{"gone":{"V":`+strconv.FormatInt(old, 10)+`,"S":""}}`)))
	require.NotContains(t, kv.Get("k"), "gone")
}
