package beuss

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors" // used below
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// fakeServer is one scripted connection of a pretend server: it answers the
// HELLO of Dial (version 3), then the test reads requests and writes replies
// by hand, so orders the real server never produces can be checked.
type fakeServer struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

// helloV3 is a version-3 HELLO reply body: 1 MiB messages, every feature.
func helloV3() []byte {
	b := binary.BigEndian.AppendUint16(nil, 3)
	b = binary.BigEndian.AppendUint32(b, 1<<20)
	b = append(b, 4, 'f', 'a', 'k', 'e')
	b = binary.BigEndian.AppendUint32(b, 0x13)
	b = binary.BigEndian.AppendUint32(b, 30000)
	b = binary.BigEndian.AppendUint32(b, 43200000)
	b = binary.BigEndian.AppendUint32(b, 2592000000)
	return binary.BigEndian.AppendUint16(b, 20)
}

// dialFake connects a Client to a fake server and completes its HELLO.
func dialFake(t *testing.T) (*Client, *fakeServer) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- nc
	}()
	type dialed struct {
		c   *Client
		err error
	}
	dc := make(chan dialed, 1)
	go func() {
		c, err := Dial(ctx(t), l.Addr().String())
		dc <- dialed{c, err}
	}()
	nc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	s := &fakeServer{t: t, nc: nc, r: bufio.NewReader(nc)}
	t.Cleanup(func() { _ = nc.Close() })
	if op, _ := s.request(); op != opHello {
		t.Fatalf("first request 0x%02x, want HELLO", op)
	}
	s.reply(stHello, helloV3())
	d := <-dc
	if d.err != nil {
		t.Fatal(d.err)
	}
	t.Cleanup(func() { _ = d.c.Close() })
	return d.c, s
}

// request reads one request frame: its opcode and body.
func (s *fakeServer) request() (byte, []byte) {
	s.t.Helper()
	var hdr [6]byte
	if _, err := io.ReadFull(s.r, hdr[:]); err != nil {
		s.t.Fatalf("reading a request: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:4])-2)
	if _, err := io.ReadFull(s.r, body); err != nil {
		s.t.Fatalf("reading a request body: %v", err)
	}
	return hdr[4], body
}

// frameBytes encodes a response frame.
func frameBytes(status byte, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(1+len(body)))
	return append(append(b, status), body...)
}

func (s *fakeServer) reply(status byte, body []byte) {
	s.t.Helper()
	if _, err := s.nc.Write(frameBytes(status, body)); err != nil {
		s.t.Fatal(err)
	}
}

// errorBody is an ERROR body.
func errorBody(code Code, fatal bool) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	if fatal {
		return append(b, 1, 'x')
	}
	return append(b, 0, 'x')
}

// eventBody is an EVENT of subscription sid on subject "s".
func eventBody(sid uint32, payload string) []byte {
	b := binary.BigEndian.AppendUint32(nil, sid)
	b = binary.BigEndian.AppendUint16(b, 3)
	b = append(b, tagSubject, 1, 's')
	return append(b, payload...)
}

// A reply that is in when the caller's context ends too is the caller's:
// giving up on it would drop what it carries (a GET's messages are gone
// from the server once answered).
func TestReplyWinsOverAnEndedContext(t *testing.T) {
	c, _ := dialFake(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < 200; i++ {
		cl := &call{want: 1, done: make(chan struct{}), frames: []frame{{status: stPong}}}
		close(cl.done)
		if err := c.c.wait(cancelled, cl, time.Hour); err != nil {
			t.Fatalf("round %d: an answered call failed with %v", i, err)
		}
	}
	if c.c.isClosed() {
		t.Fatal("an answered call closed the connection")
	}
}

var _ = errors.Is
var _ = runtime.NumGoroutine
