package beuss

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Event is a message pushed to a subscription (protocol.md 15.6).
type Event struct {
	// Sid is the subscription it matched.
	Sid uint32
	// Subject is the subject it was published to.
	Subject string
	// ReplyTo is the reply address when it came from a Request; 0 otherwise.
	ReplyTo uint64
	// Dropped is how many events of this subscription the server dropped
	// (slow subscriber) since the previous one it delivered.
	Dropped uint32
	// Payload is the message body.
	Payload []byte
}

// Bind binds pattern onto queue: every message published to a matching
// subject gets a copy in queue. created is false if the binding existed.
func (c *Client) Bind(ctx context.Context, pattern, queue string) (created bool, err error) {
	return c.bindOp(ctx, opBind, stBound, pattern, queue)
}

// Unbind removes the binding of pattern onto queue; false if there was none.
func (c *Client) Unbind(ctx context.Context, pattern, queue string) (removed bool, err error) {
	return c.bindOp(ctx, opUnbind, stUnbound, pattern, queue)
}

func (c *Client) bindOp(ctx context.Context, op, want byte, pattern, queue string) (bool, error) {
	if err := c.need(3, FeatureFanout); err != nil {
		return false, err
	}
	if err := checkSubject(pattern); err != nil {
		return false, err
	}
	if err := checkQueue(queue); err != nil {
		return false, err
	}
	f, err := c.do(ctx, encodeBind(nil, op, pattern, queue), 0)
	if err != nil {
		return false, err
	}
	if f.status != want {
		return false, unexpected(f)
	}
	return parseFlag(f.body)
}

// PublishOptions tune a Publish. The zero value publishes at once, priority
// DefaultPriority, without confirmation.
type PublishOptions struct {
	// Delay of the queue copies.
	Delay time.Duration
	// Priority of the queue copies, 0..MaxPriority; nil means DefaultPriority.
	Priority *uint8
	// Confirm > 0 waits until that many copies are acknowledged (or taken by
	// a GET), or until ConfirmTimeout; fewer matching queues than Confirm is
	// ErrTooFewCopies. A confirmed Publish parks the connection (15.5).
	Confirm uint32
	// ConfirmTimeout bounds the wait for confirmations (1 ms .. MaxLease);
	// 0 with Confirm > 0 means 30 s.
	ConfirmTimeout time.Duration
}

// Published is the answer to a Publish (15.4).
type Published struct {
	// Queues is how many queues got a copy.
	Queues uint32
	// Subscribers is how many events were queued to subscriptions.
	Subscribers uint32
	// OriginalLen is the payload length sent.
	OriginalLen uint32
	// StoredLen is the payload length kept (< OriginalLen: cut).
	StoredLen uint32
	// Acked is how many copies were confirmed (with Confirm).
	Acked uint32
	// Failed is how many copies were dead-lettered or purged first.
	Failed uint32
}

// Publish sends payload to subject: a copy into every bound queue whose
// pattern matches, an event to every matching subscription.
func (c *Client) Publish(ctx context.Context, subject string, payload []byte, opts PublishOptions) (Published, error) {
	if err := c.need(3, FeatureFanout); err != nil {
		return Published{}, err
	}
	if err := checkSubject(subject); err != nil {
		return Published{}, err
	}
	prio := uint8(DefaultPriority)
	if opts.Priority != nil {
		prio = *opts.Priority
	}
	if err := checkPriority(prio); err != nil {
		return Published{}, err
	}
	if err := c.checkMax(opts.Delay, c.info.MaxDelay, "delay"); err != nil {
		return Published{}, err
	}
	var timeout time.Duration
	if opts.Confirm > 0 {
		timeout = opts.ConfirmTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		if err := c.checkMax(timeout, c.info.MaxLease, "confirm timeout"); err != nil {
			return Published{}, err
		}
	}
	if err := checkStreamed("PUB", 2+1+len(subject)+13, len(payload)); err != nil {
		return Published{}, err
	}
	b := encodePub(make([]byte, 0, 22+len(subject)+len(payload)), subject, ms(opts.Delay), prio, opts.Confirm, ms(timeout), payload)
	f, err := c.do(ctx, b, timeout)
	if err != nil {
		return Published{}, err
	}
	if f.status != stPublished {
		return Published{}, unexpected(f)
	}
	return parsePublished(f.body)
}

// Subscription receives the events of one SUB. Read them from C or with
// Next; C is closed when the subscription or its connection ends.
type Subscription struct {
	// Sid is the subscription's id on its connection.
	Sid uint32
	// Pattern is what it subscribed to.
	Pattern string
	// C delivers the events in publish order.
	C <-chan *Event

	ch      chan *Event
	c       *Client
	dropped uint64
}

// Subscribe subscribes the connection to pattern. Events arrive between
// replies; the client's reader routes them to the subscription, so other
// requests on the same Client go on working.
func (c *Client) Subscribe(ctx context.Context, pattern string) (*Subscription, error) {
	if err := c.need(3, FeatureFanout); err != nil {
		return nil, err
	}
	if err := checkSubject(pattern); err != nil {
		return nil, err
	}
	ch := make(chan *Event, c.opts.EventBuffer)
	s := &Subscription{Pattern: pattern, C: ch, ch: ch, c: c}
	cl := &call{want: 1, done: make(chan struct{})}
	cl.hook = func(f frame) {
		// Registered by the reader itself, before it reads the next frame,
		// so the first event cannot overtake its subscription.
		if f.status != stSubscribed {
			return
		}
		if sid, err := parseU32(f.body); err == nil {
			s.Sid = sid
			c.c.pmu.Lock()
			if c.c.err == nil {
				c.c.subs[sid] = s
			} else {
				close(s.ch) // the connection ended first: nothing will come
			}
			c.c.pmu.Unlock()
		}
	}
	if err := c.c.send(cl, encodeSub(nil, pattern)); err != nil {
		return nil, err
	}
	if err := c.c.wait(ctx, cl, c.timeout(0)); err != nil {
		return nil, err
	}
	if f := cl.frames[0]; f.status != stSubscribed {
		return nil, unexpected(f)
	}
	return s, nil
}

// Next returns the next event, waiting until one comes or ctx ends; after
// the subscription ended it returns ErrClosed.
func (s *Subscription) Next(ctx context.Context) (*Event, error) {
	select {
	case ev, ok := <-s.ch:
		if !ok {
			return nil, &ConnError{Err: ErrClosed}
		}
		return ev, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Dropped is how many events the client dropped because C was full.
func (s *Subscription) Dropped() uint64 { return atomic.LoadUint64(&s.dropped) }

// Unsubscribe ends the subscription (UNSUB); C is closed once the server
// confirms, and no event of it comes after.
func (s *Subscription) Unsubscribe(ctx context.Context) (bool, error) {
	c := s.c
	cl := &call{want: 1, done: make(chan struct{})}
	cl.hook = func(f frame) {
		if f.status != stUnsubscribed {
			return
		}
		c.c.pmu.Lock()
		if c.c.subs[s.Sid] == s {
			delete(c.c.subs, s.Sid)
			close(s.ch)
		}
		c.c.pmu.Unlock()
	}
	if err := c.c.send(cl, encodeUnsub(nil, s.Sid)); err != nil {
		return false, err
	}
	if err := c.c.wait(ctx, cl, c.timeout(0)); err != nil {
		return false, err
	}
	f := cl.frames[0]
	if f.status != stUnsubscribed {
		return false, unexpected(f)
	}
	return parseFlag(f.body)
}

// Request sends payload to subject and waits up to timeout (1 ms .. MaxLease)
// for the first reply. No matching queue or subscription is ErrNoResponders;
// no reply in time is ErrNoReply. A Request parks the connection while it
// waits (15.8).
func (c *Client) Request(ctx context.Context, subject string, payload []byte, timeout time.Duration) ([]byte, error) {
	if err := c.need(3, FeatureFanout); err != nil {
		return nil, err
	}
	if err := checkSubject(subject); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, &Error{Code: CodeBadArgument, Text: fmt.Sprintf("request timeout %v must be positive", timeout), Local: true}
	}
	if err := c.checkMax(timeout, c.info.MaxLease, "request timeout"); err != nil {
		return nil, err
	}
	if err := checkStreamed("REQ", 2+1+len(subject)+4, len(payload)); err != nil {
		return nil, err
	}
	f, err := c.do(ctx, encodeReq(make([]byte, 0, 12+len(subject)+len(payload)), subject, ms(timeout), payload), timeout)
	if err != nil {
		return nil, err
	}
	switch f.status {
	case stReply:
		if f.body == nil {
			return []byte{}, nil
		}
		return f.body, nil
	case stEmpty:
		return nil, ErrNoReply
	}
	return nil, unexpected(f)
}

// Reply answers the request with reply address replyTo (Event.ReplyTo or
// Message.ReplyTo). delivered is false when nobody waits on it any more.
func (c *Client) Reply(ctx context.Context, replyTo uint64, payload []byte) (delivered bool, err error) {
	if err := c.need(3, FeatureFanout); err != nil {
		return false, err
	}
	if err := checkStreamed("REPLY", 2+8, len(payload)); err != nil {
		return false, err
	}
	f, err := c.do(ctx, encodeReply(make([]byte, 0, 14+len(payload)), replyTo, payload), 0)
	if err != nil {
		return false, err
	}
	if f.status != stReplied {
		return false, unexpected(f)
	}
	return parseFlag(f.body)
}
