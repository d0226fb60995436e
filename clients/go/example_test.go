package beuss_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"beuss"
)

// A worker: leases from "jobs", acknowledges what the handler finishes.
func ExampleClient_Consume() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	c, err := beuss.Dial(ctx, "") // $BHOST:$BPORT, default localhost:6552
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.Consume(ctx, "jobs", beuss.ConsumerOptions{Concurrency: 8, HandlerTimeout: time.Minute},
		func(ctx context.Context, m *beuss.Message) error {
			fmt.Printf("job %d (attempt %d): %s\n", m.ID, m.Attempt, m.Payload)
			return nil // ack; an error would NACK with a backoff
		})
	if err != nil {
		log.Fatal(err)
	}
}

// A producer that treats FULL as back-pressure.
func ExampleClient_Put() {
	ctx := context.Background()
	c, err := beuss.Dial(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err := c.Put(ctx, "jobs", []byte("resize img-42"), beuss.WithPriority(2))
	if errors.Is(err, beuss.ErrFull) {
		log.Print("server full, try later")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored as", res.ID)
}

// Unique messages (version 6): a job that must not be queued twice, nor run
// twice within ten minutes, and a price of which only the latest waits.
func ExampleClient_Put_unique() {
	ctx := context.Background()
	c, err := beuss.Dial(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err := c.Put(ctx, "jobs", []byte("send invoice 42"),
		beuss.WithUniqueKey("invoice-42"), beuss.WithUniqueWindow(10*time.Minute))
	switch {
	case errors.Is(err, beuss.ErrUnsupported):
		log.Fatal("the server is older than version 6")
	case err != nil:
		log.Fatal(err)
	case res.Duplicate == beuss.HolderInFlight:
		fmt.Println("invoice 42 is being sent by message", res.ID)
	case res.Duplicate != 0: // not an error: nothing was stored
		fmt.Println("invoice 42 is already", res.Duplicate, "as message", res.ID)
	default:
		fmt.Println("stored as", res.ID)
	}
	// The waiting message keeps its id and its place, and takes the new payload.
	res, err = c.Put(ctx, "prices", []byte("EURUSD 1.0842"), beuss.WithUniqueKey("EURUSD"), beuss.WithReplace())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("replaced:", res.Replaced, "id:", res.ID)
}

// Message expiry (version 6): a quote that is useless after 5 seconds, a
// charge that goes to billing.dead for a person if nobody took it within the
// hour, and a message that never expires on a queue with a default time to
// live (BQUEUETTL).
func ExampleClient_Put_expiry() {
	ctx := context.Background()
	c, err := beuss.Dial(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err := c.Put(ctx, "quotes", []byte("EURUSD 1.0842"), beuss.WithTTL(5*time.Second))
	switch {
	case errors.Is(err, beuss.ErrUnsupported):
		log.Fatal("the server is older than version 6")
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("stored as", res.ID)
	// With a key too: it is released when the message expires.
	_, err = c.Put(ctx, "billing", []byte("charge card 42"),
		beuss.WithTTL(time.Hour), beuss.WithTTLDeadLetter(), beuss.WithUniqueKey("charge-42"))
	if err != nil {
		log.Fatal(err)
	}
	// WithTTL(0) opts out of the queue's default.
	if _, err := c.Put(ctx, "cache", []byte("keep"), beuss.WithTTL(0)); err != nil {
		log.Fatal(err)
	}
	st, err := c.Stats(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Server["expiring"], "expiring,", st.Server["expired"], "expired so far")
}

// Fan-out: bind a queue to a pattern, publish, and ask a service.
func ExampleClient_Publish() {
	ctx := context.Background()
	c, err := beuss.Dial(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Bind(ctx, "orders.>", "audit"); err != nil {
		log.Fatal(err)
	}
	p, err := c.Publish(ctx, "orders.eu.created", []byte(`{"id":7}`), beuss.PublishOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("copies:", p.Queues, "events:", p.Subscribers)
	answer, err := c.Request(ctx, "svc.time", []byte("now?"), time.Second)
	switch {
	case errors.Is(err, beuss.ErrNoResponders):
		fmt.Println("nobody serves svc.time")
	case err == nil:
		fmt.Printf("%s\n", answer)
	}
}

// Schedules: the server puts "backup" on "jobs" every night at 03:00 UTC.
func ExampleClient_Schedule() {
	ctx := context.Background()
	c, err := beuss.Dial(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	prio := uint8(1)
	created, next, err := c.Schedule(ctx, "nightly", "0 3 * * *", beuss.QueueTarget("jobs"), []byte("backup"),
		beuss.ScheduleOptions{Priority: &prio})
	if errors.Is(err, beuss.ErrBadSchedule) {
		log.Fatalf("the server cannot read the spec: %v", err) // the connection stays open
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("new:", created, "first run:", time.UnixMilli(int64(next)).UTC())
	list, err := c.Schedules(ctx, "") // "" lists every schedule
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range list {
		fmt.Println(s.Name, s.Spec, s.Target.Name, "paused:", s.Paused, "runs:", s.Runs, "next:", s.NextRun())
	}
	if _, found, err := c.PauseSchedule(ctx, "nightly"); err != nil || !found {
		log.Fatal("no schedule nightly", err)
	}
}
