package beuss

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Reconnector hands out a live Client, dialling a new one (with backoff) once
// the last one has ended.
//
// What a reconnect means: requests in flight on the broken connection have an
// unknown outcome (a PUT may have been stored, protocol.md 2.8), and every
// message leased on it was returned by the server, so settling one of them
// answers SettleStale; it never acknowledges another delivery, because a
// lease pair is never given out twice. The Reconnector replays nothing on its
// own; Do re-runs a function only because its caller asked for that
// (at-least-once: the function may run twice).
type Reconnector struct {
	addr string
	opts Options

	// MinBackoff and MaxBackoff bound the pause between failed dials
	// (defaults 50 ms and 5 s); set them before first use.
	MinBackoff, MaxBackoff time.Duration

	// dialMu makes one caller dial at a time; mu guards the fields below
	// and is never held across a dial, so Close does not wait for one.
	dialMu sync.Mutex
	mu     sync.Mutex
	cur    *Client
	closed bool
	done   chan struct{} // closed by Close: stops a dial and its backoff
}

// NewReconnector makes a Reconnector for addr ("" = DefaultAddr()).
func NewReconnector(addr string, opts Options) *Reconnector {
	return &Reconnector{addr: addr, opts: opts, MinBackoff: 50 * time.Millisecond, MaxBackoff: 5 * time.Second}
}

// state is the live client, if any, and the channel Close closes.
func (r *Reconnector) state() (cur *Client, closed bool, done chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		r.done = make(chan struct{})
	}
	return r.cur, r.closed, r.done
}

// Client returns the live client, dialling until it succeeds, ctx ends or
// the Reconnector is closed.
func (r *Reconnector) Client(ctx context.Context) (*Client, error) {
	r.dialMu.Lock()
	defer r.dialMu.Unlock()
	pause := r.MinBackoff
	for {
		cur, closed, done := r.state()
		if closed {
			return nil, &ConnError{Err: ErrClosed}
		}
		if cur != nil && !cur.c.isClosed() {
			return cur, nil
		}
		c, err := r.dial(ctx, done)
		if err == nil {
			r.mu.Lock()
			closed = r.closed
			if !closed {
				r.cur = c
			}
			r.mu.Unlock()
			if closed {
				_ = c.Close()
				return nil, &ConnError{Err: ErrClosed}
			}
			return c, nil
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-done:
			t.Stop()
			return nil, &ConnError{Err: ErrClosed}
		case <-t.C:
		}
		if pause *= 2; pause > r.MaxBackoff {
			pause = r.MaxBackoff
		}
	}
}

// dial is DialWith that Close interrupts.
func (r *Reconnector) dial(ctx context.Context, done chan struct{}) (*Client, error) {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-done:
			cancel()
		case <-stop:
		}
	}()
	c, err := DialWith(dctx, r.addr, r.opts)
	close(stop)
	<-watched
	return c, err
}

// Do runs fn with the live client and runs it again on a new connection each
// time it fails because the connection is gone (a *ConnError, SHUTTING_DOWN,
// TOO_MANY_CONNECTIONS), until it succeeds, fails otherwise, or ctx
// ends. Only use it for work that may be repeated: a PUT whose reply was lost
// may have been stored, and then is stored twice.
func (r *Reconnector) Do(ctx context.Context, fn func(*Client) error) error {
	for {
		c, err := r.Client(ctx)
		if err != nil {
			return err
		}
		err = fn(c)
		if !reconnectable(err) || ctx.Err() != nil {
			return err
		}
		if _, closed, _ := r.state(); closed {
			return err
		}
	}
}

// Consume runs Client.Consume, reconnecting after a connection failure until
// ctx ends. Messages being handled when a connection broke are returned by
// the server and delivered again; their handlers' results are not lost but
// answered SettleStale.
func (r *Reconnector) Consume(ctx context.Context, queue string, opts ConsumerOptions, h Handler) error {
	for {
		c, err := r.Client(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		err = c.Consume(ctx, queue, opts, h)
		if ctx.Err() != nil {
			return nil
		}
		if !reconnectable(err) {
			return err
		}
	}
}

// reconnectable says whether err means the connection is gone through no
// fault of the request: broken, or closed by the server for a reason another
// connection may not have (stopping, full). A fatal error the request caused
// (BAD_SUBJECT, ...) would only happen again.
func reconnectable(err error) bool {
	var ce *ConnError
	return errors.As(err, &ce) || errors.Is(err, ErrShuttingDown) || errors.Is(err, ErrTooManyConnections)
}

// Close closes the current client and makes later calls fail; a Client
// call still dialling gives up.
func (r *Reconnector) Close() error {
	_, _, done := r.state()
	r.mu.Lock()
	cur := r.cur
	if !r.closed {
		r.closed = true
		close(done)
	}
	r.mu.Unlock()
	if cur != nil {
		return cur.Close()
	}
	return nil
}
