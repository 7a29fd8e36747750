package gossip

// delegate is the KV as memberlist sees it. memberlist calls it from its
// packet and stream goroutines, concurrently; nothing here blocks on the
// network.
type delegate struct{ kv *KV }

// NodeMeta implements memberlist.Delegate; members carry no metadata.
func (d delegate) NodeMeta(int) []byte { return nil }

// NotifyMsg implements memberlist.Delegate: one change from a peer, by UDP
// gossip or TCP. b is reused after the call; decoding copies what it keeps.
func (d delegate) NotifyMsg(b []byte) {
	kv := d.kv
	kv.m.msgsReceived.WithLabelValues(kindBroadcast).Inc()
	kv.m.bytesReceived.WithLabelValues(kindBroadcast).Add(float64(len(b)))
	key, codec, value, err := decodeMessage(b)
	if err != nil {
		kv.m.dropped.WithLabelValues(dropMalformed).Inc()
		kv.log.Debug("malformed gossip message dropped", "err", err)
		return
	}
	kv.mergeRemote(key, codec, value, kindBroadcast)
}

// GetBroadcasts implements memberlist.Delegate: queued changes that fit.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	msgs := d.kv.queue.GetBroadcasts(overhead, limit)
	if len(msgs) > 0 {
		n := 0
		for _, m := range msgs {
			n += len(m)
		}
		d.kv.m.msgsSent.WithLabelValues(kindBroadcast).Add(float64(len(msgs)))
		d.kv.m.bytesSent.WithLabelValues(kindBroadcast).Add(float64(n))
	}
	return msgs
}

// LocalState implements memberlist.Delegate: every key's full value, for a
// push/pull (or a join) with one member.
func (d delegate) LocalState(bool) []byte {
	b := d.kv.encodeState()
	d.kv.m.msgsSent.WithLabelValues(kindPushPull).Inc()
	d.kv.m.bytesSent.WithLabelValues(kindPushPull).Add(float64(len(b)))
	return b
}

// MergeRemoteState implements memberlist.Delegate: a member's full state.
func (d delegate) MergeRemoteState(buf []byte, _ bool) {
	kv := d.kv
	kv.m.msgsReceived.WithLabelValues(kindPushPull).Inc()
	kv.m.bytesReceived.WithLabelValues(kindPushPull).Add(float64(len(buf)))
	if len(buf) > maxStateBytes {
		kv.m.dropped.WithLabelValues(dropTooLarge).Inc()
		kv.log.Warn("gossip state too large, dropped", "bytes", len(buf), "limit", maxStateBytes)
		return
	}
	label, kvs, err := decodeState(buf)
	if err != nil {
		kv.m.dropped.WithLabelValues(dropMalformed).Inc()
		kv.log.Debug("malformed gossip state dropped", "err", err)
		return
	}
	// memberlist already rejects packets and streams of another label; this
	// catches a peer that skips that check.
	if label != kv.cfg.ClusterLabel {
		kv.m.dropped.WithLabelValues(dropLabel).Inc()
		kv.log.Warn("gossip state from another cluster dropped", "label", label, "want", kv.cfg.ClusterLabel)
		return
	}
	for _, e := range kvs {
		kv.mergeRemote(e.key, e.codec, e.value, kindPushPull)
	}
}

// encodeState returns every key's full value in one State message.
func (kv *KV) encodeState() []byte {
	snaps := kv.snapshot()
	kvs := make([]keyValue, 0, len(snaps))
	for _, s := range snaps {
		if s.value == nil {
			continue
		}
		raw, err := s.codec.Encode(s.value)
		if err != nil {
			kv.m.dropped.WithLabelValues(dropEncodeFailed).Inc()
			kv.log.Warn("gossip state not encoded", "key", s.key, "err", err)
			continue
		}
		kv.m.stateBytes.WithLabelValues(s.key).Set(float64(len(raw)))
		kvs = append(kvs, keyValue{s.key, s.codec.ID(), raw})
	}
	return encodeState(kv.cfg.ClusterLabel, kvs)
}
