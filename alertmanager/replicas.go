package alertmanager

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// replicasPrefix holds one object per process running the alertmanager
// module: "<start unix ns> <heartbeat unix ns>", written at every poll.
//
// Tenants are not sharded and their state is not replicated, so two
// replicas would each send every notification. Rather than pretend, one
// replica serves: the live one that started first (ties: the lower id);
// the others stand by, answering 503, and take over when its heartbeat is
// older than replicaTimeout polls (a replica that stops cleanly deletes
// its heartbeat at once).
const replicasPrefix = "~alertmanager/replicas/"

// replicaTimeout is how many poll intervals a heartbeat stays live.
const replicaTimeout = 3

type heartbeat struct {
	id          string
	start, last time.Time
}

func (h heartbeat) encode() []byte {
	return []byte(strconv.FormatInt(h.start.UnixNano(), 10) + " " + strconv.FormatInt(h.last.UnixNano(), 10))
}

func decodeHeartbeat(id string, b []byte) (heartbeat, bool) {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return heartbeat{}, false
	}
	s, err1 := strconv.ParseInt(f[0], 10, 64)
	l, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return heartbeat{}, false
	}
	return heartbeat{id: id, start: time.Unix(0, s), last: time.Unix(0, l)}, true
}

// before reports whether h serves rather than o.
func (h heartbeat) before(o heartbeat) bool {
	if !h.start.Equal(o.start) {
		return h.start.Before(o.start)
	}
	return h.id < o.id
}

// elect writes this replica's heartbeat and returns the id of the live
// replica that serves instead of this one; "" when this one serves.
func (m *MultitenantAlertmanager) elect(ctx context.Context) (string, error) {
	if m.deps.InstanceID == "" {
		return "", nil
	}
	now := time.Now()
	self := heartbeat{id: m.deps.InstanceID, start: m.started, last: now}
	if err := m.deps.Bucket.Upload(ctx, replicasPrefix+self.id, bytes.NewReader(self.encode())); err != nil {
		return "", fmt.Errorf("write alertmanager heartbeat: %w", err)
	}
	winner := self
	err := m.deps.Bucket.Iter(ctx, replicasPrefix, func(name string) error {
		id := strings.TrimPrefix(name, replicasPrefix)
		if id == self.id {
			return nil
		}
		r, err := m.deps.Bucket.Get(ctx, name)
		if err != nil {
			return nil // deleted meanwhile
		}
		b, err := io.ReadAll(io.LimitReader(r, 128))
		r.Close()
		if err != nil {
			return nil
		}
		h, ok := decodeHeartbeat(id, b)
		if ok && now.Sub(h.last) < replicaTimeout*m.cfg.PollInterval && h.before(winner) {
			winner = h
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("list alertmanager heartbeats: %w", err)
	}
	if winner.id == self.id {
		return "", nil
	}
	return winner.id, nil
}

// resign deletes this replica's heartbeat, so that a standby takes over
// at its next poll.
func (m *MultitenantAlertmanager) resign() {
	if m.deps.InstanceID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.deps.Bucket.Delete(ctx, replicasPrefix+m.deps.InstanceID); err != nil && !m.deps.Bucket.IsObjNotFoundErr(err) {
		m.log.Warn("deleting the alertmanager heartbeat", "err", err)
	}
}
