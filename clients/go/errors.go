package beuss

import (
	"errors"
	"fmt"
)

// Code is a server error code (protocol.md section 5). Codes are stable; a
// code this client does not know is still an *Error with its number.
type Code uint16

// The error codes of protocol.md sections 5, 13.12, 15.13, 16.10 and 17.9.
const (
	CodeMalformed          Code = 1
	CodeUnknownOpcode      Code = 2
	CodeBadQueueName       Code = 3
	CodeFrameTooLarge      Code = 4
	CodeBadFlags           Code = 5
	CodeBadArgument        Code = 6
	CodeFull               Code = 7
	CodeTooManyConnections Code = 8
	CodeUnsupportedVersion Code = 9
	CodeShuttingDown       Code = 10
	CodeStorage            Code = 11
	CodeBadSubject         Code = 12
	CodeNoResponders       Code = 13
	CodeTooFewCopies       Code = 14
	CodeLimit              Code = 15
	CodeAuthRequired       Code = 16
	CodeAuthFailed         Code = 17
	CodeForbidden          Code = 18
	CodeTimeout            Code = 19
	// CodeBadSchedule: a SCHEDULE whose spec the server cannot read or whose
	// payload is over max_message_size; not fatal, nothing done (17.3).
	CodeBadSchedule Code = 20
)

var codeNames = map[Code]string{
	CodeMalformed:          "MALFORMED",
	CodeUnknownOpcode:      "UNKNOWN_OPCODE",
	CodeBadQueueName:       "BAD_QUEUE_NAME",
	CodeFrameTooLarge:      "FRAME_TOO_LARGE",
	CodeBadFlags:           "BAD_FLAGS",
	CodeBadArgument:        "BAD_ARGUMENT",
	CodeFull:               "FULL",
	CodeTooManyConnections: "TOO_MANY_CONNECTIONS",
	CodeUnsupportedVersion: "UNSUPPORTED_VERSION",
	CodeShuttingDown:       "SHUTTING_DOWN",
	CodeStorage:            "STORAGE",
	CodeBadSubject:         "BAD_SUBJECT",
	CodeNoResponders:       "NO_RESPONDERS",
	CodeTooFewCopies:       "TOO_FEW_COPIES",
	CodeLimit:              "LIMIT",
	CodeAuthRequired:       "AUTH_REQUIRED",
	CodeAuthFailed:         "AUTH_FAILED",
	CodeForbidden:          "FORBIDDEN",
	CodeTimeout:            "TIMEOUT",
	CodeBadSchedule:        "BAD_SCHEDULE",
}

// String is the protocol name of the code, or CODE_<n> for one not known.
func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("CODE_%d", uint16(c))
}

// Error is an ERROR frame from the server (or a request this client refused
// to send because the server would have answered it with that code).
// Compare with the sentinels below: errors.Is(err, beuss.ErrFull).
type Error struct {
	// Code is the protocol's error code.
	Code Code
	// Fatal means the server closed the connection after this error; the
	// client is then unusable and every request behind it failed.
	Fatal bool
	// Text is the server's explanation, for people and logs (never parse it).
	Text string
	// Local marks an error raised by this client before sending anything.
	Local bool
}

// Error formats code and text.
func (e *Error) Error() string {
	s := "beuss: " + e.Code.String()
	if e.Text != "" {
		s += ": " + e.Text
	}
	if e.Local {
		s += " (refused by the client)"
	}
	return s
}

// Is matches any *Error with the same code, so the sentinels work with
// errors.Is whatever the text and fatal byte.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels, one per server error code, for errors.Is.
var (
	ErrMalformed          = &Error{Code: CodeMalformed}
	ErrUnknownOpcode      = &Error{Code: CodeUnknownOpcode}
	ErrBadQueueName       = &Error{Code: CodeBadQueueName}
	ErrFrameTooLarge      = &Error{Code: CodeFrameTooLarge}
	ErrBadFlags           = &Error{Code: CodeBadFlags}
	ErrBadArgument        = &Error{Code: CodeBadArgument}
	ErrFull               = &Error{Code: CodeFull}
	ErrTooManyConnections = &Error{Code: CodeTooManyConnections}
	ErrUnsupportedVersion = &Error{Code: CodeUnsupportedVersion}
	ErrShuttingDown       = &Error{Code: CodeShuttingDown}
	ErrStorage            = &Error{Code: CodeStorage}
	ErrBadSubject         = &Error{Code: CodeBadSubject}
	ErrNoResponders       = &Error{Code: CodeNoResponders}
	ErrTooFewCopies       = &Error{Code: CodeTooFewCopies}
	ErrLimit              = &Error{Code: CodeLimit}
	ErrAuthRequired       = &Error{Code: CodeAuthRequired}
	ErrAuthFailed         = &Error{Code: CodeAuthFailed}
	ErrForbidden          = &Error{Code: CodeForbidden}
	ErrServerTimeout      = &Error{Code: CodeTimeout}
	ErrBadSchedule        = &Error{Code: CodeBadSchedule}
)

// Errors of the client itself, not of the server.
var (
	// ErrClosed: the connection is gone (closed by Close or Quit, by a fatal
	// error, or broken). errors.Is(err, ErrClosed) holds for every *ConnError.
	ErrClosed = errors.New("beuss: connection closed")
	// ErrTimeout: no reply came within the wait asked for plus
	// Options.Timeout; the client closed the connection.
	ErrTimeout = errors.New("beuss: no reply in time")
	// ErrNoReply: a Request's timeout passed without a reply (the server
	// answered EMPTY).
	ErrNoReply = errors.New("beuss: no reply before the request's timeout")
	// ErrUnsupported: the server's negotiated version or features lack the
	// operation (protocol.md 9.1).
	ErrUnsupported = errors.New("beuss: the server does not support this operation")
)

// ConnError says the connection failed while a request was in flight or
// before it was sent: its outcome is unknown (a PUT may or may not have been
// stored, protocol.md 2.8) unless Err is a fatal *Error such as
// SHUTTING_DOWN, which says the request was not carried out.
type ConnError struct {
	// Err is the cause: an I/O error, a fatal *Error, ErrTimeout, a context
	// error, or ErrClosed.
	Err error
}

// Error describes the cause.
func (e *ConnError) Error() string {
	if e.Err == ErrClosed {
		return ErrClosed.Error()
	}
	return "beuss: connection lost: " + e.Err.Error()
}

// Unwrap gives the cause, so errors.Is(err, beuss.ErrShuttingDown) works.
func (e *ConnError) Unwrap() error { return e.Err }

// Is makes every ConnError match ErrClosed.
func (e *ConnError) Is(target error) bool { return target == ErrClosed }
