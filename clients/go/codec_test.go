package beuss

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMsRoundsUpAndClamps(t *testing.T) {
	cases := map[time.Duration]uint32{
		0: 0, -5: 0, time.Nanosecond: 1, time.Millisecond: 1, 1500 * time.Microsecond: 2,
		time.Second: 1000, 100 * 24 * time.Hour: waitForever - 1,
	}
	for d, want := range cases {
		if got := ms(d); got != want {
			t.Errorf("ms(%v) = %d, want %d", d, got, want)
		}
	}
	if waitMs(Forever) != waitForever {
		t.Error("Forever must encode as 0xFFFFFFFF")
	}
}

func TestNamesAreCheckedBeforeSending(t *testing.T) {
	for _, q := range []string{"", strings.Repeat("q", 256), "\xff"} {
		if err := checkQueue(q); !errors.Is(err, ErrBadQueueName) {
			t.Errorf("checkQueue(%q) = %v", q, err)
		}
	}
	if err := checkQueue(strings.Repeat("q", 255)); err != nil {
		t.Error(err)
	}
	if err := checkSubject(""); !errors.Is(err, ErrBadSubject) {
		t.Error(err)
	}
}

func TestPutTooLargeForAFrame(t *testing.T) {
	if _, err := putHead(nil, "q", 1<<32, false, 0, 0, nil, nil); err == nil {
		t.Fatal("a PUT over 4 GiB must be refused")
	}
	// PUB, REQ and REPLY too: a wrapped length would desynchronise the stream.
	if checkStreamed("PUB", 16, 1<<32-17) != nil || checkStreamed("PUB", 16, 1<<32-16) == nil {
		t.Fatal("the u32 length limit of a streamed frame is wrong")
	}
}

func TestResponsesIgnoreTrailingBytes(t *testing.T) {
	// Later versions append fields (protocol.md 9.2): a HELLO v1 reply with
	// extra bytes still decodes.
	info, err := parseHello([]byte{0, 1, 0, 0, 0, 10, 1, 'x', 9, 9, 9})
	if err != nil || info.Version != 1 || info.MaxMessageSize != 10 || info.Server != "x" {
		t.Fatalf("%+v %v", info, err)
	}
	if _, err := parseFlag([]byte{1, 7, 7}); err != nil {
		t.Fatal(err)
	}
}

func TestShortResponsesAreErrors(t *testing.T) {
	if _, err := parseMessages([]byte{0, 0, 0, 2, 0, 0, 0, 1, 'a'}); err == nil {
		t.Error("MESSAGES with a missing message must fail")
	}
	if _, err := parseMessages([]byte{0xff, 0xff, 0xff, 0xff}); err == nil {
		t.Error("MESSAGES with an absurd count must fail without allocating it")
	}
	if _, err := parseStats([]byte{0, 1, 3, 'a'}); err == nil {
		t.Error("short STATS must fail")
	}
	if _, err := parseHello([]byte{0, 2, 0, 0, 0, 1, 0, 0}); err == nil {
		t.Error("version-2 HELLO without its fields must fail")
	}
	if e := parseError([]byte{0}); e.Code != CodeMalformed {
		t.Error("short ERROR must be reported as malformed")
	}
}

func TestMetaSkipsUnknownTagsAndKeepsFirst(t *testing.T) {
	block := []byte{9, 2, 'z', 'z', tagSubject, 1, 'a', tagSubject, 1, 'b', tagDropped, 4, 0, 0, 0, 7}
	m, err := parseMeta(block)
	if err != nil || m.subject != "a" || m.dropped != 7 {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := parseMeta([]byte{tagSubject, 5, 'a'}); err == nil {
		t.Fatal("an entry past its block must fail")
	}
}

func TestReadFrameCapsLength(t *testing.T) {
	r := bufio.NewReader(bytes.NewReader([]byte{0, 0, 1, 0, 0x12}))
	if _, err := readFrame(r, 100); err == nil {
		t.Fatal("a frame over the cap must be refused")
	}
	// STATS passes the cap but is read as it comes: a lying length ends in
	// an early EOF, not a 1 GiB allocation.
	r = bufio.NewReader(bytes.NewReader([]byte{0x40, 0, 0, 0, 0x20, 0, 0}))
	if _, err := readFrame(r, 100); err != io.ErrUnexpectedEOF {
		t.Fatalf("a cut STATS frame: %v", err)
	}
	// SCHEDULE_LIST too: it grows with the number of schedules.
	r = bufio.NewReader(bytes.NewReader([]byte{0x40, 0, 0, 0, stScheduleList, 0, 0}))
	if _, err := readFrame(r, 100); err != io.ErrUnexpectedEOF {
		t.Fatalf("a cut SCHEDULE_LIST frame: %v", err)
	}
	r = bufio.NewReader(bytes.NewReader([]byte{0, 0, 0, 0}))
	if _, err := readFrame(r, 100); err == nil {
		t.Fatal("a frame of length 0 must be refused")
	}
}

func TestSettleSplitsAt4096Pairs(t *testing.T) {
	rs := make([]LeaseRef, MaxSettlePairs+1)
	b, n, err := settleFrames(opAck, "q", nil, rs)
	if err != nil || n != 2 {
		t.Fatalf("%d frames, %v", n, err)
	}
	first := 4 + 2 + 2 + 2 + 12*MaxSettlePairs
	if first-4 > maxSettleFrame || len(b) != first+4+2+2+2+12 {
		t.Fatalf("frames of %d bytes", len(b))
	}
}

func TestErrorSentinels(t *testing.T) {
	e := &Error{Code: CodeFull, Text: "memory cap"}
	if !errors.Is(e, ErrFull) || errors.Is(e, ErrLimit) {
		t.Fatal("errors.Is must match by code")
	}
	ce := &ConnError{Err: &Error{Code: CodeShuttingDown, Fatal: true}}
	if !errors.Is(ce, ErrShuttingDown) || !errors.Is(ce, ErrClosed) {
		t.Fatal("a ConnError matches its cause and ErrClosed")
	}
	if Code(99).String() != "CODE_99" || CodeNoResponders.String() != "NO_RESPONDERS" {
		t.Fatal("code names")
	}
	be := &Error{Code: CodeBadSchedule, Text: "bad minute 61"}
	if !errors.Is(be, ErrBadSchedule) || CodeBadSchedule.String() != "BAD_SCHEDULE" || CodeBadSchedule != 20 {
		t.Fatal("BAD_SCHEDULE is code 20 with its sentinel")
	}
	for c := CodeMalformed; c <= CodeBadSchedule; c++ {
		if _, ok := codeNames[c]; !ok {
			t.Errorf("code %d has no name", c)
		}
	}
}

func TestDefaultBackoff(t *testing.T) {
	if DefaultBackoff(1) != 100*time.Millisecond || DefaultBackoff(2) != 200*time.Millisecond || DefaultBackoff(100) != time.Minute {
		t.Fatal("backoff")
	}
}

func TestDefaultAddr(t *testing.T) {
	t.Setenv("BHOST", "")
	t.Setenv("BPORT", "")
	if DefaultAddr() != "localhost:6552" {
		t.Fatal(DefaultAddr())
	}
	t.Setenv("BHOST", "::1")
	t.Setenv("BPORT", "7000")
	if DefaultAddr() != "[::1]:7000" {
		t.Fatal(DefaultAddr())
	}
	// As the CLI reads them (src/lib.rs join_host_port, address_from_env).
	for _, c := range []struct{ host, port, want string }{
		{"[::1]", "6552", "[::1]:6552"},
		{" 127.0.0.1 ", " 7001\t", "127.0.0.1:7001"},
		{"  ", "\t", "localhost:6552"},
		{"fe80::1%eth0", "1", "[fe80::1%eth0]:1"},
	} {
		t.Setenv("BHOST", c.host)
		t.Setenv("BPORT", c.port)
		if got := DefaultAddr(); got != c.want {
			t.Errorf("BHOST=%q BPORT=%q: %q, want %q", c.host, c.port, got, c.want)
		}
	}
}

// localErr checks that err is a *Error of code raised by the client itself.
func localErr(t *testing.T, what string, err error, code Code) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code || !e.Local || e.Fatal {
		t.Errorf("%s: %v, want a local %v", what, err, code)
	}
}

func TestScheduleEncodersCheckArguments(t *testing.T) {
	q := QueueTarget("jobs")
	long := strings.Repeat("n", 256)
	for _, c := range []struct {
		what   string
		name   string
		spec   string
		target ScheduleTarget
		prio   uint8
		code   Code
	}{
		{"empty name", "", "@daily", q, 5, CodeBadArgument},
		{"name of 256 bytes", long, "@daily", q, 5, CodeBadArgument},
		{"name not UTF-8", "n\xff", "@daily", q, 5, CodeBadArgument},
		{"empty spec", "n", "", q, 5, CodeBadArgument},
		{"spec of 256 bytes", "n", long, q, 5, CodeBadArgument},
		{"spec not UTF-8", "n", "@every 1s\xff", q, 5, CodeBadArgument},
		{"empty queue", "n", "@daily", QueueTarget(""), 5, CodeBadQueueName},
		{"queue of 256 bytes", "n", "@daily", QueueTarget(long), 5, CodeBadQueueName},
		{"empty subject", "n", "@daily", SubjectTarget(""), 5, CodeBadSubject},
		{"subject not UTF-8", "n", "@daily", SubjectTarget("a.\xff"), 5, CodeBadSubject},
		{"unknown target kind", "n", "@daily", ScheduleTarget{Kind: 2, Name: "jobs"}, 5, CodeBadArgument},
		{"priority 10", "n", "@daily", q, 10, CodeBadArgument},
	} {
		b, err := encodeSchedule(nil, c.name, c.spec, c.target, c.prio, nil)
		localErr(t, c.what, err, c.code)
		if b != nil {
			t.Errorf("%s: encoded %x anyway", c.what, b)
		}
	}
	// The longest names, spec and target still travel.
	n255 := strings.Repeat("n", 255)
	b, err := encodeSchedule(nil, n255, n255, SubjectTarget(n255), MaxPriority, nil)
	if err != nil || len(b) != 4+2+3*256+1+1 || b[4] != opSchedule || b[4+2+512] != byte(TargetSubject) {
		t.Fatalf("longest fields: %d bytes, %v", len(b), err)
	}
	// The declared length may be 65536 (protocol.md 17.3), not one more.
	head := 2 + 1 + 1 + 1 + 6 + 1 + 1 + 4 + 1
	b, err = encodeSchedule(nil, "n", "@daily", q, 0, make([]byte, maxScheduleFrame-head))
	if err != nil || len(b) != 4+maxScheduleFrame || binary.BigEndian.Uint32(b) != maxScheduleFrame {
		t.Fatalf("a frame of exactly 65536: %d bytes, %v", len(b), err)
	}
	_, err = encodeSchedule(nil, "n", "@daily", q, 0, make([]byte, maxScheduleFrame-head+1))
	localErr(t, "a frame of 65537", err, CodeFrameTooLarge)

	for _, name := range []string{"", long, "\xff"} {
		_, err := encodeUnschedule(nil, name)
		localErr(t, "UNSCHEDULE "+name, err, CodeBadArgument)
		_, err = encodePauseSchedule(nil, name, false)
		localErr(t, "PAUSE_SCHEDULE "+name, err, CodeBadArgument)
	}
	for _, name := range []string{long, "\xff"} {
		_, err := encodeSchedules(nil, name)
		localErr(t, "SCHEDULES "+name, err, CodeBadArgument)
	}
	if b := must(encodePauseSchedule(nil, "n", false)); !bytes.Equal(b, []byte{0, 0, 0, 5, opPauseSchedule, 0, 1, 'n', 0}) {
		t.Fatalf("resume: %x", b)
	}
	if b := must(encodeSchedules(nil, "n")); !bytes.Equal(b, []byte{0, 0, 0, 4, opSchedules, 0, 1, 'n'}) {
		t.Fatalf("SCHEDULES of one: %x", b)
	}
}

// scheduleEntry is one SCHEDULE_LIST entry of s with extra appended after the
// fields of version 5, as a later version would.
func scheduleEntry(s ScheduleInfo, extra []byte) []byte {
	var e []byte
	e = appendName(e, s.Name)
	e = appendName(e, s.Spec)
	e = append(e, byte(s.Target.Kind))
	e = appendName(e, s.Target.Name)
	paused := byte(0)
	if s.Paused {
		paused = 1
	}
	e = append(e, s.Priority, paused)
	for _, v := range []uint64{s.NextRunMs, s.LastRunMs, s.Runs, s.Misfires, s.Failures} {
		e = binary.BigEndian.AppendUint64(e, v)
	}
	e = binary.BigEndian.AppendUint32(e, s.PayloadLen)
	e = append(e, extra...)
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(e))), e...)
}

func TestScheduleListSkipsUnknownEntryBytes(t *testing.T) {
	want := []ScheduleInfo{
		{Name: "a", Spec: "@every 1s", Target: SubjectTarget("clock.tick"), Priority: 0, NextRunMs: 1796353200000,
			LastRunMs: 1796353199000, Runs: 7, Misfires: 2, Failures: 1, PayloadLen: 3},
		{Name: "b", Spec: "TZ=+01:00 0 3 * * 1-5", Target: QueueTarget("jobs"), Priority: 9, Paused: true, PayloadLen: 65000},
	}
	body := binary.BigEndian.AppendUint32(nil, 2)
	body = append(body, scheduleEntry(want[0], []byte{0xAA, 0xBB, 0xCC})...)
	body = append(body, scheduleEntry(want[1], nil)...)
	body = append(body, 0xEE) // a field appended to the reply itself (9.2)
	got, err := parseScheduleList(body)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v %v\nwant %+v", got, err, want)
	}
	if got[0].NextRun().UnixMilli() != 1796353200000 || !got[1].NextRun().IsZero() || !got[1].LastRun().IsZero() {
		t.Fatalf("times %v %v %v", got[0].NextRun(), got[1].NextRun(), got[1].LastRun())
	}
	// An unknown kind is kept, not taken for a queue.
	odd := ScheduleInfo{Name: "c", Spec: "@hourly", Target: ScheduleTarget{Kind: 7, Name: "x"}}
	got, err = parseScheduleList(append(binary.BigEndian.AppendUint32(nil, 1), scheduleEntry(odd, nil)...))
	if err != nil || len(got) != 1 || got[0].Target.Kind != 7 {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := parseScheduleList([]byte{0, 0, 0, 0}); err != nil || len(got) != 0 {
		t.Fatalf("no schedules: %+v %v", got, err)
	}
}

func TestShortScheduleRepliesAreErrors(t *testing.T) {
	entry := scheduleEntry(ScheduleInfo{Name: "a", Spec: "@daily", Target: QueueTarget("q")}, nil)
	one := binary.BigEndian.AppendUint32(nil, 1)
	cases := map[string][]byte{
		"no count":                     {0, 0},
		"an absurd count":              {0xff, 0xff, 0xff, 0xff, 0, 0},
		"a missing entry":              append(binary.BigEndian.AppendUint32(nil, 2), entry...),
		"an entry cut short":           append(one, entry[:len(entry)-1]...),
		"entry_len short of its field": append(append(one, 0, byte(len(entry)-3)), entry[2:len(entry)-1]...),
	}
	for what, body := range cases {
		if got, err := parseScheduleList(body); err == nil {
			t.Errorf("%s: %+v, want an error", what, got)
		}
	}
	if _, _, err := parseScheduled([]byte{1, 0, 0, 0, 0, 0, 0, 0}); err == nil {
		t.Error("SCHEDULED without all of next_run_ms must fail")
	}
	if _, _, err := parseSchedulePaused([]byte{1}); err == nil {
		t.Error("SCHEDULE_PAUSED without next_run_ms must fail")
	}
	// Bytes a later version appends to a reply are ignored (9.2).
	created, next, err := parseScheduled([]byte{0, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2})
	if err != nil || created || next != 9 {
		t.Fatalf("SCHEDULED with a trailing field: %v %d %v", created, next, err)
	}
}
