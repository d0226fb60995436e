package beuss

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// Schedules (protocol.md 17): against the real server, a schedule that
// delivers to a waiting GET and to a subscription, the list with pause,
// resume and delete, BAD_SCHEDULE that leaves the connection open, and a
// read-only token; against a fake server, the version and feature checks.

// helloBody is a version-2-or-later HELLO reply body with the features given.
func helloBody(version uint16, features uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, version)
	b = binary.BigEndian.AppendUint32(b, 1<<20)
	b = append(b, 4, 'f', 'a', 'k', 'e')
	b = binary.BigEndian.AppendUint32(b, features)
	b = binary.BigEndian.AppendUint32(b, 30000)
	b = binary.BigEndian.AppendUint32(b, 43200000)
	b = binary.BigEndian.AppendUint32(b, 2592000000)
	return binary.BigEndian.AppendUint16(b, 20)
}

// Every schedule call fails with ErrUnsupported, sending nothing, against a
// server older than version 5 or one that does not announce bit 6.
func TestSchedulesNeedVersion5AndTheirFeature(t *testing.T) {
	for _, hello := range [][]byte{helloV3(), helloBody(4, 0x3F), helloBody(5, 0x3F)} {
		c, s := dialFakeHello(t, hello)
		calls := map[string]error{}
		_, _, calls["Schedule"] = c.Schedule(ctx(t), "n", "@daily", QueueTarget("q"), nil, ScheduleOptions{})
		_, calls["Unschedule"] = c.Unschedule(ctx(t), "n")
		_, _, calls["PauseSchedule"] = c.PauseSchedule(ctx(t), "n")
		_, _, calls["ResumeSchedule"] = c.ResumeSchedule(ctx(t), "n")
		_, calls["Schedules"] = c.Schedules(ctx(t), "")
		refusedAndUnsent(t, c, s, "schedule call", calls)
	}
}

// With bit 6, the calls go out as encoded and their replies come back
// through the connection's reader, a SCHEDULE_LIST among them.
func TestSchedulesOverAFakeServer(t *testing.T) {
	c, s := dialFakeHello(t, helloBody(5, 0x7F))
	type listed struct {
		list []ScheduleInfo
		err  error
	}
	got := make(chan listed, 1)
	go func() {
		l, err := c.Schedules(ctx(t), "n")
		got <- listed{l, err}
	}()
	op, body := s.request()
	if op != opSchedules || !bytes.Equal(body, []byte{1, 'n'}) {
		t.Fatalf("SCHEDULES 0x%02x %x", op, body)
	}
	want := ScheduleInfo{Name: "n", Spec: "@every 1s", Target: SubjectTarget("s"), Runs: 3, PayloadLen: 1}
	s.reply(stScheduleList, append(binary.BigEndian.AppendUint32(nil, 1), scheduleEntry(want, []byte{1, 2, 3, 4})...))
	if r := <-got; r.err != nil || len(r.list) != 1 || r.list[0] != want {
		t.Fatalf("%+v %v", r.list, r.err)
	}
	// A status that does not answer the request is an error, not a value.
	removed := make(chan error, 1)
	go func() {
		_, err := c.Unschedule(ctx(t), "n")
		removed <- err
	}()
	if op, _ := s.request(); op != opUnschedule {
		t.Fatalf("UNSCHEDULE sent 0x%02x", op)
	}
	s.reply(stScheduled, make([]byte, 9))
	if err := <-removed; err == nil || !strings.Contains(err.Error(), "unexpected response status 0x50") {
		t.Fatalf("UNSCHEDULE answered by SCHEDULED: %v", err)
	}
}

func TestScheduleDeliversToAWaitingGet(t *testing.T) {
	s := startServer(t)
	c, consumer := s.dial(t), s.dial(t)
	got := make(chan [][]byte, 1)
	go func() {
		m, err := consumer.Get(ctx(t), "ticks", 5*time.Second, 1)
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	waitFor(t, c, func(st *Stats) bool { return st.Server["waiters"] == 1 })
	before := time.Now().UnixMilli()
	prio := uint8(2)
	created, next, err := c.Schedule(ctx(t), "tick", "@every 200ms", QueueTarget("ticks"), []byte("tick"), ScheduleOptions{Priority: &prio})
	// Wall-clock times: the first run is one interval after the definition.
	if err != nil || !created || int64(next) < before+200 || int64(next) > time.Now().UnixMilli()+200 {
		t.Fatalf("created %v next %d (defined at %d) %v", created, next, before, err)
	}
	select {
	case m := <-got:
		if len(m) != 1 || string(m[0]) != "tick" {
			t.Fatalf("%q", m)
		}
	case <-time.After(testTimeout):
		t.Fatal("the schedule delivered nothing")
	}
	// Never before its run time (a few ms of slack for the clock's rounding).
	if now := time.Now().UnixMilli(); now < int64(next)-5 {
		t.Fatalf("delivered at %d, before the run time %d", now, next)
	}
	// It goes on running: a second message one interval later.
	m, err := consumer.Get(ctx(t), "ticks", 5*time.Second, 1)
	if err != nil || len(m) != 1 || string(m[0]) != "tick" {
		t.Fatalf("second run: %q %v", m, err)
	}
	list, err := c.Schedules(ctx(t), "tick")
	if err != nil || len(list) != 1 {
		t.Fatalf("%+v %v", list, err)
	}
	info := list[0]
	if info.Name != "tick" || info.Spec != "@every 200ms" || info.Target != QueueTarget("ticks") || info.Priority != 2 ||
		info.Paused || info.PayloadLen != 4 || info.Runs < 2 || info.LastRunMs < next || info.NextRunMs <= info.LastRunMs || info.Failures != 0 {
		t.Fatalf("%+v", info)
	}
	if removed, err := c.Unschedule(ctx(t), "tick"); !removed || err != nil {
		t.Fatal(removed, err)
	}
	st, err := c.Stats(ctx(t))
	if err != nil || st.Server["schedules"] != 0 || st.Server["schedule_runs"] < 2 {
		t.Fatalf("%v %v", st.Server, err)
	}
}

func TestScheduleToASubject(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	sub, err := c.Subscribe(ctx(t), "clock.>")
	if err != nil {
		t.Fatal(err)
	}
	if created, _, err := c.Schedule(ctx(t), "clock", "@every 200ms", SubjectTarget("clock.tick"), []byte("now"), ScheduleOptions{}); !created || err != nil {
		t.Fatal(created, err)
	}
	ev, err := sub.Next(ctx(t))
	if err != nil || ev.Subject != "clock.tick" || string(ev.Payload) != "now" {
		t.Fatalf("%+v %v", ev, err)
	}
	list, err := c.Schedules(ctx(t), "")
	if err != nil || len(list) != 1 || list[0].Target != SubjectTarget("clock.tick") || list[0].Priority != DefaultPriority {
		t.Fatalf("%+v %v", list, err)
	}
	if removed, err := c.Unschedule(ctx(t), "clock"); !removed || err != nil {
		t.Fatal(removed, err)
	}
}

// isThreeAM checks a run time of "0 3 * * *": 03:00:00 UTC, within a day.
func isThreeAM(t *testing.T, what string, ms uint64) {
	t.Helper()
	at := time.UnixMilli(int64(ms)).UTC()
	if at.Hour() != 3 || at.Minute() != 0 || at.Second() != 0 || at.Nanosecond() != 0 || !at.After(time.Now()) || at.After(time.Now().Add(24*time.Hour)) {
		t.Fatalf("%s: run time %v", what, at)
	}
}

func TestScheduleListPauseResumeUnschedule(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	created, next, err := c.Schedule(ctx(t), "b-nightly", "0 3 * * *", QueueTarget("jobs"), []byte("backup"), ScheduleOptions{})
	if err != nil || !created {
		t.Fatal(created, err)
	}
	isThreeAM(t, "defined", next)
	if created, _, err := c.Schedule(ctx(t), "a-hourly", "@every 1h", SubjectTarget("clock.hourly"), nil, ScheduleOptions{}); !created || err != nil {
		t.Fatal(created, err)
	}
	// Replacing keeps the name: created is false.
	created, next, err = c.Schedule(ctx(t), "b-nightly", "0 3 * * *", QueueTarget("jobs"), []byte("backup2"), ScheduleOptions{})
	if err != nil || created {
		t.Fatalf("replace: created %v %v", created, err)
	}
	isThreeAM(t, "replaced", next)

	all, err := c.Schedules(ctx(t), "")
	if err != nil || len(all) != 2 || all[0].Name != "a-hourly" || all[1].Name != "b-nightly" {
		t.Fatalf("sorted by name: %+v %v", all, err)
	}
	want := ScheduleInfo{Name: "b-nightly", Spec: "0 3 * * *", Target: QueueTarget("jobs"), Priority: DefaultPriority, NextRunMs: next, PayloadLen: 7}
	if all[1] != want || all[0].Target != SubjectTarget("clock.hourly") || all[0].PayloadLen != 0 {
		t.Fatalf("%+v\nwant %+v", all, want)
	}
	if one, err := c.Schedules(ctx(t), "b-nightly"); err != nil || len(one) != 1 || one[0] != want {
		t.Fatalf("one: %+v %v", one, err)
	}
	if none, err := c.Schedules(ctx(t), "nope"); err != nil || len(none) != 0 {
		t.Fatalf("none: %+v %v", none, err)
	}

	for i := 0; i < 2; i++ { // pausing a paused schedule changes nothing
		if next, found, err := c.PauseSchedule(ctx(t), "b-nightly"); !found || next != 0 || err != nil {
			t.Fatalf("pause %d: %d %v %v", i, next, found, err)
		}
	}
	if one, _ := c.Schedules(ctx(t), "b-nightly"); len(one) != 1 || !one[0].Paused || one[0].NextRunMs != 0 || !one[0].NextRun().IsZero() {
		t.Fatalf("paused: %+v", one)
	}
	resumed, found, err := c.ResumeSchedule(ctx(t), "b-nightly")
	if !found || err != nil {
		t.Fatal(found, err)
	}
	isThreeAM(t, "resumed", resumed)
	if one, _ := c.Schedules(ctx(t), "b-nightly"); len(one) != 1 || one[0].Paused || one[0].NextRunMs != resumed || one[0].NextRun().UnixMilli() != int64(resumed) {
		t.Fatalf("resumed: %+v", one)
	}
	if next, found, err := c.PauseSchedule(ctx(t), "nope"); found || next != 0 || err != nil {
		t.Fatalf("pause of nothing: %d %v %v", next, found, err)
	}
	if _, found, err := c.ResumeSchedule(ctx(t), "nope"); found || err != nil {
		t.Fatalf("resume of nothing: %v %v", found, err)
	}

	if removed, err := c.Unschedule(ctx(t), "b-nightly"); !removed || err != nil {
		t.Fatal(removed, err)
	}
	if removed, err := c.Unschedule(ctx(t), "b-nightly"); removed || err != nil {
		t.Fatalf("second delete: %v %v", removed, err)
	}
	if all, err := c.Schedules(ctx(t), ""); err != nil || len(all) != 1 || all[0].Name != "a-hourly" {
		t.Fatalf("%+v %v", all, err)
	}
	if st, err := c.Stats(ctx(t)); err != nil || st.Server["schedules"] != 1 {
		t.Fatalf("%v %v", st, err)
	}
}

func TestBadScheduleKeepsTheConnection(t *testing.T) {
	s := startServer(t, "BMAXMESSAGESIZE=1K")
	c := s.dial(t)
	if _, _, err := c.Schedule(ctx(t), "keep", "@every 1h", QueueTarget("q"), nil, ScheduleOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name, spec string
		payload    []byte
	}{
		{"fresh", "61 * * * *", nil},               // no minute 61
		{"keep", "61 * * * *", nil},                // a refused replacement changes nothing
		{"zone", "TZ=Europe/Paris @daily", nil},    // named zones are refused
		{"big", "@daily", make([]byte, 1024+1)},    // over max_message_size
		{"short", "@every 10ms", []byte("x")},      // under 100 ms
		{"feb30", "0 0 30 2 *", []byte("never")},   // no such day
		{"backwards", "0 22-2 * * *", []byte("x")}, // ranges run forwards
	} {
		_, _, err := c.Schedule(ctx(t), bad.name, bad.spec, QueueTarget("q"), bad.payload, ScheduleOptions{})
		var e *Error
		if !errors.Is(err, ErrBadSchedule) || !errors.As(err, &e) || e.Fatal || e.Local || e.Text == "" {
			t.Fatalf("%q: %#v", bad.spec, err)
		}
		if err := c.Ping(ctx(t)); err != nil {
			t.Fatalf("BAD_SCHEDULE must leave the connection usable: %v", err)
		}
	}
	all, err := c.Schedules(ctx(t), "")
	if err != nil || len(all) != 1 || all[0].Name != "keep" || all[0].Spec != "@every 1h" {
		t.Fatalf("a refused SCHEDULE changed something: %+v %v", all, err)
	}
	// What the server would refuse with a fatal error, the client refuses first.
	ten := uint8(10)
	_, _, err = c.Schedule(ctx(t), "p", "@daily", QueueTarget("q"), nil, ScheduleOptions{Priority: &ten})
	localErr(t, "priority 10", err, CodeBadArgument)
	_, _, err = c.Schedule(ctx(t), "", "@daily", QueueTarget("q"), nil, ScheduleOptions{})
	localErr(t, "empty name", err, CodeBadArgument)
	_, _, err = c.Schedule(ctx(t), "n", "@daily", QueueTarget(""), nil, ScheduleOptions{})
	localErr(t, "empty queue", err, CodeBadQueueName)
	_, _, err = c.Schedule(ctx(t), "n", "@daily", QueueTarget("q"), make([]byte, 65536), ScheduleOptions{})
	localErr(t, "a frame over 64 KiB", err, CodeFrameTooLarge)
	_, _, err = c.PauseSchedule(ctx(t), strings.Repeat("n", 256))
	localErr(t, "a name of 256 bytes", err, CodeBadArgument)
	if err := c.Ping(ctx(t)); err != nil {
		t.Fatalf("a refused argument must not cost the connection: %v", err)
	}
	// The finer subject rules are the server's: a wildcard is a fatal
	// BAD_SUBJECT, as for Publish.
	_, _, err = c.Schedule(ctx(t), "w", "@daily", SubjectTarget("a.*"), nil, ScheduleOptions{})
	var e *Error
	if !errors.Is(err, ErrBadSubject) || !errors.As(err, &e) || !e.Fatal || e.Local {
		t.Fatalf("wildcard subject: %v", err)
	}
	<-c.Done()
}

func TestSchedulesWithAReadOnlyToken(t *testing.T) {
	s := startServer(t, "BAUTHFILE="+tokenFile(t))
	rw, err := DialWith(ctx(t), s.addr, Options{Token: []byte(rwToken)})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	ro, err := DialWith(ctx(t), s.addr, Options{Token: []byte(roToken)})
	if err != nil || !ro.ReadOnly() {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, _, err := rw.Schedule(ctx(t), "n", "@hourly", QueueTarget("q"), []byte("x"), ScheduleOptions{}); err != nil {
		t.Fatal(err)
	}
	if list, err := ro.Schedules(ctx(t), ""); err != nil || len(list) != 1 || list[0].Name != "n" {
		t.Fatalf("a read-only token may list: %+v %v", list, err)
	}
	if _, _, err := ro.Schedule(ctx(t), "m", "@hourly", QueueTarget("q"), nil, ScheduleOptions{}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("read-only SCHEDULE: %v", err)
	}
	if _, _, err := ro.PauseSchedule(ctx(t), "n"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("read-only PAUSE_SCHEDULE: %v", err)
	}
	if _, err := ro.Unschedule(ctx(t), "n"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("read-only UNSCHEDULE: %v", err)
	}
	if err := ro.Ping(ctx(t)); err != nil {
		t.Fatalf("FORBIDDEN is not fatal: %v", err)
	}
}
