package beuss

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Forever as a wait asks the server to wait without a time limit
// (wait_ms 0xFFFFFFFF); the client then sets no timeout of its own either.
const Forever time.Duration = -1

// DefaultTimeout is the margin the client waits past the server-side wait of
// a request before it gives the connection up (Options.Timeout).
const DefaultTimeout = 10 * time.Second

// Options tune a Client. The zero value is the defaults.
type Options struct {
	// Timeout is added to the wait a request asks of the server (0 for most
	// requests) to bound how long the client waits for its reply; past it the
	// connection is closed and the call fails with ErrTimeout. 0 means
	// DefaultTimeout; a negative value disables it (ctx alone decides).
	// Waits of Forever are never timed by the client.
	Timeout time.Duration
	// EventBuffer is how many events each subscription buffers before the
	// client drops (and counts) new ones; 0 means 1024.
	EventBuffer int
	// DialTimeout bounds connecting and the HELLO exchange when ctx has no
	// deadline; 0 means 10 s.
	DialTimeout time.Duration
	// Token, when set, is presented with AUTH right after HELLO, on this
	// connection and every reconnect (protocol.md 16.2).
	Token []byte
	// TokenFile names a token file (the format of the server's BAUTHFILE;
	// its first token is used) when Token is empty. When both are empty and
	// the address is "" (the environment's), $BAUTHFILE is read if set.
	TokenFile string
}

// ServerInfo is what the server said in HELLO (protocol.md 4.2, 13.1).
type ServerInfo struct {
	// Version is the protocol version spoken on this connection.
	Version uint16
	// MaxMessageSize is the longest payload the server keeps (BMAXMESSAGESIZE).
	MaxMessageSize uint32
	// Server names the software, for logs.
	Server string
	// Features holds the Feature* bits (version 2 and later).
	Features uint32
	// DefaultLease is the lease a LEASE gets when it asks for none.
	DefaultLease time.Duration
	// MaxLease is the longest lease, confirm or request timeout.
	MaxLease time.Duration
	// MaxDelay is the longest delay of a PUT, PUB or NACK.
	MaxDelay time.Duration
	// MaxDeliveries is the server's default dead-letter threshold.
	MaxDeliveries uint16
}

// Has reports whether the server announced a Feature* bit.
func (s ServerInfo) Has(feature uint32) bool { return s.Features&feature != 0 }

// PutResult is the answer to a PUT. A PUT with a unique key (WithUniqueKey)
// has three outcomes, none of them an error: stored (Duplicate zero,
// Replaced false), not stored because another message holds the key
// (Duplicate set), or the waiting holder replaced (Replaced).
type PutResult struct {
	// ID is the message id (0 against a version-1 server, which gives none).
	// For a duplicate or a replace it is the id of the message that holds
	// the key (for HolderGone, that held it).
	ID uint64
	// Truncated says the server kept only StoredLen of OriginalLen bytes.
	Truncated bool
	// OriginalLen is the payload length sent.
	OriginalLen int
	// StoredLen is the payload length kept; 0 for a duplicate.
	StoredLen int
	// Duplicate, when not zero, says the PUT was not stored because message
	// ID holds its key, and where that message stands.
	Duplicate Holder
	// Replaced says the PUT replaced the waiting message ID, which now has
	// its payload (StoredLen bytes of it), priority, delay and window.
	Replaced bool
}

// Client is one connection to a beuss server, safe for concurrent use.
type Client struct {
	c    *conn
	info ServerInfo
	opts Options
	addr string

	readOnly bool

	consumers sync.WaitGroup
	cmu       sync.Mutex
	stops     map[*int]context.CancelFunc
	stopping  bool // set by Close and Quit: no Consume starts after (WaitGroup rule)
}

// UnixPrefix names a Unix socket in an address: "unix:/run/beuss/beuss.sock".
const UnixPrefix = "unix:"

// ReadTokenFile returns the first token of a token file (protocol.md 16.8):
// the first line that is not blank or a # comment, up to its first blank.
func ReadTokenFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return []byte(strings.Fields(line)[0]), nil
		}
	}
	return nil, fmt.Errorf("beuss: the token file %s holds no token", path)
}

// DefaultAddr is the address the CLI uses: unix:$BUNIX when BUNIX is set,
// else $BHOST (default localhost) and $BPORT (default 6552).
// Values are trimmed, blank ones count as unset, and an IPv6 address may be
// given bare (::1) or in brackets ([::1]), as the CLI takes them.
func DefaultAddr() string {
	if path := strings.TrimSpace(os.Getenv("BUNIX")); path != "" {
		return UnixPrefix + path
	}
	host, port := strings.TrimSpace(os.Getenv("BHOST")), strings.TrimSpace(os.Getenv("BPORT"))
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = "6552"
	}
	if strings.HasPrefix(host, "[") {
		return host + ":" + port
	}
	return net.JoinHostPort(host, port)
}

// Dial connects to addr ("" = DefaultAddr(); "unix:PATH" for a Unix socket)
// with default options and negotiates the protocol version with HELLO.
func Dial(ctx context.Context, addr string) (*Client, error) {
	return DialWith(ctx, addr, Options{})
}

// DialWith is Dial with options.
func DialWith(ctx context.Context, addr string, opts Options) (*Client, error) {
	if addr == "" {
		addr = DefaultAddr()
		if len(opts.Token) == 0 && opts.TokenFile == "" {
			opts.TokenFile = strings.TrimSpace(os.Getenv("BAUTHFILE"))
		}
	}
	if len(opts.Token) == 0 && opts.TokenFile != "" {
		token, err := ReadTokenFile(opts.TokenFile)
		if err != nil {
			return nil, err
		}
		// Read once: a reconnect presents the same token.
		opts.Token, opts.TokenFile = token, ""
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = 1024
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.DialTimeout)
		defer cancel()
	}
	// Go sets TCP_NODELAY on every TCP connection by default; the client keeps
	// it, so a small request is never held back waiting for an ACK.
	var d net.Dialer
	network, target := "tcp", addr
	if strings.HasPrefix(addr, UnixPrefix) {
		network, target = "unix", strings.TrimPrefix(addr, UnixPrefix)
	}
	nc, err := d.DialContext(ctx, network, target)
	if err != nil {
		return nil, &ConnError{Err: err}
	}
	cl := &Client{c: newConn(nc), opts: opts, addr: addr, stops: map[*int]context.CancelFunc{}}
	f, err := cl.c.roundTrip(ctx, encodeHello(nil, ProtocolVersion), 0)
	if err == nil && f.status != stHello {
		err = unexpected(f)
	}
	if err == nil {
		cl.info, err = parseHello(f.body)
	}
	if err == nil && len(opts.Token) > 0 {
		cl.readOnly, err = cl.auth(ctx, opts.Token)
	}
	if err != nil {
		cl.c.fail(err)
		return nil, err
	}
	// Size the cap on reply lengths from what the server may send (protocol.md 8).
	mms := cl.info.MaxMessageSize
	if mms < 1<<20 {
		mms = 1 << 20
	}
	atomic.StoreUint32(&cl.c.maxFrame, 32<<20+mms+1<<20)
	return cl, nil
}

// Auth authenticates with token (protocol.md 16.2) and reports whether it is
// read-only. A wrong token fails with ErrAuthFailed and the server closes the
// connection; a server that requires none accepts any. Reconnects made by a
// Reconnector use Options.Token, not this one.
func (c *Client) Auth(ctx context.Context, token []byte) (bool, error) {
	ro, err := c.auth(ctx, token)
	if err == nil {
		c.readOnly = ro
	}
	return ro, err
}

func (c *Client) auth(ctx context.Context, token []byte) (bool, error) {
	frame, err := encodeAuth(nil, token)
	if err != nil {
		return false, err
	}
	f, err := c.c.roundTrip(ctx, frame, 0)
	if err != nil {
		return false, err
	}
	if f.status != stAuthed {
		return false, unexpected(f)
	}
	return parseAuthed(f.body)
}

// ReadOnly reports whether the token this connection presented is read-only.
func (c *Client) ReadOnly() bool { return c.readOnly }

// Info is what the server said in HELLO.
func (c *Client) Info() ServerInfo { return c.info }

// Addr is the address the client dialled.
func (c *Client) Addr() string { return c.addr }

// Done is closed once the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.c.closed }

// Err is why the connection ended, nil while it is open.
func (c *Client) Err() error {
	c.c.pmu.Lock()
	defer c.c.pmu.Unlock()
	return c.c.err
}

// timeout is how long the client waits for a reply to a request that asks
// the server to wait `wait` (Forever: no limit).
func (c *Client) timeout(wait time.Duration) time.Duration {
	if wait < 0 || c.opts.Timeout < 0 {
		return 0
	}
	return wait + c.opts.Timeout
}

// need refuses an operation the negotiated version or features lack, before
// the server would answer it with a fatal error.
func (c *Client) need(version uint16, feature uint32) error {
	if c.info.Version < version || (feature != 0 && !c.info.Has(feature)) {
		return ErrUnsupported
	}
	return nil
}

// checkMax refuses a duration over the server's limit (from HELLO), which the
// server would answer with a fatal BAD_ARGUMENT.
func (c *Client) checkMax(d, max time.Duration, what string) error {
	if max > 0 && d > max {
		return &Error{Code: CodeBadArgument, Text: fmt.Sprintf("%s %v is over the server's %v", what, d, max), Local: true}
	}
	return nil
}

// do sends one request and returns its reply frame.
func (c *Client) do(ctx context.Context, b []byte, wait time.Duration) (frame, error) {
	return c.c.roundTrip(ctx, b, c.timeout(wait))
}

// Ping checks the connection (PING / PONG).
func (c *Client) Ping(ctx context.Context) error {
	f, err := c.do(ctx, encodeEmpty(nil, opPing), 0)
	if err == nil && f.status != stPong {
		err = unexpected(f)
	}
	return err
}

// PutOption sets the delay, the priority, the unique key or the time to live
// of a PUT.
type PutOption func(*putOptions)

type putOptions struct {
	delay time.Duration
	prio  uint8
	// The unique key and what goes with it (unique.go); keyed and windowSet
	// tell an option given with its zero value from one not given.
	key       string
	keyed     bool
	window    time.Duration
	windowSet bool
	replace   bool
	// The time to live (ttl.go); ttlSet tells WithTTL(0), which opts out of
	// the queue's default, from no WithTTL.
	ttl        time.Duration
	ttlSet     bool
	deadLetter bool
}

// WithDelay makes the message ready only after d (whole milliseconds,
// rounded up); at most the server's MaxDelay.
func WithDelay(d time.Duration) PutOption { return func(o *putOptions) { o.delay = d } }

// WithPriority sets the priority, 0 (delivered first) to MaxPriority (last);
// the default is DefaultPriority.
func WithPriority(p uint8) PutOption { return func(o *putOptions) { o.prio = p } }

// putFrame appends the head of a PUT and reports whether it carries a unique
// key. Against a server with PUT options a PUT without a key or a time to
// live always uses them, because only that layout is answered with the id;
// one with a key or a time to live is answered with the id either way
// (protocol.md 18.3, 19.2), so it carries the options only when they differ
// from the defaults the server would apply.
func (c *Client) putFrame(b []byte, queue string, n int64, opts []PutOption) ([]byte, bool, error) {
	if err := checkQueue(queue); err != nil {
		return b, false, err
	}
	o := putOptions{prio: DefaultPriority}
	for _, f := range opts {
		f(&o)
	}
	withOpts := c.info.Has(FeaturePutOptions)
	custom := o.delay != 0 || o.prio != DefaultPriority
	if !withOpts && custom {
		return b, false, ErrUnsupported
	}
	if o.keyed || o.windowSet || o.replace {
		// Before sending: an older server answers the flag with a fatal
		// BAD_FLAGS that would end every request of the connection.
		if err := c.need(6, FeatureUnique); err != nil {
			return b, false, err
		}
	}
	if o.ttlSet || o.deadLetter {
		// Before sending, for the same reason.
		if err := c.need(6, FeatureTTL); err != nil {
			return b, false, err
		}
	}
	u, err := o.unique()
	if err != nil {
		return b, false, err
	}
	t, err := o.expiry()
	if err != nil {
		return b, false, err
	}
	if err := checkPriority(o.prio); err != nil {
		return b, false, err
	}
	if err := c.checkMax(o.delay, c.info.MaxDelay, "delay"); err != nil {
		return b, false, err
	}
	if u != nil || t != nil {
		withOpts = custom
	}
	b, err = putHead(b, queue, n, withOpts, ms(o.delay), o.prio, u, t)
	return b, u != nil, err
}

func checkPriority(p uint8) error {
	if p > MaxPriority {
		return &Error{Code: CodeBadArgument, Text: fmt.Sprintf("priority %d is over %d", p, MaxPriority), Local: true}
	}
	return nil
}

// Put stores one message on queue. With WithUniqueKey it may instead be
// refused as a duplicate or replace the message holding its key: the
// PutResult says which, and neither is an error. With WithTTL it is never
// delivered once its time to live has passed.
func (c *Client) Put(ctx context.Context, queue string, payload []byte, opts ...PutOption) (PutResult, error) {
	b, keyed, err := c.putFrame(make([]byte, 0, 16+len(queue)+len(payload)), queue, int64(len(payload)), opts)
	if err != nil {
		return PutResult{}, err
	}
	f, err := c.do(ctx, append(b, payload...), 0)
	if err != nil {
		return PutResult{}, err
	}
	return parsePut(f, len(payload), keyed)
}

// PutReader stores one message of exactly size bytes read from r, streamed to
// the socket without holding the payload in memory (for large messages).
// Other requests of the connection wait while it streams; bytes of r past
// size are left unread. If r ends early (io.ErrUnexpectedEOF) or fails, or
// ctx ends while the payload streams, the frame cannot be finished: the
// connection is closed, nothing is stored, and that error is returned.
func (c *Client) PutReader(ctx context.Context, queue string, r io.Reader, size int64, opts ...PutOption) (PutResult, error) {
	if size < 0 {
		return PutResult{}, fmt.Errorf("beuss: negative payload size %d", size)
	}
	b, keyed, err := c.putFrame(nil, queue, size, opts)
	if err != nil {
		return PutResult{}, err
	}
	cl := &call{want: 1, done: make(chan struct{})}
	if err := c.c.sendCtx(ctx, cl, b, r, size); err != nil {
		return PutResult{}, err
	}
	if err := c.c.wait(ctx, cl, c.timeout(0)); err != nil {
		return PutResult{}, err
	}
	return parsePut(cl.frames[0], int(size), keyed)
}

// PutMany stores every payload on queue, pipelined in one write. It returns
// a result per payload and the first error (a FULL leaves the later PUTs
// carried out; their results are still filled in). When the connection
// fails midway, the results of the PUTs answered before are filled in and
// the rest are zero: those were perhaps stored, perhaps not.
func (c *Client) PutMany(ctx context.Context, queue string, payloads [][]byte, opts ...PutOption) ([]PutResult, error) {
	p := c.Pipeline()
	pend := make([]*Pending[PutResult], len(payloads))
	for i, pl := range payloads {
		pend[i] = p.Put(queue, pl, opts...)
	}
	execErr := p.Exec(ctx)
	out := make([]PutResult, len(payloads))
	var first error
	for i, pr := range pend {
		var err error
		out[i], err = pr.Result()
		if err != nil && first == nil {
			first = err
		}
	}
	if execErr != nil {
		return out, execErr
	}
	return out, first
}

// Get removes and returns up to max messages (1..65535) from queue, waiting
// up to wait for one when it is empty (0: answer at once; Forever). A
// parked Get holds back every later request of the connection (protocol.md
// 2.4). Delivery is at-most-once; use Lease for at-least-once. nil, nil means
// the queue stayed empty, or that settles behind the wait ended it early
// (protocol.md 13.7, as for Lease).
func (c *Client) Get(ctx context.Context, queue string, wait time.Duration, max int) ([][]byte, error) {
	if err := checkReceive(queue, max); err != nil {
		return nil, err
	}
	b := encodeGet(nil, opGet, 0, queue, waitMs(wait), uint16(max))
	f, err := c.do(ctx, b, wait)
	if err != nil {
		return nil, err
	}
	return decodeGet(f)
}

// checkReceive checks what GET, LEASE and PEEK share: the queue name and max.
func checkReceive(queue string, max int) error {
	if err := checkQueue(queue); err != nil {
		return err
	}
	if max < 1 || max > 65535 {
		return &Error{Code: CodeBadArgument, Text: fmt.Sprintf("max %d is not in 1..65535", max), Local: true}
	}
	return nil
}

func decodeGet(f frame) ([][]byte, error) {
	switch f.status {
	case stMessages:
		return parseMessages(f.body)
	case stEmpty:
		return nil, nil
	}
	return nil, unexpected(f)
}

// Purge drops every message of queue and returns how many there were.
func (c *Client) Purge(ctx context.Context, queue string) (uint64, error) {
	if err := checkQueue(queue); err != nil {
		return 0, err
	}
	f, err := c.do(ctx, encodeQueueOnly(nil, opPurge, queue), 0)
	if err != nil {
		return 0, err
	}
	if f.status != stPurged {
		return 0, unexpected(f)
	}
	return parseU64(f.body)
}

// Stats is a STATS reply: named figures of the server and of each queue
// (protocol.md 6, 13.11, 14.3, 15.11). Look figures up by name; later
// servers add names.
type Stats struct {
	// Server holds the server-wide figures.
	Server map[string]uint64
	// Queues maps each queue name to its figures.
	Queues map[string]map[string]uint64
}

// Stats returns the server figures and those of every queue.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	return c.stats(ctx, "")
}

// QueueStats returns the figures of one queue; ok is false when the queue
// does not exist.
func (c *Client) QueueStats(ctx context.Context, queue string) (figures map[string]uint64, ok bool, err error) {
	if err := checkQueue(queue); err != nil {
		return nil, false, err
	}
	s, err := c.stats(ctx, queue)
	if err != nil {
		return nil, false, err
	}
	figures, ok = s.Queues[queue]
	return figures, ok, nil
}

func (c *Client) stats(ctx context.Context, queue string) (*Stats, error) {
	f, err := c.do(ctx, encodeStats(nil, queue), 0)
	if err != nil {
		return nil, err
	}
	if f.status != stStats {
		return nil, unexpected(f)
	}
	return parseStats(f.body)
}

// Quit asks the server to close the connection once every earlier request is
// answered (QUIT / BYE), then closes it.
func (c *Client) Quit(ctx context.Context) error {
	c.stopConsumers()
	f, err := c.do(ctx, encodeEmpty(nil, opQuit), 0)
	if err == nil && f.status != stBye {
		err = unexpected(f)
	}
	c.c.fail(ErrClosed)
	return err
}

// Close stops the client's consumers (they give their unfinished messages
// back with NACK without a charge) and closes the connection. Requests still
// in flight fail with a *ConnError. Close waits for the consumers' handlers
// to return, so a handler must not call it (that would wait for itself):
// cancel Consume's ctx instead.
func (c *Client) Close() error {
	c.stopConsumers()
	c.c.fail(ErrClosed)
	return nil
}

// stopConsumers cancels every Consume of this client and waits for them to
// give their messages back, while the connection is still open.
func (c *Client) stopConsumers() {
	c.cmu.Lock()
	c.stopping = true
	for _, stop := range c.stops {
		stop()
	}
	c.cmu.Unlock()
	c.consumers.Wait()
}

// Pipeline batches requests into one write; Exec sends them and waits for
// every reply. Each queued request returns a Pending holding its own result.
type Pipeline struct {
	c    *Client
	buf  []byte
	decs []func(f frame, err error)
	wait time.Duration
	err  error
}

// Pending is the result of one pipelined request, ready after Exec.
type Pending[T any] struct {
	v   T
	err error
}

// Result is the request's value and error.
func (p *Pending[T]) Result() (T, error) { return p.v, p.err }

// Pipeline starts a batch of requests.
func (c *Client) Pipeline() *Pipeline { return &Pipeline{c: c} }

// Put queues a PUT.
func (p *Pipeline) Put(queue string, payload []byte, opts ...PutOption) *Pending[PutResult] {
	r := &Pending[PutResult]{}
	b, keyed, err := p.c.putFrame(p.buf, queue, int64(len(payload)), opts)
	if err != nil {
		r.err = err
		return r
	}
	p.buf = append(b, payload...)
	n := len(payload)
	p.decs = append(p.decs, func(f frame, err error) {
		if err != nil {
			r.err = err
			return
		}
		r.v, r.err = parsePut(f, n, keyed)
	})
	return r
}

// Get queues a GET (see Client.Get).
func (p *Pipeline) Get(queue string, wait time.Duration, max int) *Pending[[][]byte] {
	r := &Pending[[][]byte]{}
	if err := checkReceive(queue, max); err != nil {
		r.err = err
		return r
	}
	p.buf = encodeGet(p.buf, opGet, 0, queue, waitMs(wait), uint16(max))
	if wait < 0 || p.wait < 0 {
		p.wait = Forever
	} else {
		p.wait += wait
	}
	p.decs = append(p.decs, func(f frame, err error) {
		if err != nil {
			r.err = err
			return
		}
		r.v, r.err = decodeGet(f)
	})
	return r
}

// Len is the number of requests queued.
func (p *Pipeline) Len() int { return len(p.decs) }

// Exec sends every queued request in one write and waits for all replies.
// Its error is a connection failure; each request's own error (such as
// FULL) is in its Pending. The pipeline is empty again afterwards.
func (p *Pipeline) Exec(ctx context.Context) error {
	decs, buf, wait := p.decs, p.buf, p.wait
	p.decs, p.buf, p.wait = nil, buf[:0], 0
	if len(decs) == 0 {
		return nil
	}
	cl := &call{want: len(decs), frames: make([]frame, 0, len(decs)), done: make(chan struct{})}
	err := p.c.c.sendCtx(ctx, cl, buf, nil, 0)
	if err == nil {
		err = p.c.c.wait(ctx, cl, p.c.timeout(wait))
	}
	// Replies that came before a failure still count: those requests were
	// carried out.
	for i, dec := range decs {
		if i < len(cl.frames) {
			dec(cl.frames[i], nil)
		} else {
			dec(frame{}, err)
		}
	}
	return err
}
