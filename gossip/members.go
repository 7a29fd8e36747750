package gossip

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// memberTable mirrors the cluster's live members from memberlist's event
// callbacks, which run under memberlist's node lock. memberlist's own
// Members() and LocalNode() hand out pointers that it keeps writing to, so
// reading them races; these copies do not.
type memberTable struct {
	mu    sync.Mutex
	nodes map[string]memberlist.Node
	count atomic.Int32 // len(nodes)
}

var _ memberlist.EventDelegate = (*memberTable)(nil)

// NotifyJoin implements memberlist.EventDelegate (this member included).
func (t *memberTable) NotifyJoin(n *memberlist.Node) { t.put(n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (t *memberTable) NotifyUpdate(n *memberlist.Node) { t.put(n) }

// NotifyLeave implements memberlist.EventDelegate: a member left or died.
func (t *memberTable) NotifyLeave(n *memberlist.Node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.nodes, n.Name)
	t.count.Store(int32(len(t.nodes)))
}

func (t *memberTable) put(n *memberlist.Node) {
	c := *n
	c.Addr, c.Meta = slices.Clone(n.Addr), slices.Clone(n.Meta)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nodes == nil {
		t.nodes = map[string]memberlist.Node{}
	}
	t.nodes[n.Name] = c
	t.count.Store(int32(len(t.nodes)))
}

// size is how many live members there are, at least 1 (this one); it takes
// no lock, so memberlist's queue may call it under its own locks.
func (t *memberTable) size() int { return max(1, int(t.count.Load())) }

// get returns a copy of the member called name.
func (t *memberTable) get(name string) (memberlist.Node, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.nodes[name]
	return n, ok
}

// list returns copies of every live member, sorted by name.
func (t *memberTable) list() []memberlist.Node {
	t.mu.Lock()
	out := make([]memberlist.Node, 0, len(t.nodes))
	for _, n := range t.nodes {
		out = append(out, n)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b memberlist.Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}
