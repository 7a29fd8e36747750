//go:build unix

package distributor

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process' user+system CPU time: on a shared machine it
// measures a benchmark's cost where wall time measures its neighbours too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPUPerSeries reports the CPU time since start per series, GC and
// every other goroutine of the process included.
func reportCPUPerSeries(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N)/benchSeries, "cpu-ns/series")
}
