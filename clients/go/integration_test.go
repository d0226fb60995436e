package beuss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHelloAndPing(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	info := c.Info()
	if info.Version != 6 || info.MaxMessageSize != 1<<20 || info.DefaultLease != 30*time.Second {
		t.Fatalf("%+v", info)
	}
	// Has is true for any of the bits it is given: check each on its own.
	for _, f := range []uint32{FeatureLeases, FeaturePutOptions, FeatureFanout, FeatureSchedules, FeatureUnique, FeatureTTL} {
		if !info.Has(f) {
			t.Errorf("features %#x lack %#x", info.Features, f)
		}
	}
	if info.Has(FeatureAuthRequired) {
		t.Errorf("features %#x: no token is required", info.Features)
	}
	if err := c.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Quit: %v", err)
	}
}

func TestPutGet(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	r1, err := c.Put(ctx(t), "jobs", []byte("hello"))
	if err != nil || r1.ID == 0 || r1.Truncated || r1.StoredLen != 5 {
		t.Fatalf("%+v %v", r1, err)
	}
	r2, _ := c.Put(ctx(t), "jobs", []byte{})
	if r2.ID <= r1.ID {
		t.Fatalf("ids must grow: %d then %d", r1.ID, r2.ID)
	}
	got, err := c.Get(ctx(t), "jobs", 0, 10)
	if err != nil || len(got) != 2 || string(got[0]) != "hello" || len(got[1]) != 0 {
		t.Fatalf("%q %v", got, err)
	}
	got, err = c.Get(ctx(t), "jobs", 0, 1)
	if err != nil || got != nil {
		t.Fatalf("empty queue: %q %v", got, err)
	}
}

func TestBatches(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	var payloads [][]byte
	for i := 0; i < 500; i++ {
		payloads = append(payloads, []byte(fmt.Sprint(i)))
	}
	rs, err := c.PutMany(ctx(t), "b", payloads)
	if err != nil || len(rs) != 500 {
		t.Fatal(err)
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].ID <= rs[i-1].ID {
			t.Fatal("replies out of order")
		}
	}
	got, err := c.Get(ctx(t), "b", 0, 200)
	if err != nil || len(got) != 200 || string(got[199]) != "199" {
		t.Fatalf("%d %v", len(got), err)
	}
	p := c.Pipeline()
	var pend []*Pending[[][]byte]
	for i := 0; i < 300; i++ {
		pend = append(pend, p.Get("b", 0, 1))
	}
	last := p.Get("b", 0, 1)
	if err := p.Exec(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for i, pr := range pend {
		m, err := pr.Result()
		if err != nil || len(m) != 1 || string(m[0]) != fmt.Sprint(200+i) {
			t.Fatalf("pipelined GET %d: %q %v", i, m, err)
		}
	}
	if m, err := last.Result(); m != nil || err != nil {
		t.Fatalf("the queue should be empty: %q %v", m, err)
	}
}

func TestConcurrentCallersShareOneConnection(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			q := fmt.Sprint("q", g)
			for i := 0; i < 100; i++ {
				if _, err := c.Put(ctx(t), q, []byte(fmt.Sprint(i))); err != nil {
					errs <- err
					return
				}
				m, err := c.Get(ctx(t), q, 0, 1)
				if err != nil || len(m) != 1 || string(m[0]) != fmt.Sprint(i) {
					errs <- fmt.Errorf("%s: %q %v", q, m, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestWaitingGetAnsweredByLaterPut(t *testing.T) {
	s := startServer(t)
	consumer, producer := s.dial(t), s.dial(t)
	got := make(chan [][]byte, 1)
	go func() {
		m, _ := consumer.Get(ctx(t), "w", 5*time.Second, 10)
		got <- m
	}()
	// Readiness, not a sleep: wait until the server counts the parked GET.
	waitFor(t, producer, func(st *Stats) bool { return st.Server["waiters"] == 1 })
	if _, err := producer.Put(ctx(t), "w", []byte("late")); err != nil {
		t.Fatal(err)
	}
	if m := <-got; len(m) != 1 || string(m[0]) != "late" {
		t.Fatalf("%q", m)
	}
}

// waitFor polls STATS until cond holds (bounded by testTimeout).
func waitFor(t *testing.T, c *Client, cond func(*Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		st, err := c.Stats(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}

func TestTruncation(t *testing.T) {
	s := startServer(t, "BMAXMESSAGESIZE=16")
	c := s.dial(t)
	if c.Info().MaxMessageSize != 16 {
		t.Fatal(c.Info())
	}
	r, err := c.Put(ctx(t), "t", bytes.Repeat([]byte("x"), 40))
	if err != nil || !r.Truncated || r.OriginalLen != 40 || r.StoredLen != 16 || r.ID == 0 {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = c.PutReader(ctx(t), "t", strings.NewReader(strings.Repeat("y", 100)), 100)
	if err != nil || !r.Truncated || r.StoredLen != 16 {
		t.Fatalf("%+v %v", r, err)
	}
	m, _ := c.Get(ctx(t), "t", 0, 10)
	if len(m) != 2 || len(m[0]) != 16 || string(m[1]) != strings.Repeat("y", 16) {
		t.Fatalf("%q", m)
	}
}

func TestPutReaderStreamsLargePayload(t *testing.T) {
	s := startServer(t, "BMAXMESSAGESIZE=4M")
	c := s.dial(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	r, err := c.PutReader(ctx(t), "big", bytes.NewReader(big), int64(len(big)), WithPriority(1))
	if err != nil || r.Truncated || r.StoredLen != len(big) {
		t.Fatalf("%+v %v", r, err)
	}
	m, err := c.Get(ctx(t), "big", 0, 1)
	if err != nil || len(m) != 1 || !bytes.Equal(m[0], big) {
		t.Fatalf("%d %v", len(m), err)
	}
	// A reader that ends early cannot finish the frame: the connection is
	// closed and the server stores nothing.
	_, err = c.PutReader(ctx(t), "big", strings.NewReader("short"), 100)
	if err == nil {
		t.Fatal("a short reader must fail")
	}
	other := s.dial(t)
	if st, ok, _ := other.QueueStats(ctx(t), "big"); ok && st["messages"] != 0 {
		t.Fatalf("a cut PUT stored something: %v", st)
	}
}

func TestFull(t *testing.T) {
	s := startServer(t, "BMAXMEMORY=64K", "BMAXMESSAGESIZE=16K")
	c := s.dial(t)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.Put(ctx(t), "f", make([]byte, 8<<10))
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("want FULL, got %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Fatal || e.Code != CodeFull {
		t.Fatalf("%#v", err)
	}
	if err := c.Ping(ctx(t)); err != nil {
		t.Fatalf("FULL must leave the connection usable: %v", err)
	}
}

func TestBadNames(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	for _, q := range []string{"", strings.Repeat("n", 256), "bad\xff"} {
		if _, err := c.Put(ctx(t), q, nil); !errors.Is(err, ErrBadQueueName) {
			t.Fatalf("queue %q: %v", q, err)
		}
	}
	if err := c.Ping(ctx(t)); err != nil {
		t.Fatalf("a refused name must not cost the connection: %v", err)
	}
	// The finer subject rules are the server's: a fatal BAD_SUBJECT.
	_, err := c.Publish(ctx(t), "a..b", []byte("x"), PublishOptions{})
	var e *Error
	if !errors.Is(err, ErrBadSubject) || !errors.As(err, &e) || !e.Fatal || e.Local {
		t.Fatalf("%v", err)
	}
	<-c.Done()
	if err := c.Ping(ctx(t)); !errors.Is(err, ErrClosed) || !errors.Is(err, ErrBadSubject) {
		t.Fatalf("after a fatal error: %v", err)
	}
}

func TestLeaseAckNackTouch(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	c.PutMany(ctx(t), "l", [][]byte{[]byte("a"), []byte("b"), []byte("c")})
	ms, err := c.Lease(ctx(t), "l", LeaseOptions{Max: 3, Lease: time.Minute})
	if err != nil || len(ms) != 3 || ms[0].Attempt != 1 || string(ms[0].Payload) != "a" || !ms[0].Leased() {
		t.Fatalf("%v %v", ms, err)
	}
	if r, err := ms[0].Touch(ctx(t), 0); err != nil || r != SettleOK {
		t.Fatal(r, err)
	}
	if r, err := ms[0].Ack(ctx(t)); err != nil || r != SettleOK {
		t.Fatal(r, err)
	}
	if r, _ := ms[0].Ack(ctx(t)); r != AlreadySettled || r.OK() {
		t.Fatalf("second settle: %v", r)
	}
	if rs, _ := c.Ack(ctx(t), "l", ms[0].Ref()); rs[0] != SettleNotFound {
		t.Fatalf("ack of an acked message: %v", rs)
	}
	if r, _ := ms[1].Nack(ctx(t), NackOptions{}); r != SettleOK {
		t.Fatal(r)
	}
	again, _ := c.Lease(ctx(t), "l", LeaseOptions{})
	if len(again) != 1 || again[0].ID != ms[1].ID || again[0].Attempt != 2 {
		t.Fatalf("a NACKed message comes back first, attempt 2: %+v", again)
	}
	if rs, _ := c.Ack(ctx(t), "l", ms[1].Ref(), again[0].Ref(), ms[2].Ref()); fmt.Sprint(rs) != "[STALE OK OK]" {
		t.Fatalf("%v", rs)
	}
	st, _, _ := c.QueueStats(ctx(t), "l")
	if st["messages"] != 0 || st["acks"] != 3 || st["nacks"] != 1 {
		t.Fatalf("%v", st)
	}
}

func TestStaleAfterExpiry(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	c.Put(ctx(t), "e", []byte("x"))
	first, _ := c.Lease(ctx(t), "e", LeaseOptions{Lease: 50 * time.Millisecond})
	// The expired lease makes the message ready again: a waiting LEASE gets it.
	second, err := c.Lease(ctx(t), "e", LeaseOptions{Wait: 5 * time.Second, Lease: time.Minute})
	if err != nil || len(second) != 1 || second[0].Attempt != 2 {
		t.Fatalf("%v %v", second, err)
	}
	if r, _ := first[0].Ack(ctx(t)); r != SettleStale {
		t.Fatalf("ack after expiry: %v", r)
	}
	if r, _ := second[0].Ack(ctx(t)); r != SettleOK {
		t.Fatalf("current lease: %v", r)
	}
}

func TestStaleAfterReconnect(t *testing.T) {
	s := startServer(t)
	r := NewReconnector(s.addr, Options{})
	defer r.Close()
	c, err := r.Client(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	c.Put(ctx(t), "rc", []byte("x"))
	held, _ := c.Lease(ctx(t), "rc", LeaseOptions{Lease: time.Minute})
	c.Close() // the server returns the message at once
	c2, err := r.Client(ctx(t))
	if err != nil || c2 == c {
		t.Fatal("the reconnector must dial a new client", err)
	}
	again, _ := c2.Lease(ctx(t), "rc", LeaseOptions{Wait: 5 * time.Second})
	if len(again) != 1 || again[0].Attempt != 2 {
		t.Fatalf("%+v", again)
	}
	if res, err := held[0].Ack(ctx(t)); res != SettleStale || err != nil {
		t.Fatalf("settling a message of the old connection: %v %v", res, err)
	}
	if res, _ := again[0].Ack(ctx(t)); res != SettleOK {
		t.Fatal(res)
	}
	// Do re-runs only what the caller hands it.
	runs := 0
	err = r.Do(ctx(t), func(c *Client) error {
		runs++
		if runs == 1 {
			c.Close()
			return c.Ping(ctx(t))
		}
		return c.Ping(ctx(t))
	})
	if err != nil || runs != 2 {
		t.Fatal(runs, err)
	}
}

func TestDetachedLeaseSettledFromAnotherConnection(t *testing.T) {
	s := startServer(t)
	a, b := s.dial(t), s.dial(t)
	a.Put(ctx(t), "d", []byte("x"))
	ms, _ := a.Lease(ctx(t), "d", LeaseOptions{Detached: true})
	a.Close()
	if rs, err := b.Ack(ctx(t), "d", ms[0].Ref()); err != nil || rs[0] != SettleOK {
		t.Fatal(rs, err)
	}
}

func TestDeadLettersPeekMove(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	c.PutMany(ctx(t), "dl", [][]byte{[]byte("one"), []byte("two")})
	ms, _ := c.Lease(ctx(t), "dl", LeaseOptions{Max: 1, MaxDeliveries: 1})
	ms[0].Nack(ctx(t), NackOptions{}) // the one charged delivery allowed
	ms2, _ := c.Lease(ctx(t), "dl", LeaseOptions{Max: 1})
	ms2[0].Nack(ctx(t), NackOptions{Dead: true})
	dead, err := c.Peek(ctx(t), "dl.dead", 10)
	if err != nil || len(dead) != 2 || string(dead[0].Payload) != "one" || string(dead[1].Payload) != "two" || dead[0].Leased() {
		t.Fatalf("%v %v", dead, err)
	}
	if n, err := c.Move(ctx(t), "dl.dead", "dl", 100); n != 2 || err != nil {
		t.Fatal(n, err)
	}
	if m, _ := c.Get(ctx(t), "dl", 0, 10); len(m) != 2 {
		t.Fatalf("%q", m)
	}
	if _, err := c.Move(ctx(t), "dl", "dl", 1); !errors.Is(err, ErrBadArgument) {
		t.Fatal(err)
	}
}

func TestDelayAndPriority(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	putAt := time.Now()
	c.Put(ctx(t), "p", []byte("later"), WithDelay(150*time.Millisecond))
	c.Put(ctx(t), "p", []byte("low"), WithPriority(9))
	c.Put(ctx(t), "p", []byte("normal"))
	c.Put(ctx(t), "p", []byte("urgent"), WithPriority(0))
	m, _ := c.Get(ctx(t), "p", 0, 10)
	if fmt.Sprintf("%s", m) != "[urgent normal low]" {
		t.Fatalf("%s", m)
	}
	m, _ = c.Get(ctx(t), "p", 5*time.Second, 1)
	// A lower bound only: the server never hands it out before its time.
	if len(m) != 1 || string(m[0]) != "later" || time.Since(putAt) < 150*time.Millisecond {
		t.Fatalf("%q after %v", m, time.Since(putAt))
	}
	if _, err := c.Put(ctx(t), "p", nil, WithPriority(10)); !errors.Is(err, ErrBadArgument) {
		t.Fatal(err)
	}
}

func TestPurgeAndStats(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	c.PutMany(ctx(t), "s", [][]byte{[]byte("1"), []byte("22"), []byte("333")})
	st, err := c.Stats(ctx(t))
	if err != nil || st.Server["messages"] != 3 || st.Server["puts"] != 3 || st.Queues["s"]["bytes"] != 6 {
		t.Fatalf("%+v %v", st, err)
	}
	if n, err := c.Purge(ctx(t), "s"); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	q, ok, err := c.QueueStats(ctx(t), "s")
	if !ok || err != nil || q["messages"] != 0 {
		t.Fatal(q, ok, err)
	}
	if _, ok, _ := c.QueueStats(ctx(t), "nothing-here"); ok {
		t.Fatal("a queue that does not exist has no figures")
	}
}

func TestPublishBindConfirm(t *testing.T) {
	s := startServer(t)
	pub, worker := s.dial(t), s.dial(t)
	if created, err := pub.Bind(ctx(t), "orders.*.created", "audit"); !created || err != nil {
		t.Fatal(created, err)
	}
	if created, _ := pub.Bind(ctx(t), "orders.*.created", "audit"); created {
		t.Fatal("binding twice creates nothing")
	}
	pub.Bind(ctx(t), "orders.>", "all")
	p, err := pub.Publish(ctx(t), "orders.eu.created", []byte("hi"), PublishOptions{})
	if err != nil || p.Queues != 2 || p.StoredLen != 2 {
		t.Fatalf("%+v %v", p, err)
	}
	p, _ = pub.Publish(ctx(t), "nobody.listens", []byte("x"), PublishOptions{})
	if p.Queues != 0 || p.Subscribers != 0 {
		t.Fatalf("%+v", p)
	}
	for _, q := range []string{"audit", "all"} {
		m, err := worker.GetMeta(ctx(t), q, 0, 10)
		if err != nil || len(m) != 1 || m[0].Subject != "orders.eu.created" || string(m[0].Payload) != "hi" || m[0].ID == 0 {
			t.Fatalf("%s: %+v %v", q, m, err)
		}
	}
	// Confirm: the publisher waits until a worker acknowledges the copy.
	done := make(chan Published, 1)
	go func() {
		p, err := pub.Publish(ctx(t), "orders.us.created", []byte("c"), PublishOptions{Confirm: 2, ConfirmTimeout: 5 * time.Second})
		if err != nil {
			t.Error(err)
		}
		done <- p
	}()
	for _, q := range []string{"audit", "all"} {
		ms, err := worker.Lease(ctx(t), q, LeaseOptions{Wait: 5 * time.Second})
		if err != nil || len(ms) != 1 {
			t.Fatal(ms, err)
		}
		ms[0].Ack(ctx(t))
	}
	if p := <-done; p.Acked != 2 || p.Queues != 2 {
		t.Fatalf("%+v", p)
	}
	if _, err := pub.Publish(ctx(t), "orders.eu.created", nil, PublishOptions{Confirm: 3, ConfirmTimeout: time.Second}); !errors.Is(err, ErrTooFewCopies) {
		t.Fatal(err)
	}
	if removed, _ := pub.Unbind(ctx(t), "orders.>", "all"); !removed {
		t.Fatal("unbind")
	}
}

func TestSubscribeEvents(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	sub, err := c.Subscribe(ctx(t), "news.>")
	if err != nil || sub.Sid != 1 {
		t.Fatal(sub, err)
	}
	// Events and replies interleave on one connection: pipelined requests
	// still get their own replies.
	for i := 0; i < 50; i++ {
		if _, err := c.Publish(ctx(t), "news.x", []byte(fmt.Sprint(i)), PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		ev, err := sub.Next(ctx(t))
		if err != nil || ev.Subject != "news.x" || string(ev.Payload) != fmt.Sprint(i) || ev.Sid != 1 {
			t.Fatalf("%+v %v", ev, err)
		}
	}
	if ok, err := sub.Unsubscribe(ctx(t)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, open := <-sub.C; open {
		t.Fatal("C must be closed after Unsubscribe")
	}
}

func TestRequestReply(t *testing.T) {
	s := startServer(t)
	responder, requester := s.dial(t), s.dial(t)
	sub, _ := responder.Subscribe(ctx(t), "svc.*")
	go func() {
		for ev := range sub.C {
			responder.Reply(context.Background(), ev.ReplyTo, append([]byte("re: "), ev.Payload...))
		}
	}()
	got, err := requester.Request(ctx(t), "svc.time", []byte("now?"), 5*time.Second)
	if err != nil || string(got) != "re: now?" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := requester.Request(ctx(t), "nobody.here", nil, time.Second); !errors.Is(err, ErrNoResponders) {
		t.Fatal(err)
	}
	// A bound queue is a responder too; nobody answers, so it times out.
	requester.Bind(ctx(t), "slow.>", "slowq")
	if _, err := requester.Request(ctx(t), "slow.x", nil, 50*time.Millisecond); !errors.Is(err, ErrNoReply) {
		t.Fatal(err)
	}
	m, _ := requester.GetMeta(ctx(t), "slowq", 0, 1)
	if len(m) != 1 || m[0].ReplyTo == 0 {
		t.Fatalf("%+v", m)
	}
	if ok, _ := requester.Reply(ctx(t), m[0].ReplyTo, nil); ok {
		t.Fatal("a late reply reaches nobody")
	}
}

func TestCancelledWaitClosesConnectionWithoutLosingMessages(t *testing.T) {
	s := startServer(t)
	c, other := s.dial(t), s.dial(t)
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(cctx, "cw", Forever, 1)
		done <- err
	}()
	waitFor(t, other, func(st *Stats) bool { return st.Server["waiters"] == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	<-c.Done()
	waitFor(t, other, func(st *Stats) bool { return st.Server["waiters"] == 0 })
	other.Put(ctx(t), "cw", []byte("kept"))
	if m, _ := other.Get(ctx(t), "cw", 0, 1); len(m) != 1 {
		t.Fatal("the message went to the abandoned GET")
	}
}

func TestShuttingDown(t *testing.T) {
	s := startServer(t)
	c, other := s.dial(t), s.dial(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx(t), "sd", 5*time.Second, 1)
		done <- err
	}()
	waitFor(t, other, func(st *Stats) bool { return st.Server["waiters"] == 1 })
	s.stop(t)
	if err := <-done; !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("a parked GET gets SHUTTING_DOWN: %v", err)
	}
}

func TestConsumerAcksRetriesAndTouches(t *testing.T) {
	s := startServer(t)
	prod, cons := s.dial(t), s.dial(t)
	prod.PutMany(ctx(t), "c", [][]byte{[]byte("ok"), []byte("fail-once"), []byte("slow")})
	var mu sync.Mutex
	seen := map[string][]uint32{}
	done := make(chan struct{})
	cctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(done)
		err := cons.Consume(cctx, "c", ConsumerOptions{
			Concurrency: 3, Lease: 600 * time.Millisecond,
			Backoff: func(uint32) time.Duration { return 10 * time.Millisecond },
		}, func(hctx context.Context, m *Message) error {
			mu.Lock()
			seen[string(m.Payload)] = append(seen[string(m.Payload)], m.Attempt)
			mu.Unlock()
			switch string(m.Payload) {
			case "fail-once":
				if m.Attempt == 1 {
					return errors.New("try again")
				}
			case "slow":
				// Runs past two lease lengths: only touching keeps it.
				select {
				case <-time.After(1300 * time.Millisecond):
				case <-hctx.Done():
					return hctx.Err()
				}
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, prod, func(st *Stats) bool { return st.Server["acks"] == 3 })
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(seen["ok"]) != "[1]" || fmt.Sprint(seen["fail-once"]) != "[1 2]" || fmt.Sprint(seen["slow"]) != "[1]" {
		t.Fatalf("%v", seen)
	}
	st, _ := prod.Stats(ctx(t))
	if st.Server["expired_leases"] != 0 || st.Server["messages"] != 0 {
		t.Fatalf("expired %d, left %d", st.Server["expired_leases"], st.Server["messages"])
	}
}

func TestConsumerHandlerTimeout(t *testing.T) {
	s := startServer(t)
	prod, cons := s.dial(t), s.dial(t)
	prod.Put(ctx(t), "ht", []byte("x"))
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	attempts := make(chan uint32, 10)
	go cons.Consume(cctx, "ht", ConsumerOptions{HandlerTimeout: 20 * time.Millisecond, MaxDeliveries: 2,
		Backoff: func(uint32) time.Duration { return 0 }},
		func(hctx context.Context, m *Message) error {
			attempts <- m.Attempt
			<-hctx.Done()
			return hctx.Err()
		})
	// Two timed-out attempts, then the message is dead-lettered.
	waitFor(t, prod, func(st *Stats) bool { return st.Server["dead_lettered"] == 1 })
	if a, b := <-attempts, <-attempts; a != 1 || b != 2 {
		t.Fatal(a, b)
	}
}

func TestConsumerShutdownReturnsWithoutCharge(t *testing.T) {
	s := startServer(t)
	prod, cons := s.dial(t), s.dial(t)
	prod.Put(ctx(t), "sh", []byte("x"))
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- cons.Consume(context.Background(), "sh", ConsumerOptions{MaxDeliveries: 1}, func(hctx context.Context, m *Message) error {
			close(started)
			<-hctx.Done() // unfinished work, cancelled by the shutdown
			return hctx.Err()
		})
	}()
	<-started
	cons.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// With max_deliveries 1 a charged return would have dead-lettered it.
	st, _, _ := prod.QueueStats(ctx(t), "sh")
	if st["ready"] != 1 || st["dead_lettered"] != 0 || st["nacks"] != 1 {
		t.Fatalf("%v", st)
	}
}

func TestTenConsumersExactlyOnce(t *testing.T) {
	const consumers, perConsumer = 10, 1000
	s := startServer(t)
	prod := s.dial(t)
	total := consumers * perConsumer
	batch := make([][]byte, 0, 1000)
	for i := 0; i < total; i++ {
		batch = append(batch, []byte(fmt.Sprint(i)))
		if len(batch) == cap(batch) {
			if _, err := prod.PutMany(ctx(t), "x1", batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	var handled [consumers * perConsumer]int32
	var count int64
	cctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := 0; g < consumers; g++ {
		c := s.dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.Consume(cctx, "x1", ConsumerOptions{Concurrency: 8, Wait: 200 * time.Millisecond}, func(_ context.Context, m *Message) error {
				var i int
				fmt.Sscan(string(m.Payload), &i)
				atomic.AddInt32(&handled[i], 1)
				atomic.AddInt64(&count, 1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	waitFor(t, prod, func(st *Stats) bool { return st.Server["acks"] == uint64(total) })
	cancel()
	wg.Wait()
	for i, n := range handled {
		if n != 1 {
			t.Fatalf("message %d handled %d times", i, n)
		}
	}
	st, _ := prod.Stats(ctx(t))
	if st.Server["messages"] != 0 || st.Server["redeliveries"] != 0 || count != int64(total) {
		t.Fatalf("messages %d redeliveries %d handled %d", st.Server["messages"], st.Server["redeliveries"], count)
	}
}

func TestLimitsCheckedByTheClient(t *testing.T) {
	s := startServer(t)
	c := s.dial(t)
	checks := []error{
		func() error { _, err := c.Lease(ctx(t), "q", LeaseOptions{Lease: 13 * time.Hour}); return err }(),
		func() error { _, err := c.Put(ctx(t), "q", nil, WithDelay(31*24*time.Hour)); return err }(),
		func() error { _, err := c.Get(ctx(t), "q", 0, 0); return err }(),
		func() error {
			_, err := c.Publish(ctx(t), "s", nil, PublishOptions{Confirm: 1, ConfirmTimeout: 13 * time.Hour})
			return err
		}(),
	}
	for i, err := range checks {
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBadArgument || !e.Local {
			t.Errorf("check %d: %v", i, err)
		}
	}
	if err := c.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestTooManyConnections(t *testing.T) {
	s := startServer(t, "BMAXCONNECTIONS=1")
	s.dial(t)
	_, err := Dial(ctx(t), s.addr)
	if !errors.Is(err, ErrTooManyConnections) {
		t.Fatalf("%v", err)
	}
}

func TestEventsWhileARequestIsParked(t *testing.T) {
	s := startServer(t)
	c, responder := s.dial(t), s.dial(t)
	sub, _ := c.Subscribe(ctx(t), "watch")
	rsub, _ := responder.Subscribe(ctx(t), "ask")
	go func() {
		ev, ok := <-rsub.C
		if !ok {
			return
		}
		// Publish to c's subscription while c's REQ is parked, then answer.
		responder.Publish(context.Background(), "watch", []byte("meanwhile"), PublishOptions{})
		responder.Reply(context.Background(), ev.ReplyTo, []byte("answer"))
	}()
	got, err := c.Request(ctx(t), "ask", nil, 5*time.Second)
	if err != nil || string(got) != "answer" {
		t.Fatalf("%q %v", got, err)
	}
	ev, err := sub.Next(ctx(t))
	if err != nil || string(ev.Payload) != "meanwhile" {
		t.Fatalf("%+v %v", ev, err)
	}
}

func TestReconnectorConsumeAcrossRestart(t *testing.T) {
	port := fmt.Sprintf("BPORT=%d", freePort(t))
	first := startServer(t, port)
	r := NewReconnector(first.addr, Options{})
	r.MinBackoff = 10 * time.Millisecond
	defer r.Close()
	got := make(chan string, 10)
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Consume(cctx, "rq", ConsumerOptions{Wait: 100 * time.Millisecond}, func(_ context.Context, m *Message) error {
		got <- string(m.Payload)
		return nil
	})
	first.dial(t).Put(ctx(t), "rq", []byte("one"))
	if m := <-got; m != "one" {
		t.Fatal(m)
	}
	first.stop(t)
	if err := first.cmd.Wait(); err != nil {
		t.Logf("first server: %v", err)
	}
	second := startServer(t, port)
	second.dial(t).Put(ctx(t), "rq", []byte("two"))
	select {
	case m := <-got:
		if m != "two" {
			t.Fatal(m)
		}
	case <-time.After(testTimeout):
		t.Fatal("the consumer did not come back after the restart")
	}
}
