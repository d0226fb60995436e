package beuss

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Handler processes one leased message. Returning nil acknowledges it; an
// error returns it (NACK) after the consumer's backoff. ctx ends when the
// handler's timeout passes, when its lease is lost, or on shutdown.
type Handler func(ctx context.Context, m *Message) error

// ConsumerOptions tune Consume. The zero value runs one handler at a time
// with the server's default lease.
type ConsumerOptions struct {
	// Concurrency is how many handlers run at once (default 1). The consumer
	// leases only for free handlers, so it never holds a message it cannot
	// start at once (no prefetch that could outlive its lease).
	Concurrency int
	// Lease is the lease length; 0 takes the server's default (30 s). Running
	// handlers are touched every Lease/2, so a long handler keeps its lease.
	Lease time.Duration
	// HandlerTimeout cancels a handler's ctx after this long; its error then
	// returns the message like any other. 0: no limit.
	HandlerTimeout time.Duration
	// MaxDeliveries dead-letters a message after this many charged
	// deliveries (0: the server's default, 20).
	MaxDeliveries uint16
	// Wait is how long one LEASE waits on an empty queue (default 1 s). It
	// bounds how long a shutdown waits for the parked LEASE to come back.
	Wait time.Duration
	// Backoff is the NACK delay after a handler's error, by attempt number
	// (default: 100 ms doubling per attempt, at most 1 min).
	Backoff func(attempt uint32) time.Duration
	// OnError, if set, hears of handler errors and failed settles. It may
	// be called from several goroutines at once, and may use the Client.
	OnError func(m *Message, err error)
}

// DefaultBackoff is the default ConsumerOptions.Backoff: 100 ms doubling per
// attempt, at most one minute.
func DefaultBackoff(attempt uint32) time.Duration {
	d := 100 * time.Millisecond
	for i := uint32(1); i < attempt && d < time.Minute; i++ {
		d *= 2
	}
	if d > time.Minute {
		d = time.Minute
	}
	return d
}

// Consume leases messages from queue and runs h on each, up to
// opts.Concurrency at once, until ctx ends, the client is closed or the
// connection fails. It acknowledges a message when h returns nil, NACKs it
// with a backoff when h fails, and touches it every Lease/2 while h runs. On
// shutdown (ctx cancelled, Close) handlers' contexts are cancelled, and the
// messages whose handler does not then succeed are given back with a NACK
// that charges no attempt; Consume returns once they are. Its parked LEASE
// holds back the client's other requests (protocol.md 2.4): give Consume a
// Client of its own. It returns nil after a shutdown, else the error.
func (c *Client) Consume(ctx context.Context, queue string, opts ConsumerOptions, h Handler) error {
	if err := c.need(2, FeatureLeases); err != nil {
		return err
	}
	if err := checkQueue(queue); err != nil {
		return err
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.Concurrency > 65535 {
		opts.Concurrency = 65535
	}
	if opts.Lease <= 0 {
		opts.Lease = c.info.DefaultLease
		if opts.Lease <= 0 {
			opts.Lease = 30 * time.Second
		}
	}
	if opts.Wait <= 0 {
		opts.Wait = time.Second
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	key := new(int)
	c.cmu.Lock()
	if c.stopping {
		// Close or Quit is waiting for the consumers: adding one now
		// would race with that Wait.
		c.cmu.Unlock()
		return &ConnError{Err: ErrClosed}
	}
	c.stops[key] = stop
	c.consumers.Add(1)
	c.cmu.Unlock()
	defer func() {
		c.cmu.Lock()
		delete(c.stops, key)
		c.cmu.Unlock()
		c.consumers.Done()
	}()

	k := &consumer{c: c, queue: queue, opts: opts, h: h, run: runCtx}
	err := k.loop()
	// After a failure the handlers' work can no longer be settled: stop them too.
	stop()
	k.handlers.Wait()
	k.flush()
	return err
}

// consumer is the state of one Consume.
type consumer struct {
	c        *Client
	queue    string
	opts     ConsumerOptions
	h        Handler
	run      context.Context
	handlers sync.WaitGroup
	settles  sync.WaitGroup // settles sent whose reply has not come yet
}

func (k *consumer) loop() error {
	slots := make(chan struct{}, k.opts.Concurrency)
	release := func() { <-slots }
	for {
		// Checked first: a select with a free slot too would pick at random,
		// and a shutdown could wait out several more LEASEs.
		if k.run.Err() != nil {
			return nil
		}
		// Take at least one free handler slot, then every other free one.
		select {
		case slots <- struct{}{}:
		case <-k.run.Done():
			return nil
		}
		free := 1
	more:
		for free < k.opts.Concurrency {
			select {
			case slots <- struct{}{}:
				free++
			default:
				break more
			}
		}
		// Not k.run: cancelling a parked LEASE would close the connection,
		// which charges every message in flight; waiting out opts.Wait lets
		// the shutdown give them back free of charge instead.
		msgs, err := k.c.Lease(context.Background(), k.queue, LeaseOptions{
			Wait: k.opts.Wait, Max: free, Lease: k.opts.Lease, MaxDeliveries: k.opts.MaxDeliveries,
		})
		for i := len(msgs); i < free; i++ {
			release()
		}
		if errors.Is(err, ErrFull) {
			// The server holds too much in flight (13.11): let acks drain it.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-k.run.Done():
			}
			continue
		}
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if k.run.Err() != nil {
				k.settle(m, opNack, nackExtra(NackOptions{NoCharge: true}))
				release()
				continue
			}
			k.handlers.Add(1)
			go func(m *Message) {
				defer k.handlers.Done()
				defer release()
				k.handle(m)
			}(m)
		}
	}
}

// handle runs the handler on m, touching its lease meanwhile, then settles it.
func (k *consumer) handle(m *Message) {
	hctx, cancel := context.WithCancel(k.run)
	defer cancel()
	if k.opts.HandlerTimeout > 0 {
		var cancelT context.CancelFunc
		hctx, cancelT = context.WithTimeout(hctx, k.opts.HandlerTimeout)
		defer cancelT()
	}
	stopTouch, touched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(touched)
		k.touch(m, cancel, stopTouch)
	}()
	err := k.call(hctx, m)
	// The toucher is done before the settle goes out, so no TOUCH follows
	// the ACK and no goroutine outlives Consume.
	close(stopTouch)
	<-touched
	switch {
	case err == nil:
		k.settle(m, opAck, nil)
	case k.run.Err() != nil:
		// Shutdown: this attempt is on us, not on the message.
		k.settle(m, opNack, nackExtra(NackOptions{NoCharge: true}))
	default:
		if k.opts.OnError != nil {
			k.opts.OnError(m, err)
		}
		k.settle(m, opNack, nackExtra(NackOptions{Delay: k.opts.Backoff(m.Attempt)}))
	}
}

// call runs the handler, turning a panic into an error so that the message
// is returned rather than the process brought down with a lease held.
func (k *consumer) call(ctx context.Context, m *Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("beuss: handler panicked: %v", p)
		}
	}()
	return k.h(ctx, m)
}

// touch extends m's lease every Lease/2 until stop is closed; a lease found
// lost (not OK) cancels the handler, whose work can no longer be acknowledged.
func (k *consumer) touch(m *Message, cancel context.CancelFunc, stop chan struct{}) {
	// Half the lease the server gives: it counts whole milliseconds (ms
	// rounds up), so this is never zero.
	t := time.NewTicker(time.Duration(ms(k.opts.Lease)) * time.Millisecond / 2)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			select {
			case <-stop: // the handler is done: its settle follows
				return
			default:
			}
			err := k.c.settleAsync(opTouch, k.queue, leaseExtra(k.opts.Lease), []LeaseRef{m.Ref()}, func(rs []SettleResult) {
				if len(rs) != 1 || !rs[0].OK() {
					cancel()
				}
			})
			if err != nil {
				cancel()
				return
			}
		}
	}
}

// leaseExtra is the lease_ms field of a TOUCH.
func leaseExtra(d time.Duration) []byte { return binary.BigEndian.AppendUint32(nil, ms(d)) }

// settle sends an ACK or NACK without waiting for its reply, so the handler's
// slot is free at once even behind the consumer's own parked LEASE (13.7);
// flush waits for the replies before Consume returns.
func (k *consumer) settle(m *Message, op byte, extra []byte) {
	if !m.finish() {
		return
	}
	k.settles.Add(1)
	err := k.c.settleAsync(op, k.queue, extra, []LeaseRef{m.Ref()}, func(rs []SettleResult) {
		if (len(rs) != 1 || !rs[0].OK()) && k.opts.OnError != nil {
			// Not on the reader goroutine that runs this: OnError may
			// use the Client, whose replies that goroutine must read.
			go func() {
				defer k.settles.Done()
				k.opts.OnError(m, fmt.Errorf("beuss: settle of message %d: %v", m.ID, rs))
			}()
			return
		}
		k.settles.Done()
	})
	if err != nil {
		k.settles.Done()
		if k.opts.OnError != nil {
			k.opts.OnError(m, err)
		}
	}
}

// flush waits for the replies to the consumer's settles (so that a Close
// right after cannot cut them off), as long as the connection lives.
func (k *consumer) flush() {
	done := make(chan struct{})
	go func() {
		k.settles.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-k.c.c.closed:
	}
}
