package beuss

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testTimeout bounds every wait of a test, so a hang fails instead of blocking.
const testTimeout = 10 * time.Second

// testServer is a real beuss-server child on a free loopback port.
type testServer struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	logs []string
}

// serverPath is $BEUSS_SERVER, else the repository's debug build.
func serverPath(t *testing.T) string {
	if p := os.Getenv("BEUSS_SERVER"); p != "" {
		return p
	}
	p, err := filepath.Abs(filepath.Join("..", "..", "target", "debug", "beuss-server"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no server binary at %s: build it (cargo build --bin beuss-server) or set BEUSS_SERVER", p)
	}
	return p
}

// startServer starts a server with env ("BMAXMEMORY=64K", ...) on top of a
// clean environment, and reads its address from the "listening on" line.
func startServer(t *testing.T, env ...string) *testServer {
	t.Helper()
	cmd := exec.Command(serverPath(t))
	cmd.Env = append([]string{"BHOST=127.0.0.1", "BPORT=0", "RUST_LOG=info", "PATH=" + os.Getenv("PATH")}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &testServer{cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		// Keep draining stderr for the life of the server, so it never
		// blocks on a full pipe.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs = append(s.logs, line)
			s.mu.Unlock()
			if i := strings.Index(line, "listening on "); i >= 0 {
				f := strings.Fields(line[i+len("listening on "):])
				if len(f) > 0 {
					select {
					case addr <- strings.TrimRight(f[0], ","):
					default:
					}
				}
			}
		}
	}()
	select {
	case s.addr = <-addr:
	case <-time.After(testTimeout):
		s.mu.Lock()
		defer s.mu.Unlock()
		t.Fatalf("server did not say where it listens; logs: %v", s.logs)
	}
	return s
}

// stop sends SIGTERM (graceful shutdown).
func (s *testServer) stop(t *testing.T) {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// freePort is a loopback port nobody listens on at the moment.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// dial connects a client that the test closes at its end.
func (s *testServer) dial(t *testing.T) *Client {
	t.Helper()
	c, err := Dial(ctx(t), s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ctx is a context that ends with the test or after testTimeout.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return c
}
