package beuss

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// call is one entry of the FIFO of requests in flight: want replies are
// matched to it in order (a batch of pipelined requests is one call, so it
// costs one allocation and one wake-up however many frames it carries).
type call struct {
	want   int
	frames []frame
	err    error
	// done is closed once every frame is in or the connection failed; nil for
	// fire-and-forget calls.
	done chan struct{}
	// hook runs in the reader goroutine for each frame, before the next frame
	// is read: a SUB registers its subscription there, so no EVENT of it can
	// arrive before it is known.
	hook func(f frame)
}

// conn is the pipelining core: writers append frames under wmu (enqueueing
// their call in the same critical section, so FIFO order is write order), and
// one reader goroutine matches replies to calls and routes EVENTs.
type conn struct {
	nc net.Conn

	wmu     sync.Mutex
	bw      *bufio.Writer
	writers int32 // goroutines about to write: the last one flushes (batching for free)

	pmu     sync.Mutex
	pending []*call
	head    int
	err     error // why the connection ended; nil while open
	subs    map[uint32]*Subscription

	closed   chan struct{}
	maxFrame uint32
}

func newConn(nc net.Conn) *conn {
	c := &conn{
		nc:       nc,
		bw:       bufio.NewWriterSize(nc, 64<<10),
		subs:     map[uint32]*Subscription{},
		closed:   make(chan struct{}),
		maxFrame: 64 << 20,
	}
	go c.readLoop(bufio.NewReaderSize(nc, 64<<10))
	return c
}

// send enqueues cl and writes b, the encoded request(s) it waits for.
func (c *conn) send(cl *call, b []byte) error {
	return c.sendStream(cl, b, nil, 0)
}

// sendStream is send followed by exactly n bytes of r (a streamed payload),
// written while the write lock is held so that no other frame interleaves.
func (c *conn) sendStream(cl *call, b []byte, r io.Reader, n int64) error {
	atomic.AddInt32(&c.writers, 1)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.pmu.Lock()
	if c.err != nil {
		err := c.err
		c.pmu.Unlock()
		atomic.AddInt32(&c.writers, -1)
		return &ConnError{Err: err}
	}
	c.pending = append(c.pending, cl)
	c.pmu.Unlock()
	_, err := c.bw.Write(b)
	if err == nil && r != nil {
		rr := &recordingReader{r: r}
		var got int64
		got, err = io.CopyN(c.bw, rr, n)
		if err != nil && got < n {
			// The frame cannot be completed: nothing but closing tells the
			// server, which then stores nothing (protocol.md 2.8).
			if rr.err == io.EOF {
				err = io.ErrUnexpectedEOF
			} else if rr.err == nil {
				// The socket failed, not the reader.
				err = &ConnError{Err: err}
			}
			c.fail(err)
			atomic.AddInt32(&c.writers, -1)
			return err
		}
	}
	if atomic.AddInt32(&c.writers, -1) == 0 && err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		// Let the reader take what the server sent before it closed (a fatal
		// error says why, protocol.md 2.8); it fails everything at EOF.
		if tc, ok := c.nc.(*net.TCPConn); ok && tc.CloseWrite() == nil {
			return nil
		}
		c.fail(err)
	}
	return nil
}

// watchedWrite is the frame size from which a send watches its context: a
// write that big can block on a server that reads slowly, and only closing
// the connection unblocks it.
const watchedWrite = 64 << 10

// sendCtx is sendStream that gives up when ctx ends: before anything is
// sent it just returns ctx's error; while a big frame or a streamed payload is
// being written it closes the connection (the frame is then half-written, and
// the connection unusable anyway).
func (c *conn) sendCtx(ctx context.Context, cl *call, b []byte, r io.Reader, n int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() == nil || (r == nil && len(b) < watchedWrite) {
		return c.sendStream(cl, b, r, n)
	}
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-ctx.Done():
			c.fail(ctx.Err())
		case <-stop:
		}
	}()
	err := c.sendStream(cl, b, r, n)
	close(stop)
	<-watched
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// recordingReader keeps the error of the reader it wraps, so that a failed
// copy can tell the payload's reader from the socket.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil {
		r.err = err
	}
	return n, err
}

// wait blocks until cl is answered, ctx ends or timeout passes (0 = none).
// Abandoning a request closes the connection: the protocol cannot cancel one,
// and its late reply would be matched to the wrong caller otherwise.
func (c *conn) wait(ctx context.Context, cl *call, timeout time.Duration) error {
	if timeout <= 0 && ctx.Done() == nil {
		<-cl.done
		return cl.err
	}
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-cl.done:
		return cl.err
	case <-ctx.Done():
		if c.abandon(cl, ctx.Err()) {
			return nil
		}
		// A *ConnError, as for every caller the close failed: the request
		// was sent, so its outcome is unknown (a PUT may have been stored).
		return &ConnError{Err: ctx.Err()}
	case <-tc:
		if c.abandon(cl, ErrTimeout) {
			return nil
		}
		return &ConnError{Err: ErrTimeout}
	}
}

// abandon closes the connection for a call given up on, unless its reply
// came in the meantime: then it reports true and the caller takes the reply,
// since select picks at random among ready cases and a GET's messages are
// gone from the server once answered.
func (c *conn) abandon(cl *call, why error) bool {
	select {
	case <-cl.done:
		return cl.err == nil
	default:
		c.fail(why)
		// Now cl is done either way, soon: fail finished it, or the reader
		// matched its reply between the check above and fail.
		<-cl.done
		return cl.err == nil
	}
}

// roundTrip sends one request and returns its reply frame.
func (c *conn) roundTrip(ctx context.Context, b []byte, timeout time.Duration) (frame, error) {
	cl := &call{want: 1, done: make(chan struct{})}
	if err := c.sendCtx(ctx, cl, b, nil, 0); err != nil {
		return frame{}, err
	}
	if err := c.wait(ctx, cl, timeout); err != nil {
		return frame{}, err
	}
	return cl.frames[0], nil
}

func (c *conn) readLoop(r *bufio.Reader) {
	for {
		f, err := readFrame(r, atomic.LoadUint32(&c.maxFrame))
		if err != nil {
			if err == io.EOF {
				err = ErrClosed
			}
			c.fail(err)
			return
		}
		if f.status == stEvent {
			// Not a reply: it takes no place in the FIFO (protocol.md 15.6).
			if !c.routeEvent(f) {
				return
			}
			continue
		}
		var fatal *Error
		if f.status == stError {
			if e := parseError(f.body); e.Fatal {
				fatal = e
			}
		}
		c.pmu.Lock()
		if c.head == len(c.pending) {
			c.pmu.Unlock()
			// Only a fatal error comes unprompted (2.8); anything else is
			// a broken peer.
			if fatal != nil {
				c.fail(fatal)
			} else {
				c.fail(unexpected(f))
			}
			return
		}
		cl := c.pending[c.head]
		cl.frames = append(cl.frames, f)
		complete := len(cl.frames) == cl.want
		if complete {
			c.pending[c.head] = nil
			c.head++
			if c.head == len(c.pending) {
				c.pending, c.head = c.pending[:0], 0
			}
		}
		c.pmu.Unlock()
		if cl.hook != nil {
			cl.hook(f)
		}
		if complete && cl.done != nil {
			close(cl.done)
		}
		if fatal != nil {
			// The frame answered the oldest request; every later one was
			// not carried out (2.7).
			c.fail(fatal)
			return
		}
	}
}

// routeEvent hands an EVENT to its subscription; false if the frame is broken
// (the connection is then failed).
func (c *conn) routeEvent(f frame) bool {
	ev, err := parseEvent(f.body)
	if err != nil {
		c.fail(err)
		return false
	}
	c.pmu.Lock()
	if s := c.subs[ev.Sid]; s != nil {
		select {
		case s.ch <- ev:
		default:
			// Blocking here would stall every reply of the connection, so a
			// subscriber that does not keep up loses events, counted, as
			// the server does for a slow reader (15.6).
			atomic.AddUint64(&s.dropped, 1)
		}
	}
	c.pmu.Unlock()
	return true
}

// fail ends the connection once: every call still in flight fails with err,
// every subscription's channel is closed.
func (c *conn) fail(err error) {
	c.pmu.Lock()
	if c.err != nil {
		c.pmu.Unlock()
		return
	}
	c.err = err
	calls := c.pending[c.head:]
	c.pending, c.head = nil, 0
	for sid, s := range c.subs {
		close(s.ch)
		delete(c.subs, sid)
	}
	c.pmu.Unlock()
	close(c.closed)
	_ = c.nc.Close()
	for _, cl := range calls {
		cl.err = &ConnError{Err: err}
		if cl.done != nil {
			close(cl.done)
		}
	}
}

// isClosed reports whether the connection has ended.
func (c *conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}
