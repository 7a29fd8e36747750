package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/strata-metrics/strata/internal/procs"
)

// TestAvailabilityBounds sends a real strata the requests that took a
// process down in the hardening trial: a subquery of 2.6 billion steps
// (23.7 GB before the limit), PromQL that parses in quadratic time (8.5 s
// for 40 KB), snappy headers that lie about their length from 150
// connections at once (5.2 GB), and gRPC connections that never finish
// their handshake (3,000 file descriptors held for minutes). Each is
// refused with its error id, and the process's peak memory (VmHWM), CPU
// time and open file descriptors, read from /proc, stay an order of
// magnitude below what the trial measured. The data stored before is
// intact afterwards.
func TestAvailabilityBounds(t *testing.T) {
	t.Parallel()
	s := procs.StartStrataT(t, procs.StrataConfig{Bin: strataBin(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	api := newClient(s.URL).withTimeout(time.Minute)
	pid := s.Process().PID()

	now := time.Now().Truncate(time.Second)
	ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "e2e_available"}}}
	for k := range 10 {
		ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: now.Add(time.Duration(k-10) * time.Second).UnixMilli(), Value: float64(k)})
	}
	ans, err := api.push(ctx, write(ts))
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, ans.Status, ans.text())

	before, err := procs.ReadUsage(pid)
	require.NoError(t, err)
	fdsBefore := openFDs(t, pid)

	// Item by item, the answer and its id.
	query := func(q string) answer {
		t.Helper()
		ans, err := api.do(ctx, http.MethodPost, "/api/v1/query", queryParams(q, now), nil, nil)
		require.NoError(t, err)
		return ans
	}
	ans = query(`count_over_time(vector(1)[30d:1ms])`)
	require.Equal(t, http.StatusBadRequest, ans.Status, ans.text())
	require.Contains(t, ans.text(), "strata-subquery-too-many-steps")

	ans = query(strings.Repeat("1+", 20_000) + "1") // 40 KB, 20,000 operators
	require.Equal(t, http.StatusBadRequest, ans.Status, ans.text())
	require.Contains(t, ans.text(), "strata-query-too-complex")
	for range 5 {
		ans = query(strings.Repeat("1+", 500_000) + "1") // 1 MB
		require.Equal(t, http.StatusBadRequest, ans.Status, ans.text())
		require.Contains(t, ans.text(), "strata-query-too-long")
	}

	// A 6-byte body whose snappy header claims 31 MiB, from 150
	// connections at once.
	liar := binary.AppendUvarint(nil, 31<<20)
	liar = append(liar, make([]byte, 6-len(liar))...)
	var wg sync.WaitGroup
	statuses := make([]int, 150)
	for k := range statuses {
		wg.Go(func() {
			a, err := newClient(s.URL).withTimeout(time.Minute).push(ctx, liar)
			if err == nil {
				statuses[k] = a.Status
			}
		})
	}
	wg.Wait()
	for k, st := range statuses {
		require.Equal(t, http.StatusBadRequest, st, "liar %d", k)
	}

	// 300 gRPC connections that send the HTTP/2 preface and nothing more:
	// the server closes each within -server.grpc-connection-timeout (5 s).
	conns := make([]net.Conn, 300)
	for k := range conns {
		c, err := net.DialTimeout("tcp", s.GRPCAddr, 5*time.Second)
		require.NoError(t, err)
		conns[k] = c
		_, err = c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		require.NoError(t, err)
	}
	for k, c := range conns {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Minute)))
		_, err := io.Copy(io.Discard, c) // until the server closes it
		require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "connection %d still open after a minute", k)
		c.Close()
	}
	require.Eventually(t, func() bool { return openFDs(t, pid) <= fdsBefore+20 }, 30*time.Second, 100*time.Millisecond,
		"file descriptors: %d before, %d now", fdsBefore, openFDs(t, pid))

	after, err := procs.ReadUsage(pid)
	require.NoError(t, err)
	grew := after.PeakRSSBytes - before.PeakRSSBytes
	t.Logf("peak RSS %d MiB before, %d MiB after; CPU %.2f s for the hostile requests", before.PeakRSSBytes>>20, after.PeakRSSBytes>>20, after.CPUSeconds-before.CPUSeconds)
	// The trial's figures without the limits: 23.7 GB, 5.2 GB, minutes of
	// CPU. With them the requests cost what any small request does.
	require.Less(t, grew, int64(256<<20), "peak RSS grew by %d MiB", grew>>20)
	require.Less(t, after.CPUSeconds-before.CPUSeconds, 20.0, "CPU seconds spent on refused requests")

	got, err := api.query(ctx, "sum_over_time(e2e_available[1m])", now)
	require.NoError(t, err)
	require.Len(t, got.Series, 1)
	require.Equal(t, 45.0, got.Series[0].Points[0].V, "the data stored before is intact")
}

// openFDs counts pid's open file descriptors.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	require.NoError(t, err)
	return len(ents)
}
