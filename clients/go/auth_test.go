package beuss

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Authentication and the Unix socket (protocol.md 16) against the real server: a
// token file with a read-write and a read-only token, the errors without and with
// a wrong token, and connecting over a Unix socket, directly and through the
// environment (BUNIX, BAUTHFILE).

const (
	rwToken = "go-rw-token-0123456789abcdef"
	roToken = "go-ro-token-fedcba9876543210"
)

func tokenFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("# tokens\n"+rwToken+"\n"+roToken+" ro\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuthTokens(t *testing.T) {
	file := tokenFile(t)
	s := startServer(t, "BAUTHFILE="+file)
	none := s.dial(t)
	if !none.Info().Has(FeatureAuthRequired) {
		t.Fatalf("features %#x", none.Info().Features)
	}
	if err := none.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := none.Put(ctx(t), "q", []byte("x")); !errors.Is(err, ErrAuthRequired) {
		t.Fatalf("put before AUTH: %v", err)
	}
	if _, err := DialWith(ctx(t), s.addr, Options{Token: []byte("not-a-token-of-this-server")}); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("wrong token: %v", err)
	}
	rw, err := DialWith(ctx(t), s.addr, Options{TokenFile: file})
	if err != nil || rw.ReadOnly() {
		t.Fatalf("token file: %v %v", err, rw)
	}
	defer rw.Close()
	if _, err := rw.Put(ctx(t), "q", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	ro, err := DialWith(ctx(t), s.addr, Options{Token: []byte(roToken)})
	if err != nil || !ro.ReadOnly() {
		t.Fatalf("read-only token: %v", err)
	}
	defer ro.Close()
	if _, err := ro.Put(ctx(t), "q", []byte("x")); !errors.Is(err, ErrForbidden) {
		t.Fatalf("read-only put: %v", err)
	}
	if err := ro.Ping(ctx(t)); err != nil {
		t.Fatalf("FORBIDDEN is not fatal: %v", err)
	}
	late := s.dial(t)
	if readOnly, err := late.Auth(ctx(t), []byte(rwToken)); err != nil || readOnly {
		t.Fatalf("Auth: %v %v", readOnly, err)
	}
	if _, err := late.Put(ctx(t), "q", []byte("y")); err != nil {
		t.Fatal(err)
	}
}

func TestUnixSocketAndEnvironment(t *testing.T) {
	file := tokenFile(t)
	sock := filepath.Join(t.TempDir(), "beuss.sock")
	startServer(t, "BUNIX="+sock, "BPORT=off", "BAUTHFILE="+file)
	c, err := DialWith(ctx(t), UnixPrefix+sock, Options{Token: []byte(rwToken)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(ctx(t), "env", []byte("over the socket")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BUNIX", sock)
	t.Setenv("BAUTHFILE", file)
	t.Setenv("BPORT", "1") // BUNIX wins
	e, err := Dial(ctx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	msgs, err := e.Get(ctx(t), "env", 0, 1)
	if err != nil || len(msgs) != 1 || string(msgs[0]) != "over the socket" {
		t.Fatalf("%v %v", msgs, err)
	}
}
