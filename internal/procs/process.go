package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Spec says how to start one process.
type Spec struct {
	// Name labels the process in errors and names its log file <Dir>/<Name>.log.
	Name string
	// Path is the binary; Args its arguments (without argv[0]).
	Path string
	Args []string
	// Dir is the working directory and holds the log file. It must exist.
	Dir string
	// Env is added to the parent's environment.
	Env []string
}

// Process is a started child process. Its methods are safe for concurrent use.
type Process struct {
	Name    string
	LogPath string

	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{} // closed when Wait returned
	waitErr error         // set before done is closed
}

// Start starts s.Path with stdout and stderr appended to <Dir>/<Name>.log.
// The child gets its own process group so that a terminal's Ctrl-C reaches only
// the parent; the parent must Stop or Kill it.
func Start(s Spec) (*Process, error) {
	if s.Name == "" {
		s.Name = filepath.Base(s.Path)
	}
	logPath := filepath.Join(s.Dir, s.Name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", s.Name, err)
	}
	fmt.Fprintf(f, "### %s %s %s\n", time.Now().Format(time.RFC3339Nano), s.Path, strings.Join(s.Args, " "))
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Dir = s.Dir
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Process{Name: s.Name, LogPath: logPath, cmd: cmd, logFile: f, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// StartT starts s like Start, with Dir defaulting to t.TempDir(), and stops the
// process when the test ends (printing the end of its log if the test failed).
// It fails the test if the process cannot start.
func StartT(t testing.TB, s Spec) *Process {
	t.Helper()
	if s.Dir == "" {
		s.Dir = t.TempDir()
	}
	p, err := Start(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupT(t, p) })
	return p
}

func cleanupT(t testing.TB, p *Process) {
	if err := p.Stop(10 * time.Second); err != nil {
		t.Logf("stop %s: %v", p.Name, err)
	}
	if t.Failed() {
		t.Logf("last lines of %s:\n%s", p.LogPath, p.LogTail(40))
	}
}

// PID returns the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitErr returns the error of the finished process (nil for exit status 0);
// it must only be called after Done is closed.
func (p *Process) ExitErr() error { return p.waitErr }

// Stop sends SIGTERM and waits up to grace for the exit, then sends SIGKILL and
// waits for it. It returns the exit error of a process that did not exit
// cleanly on SIGTERM, and nil if it had already exited before Stop.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("send SIGTERM to %s (pid %d): %w", p.Name, p.PID(), err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.waitErr, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGTERM {
			return nil // a process that does not handle SIGTERM dies of it: fine
		}
		if p.waitErr != nil {
			return fmt.Errorf("%s (pid %d) after SIGTERM: %w", p.Name, p.PID(), p.waitErr)
		}
		return nil
	case <-timer.C:
	}
	if err := p.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("%s (pid %d) still running %s after SIGTERM: killed", p.Name, p.PID(), grace)
}

// Kill sends SIGKILL (kill -9) and waits until the process is reaped.
func (p *Process) Kill() error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("send SIGKILL to %s (pid %d): %w", p.Name, p.PID(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s (pid %d) not reaped 30s after SIGKILL", p.Name, p.PID())
	}
}

// LogTail returns about the last n lines of the process's log file.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.LogPath, err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// WaitHTTP polls url with GET every 50ms until it answers 200, ctx ends, or the
// process exits (then the error says so and includes the log's last lines).
// p may be nil to wait for a server that is not a child.
func WaitHTTP(ctx context.Context, p *Process, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		var exited <-chan struct{}
		if p != nil {
			exited = p.done
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to answer 200 (last: %s): %w", url, last, ctx.Err())
		case <-exited:
			return fmt.Errorf("%s exited (%v) before %s answered 200; log:\n%s", p.Name, p.waitErr, url, p.LogTail(30))
		case <-tick.C:
		}
	}
}

// WaitHTTPT is WaitHTTP for tests: it fails the test after timeout.
func WaitHTTPT(t testing.TB, p *Process, url string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := WaitHTTP(ctx, p, url); err != nil {
		t.Fatal(err)
	}
}
