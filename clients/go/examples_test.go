package beuss

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// example is one frame of clients/testdata/protocol-examples.json.
type example struct {
	Section string `json:"section"`
	Heading string `json:"heading"`
	Index   int    `json:"index"`
	Dir     string `json:"dir"`
	Hex     string `json:"hex"`
	Elided  bool   `json:"elided"`
}

// req is what the client's encoder must produce for a request example.
type req func() []byte

// resp checks the decoded values of a response example.
type resp func(t *testing.T, f frame)

func mustPut(queue string, payload string, withOpts bool, prio uint8) []byte {
	b, err := putHead(nil, queue, int64(len(payload)), withOpts, 0, prio, nil, nil)
	if err != nil {
		panic(err)
	}
	return append(b, payload...)
}

func refs(ids ...uint64) []LeaseRef {
	var out []LeaseRef
	for i := 0; i < len(ids); i += 2 {
		out = append(out, LeaseRef{ID: ids[i], Attempt: uint32(ids[i+1])})
	}
	return out
}

func status(want byte) resp {
	return func(t *testing.T, f frame) {
		if f.status != want || len(f.body) != 0 {
			t.Fatalf("status %#x body %x, want %#x and no body", f.status, f.body, want)
		}
	}
}

func messages(want ...string) resp {
	return func(t *testing.T, f frame) {
		got, err := decodeGet(f)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, m := range got {
			s = append(s, string(m))
		}
		if !reflect.DeepEqual(s, want) {
			t.Fatalf("messages %q, want %q", s, want)
		}
	}
}

func put(want PutResult, payloadLen int) resp {
	return keyedPut(want, payloadLen, false)
}

// keyedPut checks the answer to a PUT; keyed says whether it carried a
// unique key, which DUPLICATE and REPLACED answer.
func keyedPut(want PutResult, payloadLen int, keyed bool) resp {
	return func(t *testing.T, f frame) {
		got, err := parsePut(f, payloadLen, keyed)
		if err != nil || got != want {
			t.Fatalf("put %+v %v, want %+v", got, err, want)
		}
	}
}

func deliveries(st byte, meta bool, want ...Message) resp {
	return func(t *testing.T, f frame) {
		if f.status != st {
			t.Fatalf("status %#x, want %#x", f.status, st)
		}
		got, err := parseDeliveries(f.body, meta)
		if err != nil || len(got) != len(want) {
			t.Fatalf("%d deliveries, %v; want %d", len(got), err, len(want))
		}
		for i, m := range got {
			w := want[i]
			if m.ID != w.ID || m.Attempt != w.Attempt || string(m.Payload) != string(w.Payload) || m.Subject != w.Subject || m.ReplyTo != w.ReplyTo {
				t.Fatalf("delivery %+v, want %+v", m, w)
			}
		}
	}
}

func settled(want ...SettleResult) resp {
	return func(t *testing.T, f frame) {
		if f.status != stSettled {
			t.Fatalf("status %#x", f.status)
		}
		got, err := parseSettled(f.body)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("settled %v %v, want %v", got, err, want)
		}
	}
}

func flag(st byte, want bool) resp {
	return func(t *testing.T, f frame) {
		got, err := parseFlag(f.body)
		if f.status != st || err != nil || got != want {
			t.Fatalf("status %#x flag %v %v, want %#x %v", f.status, got, err, st, want)
		}
	}
}

func u64(st byte, want uint64) resp {
	return func(t *testing.T, f frame) {
		got, err := parseU64(f.body)
		if f.status != st || err != nil || got != want {
			t.Fatalf("status %#x value %d %v, want %#x %d", f.status, got, err, st, want)
		}
	}
}

func subscribed(want uint32) resp {
	return func(t *testing.T, f frame) {
		got, err := parseU32(f.body)
		if f.status != stSubscribed || err != nil || got != want {
			t.Fatalf("sid %d %v, want %d", got, err, want)
		}
	}
}

func event(want Event) resp {
	return func(t *testing.T, f frame) {
		if f.status != stEvent {
			t.Fatalf("status %#x", f.status)
		}
		got, err := parseEvent(f.body)
		if err != nil || !reflect.DeepEqual(*got, want) {
			t.Fatalf("event %+v %v, want %+v", got, err, want)
		}
	}
}

func hello(want ServerInfo) resp {
	return func(t *testing.T, f frame) {
		got, err := parseHello(f.body)
		if f.status != stHello || err != nil || got != want {
			t.Fatalf("hello %+v %v, want %+v", got, err, want)
		}
	}
}

// examples maps "section/index" to the check of that frame. A frame in the
// file without an entry fails the test, so a new example needs a check here.
var examples = map[string]interface{}{
	"10.1/0": req(func() []byte { return encodeEmpty(nil, opPing) }),
	"10.1/1": resp(status(stPong)),
	"10.2/0": req(func() []byte { return mustPut("jobs", "hello", false, 0) }),
	"10.2/1": resp(put(PutResult{OriginalLen: 5, StoredLen: 5}, 5)),
	"10.3/0": req(func() []byte { return encodeGet(nil, opGet, 0, "jobs", 0, 1) }),
	"10.3/1": resp(messages("hello")),
	"10.3/2": req(func() []byte { return mustPut("jobs", "one", false, 0) }),
	"10.3/3": resp(put(PutResult{OriginalLen: 3, StoredLen: 3}, 3)),
	"10.3/4": req(func() []byte { return mustPut("jobs", "two!", false, 0) }),
	"10.3/5": resp(put(PutResult{OriginalLen: 4, StoredLen: 4}, 4)),
	"10.3/6": req(func() []byte { return encodeGet(nil, opGet, 0, "jobs", 0, 10) }),
	"10.3/7": resp(messages("one", "two!")),
	"10.4/0": resp(messages()),
	"10.5/0": req(func() []byte {
		b, _ := putHead(nil, "jobs", 20000, false, 0, 0, nil, nil)
		return b
	}),
	"10.5/1": resp(put(PutResult{Truncated: true, OriginalLen: 20000, StoredLen: 10240}, 20000)),
	"10.6/0": resp(func(t *testing.T, f frame) {
		e, ok := unexpected(f).(*Error)
		if !ok || e.Code != CodeUnknownOpcode || !e.Fatal || e.Text != "unknown opcode 0x2f" {
			t.Fatalf("error %#v", e)
		}
	}),
	"10.7/0": req(func() []byte { return encodeHello(nil, 1) }),
	"10.7/1": resp(hello(ServerInfo{Version: 1, MaxMessageSize: 1 << 20, Server: "beuss 0.1.0"})),
	"10.8/0": req(func() []byte { return encodeEmpty(nil, opQuit) }),
	"10.8/1": resp(status(stBye)),
	"10.8/2": req(func() []byte { return encodeQueueOnly(nil, opPurge, "jobs") }),
	"10.8/3": resp(u64(stPurged, 3)),
	"10.8/4": req(func() []byte { return encodeStats(nil, "") }),
	"10.8/5": req(func() []byte { return encodeStats(nil, "jobs") }),
	"10.8/6": req(func() []byte { return encodeGet(nil, opGet, 0, "jobs", waitMs(Forever), 10) }),
	"10.8/7": resp(func(t *testing.T, f frame) {
		s, err := parseStats(f.body)
		want := &Stats{Server: map[string]uint64{"uptime_seconds": 42, "queues": 1}, Queues: map[string]map[string]uint64{"jobs": {"messages": 2}}}
		if f.status != stStats || err != nil || !reflect.DeepEqual(s, want) {
			t.Fatalf("stats %+v %v", s, err)
		}
	}),
	"13.13/0": req(func() []byte { return encodeHello(nil, 3) }),
	"13.13/1": resp(hello(ServerInfo{Version: 3, MaxMessageSize: 1 << 20, Server: "beuss 0.1.0", Features: 0x13,
		DefaultLease: 30 * time.Second, MaxLease: 12 * time.Hour, MaxDelay: 30 * 24 * time.Hour, MaxDeliveries: 20})),
	"13.13/2":  req(func() []byte { return mustPut("jobs", "job", true, 2) }),
	"13.13/3":  resp(put(PutResult{ID: 1, OriginalLen: 3, StoredLen: 3}, 3)),
	"13.13/4":  req(func() []byte { return encodeLease(nil, 0, "jobs", 0, 1, ms(30*time.Second), 0, 0) }),
	"13.13/5":  resp(deliveries(stLeased, false, Message{ID: 1, Attempt: 1, Payload: []byte("job")})),
	"13.13/6":  req(func() []byte { return encodeSettle(nil, opTouch, "jobs", leaseExtra(0), refs(1, 1)) }),
	"13.13/7":  resp(settled(SettleOK)),
	"13.13/8":  req(func() []byte { return encodeSettle(nil, opAck, "jobs", nil, refs(1, 1, 1, 1)) }),
	"13.13/9":  resp(settled(SettleOK, SettleNotFound)),
	"13.13/10": req(func() []byte { return mustPut("jobs", "bad", true, DefaultPriority) }),
	"13.13/11": resp(put(PutResult{ID: 2, OriginalLen: 3, StoredLen: 3}, 3)),
	"13.13/12": req(func() []byte { return encodeLease(nil, 0, "jobs", 0, 1, ms(30*time.Second), 0, 0) }),
	"13.13/13": resp(deliveries(stLeased, false, Message{ID: 2, Attempt: 1, Payload: []byte("bad")})),
	"13.13/14": req(func() []byte {
		return encodeSettle(nil, opNack, "jobs", nackExtra(NackOptions{Dead: true}), refs(2, 1))
	}),
	"13.13/15": resp(settled(SettleOK)),
	"13.13/16": req(func() []byte { return encodePeek(nil, 0, "jobs.dead", 10) }),
	"13.13/17": resp(deliveries(stPeeked, false, Message{ID: 2, Attempt: 1, Payload: []byte("bad")})),
	"13.13/18": req(func() []byte { return encodeMove(nil, "jobs.dead", "jobs", 100) }),
	"13.13/19": resp(u64(stMoved, 1)),
	"15.12/0":  req(func() []byte { return encodeSub(nil, "orders.>") }),
	"15.12/1":  resp(subscribed(1)),
	"15.12/2":  req(func() []byte { return encodeBind(nil, opBind, "orders.*.created", "audit") }),
	"15.12/3":  resp(flag(stBound, true)),
	"15.12/4": req(func() []byte {
		return encodePub(nil, "orders.eu.created", 0, DefaultPriority, 1, ms(5*time.Second), []byte("hi"))
	}),
	"15.12/5": resp(event(Event{Sid: 1, Subject: "orders.eu.created", Payload: []byte("hi")})),
	"15.12/6": req(func() []byte { return encodeGet(nil, opGet, flagWithMeta, "audit", 0, 10) }),
	"15.12/7": resp(deliveries(stEnvelopes, true, Message{ID: 1, Attempt: 0, Subject: "orders.eu.created", Payload: []byte("hi")})),
	"15.12/8": resp(func(t *testing.T, f frame) {
		p, err := parsePublished(f.body)
		want := Published{Queues: 1, Subscribers: 1, OriginalLen: 2, StoredLen: 2, Acked: 1}
		if f.status != stPublished || err != nil || p != want {
			t.Fatalf("published %+v %v", p, err)
		}
	}),
	"15.12/9":  req(func() []byte { return encodeSub(nil, "svc.*") }),
	"15.12/10": resp(subscribed(2)),
	"15.12/11": req(func() []byte { return encodeReq(nil, "svc.time", ms(time.Second), []byte("now?")) }),
	"15.12/12": resp(event(Event{Sid: 2, Subject: "svc.time", ReplyTo: 1, Payload: []byte("now?")})),
	"15.12/13": req(func() []byte { return encodeReply(nil, 1, []byte("12:00")) }),
	"15.12/14": resp(flag(stReplied, true)),
	"15.12/15": resp(func(t *testing.T, f frame) {
		if f.status != stReply || string(f.body) != "12:00" {
			t.Fatalf("reply %#x %q", f.status, f.body)
		}
	}),
	"16.9/0": req(func() []byte { return mustPut("jobs", "", false, 0) }),
	"16.9/1": resp(serverErr(CodeAuthRequired, true, "authentication required")),
	"16.9/2": req(func() []byte {
		b, err := encodeAuth(nil, []byte("0123456789abcdef"))
		if err != nil {
			panic(err)
		}
		return b
	}),
	"16.9/3": resp(func(t *testing.T, f frame) {
		ro, err := parseAuthed(f.body)
		if f.status != stAuthed || err != nil || ro {
			t.Fatalf("authed %#x %v %v", f.status, ro, err)
		}
	}),
	"16.9/4": req(func() []byte { return encodeQueueOnly(nil, opPurge, "jobs") }),
	"16.9/5": resp(serverErr(CodeForbidden, false, "this connection's token is read-only")),
	"17.8/0": req(func() []byte {
		return must(encodeSchedule(nil, "nightly", "0 3 * * *", QueueTarget("jobs"), 5, []byte("backup")))
	}),
	"17.8/1": resp(func(t *testing.T, f frame) {
		created, next, err := parseScheduled(f.body)
		if f.status != stScheduled || err != nil || !created || next != 1796353200000 {
			t.Fatalf("scheduled %#x %v %d %v", f.status, created, next, err)
		}
		if got := time.UnixMilli(int64(next)).UTC(); got != time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC) {
			t.Fatalf("first run %v", got)
		}
	}),
	"17.8/2": req(func() []byte { return must(encodePauseSchedule(nil, "nightly", true)) }),
	"17.8/3": resp(func(t *testing.T, f frame) {
		found, next, err := parseSchedulePaused(f.body)
		if f.status != stSchedulePaused || err != nil || !found || next != 0 {
			t.Fatalf("paused %#x %v %d %v", f.status, found, next, err)
		}
	}),
	"17.8/4": req(func() []byte { return must(encodeSchedules(nil, "")) }),
	"17.8/5": resp(func(t *testing.T, f frame) {
		got, err := parseScheduleList(f.body)
		want := []ScheduleInfo{{Name: "nightly", Spec: "0 3 * * *", Target: QueueTarget("jobs"), Priority: 5, Paused: true, PayloadLen: 6}}
		if f.status != stScheduleList || err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("schedules %#x %+v %v, want %+v", f.status, got, err, want)
		}
	}),
	"17.8/6": req(func() []byte { return must(encodeUnschedule(nil, "nightly")) }),
	"17.8/7": resp(flag(stUnscheduled, true)),
	"18.7/0": req(func() []byte { return mustPutKeyed("jobs", "hi", false, 0, "order-42", false, 10*time.Minute) }),
	"18.7/1": resp(keyedPut(PutResult{ID: 1, OriginalLen: 2, StoredLen: 2}, 2, true)),
	"18.7/2": req(func() []byte { return mustPutKeyed("jobs", "hi", false, 0, "order-42", false, 10*time.Minute) }),
	"18.7/3": resp(keyedPut(PutResult{ID: 1, OriginalLen: 2, Duplicate: HolderReady}, 2, true)),
	"18.7/4": req(func() []byte { return mustPutKeyed("jobs", "hey", true, 2, "order-42", true, 0) }),
	"18.7/5": resp(keyedPut(PutResult{ID: 1, OriginalLen: 3, StoredLen: 3, Replaced: true}, 3, true)),
	"19.7/0": req(func() []byte { return mustPutJob("quotes", "hi", false, WithTTL(5*time.Second)) }),
	"19.7/1": resp(put(PutResult{ID: 1, OriginalLen: 2, StoredLen: 2}, 2)),
	"19.7/2": req(func() []byte {
		return mustPutJob("jobs", "x", true, WithPriority(5), WithUniqueKey("k"), WithTTL(time.Minute), WithTTLDeadLetter())
	}),
	"19.7/3": resp(keyedPut(PutResult{ID: 2, OriginalLen: 1, StoredLen: 1}, 1, true)),
}

// mustPutJob is a whole PUT with any of the fields of version 6 (protocol.md
// 18.3, 19.2), the options turned into fields and checked as the client does
// before sending; withOpts adds the delay and priority fields even when they
// are the defaults.
func mustPutJob(queue, payload string, withOpts bool, opts ...PutOption) []byte {
	o := putOptions{prio: DefaultPriority}
	for _, f := range opts {
		f(&o)
	}
	u, err := o.unique()
	if err != nil {
		panic(err)
	}
	t, err := o.expiry()
	if err != nil {
		panic(err)
	}
	b, err := putHead(nil, queue, int64(len(payload)), withOpts, ms(o.delay), o.prio, u, t)
	if err != nil {
		panic(err)
	}
	return append(b, payload...)
}

// mustPutKeyed is a whole PUT with a unique key (protocol.md 18.3), its
// fields checked as the client checks them before sending.
func mustPutKeyed(queue, payload string, withOpts bool, prio uint8, key string, replace bool, window time.Duration) []byte {
	opts := []PutOption{WithUniqueKey(key), WithUniqueWindow(window)}
	if replace {
		opts = append(opts, WithReplace())
	}
	o := putOptions{prio: prio}
	for _, f := range opts {
		f(&o)
	}
	u, err := o.unique()
	if err != nil {
		panic(err)
	}
	b, err := putHead(nil, queue, int64(len(payload)), withOpts, 0, prio, u, nil)
	if err != nil {
		panic(err)
	}
	return append(b, payload...)
}

// must is the frame of an encoder that checks its arguments, which an
// example's are.
func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// serverErr checks an ERROR frame's code, fatal byte and text.
func serverErr(code Code, fatal bool, text string) func(*testing.T, frame) {
	return func(t *testing.T, f frame) {
		e, ok := unexpected(f).(*Error)
		if !ok || e.Code != code || e.Fatal != fatal || e.Text != text {
			t.Fatalf("error %#v", e)
		}
	}
}

// TestProtocolExamples checks every frame protocol.md shows: requests against
// this client's encoder byte for byte, responses through its decoder.
func TestProtocolExamples(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "protocol-examples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Frames []example `json:"frames"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Frames) == 0 {
		t.Fatal("no frames in protocol-examples.json")
	}
	seen := map[string]bool{}
	for _, ex := range file.Frames {
		key := fmt.Sprintf("%s/%d", ex.Section, ex.Index)
		seen[key] = true
		t.Run(key, func(t *testing.T) {
			want, err := hex.DecodeString(ex.Hex)
			if err != nil {
				t.Fatal(err)
			}
			check, ok := examples[key]
			if !ok {
				t.Fatalf("no check for example %s (%s, %s %s)", key, ex.Heading, ex.Dir, ex.Hex)
			}
			switch c := check.(type) {
			case req:
				if ex.Dir != ">" {
					t.Fatalf("check is for a request, frame goes %s", ex.Dir)
				}
				if got := c(); !bytes.Equal(got, want) {
					t.Fatalf("encoded\n%x\nwant\n%x", got, want)
				}
			case resp:
				if ex.Dir != "<" || ex.Elided {
					t.Fatalf("check is for a whole response, frame goes %s (elided %v)", ex.Dir, ex.Elided)
				}
				f, err := readFrame(bufio.NewReader(bytes.NewReader(want)), 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				c(t, f)
			default:
				t.Fatalf("check %s is neither a req nor a resp", key)
			}
		})
	}
	for key := range examples {
		if !seen[key] {
			t.Errorf("check %s has no frame in the file any more", key)
		}
	}
}
