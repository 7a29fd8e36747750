package procs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat. It
// is 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// Usage is a reading of one process's resource use.
type Usage struct {
	CPUSeconds   float64 // user + system time so far
	RSSBytes     int64   // resident set size now (VmRSS)
	PeakRSSBytes int64   // highest resident set size so far (VmHWM)
}

// Usage reads the process's CPU time and memory from /proc.
func (p *Process) Usage() (Usage, error) { return ReadUsage(p.PID()) }

// ReadUsage reads pid's CPU time from /proc/<pid>/stat and its memory from
// /proc/<pid>/status.
func ReadUsage(pid int) (Usage, error) {
	cpu, err := readCPUSeconds(pid)
	if err != nil {
		return Usage{}, err
	}
	rss, hwm, err := readRSS(pid)
	if err != nil {
		return Usage{}, err
	}
	return Usage{CPUSeconds: cpu, RSSBytes: rss, PeakRSSBytes: hwm}, nil
}

func readCPUSeconds(pid int) (float64, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU returns utime+stime in seconds from the contents of
// /proc/<pid>/stat. The command name (field 2) is in parentheses and may hold
// spaces and parentheses itself, so fields are counted after the last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc stat %q: no ')'", truncate(b))
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': field 3 (state) is f[0], so field n is f[n-3]; utime is 14, stime 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc stat %q: %d fields after the command name", truncate(b), len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse utime in /proc stat: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse stime in /proc stat: %w", err)
	}
	return float64(utime+stime) / clockTicks, nil
}

func readRSS(pid int) (rss, hwm int64, err error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read memory use: %w", err)
	}
	return parseStatusRSS(b)
}

// parseStatusRSS returns VmRSS and VmHWM (at least VmRSS) in bytes from
// /proc/<pid>/status.
func parseStatusRSS(b []byte) (rss, hwm int64, err error) {
	var haveRSS, haveHWM bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(rest) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("parse %s line %q", name, sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s: %w", name, err)
		}
		if name == "VmRSS" {
			rss, haveRSS = kb<<10, true
		} else {
			hwm, haveHWM = kb<<10, true
		}
	}
	if !haveRSS || !haveHWM {
		return 0, 0, fmt.Errorf("parse /proc status: VmRSS or VmHWM missing (zombie process?)")
	}
	// The kernel updates VmHWM lazily (at some unmaps and at exit), so
	// VmRSS can be above it: the peak so far is at least the current RSS.
	return rss, max(hwm, rss), nil
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
