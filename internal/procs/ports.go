package procs

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// handedOut remembers the ports FreePort returned in this process, so that two
// callers that ask before either binds never get the same port.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a loopback port that was free for TCP and UDP a moment ago:
// it listens on 127.0.0.1:0, closes, and hands the port out. Another process
// can grab it in between; callers that start a server on it should treat a
// bind failure as "try again", which is rare enough for tests.
func FreePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("listen on a free loopback port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if handedOut.ports[port] {
			continue
		}
		// memberlist binds the same port for UDP as well.
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		u.Close()
		handedOut.ports[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("find a free loopback port: 50 attempts collided")
}

// FreeAddr returns "127.0.0.1:<port>" for a port from FreePort.
func FreeAddr() (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}
