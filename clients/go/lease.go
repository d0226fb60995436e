package beuss

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"
)

// LeaseRef names one lease: a message id and the attempt it was leased under
// (protocol.md 13.2). A pair is never given out twice, so settling with it can
// never touch another delivery of the same message.
type LeaseRef struct {
	// ID is the message id.
	ID uint64
	// Attempt is the lease's attempt number.
	Attempt uint32
}

// SettleResult is the server's answer for one pair of an ACK, NACK or TOUCH.
type SettleResult uint8

// Settle results (protocol.md 13.6), plus AlreadySettled, which this client
// answers without asking the server when a Message is settled a second time.
const (
	// SettleOK: done.
	SettleOK SettleResult = 0
	// SettleStale: the lease ended (expired, NACKed, lost with its
	// connection); the current holder, if any, keeps the message.
	SettleStale SettleResult = 1
	// SettleNotFound: the message is gone (acknowledged, purged, dead-lettered).
	SettleNotFound SettleResult = 2
	// AlreadySettled: this Message was acknowledged or NACKed before; nothing
	// was sent.
	AlreadySettled SettleResult = 0xFF
)

// OK reports whether the server carried the settle out.
func (r SettleResult) OK() bool { return r == SettleOK }

// String names the result.
func (r SettleResult) String() string {
	switch r {
	case SettleOK:
		return "OK"
	case SettleStale:
		return "STALE"
	case SettleNotFound:
		return "NOT_FOUND"
	case AlreadySettled:
		return "ALREADY_SETTLED"
	}
	return fmt.Sprintf("SETTLE_%d", uint8(r))
}

// Message is a message taken with its id: leased (Lease), copied (Peek) or
// received with metadata (GetMeta, LeaseMeta). A leased Message can be settled
// with Ack, Nack and Touch; settling it a second time returns AlreadySettled.
type Message struct {
	// Queue is the queue it came from.
	Queue string
	// ID is the message id.
	ID uint64
	// Attempt is the lease's attempt number (Lease), or how often the message
	// was leased so far (Peek, GetMeta).
	Attempt uint32
	// Payload is the message body.
	Payload []byte
	// Subject is the subject it was published to (WITH_META receives only).
	Subject string
	// ReplyTo is the reply address of a REQ (WITH_META receives only); 0 if none.
	ReplyTo uint64

	c        *Client
	leased   bool
	detached bool
	settled  int32
}

// Ref is the message's lease pair.
func (m *Message) Ref() LeaseRef { return LeaseRef{ID: m.ID, Attempt: m.Attempt} }

// Leased reports whether the message came under a lease (and so can be settled).
func (m *Message) Leased() bool { return m.leased }

// settler picks the connection a settle goes on. Once the connection the
// message was leased on is gone, the server has returned the message
// (protocol.md 13.5), so a non-detached lease is answered SettleStale without
// asking; a detached one needs a live connection.
func (m *Message) settler() (*Client, SettleResult, error) {
	if !m.leased {
		return nil, SettleNotFound, fmt.Errorf("beuss: message %d was not leased", m.ID)
	}
	if m.c.c.isClosed() {
		if !m.detached {
			return nil, SettleStale, nil
		}
		return nil, SettleStale, &ConnError{Err: ErrClosed}
	}
	return m.c, 0, nil
}

// finish marks the message settled; false if it was already.
func (m *Message) finish() bool { return atomic.CompareAndSwapInt32(&m.settled, 0, 1) }

// Ack acknowledges the message: the server removes it.
func (m *Message) Ack(ctx context.Context) (SettleResult, error) {
	c, r, err := m.settler()
	if c == nil {
		return r, err
	}
	if !m.finish() {
		return AlreadySettled, nil
	}
	rs, err := c.Ack(ctx, m.Queue, m.Ref())
	return first(rs, err)
}

// Nack ends the lease now: the message is returned (after opts.Delay), or
// dead-lettered with opts.Dead; opts.NoCharge does not count the delivery.
func (m *Message) Nack(ctx context.Context, opts NackOptions) (SettleResult, error) {
	c, r, err := m.settler()
	if c == nil {
		return r, err
	}
	if !m.finish() {
		return AlreadySettled, nil
	}
	rs, err := c.Nack(ctx, m.Queue, opts, m.Ref())
	return first(rs, err)
}

// Touch extends the lease to lease from now (0: the length the LEASE asked for).
func (m *Message) Touch(ctx context.Context, lease time.Duration) (SettleResult, error) {
	c, r, err := m.settler()
	if c == nil {
		return r, err
	}
	if atomic.LoadInt32(&m.settled) != 0 {
		return AlreadySettled, nil
	}
	rs, err := c.Touch(ctx, m.Queue, lease, m.Ref())
	return first(rs, err)
}

func first(rs []SettleResult, err error) (SettleResult, error) {
	if err != nil || len(rs) == 0 {
		return SettleStale, err
	}
	return rs[0], nil
}

// LeaseOptions tune a Lease.
type LeaseOptions struct {
	// Wait is how long the server waits for a message on an empty queue (0:
	// answer at once; Forever).
	Wait time.Duration
	// Max is the most messages wanted, 1..65535 (0 means 1).
	Max int
	// Lease is the lease length; 0 takes the server's default (30 s).
	Lease time.Duration
	// MaxDeliveries dead-letters a message after this many charged
	// deliveries; 0 takes the server's default (20); NeverDead never does.
	MaxDeliveries uint16
	// Detached leases outlive the connection and may be settled from any
	// connection (13.5).
	Detached bool
}

// NackOptions tune a Nack.
type NackOptions struct {
	// Delay returns the message after this long (0: at once, in its place).
	Delay time.Duration
	// Dead sends the message to the dead-letter queue <queue>.dead now.
	Dead bool
	// NoCharge does not count this delivery toward MaxDeliveries (count=false:
	// a worker giving back work it did not finish, on shutdown).
	NoCharge bool
}

// Lease takes up to opts.Max ready messages from queue under a lease
// (at-least-once delivery): each must be acknowledged, or it comes back once
// the lease ends. nil, nil means the queue stayed empty, or, even with a wait
// of Forever, that the server ended the wait early because 256 KiB of settle
// replies were held behind it (protocol.md 13.7): just call again.
func (c *Client) Lease(ctx context.Context, queue string, opts LeaseOptions) ([]*Message, error) {
	return c.lease(ctx, queue, opts, 0)
}

// LeaseMeta is Lease with each message's metadata (subject, reply address).
func (c *Client) LeaseMeta(ctx context.Context, queue string, opts LeaseOptions) ([]*Message, error) {
	return c.lease(ctx, queue, opts, flagWithMeta)
}

func (c *Client) lease(ctx context.Context, queue string, opts LeaseOptions, flags byte) ([]*Message, error) {
	if err := c.needMeta(flags, FeatureLeases); err != nil {
		return nil, err
	}
	if opts.Max == 0 {
		opts.Max = 1
	}
	if err := checkReceive(queue, opts.Max); err != nil {
		return nil, err
	}
	if err := c.checkMax(opts.Lease, c.info.MaxLease, "lease"); err != nil {
		return nil, err
	}
	var options byte
	if opts.Detached {
		options = 1
	}
	b := encodeLease(nil, flags, queue, waitMs(opts.Wait), uint16(opts.Max), ms(opts.Lease), opts.MaxDeliveries, options)
	f, err := c.do(ctx, b, opts.Wait)
	if err != nil {
		return nil, err
	}
	got, err := c.deliveries(f, stLeased, flags, queue)
	for _, m := range got {
		m.leased, m.detached = true, opts.Detached
	}
	return got, err
}

// needMeta checks the version a receive needs: 2 for leases, 3 with WITH_META.
func (c *Client) needMeta(flags byte, feature uint32) error {
	if flags&flagWithMeta != 0 {
		return c.need(3, FeatureFanout)
	}
	return c.need(2, feature)
}

// deliveries decodes LEASED/PEEKED (status want) or ENVELOPES, or EMPTY.
func (c *Client) deliveries(f frame, want byte, flags byte, queue string) ([]*Message, error) {
	var ms []*Message
	var err error
	switch {
	case f.status == stEmpty:
		return nil, nil
	case flags&flagWithMeta != 0 && f.status == stEnvelopes:
		ms, err = parseDeliveries(f.body, true)
	case flags&flagWithMeta == 0 && f.status == want:
		ms, err = parseDeliveries(f.body, false)
	default:
		return nil, unexpected(f)
	}
	for _, m := range ms {
		m.Queue, m.c = queue, c
	}
	return ms, err
}

// GetMeta is Get with ids, attempts and metadata (WITH_META, protocol.md
// 15.9). It removes what it returns, as Get does: the messages are not leased.
func (c *Client) GetMeta(ctx context.Context, queue string, wait time.Duration, max int) ([]*Message, error) {
	if err := c.needMeta(flagWithMeta, 0); err != nil {
		return nil, err
	}
	if err := checkReceive(queue, max); err != nil {
		return nil, err
	}
	f, err := c.do(ctx, encodeGet(nil, opGet, flagWithMeta, queue, waitMs(wait), uint16(max)), wait)
	if err != nil {
		return nil, err
	}
	return c.deliveries(f, 0, flagWithMeta, queue)
}

// Peek copies up to max ready messages from the front of queue, changing
// nothing (for looking at a dead-letter queue).
func (c *Client) Peek(ctx context.Context, queue string, max int) ([]*Message, error) {
	return c.peek(ctx, queue, max, 0)
}

// PeekMeta is Peek with metadata.
func (c *Client) PeekMeta(ctx context.Context, queue string, max int) ([]*Message, error) {
	return c.peek(ctx, queue, max, flagWithMeta)
}

func (c *Client) peek(ctx context.Context, queue string, max int, flags byte) ([]*Message, error) {
	if err := c.needMeta(flags, FeatureLeases); err != nil {
		return nil, err
	}
	if err := checkReceive(queue, max); err != nil {
		return nil, err
	}
	f, err := c.do(ctx, encodePeek(nil, flags, queue, uint16(max)), 0)
	if err != nil {
		return nil, err
	}
	return c.deliveries(f, stPeeked, flags, queue)
}

// Move moves up to max ready messages from the front of from to the end of
// to (e.g. from "jobs.dead" back to "jobs") and returns how many moved.
func (c *Client) Move(ctx context.Context, from, to string, max uint32) (uint64, error) {
	if err := c.need(2, FeatureLeases); err != nil {
		return 0, err
	}
	if err := checkQueue(from); err != nil {
		return 0, err
	}
	if err := checkQueue(to); err != nil {
		return 0, err
	}
	if from == to || max == 0 {
		return 0, &Error{Code: CodeBadArgument, Text: "MOVE needs two different queues and max > 0", Local: true}
	}
	f, err := c.do(ctx, encodeMove(nil, from, to, max), 0)
	if err != nil {
		return 0, err
	}
	if f.status != stMoved {
		return 0, unexpected(f)
	}
	return parseU64(f.body)
}

// Ack acknowledges leases of queue; one result per pair, in order.
func (c *Client) Ack(ctx context.Context, queue string, refs ...LeaseRef) ([]SettleResult, error) {
	return c.settle(ctx, opAck, queue, nil, refs)
}

// Nack ends leases of queue now (see NackOptions).
func (c *Client) Nack(ctx context.Context, queue string, opts NackOptions, refs ...LeaseRef) ([]SettleResult, error) {
	if err := c.checkMax(opts.Delay, c.info.MaxDelay, "delay"); err != nil {
		return nil, err
	}
	return c.settle(ctx, opNack, queue, nackExtra(opts), refs)
}

// Touch extends leases of queue to lease from now (0: the length their LEASE
// asked for).
func (c *Client) Touch(ctx context.Context, queue string, lease time.Duration, refs ...LeaseRef) ([]SettleResult, error) {
	if err := c.checkMax(lease, c.info.MaxLease, "lease"); err != nil {
		return nil, err
	}
	return c.settle(ctx, opTouch, queue, binary.BigEndian.AppendUint32(nil, ms(lease)), refs)
}

func nackExtra(o NackOptions) []byte {
	var options byte
	if o.Dead {
		options |= 1
	}
	if o.NoCharge {
		options |= 2
	}
	return append(binary.BigEndian.AppendUint32(nil, ms(o.Delay)), options)
}

// settleFrames encodes pairs over as many frames as MaxSettlePairs needs.
func settleFrames(op byte, queue string, extra []byte, refs []LeaseRef) ([]byte, int, error) {
	if err := checkQueue(queue); err != nil {
		return nil, 0, err
	}
	var b []byte
	n := 0
	for len(refs) > 0 {
		k := len(refs)
		if k > MaxSettlePairs {
			k = MaxSettlePairs
		}
		b = encodeSettle(b, op, queue, extra, refs[:k])
		refs = refs[k:]
		n++
	}
	return b, n, nil
}

func (c *Client) settle(ctx context.Context, op byte, queue string, extra []byte, refs []LeaseRef) ([]SettleResult, error) {
	if err := c.need(2, FeatureLeases); err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, nil
	}
	b, n, err := settleFrames(op, queue, extra, refs)
	if err != nil {
		return nil, err
	}
	cl := &call{want: n, frames: make([]frame, 0, n), done: make(chan struct{})}
	if err := c.c.send(cl, b); err != nil {
		return nil, err
	}
	// Behind a parked receive a settle is carried out at once but answered
	// only after it (13.7): allow for the longest such wait.
	if err := c.c.wait(ctx, cl, 0); err != nil {
		return nil, err
	}
	out := make([]SettleResult, 0, len(refs))
	for _, f := range cl.frames {
		if f.status != stSettled {
			return out, unexpected(f)
		}
		rs, err := parseSettled(f.body)
		if err != nil {
			return out, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// settleAsync sends a settle without waiting for its reply; done (if not nil)
// gets the results from the reader goroutine. The consumer uses it so that a
// handler's slot is free at once, even behind its own parked LEASE (13.7).
func (c *Client) settleAsync(op byte, queue string, extra []byte, refs []LeaseRef, done func([]SettleResult)) error {
	b, n, err := settleFrames(op, queue, extra, refs)
	if err != nil {
		return err
	}
	cl := &call{want: n}
	if done != nil {
		cl.hook = func(f frame) {
			var rs []SettleResult
			if f.status == stSettled {
				rs, _ = parseSettled(f.body)
			}
			done(rs)
		}
	}
	return c.c.send(cl, b)
}
