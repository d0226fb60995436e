package beuss

import (
	"bufio"
	"bytes"
	"errors"
	"io"
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
	if _, err := putHead(nil, "q", 1<<32, false, 0, 0); err == nil {
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
	for c := CodeMalformed; c <= CodeLimit; c++ {
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
