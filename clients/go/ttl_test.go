package beuss

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Message expiry (protocol.md 19): the time-to-live fields and their checks,
// the flags of every combination with the options and a key, a fake server
// for the version check and the bytes on the wire, and the real server for
// what expires, when, and where it goes.

func TestTTLOptionsAreCheckedBeforeSending(t *testing.T) {
	bad := map[string][]PutOption{
		"negative":               {WithTTL(-time.Millisecond)},
		"over 30 days":           {WithTTL(MaxTTL + time.Millisecond)},
		"rounded past max":       {WithTTL(MaxTTL + time.Nanosecond)},
		"far over":               {WithTTL(1 << 62)},
		"dead letter, no TTL":    {WithTTLDeadLetter()},
		"dead letter with a key": {WithUniqueKey("k"), WithTTLDeadLetter()},
	}
	for name, opts := range bad {
		o := putOpts(opts...)
		f, err := o.expiry()
		var e *Error
		if f != nil || !errors.As(err, &e) || e.Code != CodeBadArgument || !e.Local || !errors.Is(err, ErrBadArgument) {
			t.Errorf("%s: %+v %v, want a local BAD_ARGUMENT", name, f, err)
		}
	}
	good := map[string]struct {
		opts []PutOption
		want ttlFields
	}{
		"never expires":      {[]PutOption{WithTTL(0)}, ttlFields{}},
		"a nanosecond":       {[]PutOption{WithTTL(time.Nanosecond)}, ttlFields{ttlMs: 1}},
		"rounded up":         {[]PutOption{WithTTL(1500 * time.Microsecond)}, ttlFields{ttlMs: 2}},
		"five seconds":       {[]PutOption{WithTTL(5 * time.Second)}, ttlFields{ttlMs: 5000}},
		"30 days":            {[]PutOption{WithTTL(MaxTTL)}, ttlFields{ttlMs: 2592000000}},
		"dead letter":        {[]PutOption{WithTTLDeadLetter(), WithTTL(time.Minute)}, ttlFields{ttlMs: 60000, deadLetter: true}},
		"zero, dead letter":  {[]PutOption{WithTTL(0), WithTTLDeadLetter()}, ttlFields{deadLetter: true}},
		"last TTL wins":      {[]PutOption{WithTTL(-1), WithTTL(time.Second)}, ttlFields{ttlMs: 1000}},
		"zero after another": {[]PutOption{WithTTL(time.Hour), WithTTL(0)}, ttlFields{}},
	}
	for name, g := range good {
		o := putOpts(g.opts...)
		f, err := o.expiry()
		if err != nil || f == nil || *f != g.want {
			t.Errorf("%s: %+v %v, want %+v", name, f, err, g.want)
		}
	}
	if o := putOpts(WithPriority(1), WithUniqueKey("k")); o.ttlSet {
		t.Error("no time to live without WithTTL")
	} else if f, err := o.expiry(); f != nil || err != nil {
		t.Errorf("a PUT without a time to live: %+v %v", f, err)
	}
	if err := checkTTL(&ttlFields{ttlMs: maxTTLMs + 1}); !errors.Is(err, ErrBadArgument) {
		t.Errorf("ttl_ms %d: %v", maxTTLMs+1, err)
	}
}

func TestPutHeadWithATTL(t *testing.T) {
	b, err := putHead(nil, "q", 2, false, 0, 0, nil, &ttlFields{ttlMs: 0x01020304, deadLetter: true})
	want := []byte{0, 0, 0, 11, opPut, flagPutTTL, 1, 'q', 1, 2, 3, 4, modeDeadLetter}
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("time to live only:\n%x\nwant\n%x (%v)", b, want, err)
	}
	// The fields go after the options and the key fields.
	b, err = putHead(nil, "q", 2, true, 0x0A0B0C0D, 7, &uniqueFields{key: "k", replace: true, windowMs: 9}, &ttlFields{ttlMs: 5000})
	want = []byte{0, 0, 0, 23, opPut, flagPutOptions | flagPutUnique | flagPutTTL, 1, 'q',
		0x0A, 0x0B, 0x0C, 0x0D, 7, // delay, priority
		1, 'k', modeReplace, 0, 0, 0, 9, // key, mode, window
		0, 0, 0x13, 0x88, 0} // ttl_ms, mode: drop
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("options, key and time to live:\n%x\nwant\n%x (%v)", b, want, err)
	}
	if n := binary.BigEndian.Uint32(b); int(n) != len(b)-4+2 {
		t.Fatalf("length %d for a head of %d bytes and 2 of payload", n, len(b))
	}
	// The time-to-live fields count toward the u32 limit too.
	if _, err := putHead(nil, "q", 1<<32-1-(2+2+5), false, 0, 0, nil, &ttlFields{}); err != nil {
		t.Fatalf("a PUT of exactly 4 GiB - 1: %v", err)
	}
	if _, err := putHead(nil, "q", 1<<32-(2+2+5), false, 0, 0, nil, &ttlFields{}); err == nil {
		t.Fatal("a PUT with a time to live over 4 GiB must be refused")
	}
}

// Every combination of options, key and time to live gets its flags (0x01,
// 0x04, 0x05, 0x08, 0x09, 0x0C, 0x0D) and its fields in order. A PUT with a
// key or a time to live carries the options only when they are not the
// defaults; one with neither always does, for its id.
func TestPutFlagCombinations(t *testing.T) {
	c := &Client{info: ServerInfo{Version: 6, Features: FeaturePutOptions | FeatureUnique | FeatureTTL}}
	opts := func(delay uint32, prio byte) []byte { return append(binary.BigEndian.AppendUint32(nil, delay), prio) }
	key := []byte{1, 'k', 0, 0, 0, 0, 0}
	ttl := func(ms uint32, mode byte) []byte { return append(binary.BigEndian.AppendUint32(nil, ms), mode) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name  string
		opts  []PutOption
		flags byte
		body  []byte
		keyed bool
	}{
		{"plain", nil, flagPutOptions, opts(0, 5), false},
		{"priority", []PutOption{WithPriority(1)}, flagPutOptions, opts(0, 1), false},
		{"key", []PutOption{WithUniqueKey("k")}, flagPutUnique, key, true},
		{"key, delay", []PutOption{WithUniqueKey("k"), WithDelay(2 * time.Millisecond)}, 0x05, cat(opts(2, 5), key), true},
		{"TTL", []PutOption{WithTTL(time.Second)}, flagPutTTL, ttl(1000, 0), false},
		{"TTL 0", []PutOption{WithTTL(0)}, 0x08, ttl(0, 0), false},
		{"TTL, dead letter", []PutOption{WithTTL(time.Second), WithTTLDeadLetter()}, 0x08, ttl(1000, 1), false},
		{"TTL, default priority", []PutOption{WithPriority(DefaultPriority), WithTTL(time.Second)}, 0x08, ttl(1000, 0), false},
		{"TTL, priority", []PutOption{WithTTL(time.Second), WithPriority(0)}, 0x09, cat(opts(0, 0), ttl(1000, 0)), false},
		{"TTL, delay", []PutOption{WithDelay(time.Second), WithTTL(2 * time.Second)}, 0x09, cat(opts(1000, 5), ttl(2000, 0)), false},
		{"key, TTL", []PutOption{WithTTL(time.Minute), WithUniqueKey("k")}, 0x0C, cat(key, ttl(60000, 0)), true},
		{"key, TTL, dead letter", []PutOption{WithUniqueKey("k"), WithTTL(time.Minute), WithTTLDeadLetter()}, 0x0C, cat(key, ttl(60000, 1)), true},
		{"all", []PutOption{WithPriority(9), WithUniqueKey("k"), WithReplace(), WithUniqueWindow(3 * time.Millisecond), WithTTL(time.Minute), WithTTLDeadLetter()}, 0x0D,
			cat(opts(0, 9), []byte{1, 'k', modeReplace, 0, 0, 0, 3}, ttl(60000, 1)), true},
	} {
		b, keyed, err := c.putFrame(nil, "q", 1, tc.opts)
		body := cat([]byte{1, 'q'}, tc.body)
		want := binary.BigEndian.AppendUint32(nil, uint32(2+len(body)+1))
		want = append(append(want, opPut, tc.flags), body...)
		if err != nil || keyed != tc.keyed || !bytes.Equal(b, want) {
			t.Errorf("%s: %x keyed %v %v\nwant %x keyed %v", tc.name, b, keyed, err, want, tc.keyed)
		}
	}
	// The other checks still apply to a PUT with a time to live.
	for name, o := range map[string][]PutOption{
		"priority 10":         {WithTTL(time.Second), WithPriority(10)},
		"empty key":           {WithTTL(time.Second), WithUniqueKey("")},
		"TTL over 30 days":    {WithUniqueKey("k"), WithTTL(MaxTTL + time.Hour)},
		"dead letter, no TTL": {WithUniqueKey("k"), WithTTLDeadLetter()},
	} {
		if b, _, err := c.putFrame(nil, "q", 1, o); !errors.Is(err, ErrBadArgument) || len(b) != 0 {
			t.Errorf("%s: %x %v, want a BAD_ARGUMENT and nothing encoded", name, b, err)
		}
	}
	if _, _, err := c.putFrame(nil, "", 1, []PutOption{WithTTL(time.Second)}); !errors.Is(err, ErrBadQueueName) {
		t.Errorf("empty queue name: %v", err)
	}
}

// A PUT with a time to live (or WithTTLDeadLetter alone) fails with
// ErrUnsupported and sends nothing against a server older than version 6 or
// one without bit 8: an older server would answer the flag with a fatal
// BAD_FLAGS.
func TestTTLNeedsVersion6AndItsFeature(t *testing.T) {
	for _, hello := range [][]byte{helloV3(), helloBody(5, 0x1FF), helloBody(6, 0xFF)} {
		c, s := dialFakeHello(t, hello)
		calls := map[string]error{}
		_, calls["Put"] = c.Put(ctx(t), "q", []byte("x"), WithTTL(time.Second))
		_, calls["Put TTL 0"] = c.Put(ctx(t), "q", []byte("x"), WithTTL(0))
		_, calls["Put dead letter"] = c.Put(ctx(t), "q", []byte("x"), WithTTLDeadLetter())
		_, calls["Put key"] = c.Put(ctx(t), "q", []byte("x"), WithUniqueKey("k"), WithTTL(time.Second))
		_, calls["PutReader"] = c.PutReader(ctx(t), "q", strings.NewReader("x"), 1, WithTTL(time.Second))
		_, calls["PutMany"] = c.PutMany(ctx(t), "q", [][]byte{[]byte("x")}, WithTTL(time.Second))
		calls["Pipeline.Put"] = refusedPipelinePut(t, c, WithTTL(time.Second), WithTTLDeadLetter())
		refusedAndUnsent(t, c, s, "PUT", calls)
	}
}

// With bit 8, a PUT with a time to live goes out with flag 0x08 (0x0D with
// the options and a key), and is answered as a PUT with options, or as a
// keyed PUT when it has a key; argument errors send nothing.
func TestTTLPutOverAFakeServer(t *testing.T) {
	c, s := dialFakeHello(t, helloBody(6, 0x1FF))
	if !c.Info().Has(FeatureTTL) {
		t.Fatalf("features %#x", c.Info().Features)
	}
	for name, opts := range map[string][]PutOption{
		"negative":            {WithTTL(-time.Second)},
		"over 30 days":        {WithTTL(MaxTTL + time.Millisecond)},
		"dead letter, no TTL": {WithTTLDeadLetter()},
	} {
		var e *Error
		if _, err := c.Put(ctx(t), "q", nil, opts...); !errors.As(err, &e) || e.Code != CodeBadArgument || !e.Local {
			t.Fatalf("%s: %v", name, err)
		}
	}
	put, got := asyncPut(t, c)

	put("hi", WithTTL(5*time.Second))
	op, flags, body := s.requestFlags()
	want := []byte{1, 'q', 0, 0, 0x13, 0x88, 0, 'h', 'i'}
	if op != opPut || flags != flagPutTTL || !bytes.Equal(body, want) {
		t.Fatalf("PUT with a TTL 0x%02x flags %#x %x, want flags 0x08 %x", op, flags, body, want)
	}
	s.reply(stStored, binary.BigEndian.AppendUint64(nil, 7))
	if r := <-got; r.err != nil || r.r != (PutResult{ID: 7, OriginalLen: 2, StoredLen: 2}) {
		t.Fatalf("%+v %v", r.r, r.err)
	}

	// TRUNCATED carries the id too.
	put("long", WithTTL(time.Second), WithTTLDeadLetter())
	if _, flags, body = s.requestFlags(); flags != flagPutTTL || body[6] != modeDeadLetter {
		t.Fatalf("flags %#x %x", flags, body)
	}
	tr := binary.BigEndian.AppendUint32(nil, 4)
	tr = binary.BigEndian.AppendUint32(tr, 2)
	s.reply(stTruncated, binary.BigEndian.AppendUint64(tr, 8))
	if r := <-got; r.err != nil || r.r != (PutResult{ID: 8, Truncated: true, OriginalLen: 4, StoredLen: 2}) {
		t.Fatalf("%+v %v", r.r, r.err)
	}

	// With a key, DUPLICATE answers it.
	put("x", WithUniqueKey("k"), WithTTL(time.Minute), WithTTLDeadLetter(), WithPriority(1))
	op, flags, body = s.requestFlags()
	want = []byte{1, 'q', 0, 0, 0, 0, 1, 1, 'k', 0, 0, 0, 0, 0, 0, 0, 0xEA, 0x60, modeDeadLetter, 'x'}
	if op != opPut || flags != flagPutOptions|flagPutUnique|flagPutTTL || !bytes.Equal(body, want) {
		t.Fatalf("keyed PUT with a TTL 0x%02x flags %#x %x, want flags 0x0d %x", op, flags, body, want)
	}
	s.reply(stDuplicate, append(binary.BigEndian.AppendUint64(nil, 7), 1))
	if r := <-got; r.err != nil || r.r != (PutResult{ID: 7, Duplicate: HolderReady, OriginalLen: 1}) {
		t.Fatalf("%+v %v", r.r, r.err)
	}

	// Without a key, it cannot.
	put("x", WithTTL(time.Minute))
	if _, flags, _ = s.requestFlags(); flags != flagPutTTL {
		t.Fatalf("flags %#x", flags)
	}
	s.reply(stDuplicate, append(binary.BigEndian.AppendUint64(nil, 7), 1))
	if r := <-got; r.err == nil {
		t.Fatalf("DUPLICATE to a PUT without a key: %+v", r.r)
	}
}

// waitExpired polls STATS until the server figure "expired" reaches want,
// for at most 5 s (the server expires a message within a few milliseconds
// of its time), and returns those figures; more than want fails.
func waitExpired(t *testing.T, c *Client, want uint64) *Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := c.Stats(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		got := st.Server["expired"]
		if got > want {
			t.Fatalf("expired %d, want %d", got, want)
		}
		if got == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired stayed %d, want %d: %v", got, want, st.Server)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTTLExpiresUndelivered(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	const ttl = 200 * time.Millisecond
	put := time.Now()
	r, err := c.Put(ctx(t), "quotes", []byte("1.07"), WithTTL(ttl))
	if err != nil || r.ID == 0 || r.StoredLen != 4 {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := c.Put(ctx(t), "quotes", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	st, err := c.Stats(ctx(t))
	if err != nil || st.Server["expiring"] != 1 || st.Server["expired"] != 0 || st.Queues["quotes"]["messages"] != 2 {
		t.Fatalf("before its time: %v %v", st.Server, err)
	}
	// Until then it is there as any message.
	if m, err := c.Peek(ctx(t), "quotes", 10); err != nil || len(m) != 2 || m[0].ID != r.ID {
		t.Fatalf("peek %v %v", m, err)
	}
	st = waitExpired(t, c, 1)
	// The server counts whole ms: allow it a few of its own rounding.
	if since := time.Since(put); since < ttl-10*time.Millisecond {
		t.Fatalf("expired %v after the PUT, before its time to live of %v", since, ttl)
	}
	if st.Server["expiring"] != 0 || st.Queues["quotes"]["expired"] != 1 || st.Queues["quotes"]["messages"] != 1 {
		t.Fatalf("after: %v %v", st.Server, st.Queues["quotes"])
	}
	if m, err := c.Get(ctx(t), "quotes", 0, 10); err != nil || fmt.Sprintf("%s", m) != "[kept]" {
		t.Fatalf("%s %v: the expired message must never be delivered", m, err)
	}
	if m, err := c.Get(ctx(t), "quotes", 0, 10); err != nil || m != nil {
		t.Fatalf("%s %v, want an empty queue", m, err)
	}

	// A delayed message whose time to live ends first never becomes ready:
	// a GET waiting past the end of its delay gets nothing.
	if _, err := c.Put(ctx(t), "later", []byte("late"), WithDelay(300*time.Millisecond), WithTTL(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	waitExpired(t, c, 2)
	if m, err := c.Get(ctx(t), "later", 400*time.Millisecond, 1); err != nil || m != nil {
		t.Fatalf("%s %v: a delayed message expired before it was ready", m, err)
	}
}

// A message in flight is left to its lease: its consumer may still ACK it
// after its time to live. A lease that ends any other way lets it expire.
func TestTTLInFlight(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	const ttl = 150 * time.Millisecond
	for _, p := range []string{"acked", "nacked"} {
		if _, err := c.Put(ctx(t), "work", []byte(p), WithTTL(ttl)); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := c.Lease(ctx(t), "work", LeaseOptions{Max: 2, Lease: time.Minute})
	if err != nil || len(ms) != 2 {
		t.Fatalf("%v %v", ms, err)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	st, err := c.Stats(ctx(t))
	if err != nil || st.Server["expired"] != 0 || st.Queues["work"]["in_flight"] != 2 {
		t.Fatalf("leased past their time: %v %v %v", st.Server, st.Queues["work"], err)
	}
	if r, err := ms[0].Ack(ctx(t)); err != nil || r != SettleOK {
		t.Fatalf("ACK after the time to live: %v %v", r, err)
	}
	if r, err := ms[1].Nack(ctx(t), NackOptions{NoCharge: true}); err != nil || r != SettleOK {
		t.Fatalf("NACK: %v %v", r, err)
	}
	st = waitExpired(t, c, 1)
	if st.Queues["work"]["expired"] != 1 {
		t.Fatalf("%v", st.Queues["work"])
	}
	if m, err := c.Lease(ctx(t), "work", LeaseOptions{}); err != nil || m != nil {
		t.Fatalf("%v %v: a NACKed message past its time is not given out again", m, err)
	}
}

func TestTTLDeadLetter(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	const ttl = 150 * time.Millisecond
	charge, err := c.Put(ctx(t), "billing", []byte("charge card"), WithTTL(ttl), WithTTLDeadLetter(), WithPriority(2))
	if err != nil || charge.ID == 0 {
		t.Fatalf("%+v %v", charge, err)
	}
	// With a key: flags 0x0C on the wire, and the key is released on expiry.
	invoice, err := c.Put(ctx(t), "billing", []byte("invoice"), WithUniqueKey("inv-1"), WithTTL(ttl), WithTTLDeadLetter())
	if err != nil || invoice.ID == 0 || invoice.Duplicate != 0 {
		t.Fatalf("%+v %v", invoice, err)
	}
	if r, err := c.Put(ctx(t), "billing", nil, WithUniqueKey("inv-1"), WithTTL(ttl)); err != nil || r.Duplicate != HolderReady || r.ID != invoice.ID {
		t.Fatalf("the key is held until it expires: %+v %v", r, err)
	}
	if _, err := c.Put(ctx(t), "billing", []byte("dropped"), WithTTL(ttl)); err != nil {
		t.Fatal(err)
	}
	st := waitExpired(t, c, 3)
	if st.Server["dead_lettered"] != 2 || st.Queues["billing"]["expired"] != 3 || st.Queues["billing"]["dead_lettered"] != 2 || st.Server["expiring"] != 0 {
		t.Fatalf("%v %v", st.Server, st.Queues["billing"])
	}
	if m, err := c.Get(ctx(t), "billing", 0, 10); err != nil || m != nil {
		t.Fatalf("%s %v", m, err)
	}
	// In <queue>.dead, ready, with their ids, without a time to live.
	dead, err := c.Peek(ctx(t), "billing.dead", 10)
	if err != nil || len(dead) != 2 {
		t.Fatalf("%v %v", dead, err)
	}
	got := map[uint64]string{}
	for _, m := range dead {
		got[m.ID] = string(m.Payload)
	}
	if want := map[uint64]string{charge.ID: "charge card", invoice.ID: "invoice"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dead letters %v, want %v", got, want)
	}
	if r, err := c.Put(ctx(t), "billing", []byte("again"), WithUniqueKey("inv-1")); err != nil || r.Duplicate != 0 || r.ID == invoice.ID {
		t.Fatalf("the key after its message expired: %+v %v", r, err)
	}
}

// BQUEUETTL gives a default to the messages put without WithTTL, keyed ones
// too; WithTTL(0) opts out of it and WithTTL sets another.
func TestTTLQueueDefault(t *testing.T) {
	s := startServer(t, "BQUEUETTL=cache=200ms")
	c := s.dial(t)
	for _, p := range []struct {
		queue, payload string
		opts           []PutOption
	}{
		{"cache", "default", nil},
		{"cache", "never", []PutOption{WithTTL(0)}},
		{"cache", "an hour", []PutOption{WithTTL(time.Hour)}},
		{"cache", "keyed", []PutOption{WithUniqueKey("k")}},
		{"cache", "keyed, never", []PutOption{WithUniqueKey("k2"), WithTTL(0), WithPriority(9)}},
		{"other", "no default", nil},
	} {
		if r, err := c.Put(ctx(t), p.queue, []byte(p.payload), p.opts...); err != nil || r.ID == 0 {
			t.Fatalf("%s: %+v %v", p.payload, r, err)
		}
	}
	st, err := c.Stats(ctx(t))
	if err != nil || st.Server["expiring"] != 3 {
		t.Fatalf("expiring %v %v, want 3 (default, an hour, keyed)", st.Server, err)
	}
	st = waitExpired(t, c, 2)
	if st.Server["expiring"] != 1 || st.Queues["cache"]["expired"] != 2 || st.Server["dead_lettered"] != 0 {
		t.Fatalf("%v %v", st.Server, st.Queues["cache"])
	}
	if m, err := c.Get(ctx(t), "cache", 0, 10); err != nil || fmt.Sprintf("%q", m) != `["never" "an hour" "keyed, never"]` {
		t.Fatalf("%q %v", m, err)
	}
	if m, err := c.Get(ctx(t), "other", 0, 10); err != nil || fmt.Sprintf("%s", m) != "[no default]" {
		t.Fatalf("%s %v", m, err)
	}
}

// PutMany, Pipeline.Put and PutReader carry a time to live too.
func TestTTLInBatchesAndStreams(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	const ttl = 150 * time.Millisecond
	rs, err := c.PutMany(ctx(t), "b", [][]byte{[]byte("1"), []byte("2"), []byte("3")}, WithTTL(ttl))
	if err != nil || len(rs) != 3 || rs[0].ID == 0 || rs[1].ID <= rs[0].ID || rs[2].ID <= rs[1].ID {
		t.Fatalf("%+v %v", rs, err)
	}
	p := c.Pipeline()
	keyed := p.Put("b", []byte("k"), WithUniqueKey("k"), WithTTL(ttl))
	plain := p.Put("b", []byte("stays"))
	if err := p.Exec(ctx(t)); err != nil {
		t.Fatal(err)
	}
	kr, err1 := keyed.Result()
	pr, err2 := plain.Result()
	if err1 != nil || err2 != nil || kr.ID == 0 || kr.Duplicate != 0 || pr.ID == 0 {
		t.Fatalf("%+v %+v %v %v", kr, pr, err1, err2)
	}
	r, err := c.PutReader(ctx(t), "b", strings.NewReader("streamed"), 8, WithTTL(ttl), WithTTLDeadLetter())
	if err != nil || r.ID == 0 || r.StoredLen != 8 {
		t.Fatalf("PutReader: %+v %v", r, err)
	}
	st, err := c.Stats(ctx(t))
	if err != nil || st.Server["expiring"] != 5 {
		t.Fatalf("%v %v", st.Server, err)
	}
	waitExpired(t, c, 5)
	if m, err := c.Get(ctx(t), "b", 0, 10); err != nil || fmt.Sprintf("%s", m) != "[stays]" {
		t.Fatalf("%s %v", m, err)
	}
	if m, err := c.Get(ctx(t), "b.dead", 0, 10); err != nil || fmt.Sprintf("%s", m) != "[streamed]" {
		t.Fatalf("%s %v", m, err)
	}
}
