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

	mu     sync.Mutex
	cur    *Client
	closed bool
}

// NewReconnector makes a Reconnector for addr ("" = DefaultAddr()).
func NewReconnector(addr string, opts Options) *Reconnector {
	return &Reconnector{addr: addr, opts: opts, MinBackoff: 50 * time.Millisecond, MaxBackoff: 5 * time.Second}
}

// Client returns the live client, dialling until it succeeds or ctx ends.
func (r *Reconnector) Client(ctx context.Context) (*Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pause := r.MinBackoff
	for {
		if r.closed {
			return nil, &ConnError{Err: ErrClosed}
		}
		if r.cur != nil && !r.cur.c.isClosed() {
			return r.cur, nil
		}
		c, err := DialWith(ctx, r.addr, r.opts)
		if err == nil {
			r.cur = c
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		if pause *= 2; pause > r.MaxBackoff {
			pause = r.MaxBackoff
		}
	}
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
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
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

// Close closes the current client and makes later calls fail.
func (r *Reconnector) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.cur != nil {
		return r.cur.Close()
	}
	return nil
}
