package beuss

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
	"unicode/utf8"
)

// Opcodes (protocol.md sections 3, 13.12, 15.13, 16.10 and 17.9).
const (
	opHello  = 0x01
	opPing   = 0x02
	opQuit   = 0x03
	opPut    = 0x10
	opGet    = 0x11
	opPurge  = 0x12
	opLease  = 0x13
	opAck    = 0x14
	opNack   = 0x15
	opTouch  = 0x16
	opPeek   = 0x17
	opMove   = 0x18
	opStats  = 0x20
	opBind   = 0x30
	opUnbind = 0x31
	opPub    = 0x32
	opSub    = 0x33
	opUnsub  = 0x34
	opReq    = 0x35
	opReply  = 0x36
	opAuth   = 0x40
	// Schedules (version 5, protocol.md 17).
	opSchedule      = 0x50
	opUnschedule    = 0x51
	opPauseSchedule = 0x52
	opSchedules     = 0x53
)

// Response statuses (protocol.md section 4, 13.12, 15.13, 16.10, 17.9 and 18.8).
const (
	stPong         = 0x01
	stHello        = 0x02
	stBye          = 0x03
	stAuthed       = 0x04
	stStored       = 0x10
	stTruncated    = 0x11
	stMessages     = 0x12
	stEmpty        = 0x13
	stPurged       = 0x14
	stLeased       = 0x15
	stSettled      = 0x16
	stPeeked       = 0x17
	stMoved        = 0x18
	stStats        = 0x20
	stBound        = 0x30
	stUnbound      = 0x31
	stPublished    = 0x32
	stSubscribed   = 0x33
	stUnsubscribed = 0x34
	stReply        = 0x35
	stReplied      = 0x36
	stEnvelopes    = 0x37
	stEvent        = 0x3F
	// Schedules (version 5, protocol.md 17).
	stScheduled      = 0x50
	stUnscheduled    = 0x51
	stSchedulePaused = 0x52
	stScheduleList   = 0x53
	// Unique messages (version 6, protocol.md 18).
	stDuplicate = 0x54
	stReplaced  = 0x55
	stError     = 0x7F
)

// Flag bits (protocol.md 9.3, 18.3, 19.2).
const (
	flagPutOptions = 0x01
	flagWithMeta   = 0x02
	// flagPutUnique: the PUT carries a unique key, its mode and its window
	// (version 6).
	flagPutUnique = 0x04
	// flagPutTTL: the PUT carries a time to live and its mode (version 6).
	flagPutTTL = 0x08
)

// modeReplace is the mode byte of a unique PUT that replaces the waiting
// message holding its key (protocol.md 18.3); 0 refuses a duplicate.
const modeReplace = 0x01

// modeDeadLetter is the mode byte of a PUT with a time to live whose message
// goes to <queue>.dead when it expires (protocol.md 19.2); 0 drops it.
const modeDeadLetter = 0x01

// Metadata tags (protocol.md 15.7).
const (
	tagSubject = 1
	tagReplyTo = 2
	tagDropped = 3
)

// ProtocolVersion is the highest protocol version this client speaks; Dial
// asks the server for it in HELLO.
const ProtocolVersion = 6

// MaxToken is the longest token an AUTH frame carries (protocol.md 16.2).
const MaxToken = 1022

// Limits of the protocol the encoder checks before anything is sent, so that a
// mistake of the caller is an error of its call and not a fatal server error
// that kills every other request on the connection.
const (
	maxControlFrame = 1024
	maxSettleFrame  = 65536
	// maxScheduleFrame is the longest length a SCHEDULE frame may declare
	// (protocol.md 17.3): its payload travels inside it.
	maxScheduleFrame = 65536
	// MaxSettlePairs is the most (id, attempt) pairs one ACK, NACK or TOUCH
	// frame carries; longer lists are split over several pipelined frames.
	MaxSettlePairs = 4096
	// DefaultPriority is the priority a PUT without options gives (0 is
	// delivered first, 9 last).
	DefaultPriority = 5
	// MaxPriority is the last priority.
	MaxPriority = 9
	// NeverDead as MaxDeliveries never dead-letters a message.
	NeverDead = 0xFFFF
	// waitForever is the wait_ms that never times out.
	waitForever = math.MaxUint32
)

// Feature bits of the HELLO reply (protocol.md 13.1).
const (
	FeatureLeases     = 1 << 0
	FeaturePutOptions = 1 << 1
	FeatureDurable    = 1 << 2
	FeatureSynced     = 1 << 3
	FeatureFanout     = 1 << 4
	// FeatureAuthRequired: the server requires AUTH before anything but
	// HELLO, PING and QUIT (protocol.md 16.3).
	FeatureAuthRequired = 1 << 5
	// FeatureSchedules: SCHEDULE, UNSCHEDULE, PAUSE_SCHEDULE and SCHEDULES
	// (protocol.md 17.1); announced only when the negotiated version is 5 or
	// more.
	FeatureSchedules = 1 << 6
	// FeatureUnique: PUT with a unique key, DUPLICATE and REPLACED
	// (protocol.md 18.1); announced only when the negotiated version is 6 or
	// more.
	FeatureUnique = 1 << 7
	// FeatureTTL: PUT with a time to live (protocol.md 19.1); announced only
	// when the negotiated version is 6 or more.
	FeatureTTL = 1 << 8
)

// errShort marks a response body that ends before its fields do: the peer is
// broken, so the connection is dropped.
var errShort = errors.New("beuss: response shorter than its fields")

// --- encoding ---------------------------------------------------------------

// head appends a request header; length counts opcode, flags and body.
func head(b []byte, length int, op, flags byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(length))
	return append(b, op, flags)
}

// appendName appends a u8-length-prefixed name; the caller checked its length.
func appendName(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// checkQueue refuses what the server would answer with a fatal BAD_QUEUE_NAME.
func checkQueue(q string) error {
	if len(q) == 0 || len(q) > 255 || !utf8.ValidString(q) {
		return &Error{Code: CodeBadQueueName, Text: fmt.Sprintf("bad queue name %q (1..255 bytes of UTF-8)", q), Local: true}
	}
	return nil
}

// checkSubject refuses a subject or pattern that cannot travel; the finer rules
// (tokens, wildcards) are the server's to check (protocol.md 15.1).
func checkSubject(s string) error {
	if len(s) == 0 || len(s) > 255 || !utf8.ValidString(s) {
		return &Error{Code: CodeBadSubject, Text: fmt.Sprintf("bad subject %q (1..255 bytes of UTF-8)", s), Local: true}
	}
	return nil
}

// ms converts a duration to whole milliseconds, rounding up so that a wait is
// never shorter than asked, clamped to the largest finite u32 value.
func ms(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	m := (d + time.Millisecond - 1) / time.Millisecond
	if m >= waitForever {
		return waitForever - 1
	}
	return uint32(m)
}

// waitMs converts a receive wait: Forever (or any negative duration) is
// 0xFFFFFFFF, the wait that never times out.
func waitMs(d time.Duration) uint32 {
	if d < 0 {
		return waitForever
	}
	return ms(d)
}

// checkStreamed refuses a PUB, REQ or REPLY whose length (head bytes plus
// payload) does not fit the u32 length field: it would wrap, and the server
// would read the rest of the payload as further requests.
func checkStreamed(what string, head, payload int) error {
	if int64(head)+int64(payload) > math.MaxUint32 {
		return fmt.Errorf("beuss: %s of %d bytes does not fit in a frame", what, payload)
	}
	return nil
}

func encodeHello(b []byte, version uint16) []byte {
	b = head(b, 4, opHello, 0)
	return binary.BigEndian.AppendUint16(b, version)
}

func encodeEmpty(b []byte, op byte) []byte { return head(b, 2, op, 0) }

// encodeAuth appends AUTH (protocol.md 16.2) with token, 1 to MaxToken bytes.
func encodeAuth(b []byte, token []byte) ([]byte, error) {
	if len(token) < 1 || len(token) > MaxToken {
		return nil, fmt.Errorf("beuss: an AUTH token is 1 to %d bytes, not %d", MaxToken, len(token))
	}
	b = head(b, 2+len(token), opAuth, 0)
	return append(b, token...), nil
}

// parseAuthed reads AUTHED: true when the token is read-only (any access
// byte but 0).
func parseAuthed(body []byte) (bool, error) {
	if len(body) < 1 {
		return false, errShort
	}
	return body[0] != 0, nil
}

// uniqueFields are the fields a PUT with PUT_UNIQUE carries after the queue
// name and the options (protocol.md 18.3); the caller checked them with
// checkUnique.
type uniqueFields struct {
	key      string
	replace  bool
	windowMs uint32
}

// checkUnique refuses what the server would answer with a fatal BAD_ARGUMENT
// (protocol.md 18.3): a key of 0 or over MaxKeyLen bytes, a window over
// MaxWindow.
func checkUnique(u *uniqueFields) error {
	if len(u.key) == 0 || len(u.key) > MaxKeyLen {
		return &Error{Code: CodeBadArgument, Text: fmt.Sprintf("a unique key is 1 to %d bytes, not %d", MaxKeyLen, len(u.key)), Local: true}
	}
	if u.windowMs > maxWindowMs {
		return &Error{Code: CodeBadArgument, Text: fmt.Sprintf("a unique window is at most %v, not %d ms", MaxWindow, u.windowMs), Local: true}
	}
	return nil
}

// ttlFields are the fields a PUT with PUT_TTL carries after the queue name,
// the options and the key fields (protocol.md 19.2); the caller checked them
// with checkTTL.
type ttlFields struct {
	// ttlMs is the time to live; 0 is none, whatever the queue's default.
	ttlMs      uint32
	deadLetter bool
}

// checkTTL refuses what the server would answer with a fatal BAD_ARGUMENT
// (protocol.md 19.2): a time to live over MaxTTL. The mode byte, 0 or
// modeDeadLetter, cannot be wrong.
func checkTTL(t *ttlFields) error {
	if t.ttlMs > maxTTLMs {
		return &Error{Code: CodeBadArgument, Text: fmt.Sprintf("a time to live is at most %v, not %d ms", MaxTTL, t.ttlMs), Local: true}
	}
	return nil
}

// putHead appends the head of a PUT whose payload (payloadLen bytes) follows;
// withOpts selects the version-2 layout with delay and priority, a non-nil u
// adds the key fields of version 6 (flag 0x04) and a non-nil t the time to
// live after them (flag 0x08): flags 0x00 to 0x0D.
func putHead(b []byte, queue string, payloadLen int64, withOpts bool, delay uint32, prio uint8, u *uniqueFields, t *ttlFields) ([]byte, error) {
	n := int64(2 + 1 + len(queue))
	var flags byte
	if withOpts {
		n += 5
		flags |= flagPutOptions
	}
	if u != nil {
		n += int64(1 + len(u.key) + 1 + 4)
		flags |= flagPutUnique
	}
	if t != nil {
		n += 4 + 1
		flags |= flagPutTTL
	}
	n += payloadLen
	if n > math.MaxUint32 {
		return b, fmt.Errorf("beuss: PUT of %d bytes does not fit in a frame", payloadLen)
	}
	b = head(b, int(n), opPut, flags)
	b = appendName(b, queue)
	if withOpts {
		b = binary.BigEndian.AppendUint32(b, delay)
		b = append(b, prio)
	}
	if u != nil {
		b = appendName(b, u.key)
		var mode byte
		if u.replace {
			mode = modeReplace
		}
		b = append(b, mode)
		b = binary.BigEndian.AppendUint32(b, u.windowMs)
	}
	if t != nil {
		b = binary.BigEndian.AppendUint32(b, t.ttlMs)
		var mode byte
		if t.deadLetter {
			mode = modeDeadLetter
		}
		b = append(b, mode)
	}
	return b, nil
}

func encodeGet(b []byte, op byte, flags byte, queue string, wait uint32, max uint16) []byte {
	b = head(b, 2+1+len(queue)+6, op, flags)
	b = appendName(b, queue)
	b = binary.BigEndian.AppendUint32(b, wait)
	return binary.BigEndian.AppendUint16(b, max)
}

func encodeQueueOnly(b []byte, op byte, queue string) []byte {
	b = head(b, 2+1+len(queue), op, 0)
	return appendName(b, queue)
}

// encodeStats appends STATS; an empty queue asks for every queue.
func encodeStats(b []byte, queue string) []byte {
	b = head(b, 2+1+len(queue), opStats, 0)
	return appendName(b, queue)
}

func encodeLease(b []byte, flags byte, queue string, wait uint32, max uint16, lease uint32, maxDeliveries uint16, options byte) []byte {
	b = head(b, 2+1+len(queue)+13, opLease, flags)
	b = appendName(b, queue)
	b = binary.BigEndian.AppendUint32(b, wait)
	b = binary.BigEndian.AppendUint16(b, max)
	b = binary.BigEndian.AppendUint32(b, lease)
	b = binary.BigEndian.AppendUint16(b, maxDeliveries)
	return append(b, options)
}

// encodeSettle appends one ACK, NACK or TOUCH; extra is the body between the
// queue name and the pairs (NACK: delay and options; TOUCH: lease_ms).
func encodeSettle(b []byte, op byte, queue string, extra []byte, refs []LeaseRef) []byte {
	b = head(b, 2+1+len(queue)+len(extra)+2+12*len(refs), op, 0)
	b = appendName(b, queue)
	b = append(b, extra...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(refs)))
	for _, r := range refs {
		b = binary.BigEndian.AppendUint64(b, r.ID)
		b = binary.BigEndian.AppendUint32(b, r.Attempt)
	}
	return b
}

func encodePeek(b []byte, flags byte, queue string, max uint16) []byte {
	b = head(b, 2+1+len(queue)+2, opPeek, flags)
	b = appendName(b, queue)
	return binary.BigEndian.AppendUint16(b, max)
}

func encodeMove(b []byte, from, to string, max uint32) []byte {
	b = head(b, 2+1+len(from)+1+len(to)+4, opMove, 0)
	b = appendName(b, from)
	b = appendName(b, to)
	return binary.BigEndian.AppendUint32(b, max)
}

func encodeBind(b []byte, op byte, pattern, queue string) []byte {
	b = head(b, 2+1+len(pattern)+1+len(queue), op, 0)
	b = appendName(b, pattern)
	return appendName(b, queue)
}

func encodePub(b []byte, subject string, delay uint32, prio uint8, confirm, timeout uint32, payload []byte) []byte {
	b = head(b, 2+1+len(subject)+13+len(payload), opPub, 0)
	b = appendName(b, subject)
	b = binary.BigEndian.AppendUint32(b, delay)
	b = append(b, prio)
	b = binary.BigEndian.AppendUint32(b, confirm)
	b = binary.BigEndian.AppendUint32(b, timeout)
	return append(b, payload...)
}

func encodeSub(b []byte, pattern string) []byte {
	b = head(b, 2+1+len(pattern), opSub, 0)
	return appendName(b, pattern)
}

func encodeUnsub(b []byte, sid uint32) []byte {
	b = head(b, 6, opUnsub, 0)
	return binary.BigEndian.AppendUint32(b, sid)
}

func encodeReq(b []byte, subject string, timeout uint32, payload []byte) []byte {
	b = head(b, 2+1+len(subject)+4+len(payload), opReq, 0)
	b = appendName(b, subject)
	b = binary.BigEndian.AppendUint32(b, timeout)
	return append(b, payload...)
}

func encodeReply(b []byte, replyTo uint64, payload []byte) []byte {
	b = head(b, 2+8+len(payload), opReply, 0)
	b = binary.BigEndian.AppendUint64(b, replyTo)
	return append(b, payload...)
}

// checkScheduleName refuses a schedule name the server would answer with a
// fatal BAD_ARGUMENT (protocol.md 17.3): 1..255 bytes of UTF-8.
func checkScheduleName(name string) error {
	if len(name) == 0 || len(name) > 255 || !utf8.ValidString(name) {
		return &Error{Code: CodeBadArgument, Text: fmt.Sprintf("bad schedule name %q (1..255 bytes of UTF-8)", name), Local: true}
	}
	return nil
}

// checkTarget refuses a schedule target that cannot travel: a bad queue name
// (BAD_QUEUE_NAME), a bad subject (BAD_SUBJECT; the finer rules, wildcards
// included, are the server's, 15.1), or a kind other than a queue or a
// subject (BAD_ARGUMENT).
func checkTarget(t ScheduleTarget) error {
	switch t.Kind {
	case TargetQueue:
		return checkQueue(t.Name)
	case TargetSubject:
		return checkSubject(t.Name)
	}
	return &Error{Code: CodeBadArgument, Text: fmt.Sprintf("schedule target kind %d is neither a queue (0) nor a subject (1)", t.Kind), Local: true}
}

// encodeSchedule appends SCHEDULE (protocol.md 17.3), refusing first what the
// server would answer with a fatal error: a bad name, spec, target or
// priority, or a frame that declares more than 65536 bytes.
func encodeSchedule(b []byte, name, spec string, target ScheduleTarget, prio uint8, payload []byte) ([]byte, error) {
	if err := checkScheduleName(name); err != nil {
		return nil, err
	}
	if len(spec) == 0 || len(spec) > 255 || !utf8.ValidString(spec) {
		return nil, &Error{Code: CodeBadArgument, Text: fmt.Sprintf("bad schedule spec %q (1..255 bytes of UTF-8)", spec), Local: true}
	}
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	if err := checkPriority(prio); err != nil {
		return nil, err
	}
	n := 2 + 1 + len(name) + 1 + len(spec) + 1 + 1 + len(target.Name) + 1 + len(payload)
	if n > maxScheduleFrame {
		return nil, &Error{Code: CodeFrameTooLarge, Text: fmt.Sprintf("SCHEDULE frame of %d bytes is over %d (a payload of %d bytes)", n, maxScheduleFrame, len(payload)), Local: true}
	}
	b = head(b, n, opSchedule, 0)
	b = appendName(b, name)
	b = appendName(b, spec)
	b = append(b, byte(target.Kind))
	b = appendName(b, target.Name)
	b = append(b, prio)
	return append(b, payload...), nil
}

// encodeUnschedule appends UNSCHEDULE (17.4).
func encodeUnschedule(b []byte, name string) ([]byte, error) {
	if err := checkScheduleName(name); err != nil {
		return nil, err
	}
	b = head(b, 2+1+len(name), opUnschedule, 0)
	return appendName(b, name), nil
}

// encodePauseSchedule appends PAUSE_SCHEDULE (17.5): paused true pauses,
// false resumes.
func encodePauseSchedule(b []byte, name string, paused bool) ([]byte, error) {
	if err := checkScheduleName(name); err != nil {
		return nil, err
	}
	b = head(b, 2+1+len(name)+1, opPauseSchedule, 0)
	b = appendName(b, name)
	if paused {
		return append(b, 1), nil
	}
	return append(b, 0), nil
}

// encodeSchedules appends SCHEDULES (17.6); an empty name lists every
// schedule.
func encodeSchedules(b []byte, name string) ([]byte, error) {
	if name != "" {
		if err := checkScheduleName(name); err != nil {
			return nil, err
		}
	}
	b = head(b, 2+1+len(name), opSchedules, 0)
	return appendName(b, name), nil
}

// --- decoding ---------------------------------------------------------------

// frame is one response: its status and its body (the bytes after the status).
type frame struct {
	status byte
	body   []byte
}

// readFrame reads one whole response frame. maxLen caps the length a broken
// peer could make us allocate (protocol.md 12, "check length before allocating").
func readFrame(r *bufio.Reader, maxLen uint32) (frame, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 1 {
		return frame{}, errors.New("beuss: response frame of length 0")
	}
	// STATS grows with the number of queues (up to 568 bytes each, protocol.md
	// 8), and SCHEDULE_LIST with the number of schedules (up to 817 bytes
	// each, 17.6), which no cap of ours can know: they are read as they
	// arrive instead, so a lying length costs only the bytes actually sent.
	if n > maxLen && hdr[4] != stStats && hdr[4] != stScheduleList {
		return frame{}, fmt.Errorf("beuss: response frame of %d bytes is over the client's cap of %d", n, maxLen)
	}
	f := frame{status: hdr[4]}
	if n <= 1 {
		return f, nil
	}
	if n <= maxLen {
		f.body = make([]byte, n-1)
		if _, err := io.ReadFull(r, f.body); err != nil {
			return frame{}, err
		}
		return f, nil
	}
	var buf bytes.Buffer
	buf.Grow(1 << 20)
	got, err := io.CopyN(&buf, r, int64(n-1))
	if err != nil {
		if err == io.EOF && got > 0 {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, err
	}
	f.body = buf.Bytes()
	return f, nil
}

// cursor reads big-endian fields off a body; a read past the end sets bad, and
// every later read returns zero, so a parser checks bad once at the end.
type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) take(n int) []byte {
	if c.bad || n > len(c.b) {
		c.bad = true
		return nil
	}
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v
}
func (c *cursor) u8() uint8 {
	if v := c.take(1); v != nil {
		return v[0]
	}
	return 0
}
func (c *cursor) u16() uint16 {
	if v := c.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}
func (c *cursor) u32() uint32 {
	if v := c.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}
func (c *cursor) u64() uint64 {
	if v := c.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
func (c *cursor) str() string { return string(c.take(int(c.u8()))) }

// parseError decodes an ERROR body (protocol.md 4.7).
func parseError(body []byte) *Error {
	c := cursor{b: body}
	code := c.u16()
	fatal := c.u8()
	if c.bad {
		return &Error{Code: CodeMalformed, Fatal: true, Text: "ERROR frame too short", Local: true}
	}
	return &Error{Code: Code(code), Fatal: fatal != 0, Text: string(c.b)}
}

// parseHello decodes a HELLO reply, with the version-2 fields when present.
func parseHello(body []byte) (ServerInfo, error) {
	c := cursor{b: body}
	info := ServerInfo{Version: c.u16(), MaxMessageSize: c.u32(), Server: c.str()}
	if c.bad {
		return info, errShort
	}
	if info.Version >= 2 {
		info.Features = c.u32()
		info.DefaultLease = time.Duration(c.u32()) * time.Millisecond
		info.MaxLease = time.Duration(c.u32()) * time.Millisecond
		info.MaxDelay = time.Duration(c.u32()) * time.Millisecond
		info.MaxDeliveries = c.u16()
		if c.bad {
			return info, errShort
		}
	}
	return info, nil
}

// parsePut decodes STORED or TRUNCATED, with the id a PUT with options, a
// key or a time to live gets, and, when the PUT carried a key (keyed), DUPLICATE and REPLACED
// (protocol.md 18.3). Those two answer no other PUT: from a server that sends
// them anyway they are errors, not a silent "not stored".
func parsePut(f frame, payloadLen int, keyed bool) (PutResult, error) {
	c := cursor{b: f.body}
	var r PutResult
	switch {
	case f.status == stStored:
		r.StoredLen, r.OriginalLen = payloadLen, payloadLen
	case f.status == stTruncated:
		r.Truncated = true
		r.OriginalLen = int(c.u32())
		r.StoredLen = int(c.u32())
	case f.status == stDuplicate && keyed:
		// Nothing of this payload was kept.
		r.ID = c.u64()
		r.Duplicate = Holder(c.u8())
		r.OriginalLen = payloadLen
		if c.bad {
			return PutResult{}, errShort
		}
		if r.Duplicate == 0 {
			// Zero is "no duplicate" in PutResult: a DUPLICATE saying it would
			// read as a stored message that is not.
			return PutResult{}, errors.New("beuss: DUPLICATE with state 0")
		}
		return r, nil
	case f.status == stReplaced && keyed:
		r.Replaced = true
		r.ID = c.u64()
		r.OriginalLen = int(c.u32())
		r.StoredLen = int(c.u32())
		r.Truncated = r.StoredLen < r.OriginalLen
		if c.bad {
			return PutResult{}, errShort
		}
		return r, nil
	default:
		return r, unexpected(f)
	}
	if len(c.b) >= 8 {
		r.ID = c.u64()
	}
	if c.bad {
		return r, errShort
	}
	return r, nil
}

// parseMessages decodes MESSAGES into payloads that share the frame's memory.
func parseMessages(body []byte) ([][]byte, error) {
	c := cursor{b: body}
	n := c.u32()
	if c.bad || uint64(n)*4 > uint64(len(c.b)) {
		return nil, errShort
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = c.take(int(c.u32()))
	}
	if c.bad {
		return nil, errShort
	}
	return out, nil
}

// parseDeliveries decodes LEASED or PEEKED (withMeta false) or ENVELOPES.
func parseDeliveries(body []byte, withMeta bool) ([]*Message, error) {
	c := cursor{b: body}
	n := c.u32()
	if c.bad || uint64(n)*16 > uint64(len(c.b)) {
		return nil, errShort
	}
	out := make([]*Message, n)
	for i := range out {
		m := &Message{ID: c.u64(), Attempt: c.u32()}
		if withMeta {
			md, err := parseMeta(c.take(int(c.u16())))
			if err != nil {
				return nil, err
			}
			m.Subject, m.ReplyTo = md.subject, md.replyTo
		}
		m.Payload = c.take(int(c.u32()))
		if c.bad {
			return nil, errShort
		}
		out[i] = m
	}
	return out, nil
}

// meta is what a metadata block says (protocol.md 15.7).
type meta struct {
	subject string
	replyTo uint64
	dropped uint32
}

// parseMeta reads a metadata block; unknown tags are skipped, a repeated tag
// keeps its first value (15.7).
func parseMeta(block []byte) (meta, error) {
	c := cursor{b: block}
	var m meta
	var seen [4]bool
	for len(c.b) > 0 {
		tag := c.u8()
		v := c.take(int(c.u8()))
		if c.bad {
			return m, errors.New("beuss: metadata entry runs past its block")
		}
		if int(tag) < len(seen) {
			if seen[tag] {
				continue
			}
			seen[tag] = true
		}
		switch {
		case tag == tagSubject:
			m.subject = string(v)
		case tag == tagReplyTo && len(v) == 8:
			m.replyTo = binary.BigEndian.Uint64(v)
		case tag == tagDropped && len(v) == 4:
			m.dropped = binary.BigEndian.Uint32(v)
		}
	}
	return m, nil
}

// parseEvent decodes an EVENT (15.6).
func parseEvent(body []byte) (*Event, error) {
	c := cursor{b: body}
	sid := c.u32()
	block := c.take(int(c.u16()))
	if c.bad {
		return nil, errShort
	}
	md, err := parseMeta(block)
	if err != nil {
		return nil, err
	}
	return &Event{Sid: sid, Subject: md.subject, ReplyTo: md.replyTo, Dropped: md.dropped, Payload: c.b}, nil
}

// parseSettled decodes SETTLED.
func parseSettled(body []byte) ([]SettleResult, error) {
	c := cursor{b: body}
	n := int(c.u16())
	raw := c.take(n)
	if c.bad {
		return nil, errShort
	}
	out := make([]SettleResult, n)
	for i, r := range raw {
		out[i] = SettleResult(r)
	}
	return out, nil
}

// parseStats decodes a STATS reply (section 6) into maps, so figures are
// looked up by name and unknown ones simply carried along.
func parseStats(body []byte) (*Stats, error) {
	c := cursor{b: body}
	s := &Stats{Server: map[string]uint64{}, Queues: map[string]map[string]uint64{}}
	for n := c.u16(); n > 0 && !c.bad; n-- {
		name := c.str()
		s.Server[name] = c.u64()
	}
	for n := c.u32(); n > 0 && !c.bad; n-- {
		q := c.str()
		figs := map[string]uint64{}
		for k := c.u16(); k > 0 && !c.bad; k-- {
			name := c.str()
			figs[name] = c.u64()
		}
		s.Queues[q] = figs
	}
	if c.bad {
		return nil, errShort
	}
	return s, nil
}

// parsePublished decodes PUBLISHED (15.4).
func parsePublished(body []byte) (Published, error) {
	c := cursor{b: body}
	p := Published{Queues: c.u32(), Subscribers: c.u32(), OriginalLen: c.u32(), StoredLen: c.u32(), Acked: c.u32(), Failed: c.u32()}
	if c.bad {
		return p, errShort
	}
	return p, nil
}

// parseScheduled decodes SCHEDULED (17.3): created, then the first run time.
func parseScheduled(body []byte) (created bool, next uint64, err error) {
	c := cursor{b: body}
	created = c.u8() == 1
	next = c.u64()
	if c.bad {
		return false, 0, errShort
	}
	return created, next, nil
}

// parseSchedulePaused decodes SCHEDULE_PAUSED (17.5): found, then the next
// run time (0 while paused or when not found).
func parseSchedulePaused(body []byte) (found bool, next uint64, err error) {
	return parseScheduled(body)
}

// parseScheduleList decodes SCHEDULE_LIST (17.6). Each entry is read within
// its entry_len, so fields a later version appends are skipped.
func parseScheduleList(body []byte) ([]ScheduleInfo, error) {
	c := cursor{b: body}
	n := c.u32()
	if c.bad || uint64(n)*2 > uint64(len(c.b)) {
		return nil, errShort
	}
	out := make([]ScheduleInfo, n)
	for i := range out {
		e := cursor{b: c.take(int(c.u16()))}
		if c.bad {
			return nil, errShort
		}
		s := ScheduleInfo{Name: e.str(), Spec: e.str()}
		s.Target.Kind = TargetKind(e.u8())
		s.Target.Name = e.str()
		s.Priority = e.u8()
		s.Paused = e.u8() == 1
		s.NextRunMs, s.LastRunMs = e.u64(), e.u64()
		s.Runs, s.Misfires, s.Failures = e.u64(), e.u64(), e.u64()
		s.PayloadLen = e.u32()
		if e.bad {
			return nil, fmt.Errorf("beuss: SCHEDULE_LIST entry %d is shorter than its fields", i)
		}
		out[i] = s
	}
	return out, nil
}

// parseU64 decodes PURGED and MOVED.
func parseU64(body []byte) (uint64, error) {
	c := cursor{b: body}
	v := c.u64()
	if c.bad {
		return 0, errShort
	}
	return v, nil
}

// parseU32 decodes SUBSCRIBED.
func parseU32(body []byte) (uint32, error) {
	c := cursor{b: body}
	v := c.u32()
	if c.bad {
		return 0, errShort
	}
	return v, nil
}

// parseFlag decodes BOUND, UNBOUND, UNSUBSCRIBED, REPLIED and UNSCHEDULED:
// one byte, 1 = yes.
func parseFlag(body []byte) (bool, error) {
	if len(body) < 1 {
		return false, errShort
	}
	return body[0] == 1, nil
}

// unexpected turns a frame that does not answer the request into an error: the
// server's ERROR, or a protocol violation.
func unexpected(f frame) error {
	if f.status == stError {
		return parseError(f.body)
	}
	return fmt.Errorf("beuss: unexpected response status 0x%02x", f.status)
}
