package beuss

import (
	"fmt"
	"time"
)

// Message expiry (protocol.md 19, version 6): a PUT may carry a time to live.
// A message not delivered by then never is: it leaves its queue, ready or
// delayed, and is dropped or, with WithTTLDeadLetter, moved to <queue>.dead.
// A message in flight is left to its lease: its consumer may still ACK it,
// but once the lease ends any other way it expires. The server may give the
// messages of some queues a default time to live (BQUEUETTL); WithTTL(0) opts
// a message out of it.

// MaxTTL is the longest time to live of a message: 30 days (protocol.md
// 19.2).
const MaxTTL = 30 * 24 * time.Hour

// maxTTLMs is MaxTTL as the ttl_ms the server accepts.
const maxTTLMs = uint32(MaxTTL / time.Millisecond)

// WithTTL gives the message a time to live of d (whole milliseconds, rounded
// up; at most MaxTTL), counted from the PUT, a WithDelay included: not
// delivered by then, the message is never delivered, and is dropped (or
// dead-lettered, WithTTLDeadLetter) and counted in the STATS figure
// "expired". A message leased by then is left to its lease: its consumer may
// still ACK it, and it expires only if the lease ends otherwise. WithTTL(0)
// means the message never expires, even on a queue
// with a default time to live (the server's BQUEUETTL). With WithReplace, the
// replaced message takes this time to live. The PUT fails with
// ErrUnsupported, sending nothing, unless the server negotiated version 6 and
// announced FeatureTTL.
func WithTTL(d time.Duration) PutOption {
	return func(o *putOptions) { o.ttl, o.ttlSet = d, true }
}

// WithTTLDeadLetter moves the message, when its time to live ends, to the
// queue's dead-letter queue <queue>.dead (ready there, keeping its id,
// priority and attempts, without a time to live) instead of dropping it; it
// is counted in "dead_lettered" as well as "expired". It needs WithTTL with a
// time to live above 0 to have an effect, and WithTTL to be accepted at all.
func WithTTLDeadLetter() PutOption {
	return func(o *putOptions) { o.deadLetter = true }
}

// expiry turns the options into the PUT's time-to-live fields: nil when the
// PUT carries none (the queue's default then applies), an error for
// WithTTLDeadLetter without WithTTL, or a time to live the server would
// answer with a fatal BAD_ARGUMENT.
func (o *putOptions) expiry() (*ttlFields, error) {
	if !o.ttlSet {
		if o.deadLetter {
			return nil, &Error{Code: CodeBadArgument, Text: "WithTTLDeadLetter needs WithTTL", Local: true}
		}
		return nil, nil
	}
	if o.ttl < 0 {
		return nil, &Error{Code: CodeBadArgument, Text: fmt.Sprintf("negative time to live %v", o.ttl), Local: true}
	}
	if o.ttl > MaxTTL {
		// Checked as a duration first: ms clamps what does not fit a u32.
		return nil, &Error{Code: CodeBadArgument, Text: fmt.Sprintf("a time to live is at most %v, not %v", MaxTTL, o.ttl), Local: true}
	}
	t := &ttlFields{ttlMs: ms(o.ttl), deadLetter: o.deadLetter}
	if err := checkTTL(t); err != nil {
		return nil, err
	}
	return t, nil
}
