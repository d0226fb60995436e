package beuss

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
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
	return dialFakeHello(t, helloV3())
}

// dialFakeHello is dialFake with the HELLO reply body given.
func dialFakeHello(t *testing.T, hello []byte) (*Client, *fakeServer) {
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
	if op, body := s.request(); op != opHello || binary.BigEndian.Uint16(body) != ProtocolVersion {
		t.Fatalf("first request 0x%02x %x, want HELLO %d", op, body, ProtocolVersion)
	}
	s.reply(stHello, hello)
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

// refusedAndUnsent checks that every call in calls failed with ErrUnsupported
// and that none of them sent anything: the next request the fake server s
// reads is the PING sent here. what names the refused calls in the failure.
func refusedAndUnsent(t *testing.T, c *Client, s *fakeServer, what string, calls map[string]error) {
	t.Helper()
	for name, err := range calls {
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("version %d features %#x: %s: %v", c.Info().Version, c.Info().Features, name, err)
		}
	}
	// Nothing went out before this PING.
	done := make(chan error, 1)
	go func() { done <- c.Ping(ctx(t)) }()
	if op, _ := s.request(); op != opPing {
		t.Fatalf("a refused %s sent opcode 0x%02x", what, op)
	}
	s.reply(stPong, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// refusedPipelinePut queues a PUT with opts in a new pipeline of c, checks
// that it was refused before being queued, and returns its error.
func refusedPipelinePut(t *testing.T, c *Client, opts ...PutOption) error {
	t.Helper()
	p := c.Pipeline()
	pend := p.Put("q", []byte("x"), opts...)
	if p.Len() != 0 {
		t.Fatal("a refused PUT was queued in the pipeline")
	}
	_, err := pend.Result()
	return err
}

// putResult is what one Put returned.
type putResult struct {
	r   PutResult
	err error
}

// asyncPut gives put, which starts a Put on c to queue "q" in a goroutine so
// that a fake server can read it and reply, and got, where its result comes.
func asyncPut(t *testing.T, c *Client) (put func(payload string, opts ...PutOption), got chan putResult) {
	got = make(chan putResult, 1)
	put = func(payload string, opts ...PutOption) {
		go func() {
			r, err := c.Put(ctx(t), "q", []byte(payload), opts...)
			got <- putResult{r, err}
		}()
	}
	return put, got
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

// Replies written one byte at a time, with EVENTs, a TRUNCATED reply and a
// fatal ERROR among them, each reach the right caller, in order; the calls
// behind the fatal error fail, none hangs.
func TestPipelinedRepliesSplitAtEveryByte(t *testing.T) {
	c, s := dialFake(t)
	subDone := make(chan *Subscription, 1)
	go func() {
		sub, err := c.Subscribe(ctx(t), "s")
		if err != nil {
			t.Error(err)
		}
		subDone <- sub
	}()
	if op, _ := s.request(); op != opSub {
		t.Fatalf("want SUB, got 0x%02x", op)
	}
	var out []byte
	out = append(out, frameBytes(stSubscribed, []byte{0, 0, 0, 7})...)
	out = append(out, frameBytes(stEvent, eventBody(7, "early"))...)
	for _, b := range out {
		if _, err := s.nc.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	sub := <-subDone
	if ev, err := sub.Next(ctx(t)); err != nil || string(ev.Payload) != "early" {
		t.Fatalf("%v %v", ev, err)
	}

	p := c.Pipeline()
	put := p.Put("q", []byte("0123456789"))
	get := p.Get("q", 0, 1)
	put2 := p.Put("q", []byte("x"))
	put3 := p.Put("q", []byte("y"))
	execErr := make(chan error, 1)
	go func() { execErr <- p.Exec(ctx(t)) }()
	for i := 0; i < 4; i++ {
		s.request()
	}
	out = out[:0]
	out = append(out, frameBytes(stEvent, eventBody(7, "a"))...)
	out = append(out, frameBytes(stTruncated, []byte{0, 0, 0, 10, 0, 0, 0, 4})...)
	out = append(out, frameBytes(stEvent, eventBody(7, "b"))...)
	out = append(out, frameBytes(stMessages, []byte{0, 0, 0, 1, 0, 0, 0, 4, '0', '1', '2', '3'})...)
	out = append(out, frameBytes(stError, errorBody(CodeBadQueueName, true))...)
	for _, b := range out {
		if _, err := s.nc.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	err := <-execErr
	if !errors.Is(err, ErrBadQueueName) {
		t.Fatalf("Exec: %v", err)
	}
	if r, err := put.Result(); err != nil || !r.Truncated || r.OriginalLen != 10 || r.StoredLen != 4 {
		t.Fatalf("put: %+v %v", r, err)
	}
	if m, err := get.Result(); err != nil || len(m) != 1 || string(m[0]) != "0123" {
		t.Fatalf("get: %q %v", m, err)
	}
	if _, err := put2.Result(); !errors.Is(err, ErrBadQueueName) {
		t.Fatalf("put2 is answered by the fatal error: %v", err)
	}
	var ce *ConnError
	if _, err := put3.Result(); !errors.As(err, &ce) || !errors.Is(err, ErrBadQueueName) {
		t.Fatalf("put3 was not carried out: %v", err)
	}
	for _, want := range []string{"a", "b"} {
		if ev, err := sub.Next(ctx(t)); err != nil || string(ev.Payload) != want {
			t.Fatalf("event %q: %v %v", want, ev, err)
		}
	}
	if _, err := sub.Next(ctx(t)); err == nil {
		t.Fatal("the subscription outlived its connection")
	}
	if err := c.Ping(ctx(t)); !errors.As(err, &ce) {
		t.Fatalf("a dead client must say so: %v", err)
	}
}

// Cancelling one of many pipelined callers closes the connection: every
// other caller gets an error, none hangs, none gets another's reply.
func TestCancelFailsEveryPendingCaller(t *testing.T) {
	c, s := dialFake(t)
	const n = 8
	errs := make(chan error, n)
	cctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := c.Get(cctx, "q", Forever, 1)
		errs <- err
	}()
	s.request()
	for i := 1; i < n; i++ {
		go func() { errs <- c.Ping(ctx(t)) }()
		s.request()
	}
	cancel()
	var ce *ConnError
	cancelled := 0
	for i := 0; i < n; i++ {
		err := <-errs
		if !errors.As(err, &ce) {
			t.Fatalf("every request sent has an unknown outcome, a *ConnError: %v", err)
		}
		if errors.Is(err, context.Canceled) {
			cancelled++
		}
	}
	if cancelled != n {
		t.Fatalf("%d of %d errors name the cancel as the cause", cancelled, n)
	}
	<-c.Done()
}

// After Close every goroutine of the client has ended.
func TestNoGoroutineLeftAfterClose(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		c, s := dialFake(t)
		go func() {
			_, _ = c.Subscribe(context.Background(), "s")
		}()
		s.request()
		s.reply(stSubscribed, []byte{0, 0, 0, 1})
		_ = c.Close()
		_ = s.nc.Close()
	}
	waitGoroutines(t, before)
}

// waitGoroutines waits (bounded) until no more goroutines run than before:
// the ones that end with a closed client may take a moment to return.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0
	}
	return len(p), nil
}

// A PutReader stuck writing to a server that reads nothing more still ends
// with its context, closing the connection (the frame is half-written).
func TestPutReaderHonoursContextWhileStreaming(t *testing.T) {
	for _, streamed := range []bool{true, false} {
		putHonoursContext(t, streamed)
	}
}

func putHonoursContext(t *testing.T, streamed bool) {
	c, s := dialFake(t)
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		var err error
		if streamed {
			_, err = c.PutReader(cctx, "q", zeros{}, 1<<30)
		} else {
			_, err = c.Put(cctx, "q", make([]byte, 32<<20))
		}
		done <- err
	}()
	// The PUT has started; the server now stops reading, so the socket
	// buffers fill and the client's write blocks.
	var hdr [6]byte
	if _, err := io.ReadFull(s.r, hdr[:]); err != nil || hdr[4] != opPut {
		t.Fatalf("%v %x", err, hdr)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want the context's error, got %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatalf("a PUT (streamed %v) ignored its context while writing", streamed)
	}
	<-c.Done()
}

// errReader fails after n bytes.
type errReader struct{ n int }

var errDisk = errors.New("disk on fire")

func (r *errReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errDisk
	}
	if len(p) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = 'a'
	}
	r.n -= len(p)
	return len(p), nil
}

// oneByte returns one byte per Read (short reads are fine).
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:1]) }

// Short reads make a whole frame; a reader failing midway leaves the frame
// half-written, so the connection is closed and the reader's error returned.
func TestPutReaderShortReadsAndFailures(t *testing.T) {
	c, s := dialFake(t)
	done := make(chan error, 1)
	go func() {
		r, err := c.PutReader(ctx(t), "q", oneByte{io.LimitReader(zeros{}, 1000)}, 1000)
		if err == nil && r.StoredLen != 1000 {
			err = errors.New("wrong length")
		}
		done <- err
	}()
	op, body := s.request()
	if op != opPut || len(body) != 1+1+5+1000 {
		t.Fatalf("0x%02x %d", op, len(body))
	}
	s.reply(stStored, make([]byte, 8))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := c.PutReader(ctx(t), "q", &errReader{n: 100 << 10}, 1<<20)
		done <- err
	}()
	if _, err := io.Copy(io.Discard, s.r); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, errDisk) {
		t.Fatalf("want the reader's error, got %v", err)
	}
	<-c.Done()
}

// Close ends a Reconnector that is still dialling a server that is down:
// neither Close nor the dialling Client call hangs.
func TestReconnectorCloseWhileDialling(t *testing.T) {
	// A server that hangs up on every connection: each dial fails its HELLO.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			_ = nc.Close()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	r := NewReconnector(l.Addr().String(), Options{})
	r.MinBackoff, r.MaxBackoff = time.Millisecond, time.Millisecond
	got := make(chan error, 1)
	go func() {
		_, err := r.Client(context.Background())
		got <- err
	}()
	<-accepted // Client is dialling now
	closed := make(chan struct{})
	go func() {
		_ = r.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(testTimeout):
		t.Fatal("Close hung behind a dialling Client")
	}
	select {
	case err := <-got:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("want ErrClosed, got %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Client went on dialling after Close")
	}
}

// A lease shorter than the server's millisecond still runs the handler (the
// touch period is at least half a millisecond, never a zero ticker).
func TestConsumerTinyLease(t *testing.T) {
	s := startServer(t)
	prod, cons := s.dial(t), s.dial(t)
	if _, err := prod.Put(ctx(t), "tiny", []byte("x")); err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{}, 1)
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cons.Consume(cctx, "tiny", ConsumerOptions{Lease: time.Nanosecond, Wait: 10 * time.Millisecond}, func(context.Context, *Message) error {
			select {
			case ran <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	<-ran
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Settles behind a parked LEASE are carried out at once; once 256 KiB of
// their replies wait, the LEASE is answered EMPTY (protocol.md 13.7) and
// every reply still reaches its caller, in order.
func TestSettleRepliesEndAParkedLease(t *testing.T) {
	s := startServer(t)
	c, other := s.dial(t), s.dial(t)
	leased := make(chan error, 1)
	go func() {
		ms, err := c.Lease(ctx(t), "parked", LeaseOptions{Wait: Forever})
		if err == nil && ms != nil {
			err = fmt.Errorf("leased %d messages of an empty queue", len(ms))
		}
		leased <- err
	}()
	waitFor(t, other, func(st *Stats) bool { return st.Server["waiters"] == 1 })
	refs := make([]LeaseRef, 70*MaxSettlePairs) // ~287 KiB of replies
	for i := range refs {
		refs[i] = LeaseRef{ID: uint64(i + 1), Attempt: 1}
	}
	rs, err := c.Ack(ctx(t), "parked", refs...)
	if err != nil || len(rs) != len(refs) {
		t.Fatalf("%d results, %v", len(rs), err)
	}
	for _, r := range rs {
		if r != SettleNotFound {
			t.Fatalf("result %v", r)
		}
	}
	if err := <-leased; err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

// STATS of many queues may pass the cap on reply lengths (which is sized
// from max_message_size): it is still read, not taken for a broken peer.
func TestStatsLargerThanTheFrameCap(t *testing.T) {
	c, s := dialFake(t)
	atomic.StoreUint32(&c.c.maxFrame, 4096)
	// The reader took the old cap for the frame it waits for: let one pass.
	pinged := make(chan error, 1)
	go func() { pinged <- c.Ping(ctx(t)) }()
	s.request()
	s.reply(stPong, nil)
	if err := <-pinged; err != nil {
		t.Fatal(err)
	}
	const queues = 4000 // 60 figures each: about 3.4 MB, over the cap and over 1 MiB
	body := binary.BigEndian.AppendUint16(nil, 0)
	body = binary.BigEndian.AppendUint32(body, queues)
	for q := 0; q < queues; q++ {
		name := fmt.Sprintf("q%04d", q)
		body = append(body, byte(len(name)))
		body = append(body, name...)
		body = binary.BigEndian.AppendUint16(body, 60)
		for f := 0; f < 60; f++ {
			body = append(body, 5, 'f', 'i', 'g', byte('0'+f/10), byte('0'+f%10))
			body = binary.BigEndian.AppendUint64(body, uint64(q))
		}
	}
	got := make(chan error, 1)
	go func() {
		st, err := c.Stats(ctx(t))
		if err == nil && (len(st.Queues) != queues || st.Queues["q3999"]["fig59"] != 3999) {
			err = fmt.Errorf("%d queues", len(st.Queues))
		}
		got <- err
	}()
	s.request()
	s.reply(stStats, body)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if len(body) <= 1<<20 {
		t.Fatalf("the test needs a STATS reply over 1 MiB, it has %d bytes", len(body))
	}
}

// A handler that panics does not bring the consumer down: its message is
// NACKed with the backoff (a charged attempt) and delivered again, and the
// panic is reported to OnError.
func TestConsumerHandlerPanic(t *testing.T) {
	s := startServer(t)
	prod, cons := s.dial(t), s.dial(t)
	if _, err := prod.Put(ctx(t), "panics", []byte("x")); err != nil {
		t.Fatal(err)
	}
	attempts := make(chan uint32, 4)
	reported := make(chan error, 4)
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cons.Consume(cctx, "panics", ConsumerOptions{
			Wait:    10 * time.Millisecond,
			Backoff: func(uint32) time.Duration { return 0 },
			OnError: func(_ *Message, err error) { reported <- err },
		}, func(_ context.Context, m *Message) error {
			attempts <- m.Attempt
			if m.Attempt == 1 {
				panic("boom")
			}
			return nil
		})
	}()
	if a, b := <-attempts, <-attempts; a != 1 || b != 2 {
		t.Fatalf("attempts %d, %d", a, b)
	}
	if err := <-reported; err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("OnError heard %v", err)
	}
	waitFor(t, prod, func(st *Stats) bool { return st.Server["acks"] == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, _, _ := prod.QueueStats(ctx(t), "panics")
	if st["nacks"] != 1 || st["messages"] != 0 {
		t.Fatalf("%v", st)
	}
}

// OnError may use the consumer's own Client: it never runs on the reader
// goroutine, which would then wait for its own reply.
func TestConsumerOnErrorMayUseTheClient(t *testing.T) {
	s := startServer(t)
	prod, cons := s.dial(t), s.dial(t)
	if _, err := prod.Put(ctx(t), "onerr", []byte("x")); err != nil {
		t.Fatal(err)
	}
	pinged := make(chan error, 1)
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- cons.Consume(cctx, "onerr", ConsumerOptions{
			Wait:    10 * time.Millisecond,
			OnError: func(_ *Message, err error) { pinged <- cons.Ping(ctx(t)) },
		}, func(_ context.Context, m *Message) error {
			// Settled elsewhere first, so the consumer's own ACK finds
			// nothing and is reported.
			_, err := prod.Ack(ctx(t), m.Queue, m.Ref())
			return err
		})
	}()
	select {
	case err := <-pinged:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("OnError could not use the client: it ran on the reader goroutine")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Payloads at and just over the default max_message_size (1 MiB): the first
// is kept whole, the second cut to 1 MiB and reported TRUNCATED; both come
// back whole through GET, one per reply (the 1 MiB batch rule).
func TestPayloadsAroundTheMessageSizeLimit(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	limit := int(c.Info().MaxMessageSize)
	exact := bytes.Repeat([]byte{'e'}, limit)
	over := bytes.Repeat([]byte{'o'}, limit+1)
	rs, err := c.PutMany(ctx(t), "edge", [][]byte{exact, over})
	if err != nil || rs[0].Truncated || !rs[1].Truncated || rs[1].OriginalLen != limit+1 || rs[1].StoredLen != limit {
		t.Fatalf("%+v %v", rs, err)
	}
	for i, want := range [][]byte{exact, over[:limit]} {
		m, err := c.Get(ctx(t), "edge", 0, 2)
		if err != nil || len(m) != 1 || !bytes.Equal(m[0], want) {
			t.Fatalf("GET %d: %d messages, %v", i, len(m), err)
		}
	}
}

// PutMany cut off by a broken connection still says which PUTs were stored.
func TestPutManyKeepsResultsBeforeAFailure(t *testing.T) {
	c, s := dialFake(t)
	type result struct {
		rs  []PutResult
		err error
	}
	got := make(chan result, 1)
	go func() {
		rs, err := c.PutMany(ctx(t), "q", [][]byte{[]byte("a"), []byte("b"), []byte("c")})
		got <- result{rs, err}
	}()
	for i := 0; i < 3; i++ {
		s.request()
	}
	s.reply(stStored, []byte{0, 0, 0, 0, 0, 0, 0, 42})
	_ = s.nc.Close()
	r := <-got
	var ce *ConnError
	if !errors.As(r.err, &ce) {
		t.Fatalf("want a *ConnError, got %v", r.err)
	}
	if len(r.rs) != 3 || r.rs[0].ID != 42 || r.rs[1].ID != 0 {
		t.Fatalf("results %+v", r.rs)
	}
}

// Against a server that answers HELLO with version 1, the client uses only
// version-1 requests: plain PUTs (no flag, no id), and no LEASE or SUB at all.
func TestHelloNegotiatesVersion1(t *testing.T) {
	c, s := dialFakeHello(t, []byte{0, 1, 0, 0, 4, 0, 5, 'o', 'l', 'd', 'e', 'r'})
	if c.Info().Version != 1 || c.Info().MaxMessageSize != 1024 || c.Info().Features != 0 {
		t.Fatalf("%+v", c.Info())
	}
	if _, err := c.Lease(ctx(t), "q", LeaseOptions{}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("LEASE: %v", err)
	}
	if _, err := c.Subscribe(ctx(t), "s"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("SUB: %v", err)
	}
	if _, err := c.Put(ctx(t), "q", []byte("x"), WithPriority(1)); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("PUT with a priority: %v", err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := c.Put(ctx(t), "q", []byte("x"))
		if err == nil && r.ID != 0 {
			err = fmt.Errorf("id %d from a version-1 STORED", r.ID)
		}
		got <- err
	}()
	var hdr [6]byte
	if _, err := io.ReadFull(s.r, hdr[:]); err != nil || hdr[4] != opPut || hdr[5] != 0 {
		t.Fatalf("%v %x: a version-1 PUT has no flags", err, hdr)
	}
	if _, err := io.ReadFull(s.r, make([]byte, binary.BigEndian.Uint32(hdr[:4])-2)); err != nil {
		t.Fatal(err)
	}
	s.reply(stStored, nil)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// Consume, Subscribe and a parked GET leave no goroutine behind once their
// clients are closed.
func TestNoGoroutineLeftAfterConsume(t *testing.T) {
	s := startServer(t)
	prod := s.dial(t)
	if _, err := prod.PutMany(ctx(t), "leak", [][]byte{[]byte("a"), []byte("b"), []byte("c")}); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	cons, err := Dial(ctx(t), s.addr)
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{}, 3)
	done := make(chan error, 1)
	go func() {
		done <- cons.Consume(context.Background(), "leak", ConsumerOptions{Concurrency: 3, Lease: 200 * time.Millisecond, Wait: 10 * time.Millisecond},
			func(hctx context.Context, m *Message) error {
				select {
				case handled <- struct{}{}:
				default: // a redelivery, should a slow run let a lease expire
				}
				return nil
			})
	}()
	for i := 0; i < 3; i++ {
		<-handled
	}
	sub, err := Dial(ctx(t), s.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(ctx(t), "x.>"); err != nil {
		t.Fatal(err)
	}
	parked := make(chan error, 1)
	go func() {
		_, err := sub.Get(context.Background(), "nothing", Forever, 1)
		parked <- err
	}()
	waitFor(t, prod, func(st *Stats) bool { return st.Server["waiters"] == 1 })
	_ = cons.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = sub.Close()
	<-parked
	waitGoroutines(t, before)
}

// Consume on a closed Client fails at once, without joining the consumers
// Close waited for.
func TestConsumeAfterClose(t *testing.T) {
	c, _ := dialFake(t)
	_ = c.Close()
	err := c.Consume(ctx(t), "q", ConsumerOptions{}, func(context.Context, *Message) error { return nil })
	var ce *ConnError
	if !errors.As(err, &ce) {
		t.Fatalf("want a *ConnError, got %v", err)
	}
}
