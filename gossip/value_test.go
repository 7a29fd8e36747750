package gossip

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// lww is the test CRDT: a map of last-writer-wins registers. An empty S is
// a tombstone, which expires.
type lww map[string]lwwEntry

type lwwEntry struct {
	V int64  // version, Unix ms
	S string // value; "" is a tombstone
}

func (a lwwEntry) less(b lwwEntry) bool { return a.V < b.V || (a.V == b.V && a.S < b.S) }

func (l lww) Merge(other Mergeable) (Mergeable, Mergeable, error) {
	o, ok := other.(lww)
	if !ok {
		return nil, nil, fmt.Errorf("got %T", other)
	}
	var delta lww
	for k, e := range o {
		if cur, ok := l[k]; ok && !cur.less(e) {
			continue
		}
		if delta == nil {
			delta = lww{}
		}
		delta[k] = e
	}
	if delta == nil {
		return l, nil, nil
	}
	merged := maps.Clone(l)
	if merged == nil {
		merged = lww{}
	}
	maps.Copy(merged, delta)
	return merged, delta, nil
}

func (l lww) Compact(before time.Time) (Mergeable, int) {
	out, n := lww{}, 0
	for k, e := range l {
		if e.S == "" && e.V < before.UnixMilli() {
			n++
			continue
		}
		out[k] = e
	}
	if n == 0 {
		return l, 0
	}
	return out, n
}

func (l lww) Supersedes(older Mergeable) bool {
	o, ok := older.(lww)
	if !ok {
		return false
	}
	for k, e := range o {
		if cur, ok := l[k]; !ok || cur.less(e) {
			return false
		}
	}
	return true
}

type lwwCodec struct{}

func (lwwCodec) ID() string { return "test.lww/1" }

func (lwwCodec) Encode(v Mergeable) ([]byte, error) { return json.Marshal(v.(lww)) }

func (lwwCodec) Decode(b []byte) (Mergeable, error) {
	var l lww
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	if l == nil {
		l = lww{}
	}
	return l, nil
}

// set returns a CAS function that writes key=value at version v.
func set(key, value string, v int64) func(Mergeable) (Mergeable, bool, error) {
	return func(Mergeable) (Mergeable, bool, error) {
		return lww{key: {V: v, S: value}}, true, nil
	}
}
