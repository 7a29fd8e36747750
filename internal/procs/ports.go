package procs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// Ports come from a range below Linux's default ephemeral range
// (32768-60999, /proc/sys/net/ipv4/ip_local_port_range), so neither a
// listener on port 0 nor the local end of an outgoing connection is ever
// given one by the kernel. Between the test binaries that `go test` runs in
// parallel (one process per package), a port is reserved by an exclusive
// flock on <TMPDIR>/strata-test-ports/<port>.lock, held until this process
// exits: the kernel drops the lock when the process dies, however it dies,
// so a crashed test leaves nothing to clean up.
const (
	portRangeLow  = 20000
	portRangeHigh = 32000 // exclusive
)

// reserved holds the lock files of the ports this process handed out; the
// files stay open (and locked) for the life of the process.
var reserved = struct {
	sync.Mutex
	files map[int]*os.File
}{files: map[int]*os.File{}}

// FreePort returns a loopback port that no other process of these tests
// holds and that was free for TCP and UDP (memberlist binds both) a moment
// ago. A program that is not one of these tests can still take it in
// between; that is rare outside the ephemeral range.
func FreePort() (int, error) {
	reserved.Lock()
	defer reserved.Unlock()
	dir := filepath.Join(os.TempDir(), "strata-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, fmt.Errorf("create the port reservation dir: %w", err)
	}
	span := portRangeHigh - portRangeLow
	start := rand.IntN(span)
	for i := range span {
		port := portRangeLow + (start+i)%span
		if reserved.files[port] != nil {
			continue
		}
		f, err := lockPort(dir, port)
		if err != nil {
			return 0, err
		}
		if f == nil {
			continue // another test process holds it
		}
		if !bindable(port) {
			f.Close()
			continue
		}
		reserved.files[port] = f
		return port, nil
	}
	return 0, fmt.Errorf("find a free loopback port: every port in %d-%d is reserved or bound", portRangeLow, portRangeHigh-1)
}

// lockPort takes the reservation of port, or returns nil when another
// process holds it.
func lockPort(dir string, port int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)+".lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open the reservation of port %d: %w", port, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock the reservation of port %d: %w", port, err)
	}
	return f, nil
}

// bindable reports whether port is free on loopback for TCP and UDP now.
func bindable(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// FreeAddr returns "127.0.0.1:<port>" for a port from FreePort.
func FreeAddr() (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}
