//! Unit tests for the store.

use super::*;
use crate::test_rng::Rng;

const MIB: usize = 1 << 20;
const IDLE: Duration = Duration::from_secs(60);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A roomy store that drops queues idle for a minute.
fn store() -> Store<u32> {
    Store::new(MIB, Some(IDLE))
}

/// A roomy store that never drops idle queues.
fn store_no_idle() -> Store<u32> {
    Store::new(MIB, None)
}

fn put(s: &mut Store<u32>, queue: &str, payload: &[u8], now: Instant) -> PutOutcome<u32> {
    s.put(queue, payload, payload.len(), now)
        .expect("store has room")
}

/// Takes up to `max` messages with no byte limit.
fn get(s: &mut Store<u32>, queue: &str, max: usize, now: Instant) -> Vec<Vec<u8>> {
    get_bytes(s, queue, max, usize::MAX, now)
}

fn get_bytes(
    s: &mut Store<u32>,
    queue: &str,
    max: usize,
    max_bytes: usize,
    now: Instant,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let n = s.get(queue, max, max_bytes, now, |p| out.push(p.to_vec()));
    assert_eq!(n, out.len(), "get's count matches the callbacks");
    out
}

fn expire(s: &mut Store<u32>, now: Instant) -> Vec<u32> {
    let mut out = Vec::new();
    s.expire(now, |h| out.push(h));
    out
}

/// Memory charged for a new queue named `name` holding one `len`-byte message.
fn one_message_queue_memory(name: &str, len: usize) -> usize {
    QUEUE_OVERHEAD + name.len() + Records::default().growth_for(1, 0, len)
}

/// The store's totals agree with the sum of its queues.
fn check_consistency(s: &Store<u32>, now: Instant) {
    let (mut messages, mut bytes, mut memory, mut waiters, mut queues) = (0, 0, 0, 0, 0);
    for (name, info) in s.queue_infos(now) {
        assert_eq!(s.queue_info(name, now), Some(info));
        messages += info.messages;
        bytes += info.bytes;
        memory += info.memory;
        waiters += info.waiters;
        queues += 1;
    }
    assert_eq!(s.message_count() as u64, messages);
    assert_eq!(s.bytes() as u64, bytes);
    assert_eq!(s.memory() as u64, memory);
    assert_eq!(s.waiter_count() as u64, waiters);
    assert_eq!(s.queue_count(), queues);
}

// ---------------------------------------------------------------------------
// FIFO basics
// ---------------------------------------------------------------------------

/// Two messages put come back in order with their exact bytes, one per get, and a
/// third get finds nothing (and does not call the callback).
#[test]
fn put_two_get_two_then_empty() {
    let t0 = Instant::now();
    let mut s = store();
    assert_eq!(put(&mut s, "q", b"first", t0), PutOutcome::Stored);
    assert_eq!(put(&mut s, "q", b"second\0\xff", t0), PutOutcome::Stored);
    assert_eq!(s.message_count(), 2);
    assert_eq!(s.bytes(), 5 + 8);
    assert_eq!(get(&mut s, "q", 1, t0), [b"first".to_vec()]);
    assert_eq!(get(&mut s, "q", 1, t0), [b"second\0\xff".to_vec()]);
    let mut called = false;
    assert_eq!(s.get("q", 1, usize::MAX, t0, |_| called = true), 0);
    assert!(!called);
    assert_eq!(s.message_count(), 0);
    assert_eq!(s.bytes(), 0);
    check_consistency(&s, t0);
}

/// Empty payloads are messages like any other.
#[test]
fn empty_payload_is_a_message() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"", t0);
    put(&mut s, "q", b"x", t0);
    assert_eq!(s.message_count(), 2);
    assert_eq!(s.bytes(), 1);
    assert_eq!(get(&mut s, "q", 10, t0), [b"".to_vec(), b"x".to_vec()]);
}

/// Messages put on one queue never come out of another, and each queue keeps its
/// own order.
#[test]
fn queues_are_independent() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "a", b"a1", t0);
    put(&mut s, "b", b"b1", t0);
    put(&mut s, "a", b"a2", t0);
    put(&mut s, "b", b"b2", t0);
    assert_eq!(s.queue_count(), 2);
    assert_eq!(get(&mut s, "b", 1, t0), [b"b1".to_vec()]);
    assert_eq!(get(&mut s, "a", 10, t0), [b"a1".to_vec(), b"a2".to_vec()]);
    assert!(get(&mut s, "a", 10, t0).is_empty());
    assert_eq!(get(&mut s, "b", 10, t0), [b"b2".to_vec()]);
    // Names are compared exactly.
    put(&mut s, "A", b"upper", t0);
    assert!(get(&mut s, "a", 1, t0).is_empty());
    assert_eq!(get(&mut s, "A", 1, t0), [b"upper".to_vec()]);
}

/// Ten thousand messages of varying length come out in the order they went in, and
/// the counters follow every step.
#[test]
fn ten_thousand_puts_then_gets_in_order() {
    let t0 = Instant::now();
    let mut s = store_no_idle();
    let payload = |i: u32| {
        let mut p = i.to_be_bytes().to_vec();
        p.resize(4 + (i % 13) as usize, i as u8);
        p
    };
    let mut total = 0;
    for i in 0..10_000 {
        put(&mut s, "q", &payload(i), t0);
        total += payload(i).len();
    }
    assert_eq!(s.message_count(), 10_000);
    assert_eq!(s.bytes(), total);
    for i in 0..10_000 {
        assert_eq!(get(&mut s, "q", 1, t0), [payload(i)], "message {i}");
        total -= payload(i).len();
        assert_eq!(s.bytes(), total);
    }
    assert_eq!(s.message_count(), 0);
    assert!(get(&mut s, "q", 1, t0).is_empty());
    check_consistency(&s, t0);
}

/// A batch get returns at most `max` messages, oldest first, leaving the rest.
#[test]
fn batch_get_respects_max() {
    let t0 = Instant::now();
    let mut s = store();
    for i in 0..10u8 {
        put(&mut s, "q", &[i], t0);
    }
    assert_eq!(get(&mut s, "q", 3, t0), [vec![0], vec![1], vec![2]]);
    assert_eq!(s.message_count(), 7);
    assert!(get(&mut s, "q", 0, t0).is_empty(), "max 0 takes nothing");
    assert_eq!(s.message_count(), 7);
    let rest = get(&mut s, "q", 100, t0);
    assert_eq!(rest, (3..10u8).map(|i| vec![i]).collect::<Vec<_>>());
    assert_eq!(s.message_count(), 0);
}

/// A batch get stops before its payloads would pass `max_bytes`, taking exactly as
/// many as fit, but always takes at least one message even if that one alone is
/// bigger than the limit.
#[test]
fn batch_get_respects_max_bytes() {
    let t0 = Instant::now();
    let mut s = store();
    for i in 0..6u8 {
        put(&mut s, "q", &[i; 10], t0);
    }
    // 10 + 10 = 20 fits in 25, a third would make 30.
    assert_eq!(get_bytes(&mut s, "q", 100, 25, t0).len(), 2);
    // Exactly at the limit is fine.
    let three = get_bytes(&mut s, "q", 100, 30, t0);
    assert_eq!(three, [vec![2; 10], vec![3; 10], vec![4; 10]]);
    // A limit of 0 still takes one.
    assert_eq!(get_bytes(&mut s, "q", 100, 0, t0), [vec![5; 10]]);

    put(&mut s, "q", &[9; 100], t0);
    put(&mut s, "q", &[8; 5], t0);
    put(&mut s, "q", &[7; 5], t0);
    // The first message alone passes the limit: taken alone.
    assert_eq!(get_bytes(&mut s, "q", 100, 10, t0), [vec![9; 100]]);
    assert_eq!(
        get_bytes(&mut s, "q", 100, 10, t0),
        [vec![8; 5], vec![7; 5]]
    );
    // max wins when it is the tighter limit.
    for _ in 0..4 {
        put(&mut s, "q", b"x", t0);
    }
    assert_eq!(get_bytes(&mut s, "q", 2, 1000, t0).len(), 2);
    assert_eq!(s.message_count(), 2);
    check_consistency(&s, t0);
}

/// Get, purge and cancel on a queue that does not exist create nothing and hold no
/// memory.
#[test]
fn operations_on_missing_queue_create_nothing() {
    let t0 = Instant::now();
    let mut s = store();
    assert!(get(&mut s, "ghost", 10, t0).is_empty());
    assert_eq!(s.purge("ghost", t0), 0);
    assert!(!s.cancel("ghost", 1, t0));
    assert_eq!(s.queue_count(), 0);
    assert_eq!(s.memory(), 0);
    assert!(s.queue_info("ghost", t0).is_none());
    assert_eq!(s.queue_infos(t0).count(), 0);
    assert_eq!(s.next_deadline(), None);
    assert_eq!(s.totals(), Totals::default());
}

// ---------------------------------------------------------------------------
// Waiters
// ---------------------------------------------------------------------------

/// A put on a queue with a parked consumer hands the message over instead of
/// storing it, and the waiter is gone.
#[test]
fn park_then_put_hands_message_to_waiter() {
    let t0 = Instant::now();
    let mut s = store();
    assert!(get(&mut s, "q", 1, t0).is_empty());
    s.park("q", 7, None, t0);
    assert_eq!(s.queue_count(), 1, "park creates the queue");
    assert_eq!(s.waiter_count(), 1);
    assert_eq!(put(&mut s, "q", b"hi", t0 + secs(1)), PutOutcome::Handed(7));
    assert_eq!(s.message_count(), 0);
    assert_eq!(s.bytes(), 0);
    assert_eq!(s.waiter_count(), 0);
    let totals = s.totals();
    assert_eq!((totals.puts, totals.gets), (1, 1));
    let info = s.queue_info("q", t0 + secs(1)).unwrap();
    assert_eq!(
        (info.counters.puts, info.counters.gets, info.messages),
        (1, 1, 0)
    );
    // The next put is stored.
    assert_eq!(put(&mut s, "q", b"again", t0 + secs(2)), PutOutcome::Stored);
    assert_eq!(s.message_count(), 1);
    check_consistency(&s, t0 + secs(2));
}

/// Waiters on one queue are served first come, first served; waiters on another
/// queue are untouched.
#[test]
fn waiters_are_served_in_arrival_order() {
    let t0 = Instant::now();
    let mut s = store();
    s.park("q", 3, None, t0);
    s.park("other", 99, None, t0);
    s.park("q", 1, Some(t0 + secs(100)), t0 + ms(1));
    s.park("q", 2, None, t0 + ms(2));
    assert_eq!(s.waiter_count(), 4);
    assert_eq!(put(&mut s, "q", b"a", t0), PutOutcome::Handed(3));
    assert_eq!(put(&mut s, "q", b"b", t0), PutOutcome::Handed(1));
    assert_eq!(put(&mut s, "q", b"c", t0), PutOutcome::Handed(2));
    assert_eq!(put(&mut s, "q", b"d", t0), PutOutcome::Stored);
    assert_eq!(s.waiter_count(), 1);
    assert_eq!(s.queue_info("other", t0).unwrap().waiters, 1);
    assert_eq!(get(&mut s, "q", 10, t0), [b"d".to_vec()]);
}

/// A waiter's deadline fires at `expire(deadline)`, not a millisecond before; the
/// waiter is then gone, so a later put is stored.
#[test]
fn waiter_times_out_exactly_at_its_deadline() {
    let t0 = Instant::now();
    let mut s = store();
    s.park("q", 5, Some(t0 + secs(5)), t0);
    assert_eq!(s.next_deadline(), Some(t0 + secs(5)));
    assert!(expire(&mut s, t0).is_empty());
    assert!(expire(&mut s, t0 + secs(5) - ms(1)).is_empty());
    assert_eq!(s.waiter_count(), 1);
    assert_eq!(expire(&mut s, t0 + secs(5)), [5]);
    assert_eq!(s.waiter_count(), 0);
    assert!(expire(&mut s, t0 + secs(6)).is_empty(), "reported once");
    assert_eq!(put(&mut s, "q", b"late", t0 + secs(7)), PutOutcome::Stored);
    assert_eq!(s.message_count(), 1);
}

/// Several waiters time out in deadline order, each only once its deadline has
/// passed, wherever they sit in their queues; a waiter without a deadline stays.
#[test]
fn waiters_time_out_in_deadline_order() {
    let t0 = Instant::now();
    let mut s = store_no_idle();
    s.park("a", 1, Some(t0 + secs(30)), t0);
    s.park("a", 2, Some(t0 + secs(10)), t0);
    s.park("b", 3, Some(t0 + secs(20)), t0);
    s.park("b", 4, None, t0);
    s.park("a", 5, Some(t0 + secs(10)), t0);
    assert_eq!(expire(&mut s, t0 + secs(9)), Vec::<u32>::new());
    assert_eq!(expire(&mut s, t0 + secs(25)), [2, 5, 3]);
    assert_eq!(s.waiter_count(), 2);
    assert_eq!(put(&mut s, "a", b"x", t0 + secs(26)), PutOutcome::Handed(1));
    assert!(expire(&mut s, t0 + secs(1_000_000)).is_empty());
    assert_eq!(put(&mut s, "b", b"y", t0 + secs(26)), PutOutcome::Handed(4));
    assert_eq!(s.waiter_count(), 0);
    assert_eq!(s.next_deadline(), None);
}

/// A waiter parked with no deadline is never timed out.
#[test]
fn waiter_without_deadline_never_times_out() {
    let t0 = Instant::now();
    let mut s = store();
    s.park("q", 1, None, t0);
    assert_eq!(s.next_deadline(), None);
    assert!(expire(&mut s, t0 + secs(10_000_000)).is_empty());
    assert_eq!(s.waiter_count(), 1);
    assert_eq!(s.queue_count(), 1, "a queue with a waiter does not expire");
    assert_eq!(
        put(&mut s, "q", b"x", t0 + secs(10_000_001)),
        PutOutcome::Handed(1)
    );
}

/// Cancel removes exactly that waiter: later puts go to the others or are stored,
/// never to it, and its timer does not fire.
#[test]
fn cancel_removes_the_waiter() {
    let t0 = Instant::now();
    let mut s = store_no_idle();
    s.park("q", 1, Some(t0 + secs(5)), t0);
    s.park("q", 2, None, t0);
    assert!(s.cancel("q", 1, t0 + secs(1)));
    assert_eq!(s.waiter_count(), 1);
    assert_eq!(s.next_deadline(), None, "its timer went with it");
    assert!(expire(&mut s, t0 + secs(10)).is_empty());
    assert_eq!(put(&mut s, "q", b"a", t0 + secs(11)), PutOutcome::Handed(2));
    assert_eq!(put(&mut s, "q", b"b", t0 + secs(11)), PutOutcome::Stored);
    assert_eq!(get(&mut s, "q", 10, t0 + secs(11)), [b"b".to_vec()]);
}

/// Cancel of a handle that is not parked (never was, already cancelled, already
/// served, or parked on another queue) returns false and changes nothing.
#[test]
fn cancel_of_unknown_handle_returns_false() {
    let t0 = Instant::now();
    let mut s = store();
    s.park("q", 1, None, t0);
    s.park("r", 2, None, t0);
    assert!(!s.cancel("q", 42, t0));
    assert!(!s.cancel("q", 2, t0), "2 waits on r, not q");
    assert!(!s.cancel("nowhere", 1, t0));
    assert_eq!(s.waiter_count(), 2);
    assert!(s.cancel("q", 1, t0));
    assert!(!s.cancel("q", 1, t0), "already cancelled");
    assert_eq!(put(&mut s, "r", b"x", t0), PutOutcome::Handed(2));
    assert!(!s.cancel("r", 2, t0), "already served");
    assert_eq!(s.waiter_count(), 0);
}

/// A waiter served by a put does not time out later: its timer was removed.
#[test]
fn served_waiter_timer_does_not_fire() {
    let t0 = Instant::now();
    let mut s = store_no_idle();
    s.park("q", 1, Some(t0 + secs(5)), t0);
    assert_eq!(put(&mut s, "q", b"x", t0 + secs(1)), PutOutcome::Handed(1));
    assert_eq!(s.next_deadline(), None);
    assert!(expire(&mut s, t0 + secs(100)).is_empty());
    // Parked again with a new deadline, it times out at that one only.
    s.park("q", 1, Some(t0 + secs(200)), t0 + secs(100));
    assert!(expire(&mut s, t0 + secs(199)).is_empty());
    assert_eq!(expire(&mut s, t0 + secs(200)), [1]);
}

/// Handing a message to a waiter needs no memory, so it works even when the store
/// is at its cap.
#[test]
fn handing_over_works_at_the_memory_cap() {
    let t0 = Instant::now();
    let mut s = Store::<u32>::new(2048, None);
    s.park("w", 9, None, t0);
    let mut i = 0u32;
    while s.put("q", &i.to_be_bytes(), 4, t0).is_ok() {
        i += 1;
    }
    let memory = s.memory();
    let big = [0u8; 4000];
    assert_eq!(s.put("w", &big, big.len(), t0), Ok(PutOutcome::Handed(9)));
    assert_eq!(s.memory(), memory);
    assert!(s.put("w", &big, big.len(), t0).is_err());
}

// ---------------------------------------------------------------------------
// Idle expiry
// ---------------------------------------------------------------------------

/// A queue emptied at t is removed by `expire(t + idle)`, not by
/// `expire(t + idle - 1ms)`; its memory is returned and the removal is counted.
#[test]
fn emptied_queue_expires_after_idle_time() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"payload", t0);
    let t = t0 + secs(10);
    assert_eq!(get(&mut s, "q", 1, t).len(), 1);
    assert_eq!(s.next_deadline(), Some(t + IDLE));
    assert!(expire(&mut s, t + IDLE - ms(1)).is_empty());
    assert_eq!(s.queue_count(), 1);
    assert!(s.memory() > 0);
    assert!(expire(&mut s, t + IDLE).is_empty(), "no waiter to report");
    assert_eq!(s.queue_count(), 0);
    assert_eq!(s.memory(), 0);
    assert_eq!(s.totals().expired_queues, 1);
    assert_eq!(s.next_deadline(), None);
    assert!(s.queue_info("q", t + IDLE).is_none());
}

/// A get on an idle, empty queue counts as use: the expiry moves to that use plus
/// the idle time, and the queue goes exactly then.
#[test]
fn touching_an_idle_queue_pushes_back_its_expiry() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"x", t0);
    get(&mut s, "q", 1, t0);
    let touch = t0 + secs(40);
    assert!(get(&mut s, "q", 1, touch).is_empty());
    assert!(expire(&mut s, t0 + IDLE).is_empty());
    assert_eq!(s.queue_count(), 1, "touched at +40s, so still here at +60s");
    assert_eq!(s.next_deadline(), Some(touch + IDLE));
    expire(&mut s, touch + IDLE - ms(1));
    assert_eq!(s.queue_count(), 1);
    expire(&mut s, touch + IDLE);
    assert_eq!(s.queue_count(), 0);
    assert_eq!(s.memory(), 0);
    assert_eq!(s.totals().expired_queues, 1);
}

/// A purge of an empty queue also counts as use.
#[test]
fn purge_counts_as_use() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"x", t0);
    assert_eq!(s.purge("q", t0), 1);
    assert_eq!(s.purge("q", t0 + secs(30)), 0);
    expire(&mut s, t0 + IDLE);
    assert_eq!(s.queue_count(), 1);
    expire(&mut s, t0 + secs(30) + IDLE);
    assert_eq!(s.queue_count(), 0);
}

/// A queue holding messages never expires, however long it sits; once drained, it
/// expires an idle time after the drain.
#[test]
fn queue_with_messages_never_expires() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"x", t0);
    get(&mut s, "q", 1, t0);
    // Busy again before its idle timer fires.
    put(&mut s, "q", b"y", t0 + secs(1));
    assert!(expire(&mut s, t0 + secs(1_000_000)).is_empty());
    assert_eq!(s.queue_count(), 1);
    assert_eq!(s.message_count(), 1);
    let drained = t0 + secs(2_000_000);
    assert_eq!(get(&mut s, "q", 1, drained), [b"y".to_vec()]);
    expire(&mut s, drained + IDLE - ms(1));
    assert_eq!(s.queue_count(), 1);
    expire(&mut s, drained + IDLE);
    assert_eq!(s.queue_count(), 0);
}

/// A queue with a parked consumer never expires; once the waiter leaves (timed out,
/// cancelled or served) the idle clock starts.
#[test]
fn queue_with_waiter_never_expires() {
    let t0 = Instant::now();
    let mut s = store();
    // Waiter without deadline, cancelled later.
    s.park("a", 1, None, t0);
    // Waiter with a long deadline.
    s.park("b", 2, Some(t0 + secs(500)), t0);
    // Waiter served by a put.
    s.park("c", 3, None, t0);
    assert!(expire(&mut s, t0 + secs(499)).is_empty());
    assert_eq!(s.queue_count(), 3);
    let t = t0 + secs(500);
    assert_eq!(expire(&mut s, t), [2]);
    assert!(s.cancel("a", 1, t));
    assert_eq!(put(&mut s, "c", b"m", t), PutOutcome::Handed(3));
    assert_eq!(s.queue_count(), 3);
    expire(&mut s, t + IDLE - ms(1));
    assert_eq!(s.queue_count(), 3);
    expire(&mut s, t + IDLE);
    assert_eq!(s.queue_count(), 0);
    assert_eq!(s.memory(), 0);
    assert_eq!(s.totals().expired_queues, 3);
}

/// With `queue_idle = None`, empty queues are kept forever and no timer is set.
#[test]
fn no_idle_setting_never_expires_queues() {
    let t0 = Instant::now();
    let mut s = store_no_idle();
    put(&mut s, "q", b"x", t0);
    get(&mut s, "q", 1, t0);
    s.park("w", 1, None, t0);
    assert!(s.cancel("w", 1, t0));
    assert_eq!(s.next_deadline(), None);
    expire(&mut s, t0 + secs(100_000_000));
    assert_eq!(s.queue_count(), 2);
    assert_eq!(s.totals().expired_queues, 0);
}

/// `next_deadline` is the earliest of the waiter deadlines and idle deadlines, and
/// moves on as they are run.
#[test]
fn next_deadline_is_the_earliest_timer() {
    let t0 = Instant::now();
    let mut s = store();
    assert_eq!(s.next_deadline(), None);
    s.park("a", 1, Some(t0 + secs(90)), t0);
    assert_eq!(s.next_deadline(), Some(t0 + secs(90)));
    s.park("b", 2, Some(t0 + secs(30)), t0);
    assert_eq!(s.next_deadline(), Some(t0 + secs(30)));
    // An idle queue emptied at +5s is due at +65s.
    put(&mut s, "i", b"x", t0);
    get(&mut s, "i", 1, t0 + secs(5));
    assert_eq!(s.next_deadline(), Some(t0 + secs(30)));
    assert_eq!(expire(&mut s, t0 + secs(30)), [2]);
    // "b" became idle at +30s (due +90s); the idle timer of "i" is next.
    assert_eq!(s.next_deadline(), Some(t0 + secs(65)));
    expire(&mut s, t0 + secs(65));
    assert!(s.queue_info("i", t0 + secs(65)).is_none());
    assert_eq!(s.next_deadline(), Some(t0 + secs(90)));
    assert_eq!(expire(&mut s, t0 + secs(90)), [1]);
    assert_eq!(
        s.queue_count(),
        1,
        "b expired at +90s too, a is only now idle"
    );
    assert_eq!(s.next_deadline(), Some(t0 + secs(150)));
    expire(&mut s, t0 + secs(150));
    assert_eq!(s.queue_count(), 0);
    assert_eq!(s.next_deadline(), None);
    assert_eq!(s.totals().expired_queues, 3);
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

/// A new queue's memory is its bookkeeping plus its first chunk, and `queue_info`
/// reports the same figure.
#[test]
fn memory_counts_queue_overhead_and_chunks() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "queue", b"hello", t0);
    let expected = one_message_queue_memory("queue", 5);
    assert_eq!(s.memory(), expected);
    assert_eq!(s.queue_info("queue", t0).unwrap().memory, expected as u64);
    assert_eq!(s.max_memory(), MIB);
}

/// Puts fail with `Full` once the cap would be passed; the failed put changes
/// nothing but the `rejected_full` counter; after a get frees room, puts work again.
#[test]
fn memory_cap_rejects_puts_and_recovers() {
    let t0 = Instant::now();
    let cap = 4096;
    let mut s = Store::<u32>::new(cap, None);
    let msg = [0x42u8; 100];
    let mut stored = 0;
    let full = loop {
        match s.put("q", &msg, msg.len(), t0) {
            Ok(PutOutcome::Stored) => stored += 1,
            Ok(other) => panic!("{other:?}"),
            Err(full) => break full,
        }
        assert!(s.memory() <= cap);
        assert!(stored < 1000, "cap never reached");
    };
    assert!(stored > 0);
    assert_eq!(
        full,
        Full {
            used: s.memory(),
            limit: cap,
            cap: FullCap::Memory,
        }
    );
    let text = full.to_string();
    assert!(text.contains(&cap.to_string()) && text.contains(&s.memory().to_string()));
    let before = (s.message_count(), s.bytes(), s.memory(), s.queue_count());
    let later = t0 + secs(10);
    let info = s.queue_info("q", later).unwrap();
    for i in 1..=5 {
        assert!(s.put("q", &msg, msg.len(), t0 + secs(i)).is_err());
    }
    assert_eq!(
        (s.message_count(), s.bytes(), s.memory(), s.queue_count()),
        before
    );
    assert_eq!(
        s.queue_info("q", later).unwrap(),
        info,
        "not even last_used moves"
    );
    assert_eq!(s.totals().rejected_full, 6);
    assert_eq!(s.totals().puts, stored);
    // One get makes room for one more message of the same size.
    assert_eq!(get(&mut s, "q", 1, t0).len(), 1);
    assert_eq!(s.put("q", &msg, msg.len(), t0), Ok(PutOutcome::Stored));
    // Drained, the store takes messages again.
    while !get(&mut s, "q", 100, t0).is_empty() {}
    assert_eq!(s.message_count(), 0);
    assert_eq!(s.put("q", &msg, msg.len(), t0), Ok(PutOutcome::Stored));
    check_consistency(&s, t0);
}

/// A put that would create a queue is refused when the queue's own overhead does not
/// fit, and the queue is not created.
#[test]
fn memory_cap_counts_new_queue_overhead() {
    let t0 = Instant::now();
    let need = one_message_queue_memory("q", 0);
    let mut s = Store::<u32>::new(need - 1, None);
    assert_eq!(
        s.put("q", b"", 0, t0),
        Err(Full {
            used: 0,
            limit: need - 1,
            cap: FullCap::Memory,
        })
    );
    assert_eq!(s.queue_count(), 0);
    assert_eq!(s.memory(), 0);
    let mut s = Store::<u32>::new(need, None);
    assert_eq!(s.put("q", b"", 0, t0), Ok(PutOutcome::Stored));
    assert_eq!(s.memory(), need);
    // A second queue does not fit.
    assert!(s.put("r", b"", 0, t0).is_err());
    assert_eq!(s.queue_count(), 1);
}

/// A large store filled across chunks gets room back once whole chunks are read.
#[test]
fn memory_cap_with_many_chunks_recovers_after_draining_a_chunk() {
    let t0 = Instant::now();
    let cap = 512 * 1024;
    let mut s = Store::<u32>::new(cap, None);
    let msg = [1u8; 1000];
    let mut stored = 0usize;
    while s.put("q", &msg, msg.len(), t0).is_ok() {
        stored += 1;
    }
    assert!(s.memory() <= cap);
    let full_memory = s.memory();
    let mut taken = 0;
    while s.memory() == full_memory {
        assert_eq!(get(&mut s, "q", 1, t0), [msg.to_vec()]);
        taken += 1;
    }
    assert!(s.memory() < full_memory);
    assert_eq!(s.put("q", &msg, msg.len(), t0), Ok(PutOutcome::Stored));
    assert_eq!(s.message_count(), stored - taken + 1);
}

/// After every queue is drained and has expired, the store holds no memory at all.
#[test]
fn memory_returns_to_zero_after_drain_and_expiry() {
    let t0 = Instant::now();
    let mut s = Store::<u32>::new(64 * MIB, Some(IDLE));
    for q in 0..20 {
        let name = format!("queue-{q}");
        for i in 0..(1 + q * 50) {
            let payload = vec![q as u8; (i * 7) % 3000];
            put(&mut s, &name, &payload, t0);
        }
        // An empty queue too, created by a waiter that later leaves.
        s.park(&format!("waiting-{q}"), q as u32, Some(t0 + secs(1)), t0);
    }
    // The big one gets a chunk of its own.
    put(&mut s, "huge", &vec![0u8; 3 * CHUNK_SIZE], t0);
    assert!(s.memory() > 0);
    check_consistency(&s, t0);
    let t = t0 + secs(1);
    for q in 0..20 {
        while !get(&mut s, &format!("queue-{q}"), 1000, t).is_empty() {}
        // Half the waiters leave, the others time out.
        if q % 2 == 0 {
            assert!(s.cancel(&format!("waiting-{q}"), q as u32, t));
        }
    }
    assert_eq!(s.queue_count(), 41);
    assert_eq!(get(&mut s, "huge", 1, t).len(), 1);
    assert_eq!(s.message_count(), 0);
    assert_eq!(s.bytes(), 0);
    assert_eq!(expire(&mut s, t).len(), 10);
    check_consistency(&s, t);
    expire(&mut s, t + IDLE);
    assert_eq!(s.queue_count(), 0);
    assert_eq!(s.memory(), 0);
    assert_eq!(s.totals().expired_queues, 41);
}

/// Purge drops every message of one queue, returns how many, frees their memory,
/// and leaves other queues alone.
#[test]
fn purge_returns_count_and_frees_memory() {
    let t0 = Instant::now();
    let mut s = store();
    for i in 0..500u32 {
        put(&mut s, "q", &i.to_be_bytes(), t0);
    }
    put(&mut s, "other", b"keep", t0);
    let other_memory = one_message_queue_memory("other", 4);
    assert_eq!(s.purge("q", t0), 500);
    assert_eq!(s.message_count(), 1);
    assert_eq!(s.bytes(), 4);
    assert_eq!(s.memory(), QUEUE_OVERHEAD + 1 + other_memory);
    assert_eq!(s.totals().purged, 500);
    assert_eq!(s.purge("q", t0), 0);
    assert_eq!(s.totals().purged, 500);
    let info = s.queue_info("q", t0).unwrap();
    assert_eq!((info.messages, info.bytes, info.counters.puts), (0, 0, 500));
    assert_eq!(get(&mut s, "other", 10, t0), [b"keep".to_vec()]);
    // Purged queues take new messages and expire like any other.
    put(&mut s, "q", b"new", t0);
    assert_eq!(get(&mut s, "q", 10, t0), [b"new".to_vec()]);
    expire(&mut s, t0 + IDLE);
    assert_eq!(s.memory(), 0);
    check_consistency(&s, t0 + IDLE);
}

/// Purge of a queue with waiters drops nothing and keeps the waiters.
#[test]
fn purge_keeps_waiters() {
    let t0 = Instant::now();
    let mut s = store();
    s.park("q", 1, None, t0);
    assert_eq!(s.purge("q", t0), 0);
    assert_eq!(s.waiter_count(), 1);
    assert_eq!(put(&mut s, "q", b"x", t0), PutOutcome::Handed(1));
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

/// A put whose `original_len` is larger than the payload counts as a truncation,
/// in the totals and the queue's figures, whether stored or handed over; equal or
/// smaller does not.
#[test]
fn truncations_are_counted() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"abc", t0);
    assert_eq!(s.put("q", b"abc", 3, t0), Ok(PutOutcome::Stored));
    assert_eq!(s.put("q", b"abc", 2, t0), Ok(PutOutcome::Stored));
    assert_eq!(s.totals().truncations, 0);
    assert_eq!(s.put("q", b"abc", 4, t0), Ok(PutOutcome::Stored));
    assert_eq!(s.put("q", b"", 1 << 30, t0), Ok(PutOutcome::Stored));
    assert_eq!(s.totals().truncations, 2);
    assert_eq!(s.queue_info("q", t0).unwrap().counters.truncations, 2);
    assert_eq!(s.bytes(), 12, "the stored bytes, not the original lengths");
    s.park("w", 1, None, t0);
    assert_eq!(s.put("w", b"cut", 10, t0), Ok(PutOutcome::Handed(1)));
    assert_eq!(s.totals().truncations, 3);
    assert_eq!(s.queue_info("w", t0).unwrap().counters.truncations, 1);
    assert_eq!(s.totals().puts, 6);
}

/// `queue_info` and `queue_infos` report messages, bytes, puts, gets, waiters and
/// idle time per queue; `idle` is the time since the last use.
#[test]
fn queue_info_figures() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "a", b"12345", t0);
    put(&mut s, "a", b"678", t0 + secs(1));
    put(&mut s, "a", b"9", t0 + secs(2));
    get(&mut s, "a", 1, t0 + secs(3));
    s.park("b", 1, None, t0 + secs(4));
    s.park("b", 2, None, t0 + secs(5));
    let now = t0 + secs(10);
    let a = s.queue_info("a", now).unwrap();
    assert_eq!(a.messages, 2);
    assert_eq!(a.bytes, 4);
    assert_eq!(a.counters.puts, 3);
    assert_eq!(a.counters.gets, 1);
    assert_eq!(a.counters.truncations, 0);
    assert_eq!(a.waiters, 0);
    assert_eq!(a.idle, secs(7));
    let b = s.queue_info("b", now).unwrap();
    assert_eq!(
        (
            b.messages,
            b.bytes,
            b.counters.puts,
            b.counters.gets,
            b.waiters
        ),
        (0, 0, 0, 0, 2)
    );
    assert_eq!(b.idle, secs(5));
    assert_eq!(b.memory, (QUEUE_OVERHEAD + 1) as u64);
    // Asked about a moment before its last use, idle saturates at zero.
    assert_eq!(s.queue_info("a", t0).unwrap().idle, Duration::ZERO);

    let mut names: Vec<&str> = s.queue_infos(now).map(|(name, _)| name).collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b"]);
    for (name, info) in s.queue_infos(now) {
        assert_eq!(Some(info), s.queue_info(name, now));
    }
    // Handed messages count as a put and a get of the queue.
    put(&mut s, "b", b"x", now);
    let b = s.queue_info("b", now).unwrap();
    assert_eq!(
        (b.counters.puts, b.counters.gets, b.waiters, b.idle),
        (1, 1, 1, Duration::ZERO)
    );
    let totals = s.totals();
    assert_eq!((totals.puts, totals.gets), (4, 2));
    check_consistency(&s, now);
}

/// A queue that expires and is used again starts its figures from zero.
#[test]
fn recreated_queue_starts_fresh() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"x", t0);
    get(&mut s, "q", 1, t0);
    expire(&mut s, t0 + IDLE);
    assert_eq!(s.queue_count(), 0);
    put(&mut s, "q", b"y", t0 + IDLE);
    let info = s.queue_info("q", t0 + IDLE).unwrap();
    assert_eq!(
        (info.counters.puts, info.counters.gets, info.messages),
        (1, 0, 1)
    );
    assert_eq!(s.totals().puts, 2);
}

/// `park` is never refused by the memory cap (waiters count toward no cap, by
/// design): at the cap it still creates its queue, whose bookkeeping is charged to
/// `memory()`, which can then be over `max_memory`; puts stay refused until memory
/// falls back below the cap, and the waiter is served all the same.
#[test]
fn park_is_not_limited_by_the_memory_cap() {
    let t0 = Instant::now();
    let cap = 2048;
    let mut s = Store::<u32>::new(cap, None);
    let mut i = 0u32;
    while s.put("q", &i.to_be_bytes(), 4, t0).is_ok() {
        i += 1;
    }
    let before = s.memory();
    s.park("new", 1, None, t0);
    assert_eq!(s.memory(), before + QUEUE_OVERHEAD + 3);
    assert_eq!(s.put("new", b"m", 1, t0), Ok(PutOutcome::Handed(1)));
    check_consistency(&s, t0);
}

// ---------------------------------------------------------------------------
// Randomized model test
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct ModelWaiter {
    handle: u32,
    deadline: Option<Instant>,
    /// Park order, which breaks ties between equal deadlines.
    seq: u64,
}

#[derive(Debug, Default)]
struct ModelQueue {
    messages: VecDeque<Vec<u8>>,
    waiters: VecDeque<ModelWaiter>,
}

/// A payload whose bytes identify the message, so any mix-up shows.
fn model_payload(id: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (id.wrapping_mul(31).wrapping_add(i as u64 * 7)) as u8)
        .collect()
}

/// A fixed-seed PRNG drives 50,000 random operations (put, get, park, cancel,
/// expire, purge over five queues, with synthetic time moving forward) against a
/// simple model; after every step the counts, the bytes, every get's messages,
/// every hand-over and time-out match the model, the store's figures add up, and
/// memory only goes over the cap through `park` (see
/// `park_is_not_limited_by_the_memory_cap`): puts never take it over.
#[test]
fn randomized_operations_match_a_model() {
    const NAMES: [&str; 5] = ["a", "bb", "ccc", "queue-4", "q5"];
    const STEPS: usize = 50_000;
    const MAX_MEMORY: usize = 48 * 1024;
    let idle = secs(2);
    let t0 = Instant::now();
    let mut now = t0;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut s = Store::<u32>::new(MAX_MEMORY, Some(idle));
    let mut model: Vec<ModelQueue> = NAMES.iter().map(|_| ModelQueue::default()).collect();
    let mut next_id = 0u64;
    let mut next_handle = 0u32;
    let mut next_seq = 0u64;
    let mut expected = Totals::default();
    // Coverage counters, to prove the run reached every interesting path.
    let (mut handed, mut timed_out, mut full, mut cancelled) = (0, 0, 0, 0);
    let mut was_over = false;

    for step in 0..STEPS {
        // Alternate fill and drain phases so the cap and empty queues both occur.
        let filling = (step / 2_500) % 2 == 0;
        now += if rng.below(100) == 0 {
            ms(rng.below(10_000))
        } else {
            ms(rng.below(40))
        };
        let qi = rng.below(NAMES.len() as u64) as usize;
        let name = NAMES[qi];
        let memory_before = s.memory();
        let roll = rng.below(100);
        // Cumulative thresholds: put, get, park, cancel, expire; the rest purges.
        let [put_pct, get_pct, park_pct, cancel_pct, expire_pct] = if filling {
            [60, 70, 75, 80, 100]
        } else {
            [20, 65, 77, 85, 98]
        };
        let mut parked_new_queue = false;

        if roll < put_pct {
            // PUT
            let len = if rng.below(10) == 0 {
                rng.below(3_000) as usize
            } else {
                rng.below(64) as usize
            };
            let original_len = if rng.below(8) == 0 {
                len + 1 + rng.below(100) as usize
            } else {
                len
            };
            let payload = model_payload(next_id, len);
            next_id += 1;
            let existed = s.queue_info(name, now).is_some();
            let q = &mut model[qi];
            match s.put(name, &payload, original_len, now) {
                Ok(PutOutcome::Handed(h)) => {
                    let w = q.waiters.pop_front().expect("handed with no model waiter");
                    assert_eq!(h, w.handle, "step {step}: wrong waiter served");
                    assert_eq!(s.memory(), memory_before);
                    handed += 1;
                    expected.puts += 1;
                    expected.gets += 1;
                    expected.truncations += u64::from(original_len > len);
                }
                Ok(PutOutcome::Leased(..)) => panic!("step {step}: no LEASE is ever parked here"),
                Ok(PutOutcome::Stored) => {
                    assert!(q.waiters.is_empty(), "step {step}: stored past a waiter");
                    assert!(
                        s.memory() <= MAX_MEMORY || s.memory() == memory_before,
                        "step {step}: put took memory over the cap"
                    );
                    q.messages.push_back(payload);
                    expected.puts += 1;
                    expected.truncations += u64::from(original_len > len);
                }
                Err(f) => {
                    assert!(q.waiters.is_empty(), "step {step}: refused with a waiter");
                    assert_eq!(
                        f,
                        Full {
                            used: memory_before,
                            limit: MAX_MEMORY,
                            cap: FullCap::Memory,
                        }
                    );
                    assert_eq!(s.memory(), memory_before);
                    assert_eq!(s.queue_info(name, now).is_some(), existed);
                    full += 1;
                    expected.rejected_full += 1;
                }
            }
        } else if roll < get_pct {
            // GET
            let max = 1 + rng.below(5) as usize;
            let max_bytes = rng.below(200) as usize;
            let got = get_bytes(&mut s, name, max, max_bytes, now);
            let q = &mut model[qi];
            let mut want = Vec::new();
            let mut bytes = 0;
            while want.len() < max {
                let Some(front) = q.messages.front() else {
                    break;
                };
                if !want.is_empty() && bytes + front.len() > max_bytes {
                    break;
                }
                bytes += front.len();
                want.push(q.messages.pop_front().unwrap());
            }
            assert_eq!(got, want, "step {step}: get on {name}");
            assert!(s.memory() <= memory_before);
            expected.gets += want.len() as u64;
        } else if roll < park_pct {
            // PARK, only after a get would have found the queue empty.
            if model[qi].messages.is_empty() {
                let existed = s.queue_info(name, now).is_some();
                let handle = next_handle;
                next_handle += 1;
                let deadline = match rng.below(5) {
                    0 => None,
                    _ => Some(now + ms(rng.below(3_000))),
                };
                s.park(name, handle, deadline, now);
                model[qi].waiters.push_back(ModelWaiter {
                    handle,
                    deadline,
                    seq: next_seq,
                });
                next_seq += 1;
                let growth = if existed {
                    0
                } else {
                    QUEUE_OVERHEAD + name.len()
                };
                assert_eq!(s.memory(), memory_before + growth, "step {step}");
                parked_new_queue = !existed;
            }
        } else if roll < cancel_pct {
            // CANCEL a parked waiter, or a handle that is not parked here.
            let q = &mut model[qi];
            if !q.waiters.is_empty() && rng.below(4) != 0 {
                let i = rng.below(q.waiters.len() as u64) as usize;
                let w = q.waiters.remove(i).unwrap();
                assert!(s.cancel(name, w.handle, now), "step {step}");
                cancelled += 1;
            } else {
                // Handles on other queues, and never-used ones, are unknown here.
                let other = model
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != qi)
                    .flat_map(|(_, m)| m.waiters.iter().map(|w| w.handle))
                    .next()
                    .unwrap_or(next_handle + 1_000);
                assert!(!s.cancel(name, other, now), "step {step}");
            }
            assert!(s.memory() <= memory_before);
        } else if roll < expire_pct {
            // EXPIRE
            let got = expire(&mut s, now);
            let mut due: Vec<(Instant, u64, u32)> = Vec::new();
            for q in &mut model {
                q.waiters.retain(|w| match w.deadline {
                    Some(d) if d <= now => {
                        due.push((d, w.seq, w.handle));
                        false
                    }
                    _ => true,
                });
            }
            due.sort_unstable();
            let want: Vec<u32> = due.iter().map(|&(_, _, h)| h).collect();
            assert_eq!(got, want, "step {step}: timed-out waiters");
            timed_out += want.len();
            assert!(s.memory() <= memory_before);
            if let Some(next) = s.next_deadline() {
                assert!(next > now, "step {step}: a due timer was left");
            }
        } else {
            // PURGE
            let q = &mut model[qi];
            let count = q.messages.len() as u64;
            assert_eq!(s.purge(name, now), count, "step {step}: purge {name}");
            q.messages.clear();
            expected.purged += count;
            assert!(s.memory() <= memory_before);
        }

        // Memory goes over the cap only through a park that creates a queue.
        let over = s.memory() > MAX_MEMORY;
        if over && !was_over {
            assert!(parked_new_queue, "step {step}: over the cap, not by park");
        }
        was_over = over;

        // Whole-store figures against the model.
        let messages: usize = model.iter().map(|q| q.messages.len()).sum();
        let bytes: usize = model
            .iter()
            .flat_map(|q| q.messages.iter().map(Vec::len))
            .sum();
        let waiters: usize = model.iter().map(|q| q.waiters.len()).sum();
        assert_eq!(s.message_count(), messages, "step {step}");
        assert_eq!(s.bytes(), bytes, "step {step}");
        assert_eq!(s.waiter_count(), waiters, "step {step}");
        let totals = s.totals();
        assert_eq!(
            Totals {
                expired_queues: totals.expired_queues,
                ..expected
            },
            totals,
            "step {step}"
        );
        // Per-queue figures against the model.
        for (name, q) in NAMES.iter().zip(&model) {
            match s.queue_info(name, now) {
                Some(info) => {
                    assert_eq!(info.messages, q.messages.len() as u64, "step {step}");
                    assert_eq!(
                        info.bytes,
                        q.messages.iter().map(Vec::len).sum::<usize>() as u64
                    );
                    assert_eq!(info.waiters, q.waiters.len() as u64, "step {step}");
                }
                None => assert!(
                    q.messages.is_empty() && q.waiters.is_empty(),
                    "step {step}: {name} vanished while in use"
                ),
            }
        }
        // The next timer is no later than the earliest waiter deadline.
        if let Some(first) = model
            .iter()
            .flat_map(|q| q.waiters.iter().filter_map(|w| w.deadline))
            .min()
        {
            assert!(s.next_deadline().is_some_and(|d| d <= first), "step {step}");
        }
        check_consistency(&s, now);
    }

    // The run reached every interesting path.
    assert!(handed > 100, "handed {handed}");
    assert!(timed_out > 100, "timed out {timed_out}");
    assert!(full > 100, "full {full}");
    assert!(cancelled > 100, "cancelled {cancelled}");
    assert!(
        s.totals().expired_queues > 100,
        "expired {}",
        s.totals().expired_queues
    );

    // Clean up: every waiter leaves, every queue drains, all memory comes back.
    for (name, q) in NAMES.iter().zip(&mut model) {
        for w in q.waiters.drain(..) {
            assert!(s.cancel(name, w.handle, now));
        }
        let got = get(&mut s, name, usize::MAX, now);
        assert_eq!(got, Vec::from(std::mem::take(&mut q.messages)));
    }
    expire(&mut s, now + idle);
    assert_eq!(s.queue_count(), 0);
    assert_eq!(s.memory(), 0);
    assert_eq!(s.message_count(), 0);
    assert_eq!(s.next_deadline(), None);
}

/// Waits on ever new queue names cannot pile up queues past the memory cap: a queue
/// made by a parked GET goes at once when its waiter leaves while the store is over
/// its cap (below the cap it lives for the idle time as usual).
#[test]
fn waits_on_new_names_do_not_pile_up_queues_past_the_cap() {
    let t0 = Instant::now();
    let cap = 4096;
    let mut s = Store::<u32>::new(cap, Some(IDLE));
    for i in 0..2000u32 {
        let name = format!("q{i}");
        s.park(&name, i, Some(t0 + ms(1)), t0);
        expire(&mut s, t0 + ms(1));
        assert!(
            s.memory() <= cap + QUEUE_OVERHEAD + 8,
            "step {i}: {}",
            s.memory()
        );
    }
    assert!(
        s.queue_count() <= cap / QUEUE_OVERHEAD + 1,
        "{}",
        s.queue_count()
    );
    // Cancelled waiters too.
    for i in 0..2000u32 {
        let name = format!("c{i}");
        s.park(&name, i, None, t0);
        assert!(s.cancel(&name, i, t0));
    }
    assert!(s.memory() <= cap + QUEUE_OVERHEAD + 8, "{}", s.memory());
    check_consistency(&s, t0);
}

/// protocol.md 7.4: a queue at its message or byte cap refuses PUT with a `Full`
/// naming the cap, changes nothing, leaves other queues alone, and takes messages
/// again once some are consumed; MOVE stops at the destination's room; a publish
/// reaching a full queue is refused whole.
#[test]
fn queue_caps_refuse_only_that_queue() {
    let t0 = Instant::now();
    let mut s = Store::<u32>::new(64 << 20, None);
    s.set_queue_caps(3, 10);
    for payload in [&b"aaa"[..], b"bbb", b"cc"] {
        assert!(s.put("q", payload, payload.len(), t0).is_ok());
    }
    let before = (s.message_count(), s.bytes(), s.memory());
    let full = s.put("q", b"d", 1, t0).unwrap_err();
    assert_eq!(full.cap, FullCap::QueueMessages);
    assert_eq!((full.used, full.limit), (3, 3));
    assert!(full.to_string().contains("BQUEUEMAXMESSAGES"), "{full}");
    assert_eq!((s.message_count(), s.bytes(), s.memory()), before);
    assert_eq!(s.totals().rejected_queue_full, 1);
    assert_eq!(
        s.totals().rejected_full,
        0,
        "the memory cap is counted apart"
    );
    // Another queue is not affected.
    assert!(s.put("other", b"x", 1, t0).is_ok());
    // One consumed: room for one more, within the byte cap (8 + 2 <= 10).
    assert_eq!(s.get("q", 1, usize::MAX, t0, |_| {}), 1);
    assert!(s.put("q", b"dd", 2, t0).is_ok());
    // The byte cap: "cc" and "dd" left, 4 bytes; 7 more would pass 10, 6 fit.
    assert_eq!(s.get("q", 1, usize::MAX, t0, |_| {}), 1);
    let full = s.put("q", b"eeeeeee", 7, t0).unwrap_err();
    assert_eq!(full.cap, FullCap::QueueBytes);
    assert_eq!((full.used, full.limit), (4, 10));
    assert!(full.to_string().contains("BQUEUEMAXBYTES"), "{full}");
    assert!(s.put("q", b"eeeeee", 6, t0).is_ok());
    // A new queue is refused a payload over the byte cap, and not created.
    assert!(s.put("new", &[0; 11], 11, t0).is_err());
    assert!(s.queue_info("new", t0).is_none());
    // MOVE: "q" holds 3 (its cap); "other" has room for 2.
    assert_eq!(s.move_ready("q", "other", 100, t0), 2);
    assert_eq!(s.queue_info("other", t0).map(|i| i.messages), Some(3));
    assert_eq!(s.move_ready("q", "other", 100, t0), 0);
}

/// A publish reaching a queue at its cap stores nothing anywhere.
#[test]
fn queue_caps_make_a_publish_all_or_nothing() {
    let t0 = Instant::now();
    let mut s = Store::<u32>::new(64 << 20, None);
    s.set_queue_caps(1, 0);
    s.bind("a.>", "one", t0).unwrap();
    s.bind("a.>", "two", t0).unwrap();
    s.put("two", b"already", 7, t0).unwrap();
    let mut handed = Vec::new();
    let before = (s.message_count(), s.bytes(), s.memory());
    let full = s
        .publish(
            "a.b",
            b"hi",
            2,
            PutOptions::default(),
            0,
            0,
            t0,
            &mut handed,
        )
        .unwrap_err();
    assert_eq!(full.cap, FullCap::QueueMessages);
    assert_eq!((s.message_count(), s.bytes(), s.memory()), before);
    assert_eq!(s.queue_info("one", t0).map(|i| i.messages), Some(0));
    assert_eq!(s.get("two", 1, usize::MAX, t0, |_| {}), 1);
    let published = s
        .publish(
            "a.b",
            b"hi",
            2,
            PutOptions::default(),
            0,
            0,
            t0,
            &mut handed,
        )
        .unwrap();
    assert_eq!(published.queues, 2);
}
