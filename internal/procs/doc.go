// Package procs runs real processes for end-to-end tests and the bench tool:
// the built strata binary, Debian's prometheus and prometheus-node-exporter.
//
// Flow: a test or cmd/strata-bench --Start--> child process on loopback ports,
// its output in a log file; WaitHTTP polls until it serves; Stop or Kill ends it.
// Owns: free loopback ports, child processes it started (by PID), their log
// files, /proc readings of their CPU time and memory.
// Does not: sleep blindly (every wait polls with a deadline), touch processes it
// did not start, or leave a child running after a test (StartT registers Cleanup).
package procs
