package beuss

import (
	"context"
	"time"
)

// TargetKind says where a schedule's messages go (protocol.md 17.3).
type TargetKind uint8

// The target kinds of version 5; a later version may list others.
const (
	// TargetQueue: the message is put on a queue, as a PUT with options.
	TargetQueue TargetKind = 0
	// TargetSubject: the message is published to a subject, as a PUB.
	TargetSubject TargetKind = 1
)

// ScheduleTarget is the queue or subject a schedule sends its message to;
// make one with QueueTarget or SubjectTarget.
type ScheduleTarget struct {
	// Kind is TargetQueue or TargetSubject.
	Kind TargetKind
	// Name is the queue name, or the subject (without wildcards, 15.1).
	Name string
}

// QueueTarget puts a schedule's message on queue.
func QueueTarget(queue string) ScheduleTarget {
	return ScheduleTarget{Kind: TargetQueue, Name: queue}
}

// SubjectTarget publishes a schedule's message to subject: a copy into every
// bound queue whose pattern matches, an event to every matching subscription.
func SubjectTarget(subject string) ScheduleTarget {
	return ScheduleTarget{Kind: TargetSubject, Name: subject}
}

// ScheduleOptions tune a Schedule. The zero value gives its messages
// DefaultPriority.
type ScheduleOptions struct {
	// Priority of its messages, 0..MaxPriority; nil means DefaultPriority.
	Priority *uint8
}

// ScheduleInfo is one schedule as Schedules lists it (protocol.md 17.6).
// Times are wall-clock milliseconds since 1970-01-01T00:00:00Z (UTC).
type ScheduleInfo struct {
	// Name is the schedule's name.
	Name string
	// Spec is when it runs, as it was given (17.2).
	Spec string
	// Target is where its messages go.
	Target ScheduleTarget
	// Priority is the priority of its messages.
	Priority uint8
	// Paused: it does not run until resumed.
	Paused bool
	// NextRunMs is its next run time; 0 while paused or when none is left.
	NextRunMs uint64
	// LastRunMs is the time of its last run; 0 before the first.
	LastRunMs uint64
	// Runs is how many times it ran, refused runs included.
	Runs uint64
	// Misfires is how many runs were late ones that stood for missed run
	// times (the server was down, the clock jumped, 17.2).
	Misfires uint64
	// Failures is how many runs had their message refused (a cap, 7.4).
	Failures uint64
	// PayloadLen is the length of its payload (the payload is not listed).
	PayloadLen uint32
}

// NextRun is NextRunMs as a time; the zero time when there is none.
func (s ScheduleInfo) NextRun() time.Time { return msTime(s.NextRunMs) }

// LastRun is LastRunMs as a time; the zero time before the first run.
func (s ScheduleInfo) LastRun() time.Time { return msTime(s.LastRunMs) }

func msTime(ms uint64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms))
}

// Schedule defines the schedule name, or replaces the one of that name (which
// then starts afresh: its figures from 0, its intervals from now). At the
// times of spec, the server sends payload to target by itself, with the
// priority of opts, no delay: "0 3 * * *" (cron, UTC), "TZ=+01:00 @daily",
// "@every 30s" (protocol.md 17.2). It returns whether the schedule is new
// and its first run time, in milliseconds since 1970 (UTC; time.UnixMilli).
//
// A spec the server cannot read, or a payload over MaxMessageSize, is
// ErrBadSchedule, whose Text says why; it does not close the connection. A
// schedule that would take the server over its memory cap is ErrFull. A bad
// name, spec (1..255 bytes of UTF-8), target or priority, and a frame over
// 64 KiB, are refused by the client first (Local). ErrUnsupported: the server
// is older than version 5.
func (c *Client) Schedule(ctx context.Context, name, spec string, target ScheduleTarget, payload []byte, opts ScheduleOptions) (created bool, nextRunMs uint64, err error) {
	if err := c.need(5, FeatureSchedules); err != nil {
		return false, 0, err
	}
	prio := uint8(DefaultPriority)
	if opts.Priority != nil {
		prio = *opts.Priority
	}
	b, err := encodeSchedule(make([]byte, 0, 12+len(name)+len(spec)+len(target.Name)+len(payload)), name, spec, target, prio, payload)
	if err != nil {
		return false, 0, err
	}
	f, err := c.do(ctx, b, 0)
	if err != nil {
		return false, 0, err
	}
	if f.status != stScheduled {
		return false, 0, unexpected(f)
	}
	return parseScheduled(f.body)
}

// Unschedule deletes the schedule name; false if there was none. Messages it
// made stay where they are.
func (c *Client) Unschedule(ctx context.Context, name string) (removed bool, err error) {
	if err := c.need(5, FeatureSchedules); err != nil {
		return false, err
	}
	b, err := encodeUnschedule(nil, name)
	if err != nil {
		return false, err
	}
	f, err := c.do(ctx, b, 0)
	if err != nil {
		return false, err
	}
	if f.status != stUnscheduled {
		return false, unexpected(f)
	}
	return parseFlag(f.body)
}

// PauseSchedule pauses the schedule name: it does not run until resumed.
// next is 0 (a paused schedule has no next run); found is false when there
// is no such schedule. Pausing a paused schedule changes nothing.
func (c *Client) PauseSchedule(ctx context.Context, name string) (next uint64, found bool, err error) {
	return c.pauseSchedule(ctx, name, true)
}

// ResumeSchedule resumes the paused schedule name and returns its next run
// time, the first after now (missed runs are not made up); found is false
// when there is no such schedule. Resuming a running schedule changes
// nothing.
func (c *Client) ResumeSchedule(ctx context.Context, name string) (next uint64, found bool, err error) {
	return c.pauseSchedule(ctx, name, false)
}

func (c *Client) pauseSchedule(ctx context.Context, name string, paused bool) (uint64, bool, error) {
	if err := c.need(5, FeatureSchedules); err != nil {
		return 0, false, err
	}
	b, err := encodePauseSchedule(nil, name, paused)
	if err != nil {
		return 0, false, err
	}
	f, err := c.do(ctx, b, 0)
	if err != nil {
		return 0, false, err
	}
	if f.status != stSchedulePaused {
		return 0, false, unexpected(f)
	}
	found, next, err := parseSchedulePaused(f.body)
	return next, found, err
}

// Schedules lists every schedule, sorted by name (byte order), with its
// figures; name "" lists them all, another only that one (none when there
// is no such schedule). A read-only token may list.
func (c *Client) Schedules(ctx context.Context, name string) ([]ScheduleInfo, error) {
	if err := c.need(5, FeatureSchedules); err != nil {
		return nil, err
	}
	b, err := encodeSchedules(nil, name)
	if err != nil {
		return nil, err
	}
	f, err := c.do(ctx, b, 0)
	if err != nil {
		return nil, err
	}
	if f.status != stScheduleList {
		return nil, unexpected(f)
	}
	return parseScheduleList(f.body)
}
