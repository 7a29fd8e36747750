package procs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// BuildStrata builds ./cmd/strata of the module that holds the working
// directory into dir/strata and returns its path. With $STRATA_BIN set it
// builds nothing and returns that path.
func BuildStrata(dir string) (string, error) {
	if bin := os.Getenv("STRATA_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("STRATA_BIN: %w", err)
		}
		return bin, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "strata")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/strata")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/strata: %w\n%s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// ModuleRoot returns the directory of the go.mod that governs the working
// directory (`go env GOMOD`).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// StrataConfig says how to run the strata binary.
type StrataConfig struct {
	Bin string // from BuildStrata
	// DataDir is -data.dir; empty means <dir>/data.
	DataDir string
	// Args are added after the generated ones (-target=all, the three
	// loopback listen addresses, -data.dir); flags given twice take the last.
	Args []string
}

// Strata is a strata process (-target=all by default) on loopback ports. Its
// ports and data dir stay the same across Kill and Restart.
type Strata struct {
	HTTPAddr, GRPCAddr string
	MemberlistAddr     string // empty when the binary has no -memberlist.bind-address
	URL                string // http://HTTPAddr
	DataDir            string

	dir  string
	spec Spec

	mu   sync.Mutex
	proc *Process // the current incarnation
}

// StartStrata starts strata with its log in dir and waits until /ready
// answers 200. On error nothing is left running.
func StartStrata(ctx context.Context, dir string, cfg StrataConfig) (*Strata, error) {
	var addrs [3]string
	for i := range addrs {
		a, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	s := &Strata{
		HTTPAddr: addrs[0], GRPCAddr: addrs[1], MemberlistAddr: addrs[2],
		URL:     "http://" + addrs[0],
		DataDir: cfg.DataDir,
		dir:     dir,
	}
	if s.DataDir == "" {
		s.DataDir = filepath.Join(dir, "data")
	}
	args := []string{
		"-target=all",
		"-server.http-listen-address=" + s.HTTPAddr,
		"-server.grpc-listen-address=" + s.GRPCAddr,
		"-data.dir=" + s.DataDir,
		"-runtime-config.admin-tenant=" + OperatorTenant,
	}
	// -memberlist.bind-address is in the contract, but binaries from before
	// gossip lack it: pass it only where it exists, so a missing flag does not
	// hide every other test.
	if hasFlag(cfg.Bin, "memberlist.bind-address") {
		args = append(args, "-memberlist.bind-address="+s.MemberlistAddr)
	} else {
		s.MemberlistAddr = ""
	}
	s.spec = Spec{Name: "strata", Path: cfg.Bin, Args: append(args, cfg.Args...), Dir: dir}
	if err := s.Restart(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// StartStrataT is StartStrata for tests: dir is a fresh t.TempDir(), errors
// fail the test, and whichever incarnation runs at the end is stopped.
func StartStrataT(t testing.TB, cfg StrataConfig) *Strata {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := StartStrata(ctx, t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupT(t, s.Process()) })
	return s
}

// Process returns the current incarnation.
func (s *Strata) Process() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Restart starts a new incarnation with the same arguments, ports and data dir
// and waits until /ready answers 200. The previous one must have exited (Kill
// or Stop it first).
func (s *Strata) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.Exited() {
		return fmt.Errorf("restart strata: pid %d still running", s.proc.PID())
	}
	p, err := Start(s.spec)
	if err != nil {
		return err
	}
	if err := WaitHTTP(ctx, p, s.URL+"/ready"); err != nil {
		p.Kill()
		return err
	}
	s.proc = p
	return nil
}

// hasFlag reports whether bin's -help output lists -name.
func hasFlag(bin, name string) bool {
	out, _ := exec.Command(bin, "-help").CombinedOutput() // -help exits non-zero with the flag package
	return bytes.Contains(out, []byte("-"+name+" ")) || bytes.Contains(out, []byte("-"+name+"\n"))
}
