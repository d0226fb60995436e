package beuss

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// Unique messages (protocol.md 18): the key fields and their checks, the
// DUPLICATE and REPLACED decoders, a fake server for the version check and
// the bytes on the wire, and the real server for what each state of the
// holder answers.

// putOpts applies options as putFrame does.
func putOpts(opts ...PutOption) putOptions {
	o := putOptions{prio: DefaultPriority}
	for _, f := range opts {
		f(&o)
	}
	return o
}

func TestUniqueOptionsAreCheckedBeforeSending(t *testing.T) {
	bad := map[string][]PutOption{
		"empty key":               {WithUniqueKey("")},
		"key of 256 bytes":        {WithUniqueKey(strings.Repeat("k", 256))},
		"negative window":         {WithUniqueKey("k"), WithUniqueWindow(-time.Millisecond)},
		"window over 30 days":     {WithUniqueKey("k"), WithUniqueWindow(MaxWindow + time.Millisecond)},
		"window rounded past max": {WithUniqueKey("k"), WithUniqueWindow(MaxWindow + time.Nanosecond)},
		"window without a key":    {WithUniqueWindow(time.Minute)},
		"zero window without key": {WithUniqueWindow(0)},
		"replace without a key":   {WithReplace()},
	}
	for name, opts := range bad {
		o := putOpts(opts...)
		u, err := o.unique()
		var e *Error
		if u != nil || !errors.As(err, &e) || e.Code != CodeBadArgument || !e.Local {
			t.Errorf("%s: %+v %v, want a local BAD_ARGUMENT", name, u, err)
		}
	}
	good := map[string]struct {
		opts []PutOption
		want uniqueFields
	}{
		"one byte":           {[]PutOption{WithUniqueKey("k")}, uniqueFields{key: "k"}},
		"255 bytes":          {[]PutOption{WithUniqueKey(strings.Repeat("k", 255))}, uniqueFields{key: strings.Repeat("k", 255)}},
		"any bytes":          {[]PutOption{WithUniqueKey("\x00\xff")}, uniqueFields{key: "\x00\xff"}},
		"30 days":            {[]PutOption{WithUniqueKey("k"), WithUniqueWindow(MaxWindow)}, uniqueFields{key: "k", windowMs: 2592000000}},
		"rounded up":         {[]PutOption{WithUniqueKey("k"), WithUniqueWindow(1500 * time.Microsecond)}, uniqueFields{key: "k", windowMs: 2}},
		"replace":            {[]PutOption{WithReplace(), WithUniqueKey("k")}, uniqueFields{key: "k", replace: true}},
		"last key wins":      {[]PutOption{WithUniqueKey(""), WithUniqueKey("b")}, uniqueFields{key: "b"}},
		"window and replace": {[]PutOption{WithUniqueKey("k"), WithReplace(), WithUniqueWindow(time.Minute)}, uniqueFields{key: "k", replace: true, windowMs: 60000}},
	}
	for name, g := range good {
		o := putOpts(g.opts...)
		u, err := o.unique()
		if err != nil || u == nil || *u != g.want {
			t.Errorf("%s: %+v %v, want %+v", name, u, err, g.want)
		}
	}
	if o := putOpts(WithPriority(1)); o.keyed {
		t.Error("no key without WithUniqueKey")
	} else if u, err := o.unique(); u != nil || err != nil {
		t.Errorf("a PUT without a key: %+v %v", u, err)
	}
}

func TestPutHeadWithAKey(t *testing.T) {
	u := &uniqueFields{key: "ab", replace: true, windowMs: 0x01020304}
	b, err := putHead(nil, "q", 3, false, 0, 0, u, nil)
	want := []byte{0, 0, 0, 15, opPut, flagPutUnique, 1, 'q', 2, 'a', 'b', 1, 1, 2, 3, 4}
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("key only:\n%x\nwant\n%x (%v)", b, want, err)
	}
	b, err = putHead(nil, "q", 3, true, 0x0A0B0C0D, 7, &uniqueFields{key: "k"}, nil)
	want = []byte{0, 0, 0, 19, opPut, flagPutOptions | flagPutUnique, 1, 'q', 0x0A, 0x0B, 0x0C, 0x0D, 7, 1, 'k', 0, 0, 0, 0, 0}
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("with options:\n%x\nwant\n%x (%v)", b, want, err)
	}
	// The declared length counts the payload that follows the head.
	if n := binary.BigEndian.Uint32(b); int(n) != len(b)-4+3 {
		t.Fatalf("length %d for a head of %d bytes and 3 of payload", n, len(b))
	}
	// The key fields count toward the u32 limit too.
	if _, err := putHead(nil, "q", 1<<32-1-(2+2+6+1), false, 0, 0, &uniqueFields{key: "k"}, nil); err != nil {
		t.Fatalf("a PUT of exactly 4 GiB - 1: %v", err)
	}
	if _, err := putHead(nil, "q", 1<<32-(2+2+6+1), false, 0, 0, &uniqueFields{key: "k"}, nil); err == nil {
		t.Fatal("a keyed PUT over 4 GiB must be refused")
	}
}

func TestUniqueRepliesDecode(t *testing.T) {
	dup := append(binary.BigEndian.AppendUint64(nil, 42), 2, 9, 9)
	r, err := parsePut(frame{status: stDuplicate, body: dup}, 5, true)
	if want := (PutResult{ID: 42, Duplicate: HolderDelayed, OriginalLen: 5}); err != nil || r != want {
		t.Fatalf("DUPLICATE with trailing bytes: %+v %v, want %+v", r, err, want)
	}
	rep := binary.BigEndian.AppendUint64(nil, 7)
	rep = binary.BigEndian.AppendUint32(rep, 40)
	rep = binary.BigEndian.AppendUint32(rep, 16)
	r, err = parsePut(frame{status: stReplaced, body: append(rep, 0xEE)}, 40, true)
	if want := (PutResult{ID: 7, Replaced: true, Truncated: true, OriginalLen: 40, StoredLen: 16}); err != nil || r != want {
		t.Fatalf("REPLACED cut to 16 bytes: %+v %v, want %+v", r, err, want)
	}
	// A state this client does not know is still a duplicate.
	r, err = parsePut(frame{status: stDuplicate, body: append(binary.BigEndian.AppendUint64(nil, 1), 9)}, 0, true)
	if err != nil || r.Duplicate != 9 || r.Duplicate.String() != "HOLDER_9" {
		t.Fatalf("unknown state: %+v %v", r, err)
	}
	// A keyed PUT that is stored gets its id, TRUNCATED too (13.4).
	tr := binary.BigEndian.AppendUint32(nil, 40)
	tr = binary.BigEndian.AppendUint32(tr, 16)
	r, err = parsePut(frame{status: stTruncated, body: binary.BigEndian.AppendUint64(tr, 3)}, 40, true)
	if want := (PutResult{ID: 3, Truncated: true, OriginalLen: 40, StoredLen: 16}); err != nil || r != want {
		t.Fatalf("TRUNCATED: %+v %v", r, err)
	}
	for name, f := range map[string]frame{
		"DUPLICATE without its state": {stDuplicate, dup[:8]},
		"DUPLICATE with state 0":      {stDuplicate, append(binary.BigEndian.AppendUint64(nil, 1), 0)},
		"REPLACED without stored_len": {stReplaced, rep[:12]},
	} {
		if r, err := parsePut(f, 1, true); err == nil {
			t.Errorf("%s: %+v, want an error", name, r)
		}
	}
	// Only a PUT with a key is answered so.
	for _, f := range []frame{{stDuplicate, dup}, {stReplaced, rep}} {
		if r, err := parsePut(f, 1, false); err == nil || !strings.Contains(err.Error(), "unexpected response status") {
			t.Errorf("status %#x to a PUT without a key: %+v %v", f.status, r, err)
		}
	}
}

func TestHolderNames(t *testing.T) {
	got := fmt.Sprint(Holder(0), HolderReady, HolderDelayed, HolderInFlight, HolderGone)
	if got != "NONE READY DELAYED IN_FLIGHT GONE" {
		t.Fatal(got)
	}
}

// requestFlags reads one request frame: its opcode, flags and body.
func (s *fakeServer) requestFlags() (op, flags byte, body []byte) {
	s.t.Helper()
	var hdr [6]byte
	if _, err := io.ReadFull(s.r, hdr[:]); err != nil {
		s.t.Fatalf("reading a request: %v", err)
	}
	body = make([]byte, binary.BigEndian.Uint32(hdr[:4])-2)
	if _, err := io.ReadFull(s.r, body); err != nil {
		s.t.Fatalf("reading a request body: %v", err)
	}
	return hdr[4], hdr[5], body
}

// A PUT with a key, a window or replace fails with ErrUnsupported and sends
// nothing against a server older than version 6 or one without bit 7: an
// older server would answer the flag with a fatal BAD_FLAGS.
func TestUniqueNeedsVersion6AndItsFeature(t *testing.T) {
	for _, hello := range [][]byte{helloV3(), helloBody(5, 0x7F), helloBody(6, 0x7F)} {
		c, s := dialFakeHello(t, hello)
		calls := map[string]error{}
		_, calls["Put"] = c.Put(ctx(t), "q", []byte("x"), WithUniqueKey("k"))
		_, calls["Put replace"] = c.Put(ctx(t), "q", []byte("x"), WithReplace())
		_, calls["Put window"] = c.Put(ctx(t), "q", []byte("x"), WithUniqueWindow(time.Second))
		_, calls["PutReader"] = c.PutReader(ctx(t), "q", strings.NewReader("x"), 1, WithUniqueKey("k"))
		_, calls["PutMany"] = c.PutMany(ctx(t), "q", [][]byte{[]byte("x")}, WithUniqueKey("k"))
		calls["Pipeline.Put"] = refusedPipelinePut(t, c, WithUniqueKey("k"))
		refusedAndUnsent(t, c, s, "PUT", calls)
	}
}

// With bit 7, a keyed PUT goes out with flags 0x04 (0x05 when it has a delay
// or a priority), and DUPLICATE and REPLACED come back as results; argument
// errors send nothing.
func TestUniquePutOverAFakeServer(t *testing.T) {
	c, s := dialFakeHello(t, helloBody(6, 0xFF))
	if _, err := c.Put(ctx(t), "q", nil, WithUniqueKey(strings.Repeat("k", 256))); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("a key of 256 bytes: %v", err)
	}
	if _, err := c.Put(ctx(t), "q", nil, WithReplace()); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("replace without a key: %v", err)
	}
	if _, err := c.Put(ctx(t), "q", nil, WithUniqueKey("k"), WithPriority(10)); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("a priority of 10: %v", err)
	}
	put, got := asyncPut(t, c)

	put("hi", WithUniqueKey("k1"), WithUniqueWindow(time.Second))
	op, flags, body := s.requestFlags()
	want := []byte{1, 'q', 2, 'k', '1', 0, 0, 0, 0x03, 0xE8, 'h', 'i'}
	if op != opPut || flags != flagPutUnique || !bytes.Equal(body, want) {
		t.Fatalf("keyed PUT 0x%02x flags %#x %x, want flags 0x04 %x", op, flags, body, want)
	}
	s.reply(stDuplicate, append(binary.BigEndian.AppendUint64(nil, 5), 3, 0xAA))
	if r := <-got; r.err != nil || r.r != (PutResult{ID: 5, Duplicate: HolderInFlight, OriginalLen: 2}) {
		t.Fatalf("%+v %v", r.r, r.err)
	}

	put("new", WithUniqueKey("k1"), WithReplace(), WithPriority(1))
	op, flags, body = s.requestFlags()
	want = []byte{1, 'q', 0, 0, 0, 0, 1, 2, 'k', '1', modeReplace, 0, 0, 0, 0, 'n', 'e', 'w'}
	if op != opPut || flags != flagPutOptions|flagPutUnique || !bytes.Equal(body, want) {
		t.Fatalf("replacing PUT 0x%02x flags %#x %x, want flags 0x05 %x", op, flags, body, want)
	}
	rep := binary.BigEndian.AppendUint64(nil, 5)
	rep = binary.BigEndian.AppendUint32(rep, 3)
	s.reply(stReplaced, binary.BigEndian.AppendUint32(rep, 3))
	if r := <-got; r.err != nil || r.r != (PutResult{ID: 5, Replaced: true, OriginalLen: 3, StoredLen: 3}) {
		t.Fatalf("%+v %v", r.r, r.err)
	}

	// A PUT without a key keeps the layout of version 2, and a DUPLICATE
	// cannot answer it.
	put("x")
	if op, flags, _ = s.requestFlags(); op != opPut || flags != flagPutOptions {
		t.Fatalf("plain PUT 0x%02x flags %#x", op, flags)
	}
	s.reply(stDuplicate, append(binary.BigEndian.AppendUint64(nil, 5), 1))
	if r := <-got; r.err == nil {
		t.Fatalf("DUPLICATE to a PUT without a key: %+v", r.r)
	}
}

func TestUniqueDuplicateWhileReady(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	first, err := c.Put(ctx(t), "jobs", []byte("first"), WithUniqueKey("order-42"))
	if err != nil || first.ID == 0 || first.Duplicate != 0 || first.Replaced || first.StoredLen != 5 {
		t.Fatalf("stored: %+v %v", first, err)
	}
	again, err := c.Put(ctx(t), "jobs", []byte("second"), WithUniqueKey("order-42"))
	if want := (PutResult{ID: first.ID, Duplicate: HolderReady, OriginalLen: 6}); err != nil || again != want {
		t.Fatalf("duplicate: %+v %v, want %+v", again, err, want)
	}
	// Keys belong to their queue; a key is any bytes.
	other, err := c.Put(ctx(t), "mail", []byte("x"), WithUniqueKey("order-42"))
	if err != nil || other.Duplicate != 0 || other.ID == first.ID {
		t.Fatalf("same key on another queue: %+v %v", other, err)
	}
	bin, err := c.Put(ctx(t), "jobs", []byte("b"), WithUniqueKey("\x00\xff"))
	if err != nil || bin.Duplicate != 0 {
		t.Fatalf("binary key: %+v %v", bin, err)
	}
	// A refused argument costs nothing: the connection goes on.
	if _, err := c.Put(ctx(t), "jobs", nil, WithUniqueKey(strings.Repeat("k", 256))); !errors.Is(err, ErrBadArgument) {
		t.Fatal(err)
	}
	st, err := c.Stats(ctx(t))
	if err != nil || st.Server["unique_keys"] != 3 || st.Server["unique_duplicates"] != 1 || st.Queues["jobs"]["messages"] != 2 {
		t.Fatalf("stats %v %v", st.Server, err)
	}
	got, err := c.Get(ctx(t), "jobs", 0, 10)
	if err != nil || fmt.Sprintf("%q", got) != `["first" "b"]` {
		t.Fatalf("%q %v: the duplicate must not be stored", got, err)
	}
	// Without a window the key is forgotten as its message leaves.
	after, err := c.Put(ctx(t), "jobs", []byte("third"), WithUniqueKey("order-42"))
	if err != nil || after.Duplicate != 0 || after.ID <= first.ID {
		t.Fatalf("after the holder left: %+v %v", after, err)
	}
}

func TestUniqueReplaceChangesThePayload(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	held, _ := c.Put(ctx(t), "prices", []byte("10.00"), WithUniqueKey("EURUSD"))
	c.Put(ctx(t), "prices", []byte("other"))
	r, err := c.Put(ctx(t), "prices", []byte("10.5"), WithUniqueKey("EURUSD"), WithReplace())
	if want := (PutResult{ID: held.ID, Replaced: true, OriginalLen: 4, StoredLen: 4}); err != nil || r != want {
		t.Fatalf("replace: %+v %v, want %+v", r, err, want)
	}
	// One message, the new payload, in the old one's place.
	got, err := c.Lease(ctx(t), "prices", LeaseOptions{Max: 10})
	if err != nil || len(got) != 2 || got[0].ID != held.ID || string(got[0].Payload) != "10.5" || string(got[1].Payload) != "other" {
		t.Fatalf("%v %v", got, err)
	}
	for _, m := range got {
		m.Ack(ctx(t))
	}

	// Replace takes the PUT's priority: low (9) becomes urgent (0).
	c.Put(ctx(t), "p", []byte("low"), WithUniqueKey("k"), WithPriority(9))
	c.Put(ctx(t), "p", []byte("normal"))
	if r, err := c.Put(ctx(t), "p", []byte("urgent"), WithUniqueKey("k"), WithReplace(), WithPriority(0)); err != nil || !r.Replaced {
		t.Fatalf("%+v %v", r, err)
	}
	if m, _ := c.Get(ctx(t), "p", 0, 10); fmt.Sprintf("%s", m) != "[urgent normal]" {
		t.Fatalf("%s", m)
	}

	// Replace with no holder stores; a delayed holder is a duplicate, and a
	// replace without a delay makes it ready now.
	stored, err := c.Put(ctx(t), "d", []byte("later"), WithUniqueKey("k"), WithReplace(), WithDelay(time.Hour))
	if err != nil || stored.Replaced || stored.Duplicate != 0 || stored.ID == 0 {
		t.Fatalf("replace with no holder: %+v %v", stored, err)
	}
	if r, err := c.Put(ctx(t), "d", []byte("x"), WithUniqueKey("k")); err != nil || r.Duplicate != HolderDelayed || r.ID != stored.ID {
		t.Fatalf("delayed holder: %+v %v", r, err)
	}
	if r, err := c.Put(ctx(t), "d", []byte("now"), WithUniqueKey("k"), WithReplace()); err != nil || !r.Replaced || r.ID != stored.ID {
		t.Fatalf("replace of a delayed holder: %+v %v", r, err)
	}
	if m, err := c.Get(ctx(t), "d", 0, 10); err != nil || fmt.Sprintf("%s", m) != "[now]" {
		t.Fatalf("%s %v: the replaced message is ready at once", m, err)
	}
	st, err := c.Stats(ctx(t))
	if err != nil || st.Server["unique_replaced"] != 3 || st.Server["unique_duplicates"] != 1 {
		t.Fatalf("stats %v %v", st.Server, err)
	}
}

func TestUniqueReplaceTruncates(t *testing.T) {
	s := startServer(t, "BMAXMESSAGESIZE=16")
	c := s.dial(t)
	long := bytes.Repeat([]byte("x"), 40)
	r, err := c.Put(ctx(t), "t", long, WithUniqueKey("k"))
	if err != nil || !r.Truncated || r.ID == 0 || r.StoredLen != 16 || r.OriginalLen != 40 {
		t.Fatalf("TRUNCATED with its id: %+v %v", r, err)
	}
	again, err := c.Put(ctx(t), "t", long[:20], WithUniqueKey("k"), WithReplace())
	if want := (PutResult{ID: r.ID, Replaced: true, Truncated: true, OriginalLen: 20, StoredLen: 16}); err != nil || again != want {
		t.Fatalf("replace: %+v %v, want %+v", again, err, want)
	}
}

func TestUniqueDuplicateWhileInFlight(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	held, _ := c.Put(ctx(t), "jobs", []byte("job"), WithUniqueKey("k"))
	ms, err := c.Lease(ctx(t), "jobs", LeaseOptions{Lease: time.Minute})
	if err != nil || len(ms) != 1 || ms[0].ID != held.ID {
		t.Fatalf("%v %v", ms, err)
	}
	for _, opts := range [][]PutOption{{WithUniqueKey("k")}, {WithUniqueKey("k"), WithReplace()}} {
		r, err := c.Put(ctx(t), "jobs", []byte("again"), opts...)
		if want := (PutResult{ID: held.ID, Duplicate: HolderInFlight, OriginalLen: 5}); err != nil || r != want {
			t.Fatalf("in flight: %+v %v, want %+v (a leased message is never replaced)", r, err, want)
		}
	}
	// Back in the queue after a NACK, it still holds the key, ready.
	if r, err := ms[0].Nack(ctx(t), NackOptions{NoCharge: true}); err != nil || r != SettleOK {
		t.Fatal(r, err)
	}
	if r, err := c.Put(ctx(t), "jobs", nil, WithUniqueKey("k")); err != nil || r.Duplicate != HolderReady || r.ID != held.ID {
		t.Fatalf("after NACK: %+v %v", r, err)
	}
	again, _ := c.Lease(ctx(t), "jobs", LeaseOptions{})
	if len(again) != 1 || string(again[0].Payload) != "job" {
		t.Fatalf("the in-flight replace changed the payload: %v", again)
	}
	again[0].Ack(ctx(t))
	if r, err := c.Put(ctx(t), "jobs", nil, WithUniqueKey("k")); err != nil || r.Duplicate != 0 || r.ID == held.ID {
		t.Fatalf("after ACK: %+v %v", r, err)
	}
}

func TestUniqueWindow(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	held, _ := c.Put(ctx(t), "jobs", []byte("once"), WithUniqueKey("report"), WithUniqueWindow(10*time.Minute))
	if m, err := c.Get(ctx(t), "jobs", 0, 1); err != nil || len(m) != 1 {
		t.Fatalf("%q %v", m, err)
	}
	for _, opts := range [][]PutOption{{WithUniqueKey("report")}, {WithUniqueKey("report"), WithReplace()}} {
		r, err := c.Put(ctx(t), "jobs", []byte("twice"), opts...)
		if want := (PutResult{ID: held.ID, Duplicate: HolderGone, OriginalLen: 5}); err != nil || r != want {
			t.Fatalf("within the window: %+v %v, want %+v", r, err, want)
		}
	}
	st, err := c.Stats(ctx(t))
	if err != nil || st.Server["unique_remembered"] != 1 || st.Server["unique_keys"] != 0 || st.Queues["jobs"]["messages"] != 0 {
		t.Fatalf("stats %v %v", st.Server, err)
	}

	// A short window ends: the key is stored again, not before the window
	// (in milliseconds) has passed since the message left.
	const window = 300 * time.Millisecond
	c.Put(ctx(t), "brief", []byte("a"), WithUniqueKey("k"), WithUniqueWindow(window))
	taken := time.Now()
	c.Get(ctx(t), "brief", 0, 1)
	if r, _ := c.Put(ctx(t), "brief", nil, WithUniqueKey("k")); r.Duplicate != HolderGone {
		t.Fatalf("right after the GET: %+v", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := c.Put(ctx(t), "brief", []byte("b"), WithUniqueKey("k"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Duplicate == 0 {
			// The server counts ms; allow it a few of its own rounding.
			if since := time.Since(taken); since < window-10*time.Millisecond {
				t.Fatalf("stored again %v after the GET, within the window of %v", since, window)
			}
			break
		}
		if r.Duplicate != HolderGone || time.Now().After(deadline) {
			t.Fatalf("the window of %v did not end: %+v", window, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The other ways to PUT carry a key too: pipelined replies are matched to
// their results, and a duplicate in a batch is not its error.
func TestUniqueInBatchesAndStreams(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	rs, err := c.PutMany(ctx(t), "b", [][]byte{[]byte("1"), []byte("2"), []byte("3")}, WithUniqueKey("k"))
	if err != nil || len(rs) != 3 || rs[0].ID == 0 || rs[0].Duplicate != 0 {
		t.Fatalf("%+v %v", rs, err)
	}
	for _, r := range rs[1:] {
		if r.Duplicate != HolderReady || r.ID != rs[0].ID {
			t.Fatalf("%+v", rs)
		}
	}
	p := c.Pipeline()
	plain := p.Put("b", []byte("plain"))
	replaced := p.Put("b", []byte("r"), WithUniqueKey("k"), WithReplace())
	fresh := p.Put("b", []byte("f"), WithUniqueKey("other"))
	if err := p.Exec(ctx(t)); err != nil {
		t.Fatal(err)
	}
	pr, err1 := plain.Result()
	rr, err2 := replaced.Result()
	fr, err3 := fresh.Result()
	if err1 != nil || err2 != nil || err3 != nil || pr.Duplicate != 0 || !rr.Replaced || rr.ID != rs[0].ID || fr.Duplicate != 0 || fr.Replaced {
		t.Fatalf("%+v %+v %+v %v %v %v", pr, rr, fr, err1, err2, err3)
	}
	r, err := c.PutReader(ctx(t), "b", strings.NewReader("streamed"), 8, WithUniqueKey("other"))
	if err != nil || r.Duplicate != HolderReady || r.ID != fr.ID {
		t.Fatalf("PutReader: %+v %v", r, err)
	}
	if m, _ := c.Get(ctx(t), "b", 0, 10); fmt.Sprintf("%s", m) != "[r plain f]" {
		t.Fatalf("%s", m)
	}
}
