// Command beuss-go-bench measures the Go client: pipelined PUT then GET of
// small messages against go-redis pipelined LPUSH/RPOP on a local redis-server,
// and the consumer's leased+acknowledged messages per second. It starts both
// servers on free loopback ports and kills them (by pid) when done.
//
// Every figure is printed as one machine-readable line per round, then a
// summary line with the median and the spread (min, max) over the rounds.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"beuss"

	redis "gopkg.in/redis.v5"
)

var (
	serverBin   = flag.String("server", "beuss-server", "beuss-server binary")
	redisBin    = flag.String("redis", "redis-server", "redis-server binary")
	n           = flag.Int("n", 100000, "messages per round")
	batch       = flag.Int("batch", 100, "requests in flight per pipeline")
	rounds      = flag.Int("rounds", 5, "rounds")
	size        = flag.Int("size", 32, "payload bytes")
	consumeN    = flag.Int("consume-n", 50000, "messages per consumer round")
	concurrency = flag.Int("concurrency", 64, "consumer handlers at once")
)

func main() {
	flag.Parse()
	ctx := context.Background()
	bAddr, stopB := startBeuss()
	defer stopB()
	rAddr, stopR := startRedis()
	defer stopR()

	c, err := beuss.Dial(ctx, bAddr)
	check(err)
	defer c.Close()
	rc := redis.NewClient(&redis.Options{Addr: rAddr, PoolSize: 1})
	defer rc.Close()
	check(rc.Ping().Err())

	payload := []byte(strings.Repeat("x", *size))
	figures := map[string][]float64{}
	order := []string{}
	record := func(name string, round int, count int, d time.Duration) {
		v := float64(count) / d.Seconds()
		if _, ok := figures[name]; !ok {
			order = append(order, name)
		}
		figures[name] = append(figures[name], v)
		fmt.Printf("client=go %s round=%d msgs_per_s=%.0f\n", name, round, v)
	}
	for r := 1; r <= *rounds; r++ {
		d := timeIt(func() { beussPut(ctx, c, payload) })
		record("impl=beuss op=put", r, *n, d)
		d = timeIt(func() { beussGet(ctx, c, 1) })
		record("impl=beuss op=get", r, *n, d)
		beussPut(ctx, c, payload) // refill, not timed
		d = timeIt(func() { beussGet(ctx, c, *batch) })
		record("impl=beuss op=get_batch", r, *n, d)
		d = timeIt(func() { redisPut(rc, payload) })
		record("impl=go-redis op=put", r, *n, d)
		d = timeIt(func() { redisGet(rc) })
		record("impl=go-redis op=get", r, *n, d)
		d = beussConsume(ctx, bAddr, payload)
		record("impl=beuss op=consume", r, *consumeN, d)
	}
	fmt.Println()
	med := map[string]float64{}
	for _, name := range order {
		vs := append([]float64(nil), figures[name]...)
		sort.Float64s(vs)
		m := vs[len(vs)/2]
		if len(vs)%2 == 0 {
			m = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
		}
		med[name] = m
		fmt.Printf("client=go %s rounds=%d median_msgs_per_s=%.0f min=%.0f max=%.0f\n", name, len(vs), m, vs[0], vs[len(vs)-1])
	}
	for _, op := range []string{"put", "get"} {
		fmt.Printf("client=go op=%s ratio_beuss_over_go_redis=%.2f\n", op, med["impl=beuss op="+op]/med["impl=go-redis op="+op])
	}
}

func timeIt(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// beussPut stores n messages, batch PUTs per pipeline (one write, batch replies).
func beussPut(ctx context.Context, c *beuss.Client, payload []byte) {
	p := c.Pipeline()
	for i := 0; i < *n; i += *batch {
		pend := make([]*beuss.Pending[beuss.PutResult], 0, *batch)
		for j := i; j < i+*batch && j < *n; j++ {
			pend = append(pend, p.Put("bench", payload))
		}
		check(p.Exec(ctx))
		for _, pr := range pend {
			_, err := pr.Result()
			check(err)
		}
	}
}

// beussGet takes n messages: batch GETs of max messages per pipeline.
func beussGet(ctx context.Context, c *beuss.Client, max int) {
	got := 0
	p := c.Pipeline()
	for got < *n {
		var pend []*beuss.Pending[[][]byte]
		for j := 0; j < *batch && got+j*max < *n; j++ {
			pend = append(pend, p.Get("bench", 0, max))
		}
		check(p.Exec(ctx))
		for _, pr := range pend {
			m, err := pr.Result()
			check(err)
			if len(m) == 0 {
				fail("queue empty after %d of %d", got, *n)
			}
			got += len(m)
		}
	}
}

func redisPut(rc *redis.Client, payload []byte) {
	for i := 0; i < *n; i += *batch {
		_, err := rc.Pipelined(func(p *redis.Pipeline) error {
			for j := i; j < i+*batch && j < *n; j++ {
				p.LPush("bench", payload)
			}
			return nil
		})
		check(err)
	}
}

func redisGet(rc *redis.Client) {
	for i := 0; i < *n; i += *batch {
		cmds, err := rc.Pipelined(func(p *redis.Pipeline) error {
			for j := i; j < i+*batch && j < *n; j++ {
				p.RPop("bench")
			}
			return nil
		})
		check(err)
		for _, cmd := range cmds {
			if b, err := cmd.(*redis.StringCmd).Bytes(); err != nil || len(b) != *size {
				fail("RPOP: %v", err)
			}
		}
	}
}

// beussConsume puts consumeN messages (not timed), then times the consumer
// until every one is acknowledged (the server's acks figure).
func beussConsume(ctx context.Context, addr string, payload []byte) time.Duration {
	prod, err := beuss.Dial(ctx, addr)
	check(err)
	defer prod.Close()
	cons, err := beuss.Dial(ctx, addr)
	check(err)
	defer cons.Close()
	st, err := prod.Stats(ctx)
	check(err)
	base := st.Server["acks"]
	p := prod.Pipeline()
	for i := 0; i < *consumeN; i++ {
		p.Put("consume", payload)
		if p.Len() == 1000 {
			check(p.Exec(ctx))
		}
	}
	check(p.Exec(ctx))
	var handled int64
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- cons.Consume(cctx, "consume", beuss.ConsumerOptions{Concurrency: *concurrency, Wait: 100 * time.Millisecond},
			func(context.Context, *beuss.Message) error {
				atomic.AddInt64(&handled, 1)
				return nil
			})
	}()
	for {
		st, err := prod.Stats(ctx)
		check(err)
		if st.Server["acks"]-base >= uint64(*consumeN) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	d := time.Since(start)
	cancel()
	check(<-done)
	return d
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startRedis() (string, func()) {
	port := freePort()
	cmd := exec.Command(*redisBin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	check(cmd.Start())
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	stop := onFail(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	for i := 0; rc.Ping().Err() != nil; i++ {
		if i > 500 {
			fail("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr, stop
}

func startBeuss() (string, func()) {
	cmd := exec.Command(*serverBin)
	cmd.Env = []string{"BHOST=127.0.0.1", "BPORT=0", "PATH=" + os.Getenv("PATH")}
	stderr, err := cmd.StderrPipe()
	check(err)
	check(cmd.Start())
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if i := strings.Index(sc.Text(), "listening on "); i >= 0 {
				addr <- strings.Fields(sc.Text()[i+13:])[0]
			}
		}
	}()
	select {
	case a := <-addr:
		return a, onFail(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		fail("beuss-server did not start")
	}
	return "", nil
}

// cleanups end the servers when fail exits, which skips main's defers and
// would leave them running.
var cleanups []func()

// onFail registers stop with fail and returns it, for main to defer.
func onFail(stop func()) func() {
	cleanups = append(cleanups, stop)
	return stop
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(f string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "beuss-go-bench: "+f+"\n", args...)
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(1)
}
