// Package beuss is a client for the beuss message-queue server (protocol.md,
// versions 1 to 6): queues with PUT/GET, leases with ACK/NACK/TOUCH, delays,
// priority, dead letters, fan-out (bindings, publish with confirm,
// subscriptions), request/reply, tokens and Unix sockets, schedules (cron
// expressions or intervals at which the server sends a message by itself),
// unique messages (a PUT with WithUniqueKey is refused as a duplicate, or with
// WithReplace replaces the waiting message, while another holds its key; see
// PutResult), and message expiry (a PUT with WithTTL is never delivered once
// its time to live has passed: it is dropped, or with WithTTLDeadLetter moved
// to the dead-letter queue).
//
// A Client is one TCP connection, safe for concurrent use: requests from many
// goroutines are pipelined on it and their replies matched in order. Every
// call takes a context.Context; cancelling it while a reply is awaited closes
// the connection, because the protocol has no other way to abandon a request
// (protocol.md 2.4 and 12), so give long waits a Client of their own. The
// call, and every other in flight, then fails with a *ConnError wrapping
// ctx's error (errors.Is(err, context.Canceled) holds): the request was sent,
// so its outcome is unknown. A ctx that ended before anything was sent gives
// ctx.Err() itself and leaves the connection open.
//
// The package has no dependencies outside the standard library.
package beuss
