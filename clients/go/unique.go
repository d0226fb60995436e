package beuss

import (
	"fmt"
	"time"
)

// Unique messages (protocol.md 18, version 6): a PUT may carry a key. While a
// message of the queue holds that key, another PUT with it is not stored and
// says which message holds it (PutResult.Duplicate); with WithReplace it
// changes the waiting message instead (PutResult.Replaced); with
// WithUniqueWindow the key is still remembered for a while after its message
// left the queue. Keys belong to their queue.

// Limits of a unique PUT (protocol.md 18.5).
const (
	// MaxKeyLen is the longest unique key, in bytes.
	MaxKeyLen = 255
	// MaxWindow is the longest dedup window: 30 days.
	MaxWindow = 30 * 24 * time.Hour
	// maxWindowMs is MaxWindow as the window_ms the server accepts.
	maxWindowMs = uint32(MaxWindow / time.Millisecond)
)

// Holder says where the message that holds a PUT's key stands, when that PUT
// was not stored because of it (PutResult.Duplicate, protocol.md 18.3). The
// zero Holder means no duplicate: the PUT was stored or replaced.
type Holder uint8

// The states of a DUPLICATE reply. A later protocol version may add others;
// any Holder but 0 means the PUT was not stored.
const (
	// HolderReady: the holder waits in the queue, ready (a PUT without
	// WithReplace is refused).
	HolderReady Holder = 1
	// HolderDelayed: the holder waits in the queue, delayed.
	HolderDelayed Holder = 2
	// HolderInFlight: the holder is leased. It is never replaced, even with
	// WithReplace: the caller decides whether to wait and retry.
	HolderInFlight Holder = 3
	// HolderGone: the holder left the queue (acknowledged, taken, purged...)
	// within its key's window, and the key is still remembered; the
	// PutResult.ID is the message that held it.
	HolderGone Holder = 4
)

// String names the state, or HOLDER_<n> for one this client does not know.
func (h Holder) String() string {
	switch h {
	case 0:
		return "NONE"
	case HolderReady:
		return "READY"
	case HolderDelayed:
		return "DELAYED"
	case HolderInFlight:
		return "IN_FLIGHT"
	case HolderGone:
		return "GONE"
	}
	return fmt.Sprintf("HOLDER_%d", uint8(h))
}

// WithUniqueKey gives the message a unique key of 1 to MaxKeyLen bytes (any
// bytes, not only UTF-8). While a message of the queue holds the key, the PUT
// is not stored: PutResult.Duplicate says where the holder stands and
// PutResult.ID names it, and the call returns no error. The PUT fails with
// ErrUnsupported, sending nothing, unless the server negotiated version 6 and
// announced FeatureUnique.
func WithUniqueKey(key string) PutOption {
	return func(o *putOptions) { o.key, o.keyed = key, true }
}

// WithUniqueWindow keeps the key remembered for d after its message leaves
// the queue (whole milliseconds, rounded up; at most MaxWindow), so that a PUT
// with it within d is a duplicate with HolderGone: "do not run this job twice
// within ten minutes". Without it the key is forgotten as its message leaves.
// It needs WithUniqueKey.
func WithUniqueWindow(d time.Duration) PutOption {
	return func(o *putOptions) { o.window, o.windowSet = d, true }
}

// WithReplace makes a PUT whose key is held by a waiting message (ready or
// delayed) replace that message instead of being refused: the message keeps
// its id, its attempt count and its place, and takes this PUT's payload,
// priority, delay (none: ready now), window and time to live (WithTTL's, else
// the queue's default, else none); PutResult.Replaced is true and
// PutResult.ID is its id. A holder in flight or gone is still a duplicate.
// With no holder the PUT is stored as usual. It needs WithUniqueKey.
func WithReplace() PutOption {
	return func(o *putOptions) { o.replace = true }
}

// unique turns the options into the PUT's key fields: nil when the PUT
// carries no key, an error for a window or replace without one, or a key or
// window the server would answer with a fatal BAD_ARGUMENT.
func (o *putOptions) unique() (*uniqueFields, error) {
	if !o.keyed {
		if o.windowSet || o.replace {
			return nil, &Error{Code: CodeBadArgument, Text: "WithUniqueWindow and WithReplace need WithUniqueKey", Local: true}
		}
		return nil, nil
	}
	if o.window < 0 {
		return nil, &Error{Code: CodeBadArgument, Text: fmt.Sprintf("negative unique window %v", o.window), Local: true}
	}
	if o.window > MaxWindow {
		// Checked as a duration first: ms clamps what does not fit a u32.
		return nil, &Error{Code: CodeBadArgument, Text: fmt.Sprintf("a unique window is at most %v, not %v", MaxWindow, o.window), Local: true}
	}
	u := &uniqueFields{key: o.key, replace: o.replace, windowMs: ms(o.window)}
	if err := checkUnique(u); err != nil {
		return nil, err
	}
	return u, nil
}
