package procs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     float64
		wantErr  string
	}{
		{"plain", "1234 (strata) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 1000 200", 3.0, ""},
		{"comm with spaces and parens", "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 1 1", 0.03, ""},
		{"no paren", "7 a R 1", 0, "no ')'"},
		{"short", "7 (a) R 1 2 3", 0, "fields after the command name"},
		{"bad utime", "7 (a) R 1 7 7 0 -1 0 0 0 0 0 x 2 0", 0, "parse utime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tc.in))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.InDelta(t, tc.want, got, 1e-12)
		})
	}
}

func TestParseStatusRSS(t *testing.T) {
	for _, tc := range []struct {
		name, in         string
		wantRSS, wantHWM int64
		wantErr          string
	}{
		{"both", "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t    1024 kB\nThreads:\t3\n", 1024 << 10, 2048 << 10, ""},
		{"VmRSS above a lazily updated VmHWM", "VmHWM:\t   1024 kB\nVmRSS:\t    1100 kB\n", 1100 << 10, 1100 << 10, ""},
		{"zombie", "Name:\tx\nState:\tZ (zombie)\n", 0, 0, "missing"},
		{"bad unit", "VmHWM:\t1 MB\nVmRSS:\t1 kB\n", 0, 0, "parse VmHWM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rss, hwm, err := parseStatusRSS([]byte(tc.in))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantRSS, rss)
			require.Equal(t, tc.wantHWM, hwm)
		})
	}
}

func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p, err := FreePort()
		require.NoError(t, err)
		require.False(t, seen[p], "port %d handed out twice", p)
		seen[p] = true
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		require.NoError(t, err, "port %d not free", p)
		l.Close()
	}
}

// TestFreePortAcrossProcesses: a port another test process reserved is
// never handed out here while that process lives, and is free again once it
// is gone (go test runs the test binaries of several packages at once).
func TestFreePortAcrossProcesses(t *testing.T) {
	if os.Getenv("STRATA_PROCS_HOLD_PORT") == "1" {
		p, err := FreePort()
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("port", p)
		_, _ = io.Copy(io.Discard, os.Stdin) // hold it until the parent closes stdin
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFreePortAcrossProcesses$")
	cmd.Env = append(os.Environ(), "STRATA_PROCS_HOLD_PORT=1")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var held int
	_, err = fmt.Fscanf(stdout, "port %d\n", &held)
	require.NoError(t, err)

	dir := filepath.Join(os.TempDir(), "strata-test-ports")
	f, err := lockPort(dir, held)
	require.NoError(t, err)
	require.Nil(t, f, "port %d is reserved by pid %d but could be locked here", held, cmd.Process.Pid)

	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait())
	f, err = lockPort(dir, held)
	require.NoError(t, err)
	require.NotNil(t, f, "port %d still reserved after its holder exited", held)
	f.Close()
}

func TestReadUsageSelf(t *testing.T) {
	u, err := ReadUsage(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, u.RSSBytes)
	require.GreaterOrEqual(t, u.PeakRSSBytes, u.RSSBytes)
	require.GreaterOrEqual(t, u.CPUSeconds, 0.0)
}

func TestStopAndKill(t *testing.T) {
	sleep, err := LookPath("sleep", "coreutils")
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		end  func(p *Process) error
	}{
		{"stop", func(p *Process) error { return p.Stop(10 * time.Second) }},
		{"kill", func(p *Process) error { return p.Kill() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := StartT(t, Spec{Name: "sleep", Path: sleep, Args: []string{"600"}})
			require.False(t, p.Exited())
			u, err := p.Usage()
			require.NoError(t, err)
			require.Positive(t, u.RSSBytes)
			require.NoError(t, tc.end(p))
			require.True(t, p.Exited())
			require.NoError(t, tc.end(p), "ending twice")
		})
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	sh, err := LookPath("sh", "dash")
	require.NoError(t, err)
	dir := t.TempDir()
	// The shell ignores SIGTERM and says so once the trap is set.
	p := StartT(t, Spec{Name: "stubborn", Path: sh, Dir: dir, Args: []string{"-c", "trap '' TERM; echo tr\"\"apped; while :; do sleep 0.05; done"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, Poll(ctx, 10*time.Millisecond, func() (bool, string) {
		return strings.Contains(p.LogTail(5), "trapped"), "shell has not set its trap"
	}))
	err = p.Stop(200 * time.Millisecond)
	require.ErrorContains(t, err, "still running")
	require.True(t, p.Exited())
}

func TestWaitHTTP(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, WaitHTTP(ctx, nil, srv.URL))
	require.EqualValues(t, 3, calls.Load())

	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	err := WaitHTTP(short, nil, srv.URL+"/x") // answers 200 now: fine
	require.NoError(t, err)
}

func TestWaitHTTPProcessExits(t *testing.T) {
	sh, err := LookPath("sh", "dash")
	require.NoError(t, err)
	p := StartT(t, Spec{Name: "dies", Path: sh, Args: []string{"-c", "echo boom; exit 3"}})
	addr, err := FreeAddr()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = WaitHTTP(ctx, p, "http://"+addr+"/ready")
	require.ErrorContains(t, err, "exited")
	require.ErrorContains(t, err, "boom")
	require.False(t, errors.Is(err, context.DeadlineExceeded))
}

func TestPrometheusYAML(t *testing.T) {
	b, err := prometheusYAML(PrometheusConfig{
		ScrapeInterval: time.Second,
		Jobs:           []ScrapeJob{{Name: "node", Targets: []string{"127.0.0.1:9100"}}},
		RemoteWriteURL: "http://127.0.0.1:9009/api/v1/push",
	})
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, yaml.Unmarshal(b, &got))
	require.Equal(t, "1s", got["global"].(map[string]any)["scrape_interval"])
	require.Contains(t, string(b), "job_name: node")
	require.Contains(t, string(b), "- 127.0.0.1:9100")
	require.Contains(t, string(b), "url: http://127.0.0.1:9009/api/v1/push")
	require.Contains(t, string(b), "batch_send_deadline: 1s")
}

// TestPrometheusScrapesNodeExporter runs the real binaries: Prometheus scrapes
// node_exporter every 100ms until node_cpu_seconds_total is queryable.
func TestPrometheusScrapesNodeExporter(t *testing.T) {
	LookPathT(t, "prometheus", "prometheus")
	LookPathT(t, "prometheus-node-exporter", "prometheus-node-exporter")
	ne := StartNodeExporterT(t)
	prom := StartPrometheusT(t, PrometheusConfig{
		ScrapeInterval:      100 * time.Millisecond,
		Jobs:                []ScrapeJob{{Name: "node", Targets: []string{ne.Addr}}},
		RemoteWriteReceiver: true,
	})
	WaitHTTPT(t, prom.Process, prom.URL+"/api/v1/query?query=node_cpu_seconds_total", 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Poll(ctx, 100*time.Millisecond, func() (bool, string) {
		resp, err := http.Get(prom.URL + "/api/v1/query?query=count(node_cpu_seconds_total)")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(string(body), `"value":[`), string(body)
	})
	require.NoError(t, err)
	u, err := prom.Usage()
	require.NoError(t, err)
	require.Positive(t, u.CPUSeconds)
	require.Positive(t, u.PeakRSSBytes)
}
