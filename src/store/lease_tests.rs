//! Unit tests of the store's leases, priorities, delays and dead letters
//! (protocol.md section 13), with synthetic time: `t0 + Duration`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::*;
use crate::test_rng::Rng;

const MIB: usize = 1 << 20;
const IDLE: Duration = Duration::from_secs(60);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn store() -> Store<u32> {
    Store::new(MIB, Some(IDLE))
}

/// An attached lease of `lease_ms` that never dead-letters.
fn spec(lease_ms: u32) -> LeaseSpec {
    LeaseSpec {
        lease_ms,
        max_deliveries: NEVER_DEAD,
        detached: false,
    }
}

/// An attached lease of `lease_ms` dead-lettering after `max` charged deliveries.
fn spec_max(lease_ms: u32, max: u16) -> LeaseSpec {
    LeaseSpec {
        lease_ms,
        max_deliveries: max,
        detached: false,
    }
}

/// Puts a ready message with the default priority; returns its id.
fn put(s: &mut Store<u32>, queue: &str, payload: &[u8], now: Instant) -> u64 {
    put_opt(s, queue, payload, 0, 5, now)
}

/// Puts a message with a delay and a priority; it must be stored (no waiter).
fn put_opt(
    s: &mut Store<u32>,
    queue: &str,
    payload: &[u8],
    delay_ms: u32,
    priority: u8,
    now: Instant,
) -> u64 {
    let (id, outcome) = s
        .put_with(
            queue,
            payload,
            payload.len(),
            PutOptions { delay_ms, priority },
            now,
        )
        .expect("store has room");
    assert_eq!(outcome, PutOutcome::Stored);
    id
}

/// Leases up to `max` messages with no byte limit.
fn lease(
    s: &mut Store<u32>,
    queue: &str,
    max: usize,
    spec: LeaseSpec,
    owner: u32,
    now: Instant,
) -> Vec<(LeaseRef, Vec<u8>)> {
    let mut out = Vec::new();
    let n = s.lease(queue, max, usize::MAX, spec, owner, now, |l, p, _| {
        out.push((l, p.to_vec()));
    });
    assert_eq!(n, out.len(), "lease's count matches the callbacks");
    out
}

/// Leases exactly one message.
fn lease_one(
    s: &mut Store<u32>,
    queue: &str,
    spec: LeaseSpec,
    owner: u32,
    now: Instant,
) -> LeaseRef {
    let got = lease(s, queue, 1, spec, owner, now);
    assert_eq!(got.len(), 1, "one message to lease in {queue}");
    got[0].0
}

/// Ids of everything a lease could take from `queue`, in delivery order.
fn leasable_ids(s: &mut Store<u32>, queue: &str, now: Instant) -> Vec<u64> {
    lease(s, queue, usize::MAX, spec(1000), 99, now)
        .into_iter()
        .map(|(l, _)| l.id)
        .collect()
}

/// What PEEK shows: (id, attempt, payload) in delivery order.
fn peek(s: &Store<u32>, queue: &str) -> Vec<(u64, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let n = s.peek(queue, usize::MAX, usize::MAX, |l, p, _| {
        out.push((l.id, l.attempt, p.to_vec()));
    });
    assert_eq!(n, out.len());
    out
}

fn peek_ids(s: &Store<u32>, queue: &str) -> Vec<u64> {
    peek(s, queue).into_iter().map(|(id, _, _)| id).collect()
}

/// Takes everything with plain gets.
fn get_all(s: &mut Store<u32>, queue: &str, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    s.get(queue, usize::MAX, usize::MAX, now, |p| out.push(p.to_vec()));
    out
}

/// Runs every timer due at `now`, however many calls that takes; returns the
/// waiters that timed out.
fn expire_all(s: &mut Store<u32>, now: Instant) -> Vec<u32> {
    let mut out = Vec::new();
    loop {
        s.expire(now, |h| out.push(h));
        if s.next_deadline().is_none_or(|at| at > now) {
            return out;
        }
    }
}

/// The store's totals agree with the sum of its queues, lease figures included.
fn check_consistency(s: &Store<u32>, now: Instant) {
    let (mut messages, mut bytes, mut memory, mut in_flight, mut delayed) = (0, 0, 0, 0, 0);
    for (_, info) in s.queue_infos(now) {
        messages += info.messages;
        bytes += info.bytes;
        memory += info.memory;
        in_flight += info.in_flight;
        delayed += info.delayed;
        assert!(info.ready + info.in_flight + info.delayed == info.messages);
    }
    assert_eq!(s.message_count() as u64, messages);
    assert_eq!(s.bytes() as u64, bytes);
    assert_eq!(s.memory() as u64, memory);
    assert_eq!(s.in_flight_count() as u64, in_flight);
    assert_eq!(s.delayed_count() as u64, delayed);
}

// ---------------------------------------------------------------------------
// Lease and settle
// ---------------------------------------------------------------------------

/// Leasing moves a message in flight (counted in in_flight, still a message); ACK
/// removes it and gives its memory back at once, to the byte.
#[test]
fn lease_then_ack_releases_memory_at_once() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"hello", t0);
    let before = s.memory();
    let got = lease(&mut s, "q", 10, spec(1000), 1, t0);
    assert_eq!(got, vec![(LeaseRef { id, attempt: 1 }, b"hello".to_vec())]);
    assert_eq!(s.in_flight_count(), 1);
    assert_eq!(s.message_count(), 1);
    assert_eq!(s.memory(), before + HELD_OVERHEAD + 5);
    let info = s.queue_info("q", t0).unwrap();
    assert_eq!((info.ready, info.in_flight, info.messages), (0, 1, 1));
    check_consistency(&s, t0);
    assert_eq!(s.ack("q", got[0].0, t0 + ms(1)), SettleResult::Ok);
    assert_eq!(s.memory(), before);
    assert_eq!(
        (s.in_flight_count(), s.message_count(), s.bytes()),
        (0, 0, 0)
    );
    assert_eq!(s.totals().acks, 1);
    assert_eq!(s.totals().leases, 1);
    check_consistency(&s, t0);
}

/// A second ACK of the same pair, or an ACK on another queue, is NOT_FOUND.
#[test]
fn double_ack_is_not_found() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"x", t0);
    put(&mut s, "other", b"y", t0);
    let l = lease_one(&mut s, "q", spec(1000), 1, t0);
    assert_eq!(s.ack("other", l, t0), SettleResult::NotFound);
    assert_eq!(s.ack("missing", l, t0), SettleResult::NotFound);
    assert_eq!(s.queue_info("missing", t0), None, "settles create no queue");
    assert_eq!(s.ack("q", l, t0), SettleResult::Ok);
    assert_eq!(s.ack("q", l, t0), SettleResult::NotFound);
    let nack = s.nack("q", l, Nack::default(), t0);
    assert_eq!(nack, SettleResult::NotFound);
    assert_eq!(s.touch("q", l, 0, t0), SettleResult::NotFound);
}

/// An ACK naming the wrong attempt is STALE and changes nothing: the real lease
/// still acknowledges.
#[test]
fn ack_with_wrong_attempt_is_stale() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"x", t0);
    let l = lease_one(&mut s, "q", spec(1000), 1, t0);
    for attempt in [0, 2, u32::MAX] {
        let wrong = LeaseRef { id: l.id, attempt };
        assert_eq!(s.ack("q", wrong, t0), SettleResult::Stale);
    }
    assert_eq!(s.in_flight_count(), 1);
    assert_eq!(s.ack("q", l, t0), SettleResult::Ok);
}

/// The deadline rule: a settle one millisecond before the deadline is OK, at exactly
/// the deadline it is STALE, even though expire() has not run yet.
#[test]
fn ack_at_the_deadline_is_stale_before_is_ok() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"a", t0);
    put(&mut s, "q", b"b", t0);
    let got = lease(&mut s, "q", 2, spec(100), 1, t0);
    assert_eq!(s.ack("q", got[0].0, t0 + ms(99)), SettleResult::Ok);
    assert_eq!(s.ack("q", got[1].0, t0 + ms(100)), SettleResult::Stale);
    assert_eq!(s.touch("q", got[1].0, 0, t0 + ms(100)), SettleResult::Stale);
    let nack = s.nack("q", got[1].0, Nack::default(), t0 + ms(100));
    assert_eq!(nack, SettleResult::Stale);
    // Still in flight until expire() runs, then returned with the next attempt.
    assert_eq!(s.in_flight_count(), 1);
    expire_all(&mut s, t0 + ms(100));
    assert_eq!(s.in_flight_count(), 0);
    let again = lease_one(&mut s, "q", spec(100), 1, t0 + ms(100));
    assert_eq!(
        again,
        LeaseRef {
            id: got[1].0.id,
            attempt: 2
        }
    );
}

/// TOUCH moves the deadline: the old deadline neither expires the lease nor makes
/// it stale, the new one does.
#[test]
fn touch_extends_the_lease() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"a", t0);
    let l = lease_one(&mut s, "q", spec(100), 1, t0);
    assert_eq!(s.touch("q", l, 500, t0 + ms(90)), SettleResult::Ok);
    expire_all(&mut s, t0 + ms(100));
    assert_eq!(s.in_flight_count(), 1);
    assert_eq!(s.touch("q", l, 0, t0 + ms(589)), SettleResult::Ok);
    // 0 renews the length the LEASE asked for: 100 ms from 589.
    assert_eq!(s.next_deadline(), Some(t0 + ms(689)));
    assert_eq!(s.ack("q", l, t0 + ms(689)), SettleResult::Stale);
}

/// expire() at the deadline returns the message ready; the next lease gets it
/// under attempt 2, and counters say one expiry and one redelivery.
#[test]
fn expired_lease_returns_the_message_with_attempt_plus_one() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"a", t0);
    lease_one(&mut s, "q", spec(100), 1, t0);
    expire_all(&mut s, t0 + ms(99));
    assert_eq!(s.in_flight_count(), 1);
    assert_eq!(s.next_deadline(), Some(t0 + ms(100)));
    expire_all(&mut s, t0 + ms(100));
    assert_eq!(s.in_flight_count(), 0);
    assert_eq!(s.message_count(), 1);
    assert_eq!(peek(&s, "q"), vec![(id, 1, b"a".to_vec())]);
    let info = s.queue_info("q", t0 + ms(100)).unwrap();
    assert_eq!(info.counters.expired_leases, 1);
    assert_eq!(info.counters.redeliveries, 1);
    assert_eq!(info.ready, 1);
    let l = lease_one(&mut s, "q", spec(100), 2, t0 + ms(100));
    assert_eq!(l, LeaseRef { id, attempt: 2 });
    check_consistency(&s, t0 + ms(100));
}

// ---------------------------------------------------------------------------
// Order of delivery
// ---------------------------------------------------------------------------

/// Returned messages come before never-delivered ones, in id order whatever order
/// they came back in; but only within their priority: a never-delivered message of
/// a lower priority number still comes first.
#[test]
fn returned_messages_come_first_in_id_order_within_priority() {
    let t0 = Instant::now();
    let mut s = store();
    let ids: Vec<u64> = (0..5).map(|i| put(&mut s, "q", &[i], t0)).collect();
    let got = lease(&mut s, "q", 3, spec(1000), 1, t0);
    assert_eq!(got.iter().map(|g| g.0.id).collect::<Vec<_>>(), ids[..3]);
    // Back in the order 2, 0, 1.
    for i in [2, 0, 1] {
        assert_eq!(s.nack("q", got[i].0, Nack::default(), t0), SettleResult::Ok);
    }
    let urgent = put_opt(&mut s, "q", b"urgent", 0, 4, t0);
    let late = put_opt(&mut s, "q", b"late", 0, 6, t0);
    let want = vec![urgent, ids[0], ids[1], ids[2], ids[3], ids[4], late];
    assert_eq!(peek_ids(&s, "q"), want);
    assert_eq!(leasable_ids(&mut s, "q", t0), want);
}

/// Priorities 0..9: lower numbers first, FIFO within a level; plain GET and LEASE
/// and PEEK all follow the same order.
#[test]
fn priorities_then_fifo_for_get_lease_and_peek() {
    let t0 = Instant::now();
    let mut s = store();
    let mut rng = Rng(7);
    let mut want: Vec<(u8, u64, Vec<u8>)> = Vec::new();
    for i in 0..200u32 {
        let p = rng.below(10) as u8;
        let payload = i.to_be_bytes().to_vec();
        let id = put_opt(&mut s, "g", &payload, 0, p, t0);
        assert_eq!(put_opt(&mut s, "l", &payload, 0, p, t0), id + 1);
        want.push((p, id, payload));
    }
    want.sort_by_key(|(p, id, _)| (*p, *id));
    let payloads: Vec<Vec<u8>> = want.iter().map(|w| w.2.clone()).collect();
    let peeked: Vec<Vec<u8>> = peek(&s, "g").into_iter().map(|p| p.2).collect();
    assert_eq!(peeked, payloads);
    assert_eq!(get_all(&mut s, "g", t0), payloads);
    let leased: Vec<Vec<u8>> = lease(&mut s, "l", usize::MAX, spec(1000), 1, t0)
        .into_iter()
        .map(|g| g.1)
        .collect();
    assert_eq!(leased, payloads);
}

/// A plain GET takes returned messages first too, and removes them.
#[test]
fn plain_get_takes_returned_messages_first() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"first", t0);
    put(&mut s, "q", b"second", t0);
    let l = lease_one(&mut s, "q", spec(1000), 1, t0);
    put(&mut s, "q", b"third", t0);
    assert_eq!(s.nack("q", l, Nack::default(), t0), SettleResult::Ok);
    assert_eq!(
        get_all(&mut s, "q", t0),
        vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]
    );
    assert_eq!((s.message_count(), s.bytes()), (0, 0));
    assert_eq!(s.ack("q", l, t0), SettleResult::NotFound);
    check_consistency(&s, t0);
}

// ---------------------------------------------------------------------------
// Delays
// ---------------------------------------------------------------------------

/// A delayed PUT is invisible (to GET, LEASE and PEEK) until its time; delayed
/// messages reach the queue in due order, ties in id order, behind what was ready.
#[test]
fn delayed_puts_become_ready_in_due_order() {
    let t0 = Instant::now();
    let mut s = store();
    let late = put_opt(&mut s, "q", b"late", 100, 5, t0);
    let tie1 = put_opt(&mut s, "q", b"tie1", 50, 5, t0);
    let now_ = put(&mut s, "q", b"now", t0);
    let tie2 = put_opt(&mut s, "q", b"tie2", 50, 5, t0);
    assert_eq!(s.delayed_count(), 3);
    assert_eq!(s.message_count(), 4);
    assert_eq!(s.queue_info("q", t0).unwrap().delayed, 3);
    assert_eq!(peek_ids(&s, "q"), vec![now_]);
    expire_all(&mut s, t0 + ms(49));
    assert_eq!(peek_ids(&s, "q"), vec![now_]);
    expire_all(&mut s, t0 + ms(50));
    assert_eq!(peek_ids(&s, "q"), vec![now_, tie1, tie2]);
    // Attempt 0: never delivered, so after what became ready before it.
    let fresh = put(&mut s, "q", b"fresh", t0 + ms(60));
    expire_all(&mut s, t0 + ms(100));
    assert_eq!(s.delayed_count(), 0);
    let want = vec![now_, tie1, tie2, fresh, late];
    assert_eq!(leasable_ids(&mut s, "q", t0 + ms(100)), want);
    check_consistency(&s, t0 + ms(100));
}

/// A delayed message is never handed to a parked consumer before its time, and is
/// handed over (as a lease) as soon as it is due.
#[test]
fn delayed_message_reaches_a_parked_lease_when_due() {
    let t0 = Instant::now();
    let mut s = store();
    s.park_lease("q", 7, None, spec(1000), t0);
    let id = put_opt(&mut s, "q", b"later", 50, 5, t0);
    assert!(s.take_handoff().is_none());
    expire_all(&mut s, t0 + ms(49));
    assert!(s.take_handoff().is_none());
    expire_all(&mut s, t0 + ms(50));
    let h = s.take_handoff().expect("due message handed over");
    assert_eq!(h.waiter, 7);
    assert_eq!(h.lease, Some(LeaseRef { id, attempt: 1 }));
    assert_eq!(s.payload(id), Some(&b"later"[..]));
    assert_eq!(s.in_flight_count(), 1);
    assert_eq!(s.waiter_count(), 0);
}

/// NACK with a delay: the message is delayed (not leasable) for that long, then
/// ready again ahead of never-delivered work, and leased under the next attempt.
#[test]
fn nack_with_delay() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"a", t0);
    let l = lease_one(&mut s, "q", spec(1000), 1, t0);
    let how = Nack {
        delay: ms(200),
        ..Nack::default()
    };
    assert_eq!(s.nack("q", l, how, t0 + ms(10)), SettleResult::Ok);
    assert_eq!((s.in_flight_count(), s.delayed_count()), (0, 1));
    assert_eq!(s.ack("q", l, t0 + ms(10)), SettleResult::Stale);
    let other = put(&mut s, "q", b"b", t0 + ms(10));
    assert_eq!(peek_ids(&s, "q"), vec![other]);
    expire_all(&mut s, t0 + ms(209));
    assert_eq!(s.delayed_count(), 1);
    expire_all(&mut s, t0 + ms(210));
    assert_eq!(s.delayed_count(), 0);
    assert_eq!(peek(&s, "q")[0], (id, 1, b"a".to_vec()));
    let again = lease_one(&mut s, "q", spec(1000), 1, t0 + ms(210));
    assert_eq!(again, LeaseRef { id, attempt: 2 });
    assert_eq!(s.totals().nacks, 1);
    check_consistency(&s, t0 + ms(210));
}

// ---------------------------------------------------------------------------
// Dead letters
// ---------------------------------------------------------------------------

/// NACK with DEAD moves the message to "<q>.dead" at once, keeping its id, priority
/// and attempt (seen through PEEK); STATS of q counts it as dead; the dead queue is
/// never removed for being idle, while q itself is.
#[test]
fn nack_dead_moves_to_the_dead_letter_queue() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put_opt(&mut s, "q", b"poison", 0, 2, t0);
    let l = lease_one(&mut s, "q", spec(1000), 1, t0);
    let how = Nack {
        dead: true,
        delay: ms(500),
        no_charge: true,
    };
    assert_eq!(s.nack("q", l, how, t0), SettleResult::Ok);
    assert_eq!(s.ack("q", l, t0), SettleResult::NotFound, "no longer in q");
    assert_eq!(s.delayed_count(), 0, "DEAD ignores the delay");
    let info = s.queue_info("q", t0).unwrap();
    assert_eq!(
        (info.dead, info.messages, info.counters.dead_lettered),
        (1, 0, 1)
    );
    assert_eq!(s.totals().dead_lettered, 1);
    assert_eq!(peek(&s, "q.dead"), vec![(id, 1, b"poison".to_vec())]);
    // Put a message of a lower priority into the dead queue: the dead letter, with
    // priority 2, still comes first.
    put_opt(&mut s, "q.dead", b"p3", 0, 3, t0);
    assert_eq!(peek_ids(&s, "q.dead")[0], id);
    assert_eq!(s.get("q.dead", 1, usize::MAX, t0, |_| {}), 1);
    assert_eq!(s.get("q.dead", 1, usize::MAX, t0, |_| {}), 1);
    // Empty now, and idle for far longer than IDLE: still there. q is gone.
    expire_all(&mut s, t0 + IDLE * 10);
    assert!(s.queue_info("q.dead", t0 + IDLE * 10).is_some());
    assert!(s.queue_info("q", t0 + IDLE * 10).is_none());
    check_consistency(&s, t0 + IDLE * 10);
}

/// A NACK with NO_CHARGE does not count toward max_deliveries (though the attempt
/// number still goes up); charged NACKs do.
#[test]
fn no_charge_nacks_do_not_count_toward_max_deliveries() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"a", t0);
    let free = Nack {
        no_charge: true,
        ..Nack::default()
    };
    for attempt in 1..=10 {
        let l = lease_one(&mut s, "q", spec_max(1000, 2), 1, t0);
        assert_eq!(l, LeaseRef { id, attempt });
        assert_eq!(s.nack("q", l, free, t0), SettleResult::Ok);
    }
    assert!(s.queue_info("q.dead", t0).is_none());
    let l = lease_one(&mut s, "q", spec_max(1000, 2), 1, t0);
    assert_eq!(s.nack("q", l, Nack::default(), t0), SettleResult::Ok);
    assert_eq!(peek_ids(&s, "q"), vec![id], "one charged delivery of two");
    let l = lease_one(&mut s, "q", spec_max(1000, 2), 1, t0);
    assert_eq!(s.nack("q", l, Nack::default(), t0), SettleResult::Ok);
    assert_eq!(peek(&s, "q.dead"), vec![(id, 12, b"a".to_vec())]);
    assert_eq!(s.queue_info("q", t0).unwrap().messages, 0);
}

/// A NO_CHARGE NACK never dead-letters, even when the message already has as many
/// charged deliveries as this lease's (smaller) max_deliveries: only a charged
/// delivery that brings the count to the maximum does (protocol.md 13.2).
#[test]
fn no_charge_nack_never_dead_letters() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"a", t0);
    for _ in 0..3 {
        let l = lease_one(&mut s, "q", spec_max(1000, 10), 1, t0);
        assert_eq!(s.nack("q", l, Nack::default(), t0), SettleResult::Ok);
    }
    let l = lease_one(&mut s, "q", spec_max(1000, 2), 1, t0);
    let free = Nack {
        no_charge: true,
        ..Nack::default()
    };
    assert_eq!(s.nack("q", l, free, t0), SettleResult::Ok);
    assert_eq!(peek_ids(&s, "q"), vec![id]);
    assert!(s.queue_info("q.dead", t0).is_none());
}

/// max_deliveries reached by lease expiry: the last expiry dead-letters instead of
/// returning (and counts as an expiry, not a redelivery).
#[test]
fn max_deliveries_by_expiry() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"a", t0);
    let mut now = t0;
    for attempt in 1..=3 {
        let l = lease_one(&mut s, "q", spec_max(100, 3), 1, now);
        assert_eq!(l.attempt, attempt);
        now += ms(100);
        expire_all(&mut s, now);
    }
    assert_eq!(s.queue_info("q", now).unwrap().messages, 0);
    assert_eq!(peek(&s, "q.dead"), vec![(id, 3, b"a".to_vec())]);
    let c = s.queue_info("q", now).unwrap().counters;
    assert_eq!(
        (c.expired_leases, c.redeliveries, c.dead_lettered),
        (3, 2, 1)
    );
    check_consistency(&s, now);
}

/// max_deliveries reached by NACKs.
#[test]
fn max_deliveries_by_nack() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"a", t0);
    for _ in 0..2 {
        let l = lease_one(&mut s, "q", spec_max(100, 2), 1, t0);
        assert_eq!(s.nack("q", l, Nack::default(), t0), SettleResult::Ok);
    }
    assert_eq!(peek_ids(&s, "q.dead"), vec![id]);
    assert_eq!(s.queue_info("q", t0).unwrap().dead, 1);
}

/// A NACK with a delay on the last delivery dead-letters at once, not after the
/// delay.
#[test]
fn last_delivery_nack_with_delay_dead_letters_now() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"a", t0);
    let l = lease_one(&mut s, "q", spec_max(100, 1), 1, t0);
    let how = Nack {
        delay: secs(10),
        ..Nack::default()
    };
    assert_eq!(s.nack("q", l, how, t0), SettleResult::Ok);
    assert_eq!(s.delayed_count(), 0);
    assert_eq!(peek_ids(&s, "q.dead"), vec![id]);
}

/// max_deliveries reached by disconnects of the owning connection.
#[test]
fn max_deliveries_by_disconnect() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"a", t0);
    for owner in 1..=2 {
        lease_one(&mut s, "q", spec_max(1000, 2), owner, t0);
        s.disconnect(owner, t0);
        assert_eq!(s.in_flight_count(), 0);
    }
    assert_eq!(peek(&s, "q.dead"), vec![(id, 2, b"a".to_vec())]);
    check_consistency(&s, t0);
}

/// NEVER_DEAD: a hundred expired deliveries and the message is still returned.
#[test]
fn never_dead_never_dead_letters() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"a", t0);
    let mut now = t0;
    for attempt in 1..=100 {
        let l = lease_one(&mut s, "q", spec(10), 1, now);
        assert_eq!(l, LeaseRef { id, attempt });
        now += ms(10);
        expire_all(&mut s, now);
    }
    assert!(s.queue_info("q.dead", now).is_none());
    assert_eq!(s.totals().dead_lettered, 0);
    assert_eq!(peek(&s, "q"), vec![(id, 100, b"a".to_vec())]);
}

/// A queue whose ".dead" name would be over 255 bytes drops its dead letters and
/// counts them in dead_dropped; one byte shorter works.
#[test]
fn dead_letter_queue_name_too_long_drops_the_message() {
    let t0 = Instant::now();
    let mut s = store();
    let long = "x".repeat(251);
    let fits = "y".repeat(250);
    let dead = Nack {
        dead: true,
        ..Nack::default()
    };
    put(&mut s, &long, b"a", t0);
    put(&mut s, &fits, b"b", t0);
    let l = lease_one(&mut s, &long, spec(1000), 1, t0);
    assert_eq!(s.nack(&long, l, dead, t0), SettleResult::Ok);
    assert_eq!(s.totals().dead_dropped, 1);
    assert_eq!(s.queue_info(&long, t0).unwrap().messages, 0);
    let l = lease_one(&mut s, &fits, spec(1000), 1, t0);
    assert_eq!(s.nack(&fits, l, dead, t0), SettleResult::Ok);
    assert_eq!(s.totals().dead_dropped, 1);
    assert_eq!(peek_ids(&s, &format!("{fits}.dead")), vec![l.id]);
    assert_eq!(s.message_count(), 1);
    check_consistency(&s, t0);
    // The dropped one's queue goes idle and away like any other.
    expire_all(&mut s, t0 + IDLE);
    assert!(s.queue_info(&long, t0 + IDLE).is_none());
}

// ---------------------------------------------------------------------------
// Disconnect, handoffs
// ---------------------------------------------------------------------------

/// disconnect returns that owner's attached leases only: detached ones and other
/// owners' stay in flight, and can still be acknowledged.
#[test]
fn disconnect_returns_only_that_owners_attached_leases() {
    let t0 = Instant::now();
    let mut s = store();
    for i in 0..4u8 {
        put(&mut s, "q", &[i], t0);
    }
    let mine = lease_one(&mut s, "q", spec(1000), 1, t0);
    let detached = LeaseSpec {
        detached: true,
        ..spec(1000)
    };
    let mine_detached = lease_one(&mut s, "q", detached, 1, t0);
    let theirs = lease_one(&mut s, "q", spec(1000), 2, t0);
    s.disconnect(1, t0 + ms(1));
    assert_eq!(s.in_flight_count(), 2);
    assert_eq!(s.ack("q", mine, t0 + ms(1)), SettleResult::Stale);
    assert_eq!(peek_ids(&s, "q")[0], mine.id);
    assert_eq!(s.ack("q", mine_detached, t0 + ms(1)), SettleResult::Ok);
    assert_eq!(s.ack("q", theirs, t0 + ms(1)), SettleResult::Ok);
    // A second disconnect of the same owner finds nothing.
    s.disconnect(1, t0 + ms(2));
    assert_eq!(s.message_count(), 2);
    check_consistency(&s, t0 + ms(2));
}

/// A message leased by one owner, expired, and leased by another is not returned
/// when the first owner disconnects.
#[test]
fn disconnect_skips_leases_now_held_by_someone_else() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"a", t0);
    lease_one(&mut s, "q", spec(100), 1, t0);
    expire_all(&mut s, t0 + ms(100));
    let second = lease_one(&mut s, "q", spec(1000), 2, t0 + ms(100));
    s.disconnect(1, t0 + ms(101));
    assert_eq!(s.in_flight_count(), 1);
    assert_eq!(s.ack("q", second, t0 + ms(101)), SettleResult::Ok);
}

/// A parked LEASE gets a message whose lease expired, as a handoff under the next
/// attempt.
#[test]
fn parked_lease_gets_an_expired_message() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"a", t0);
    lease_one(&mut s, "q", spec(100), 1, t0);
    s.park_lease("q", 2, Some(t0 + secs(5)), spec(10_000), t0);
    assert!(s.take_handoff().is_none());
    expire_all(&mut s, t0 + ms(100));
    let h = s.take_handoff().expect("handoff");
    assert_eq!((h.waiter, h.lease), (2, Some(LeaseRef { id, attempt: 2 })));
    assert!(h.payload.is_none());
    assert!(s.take_handoff().is_none());
    assert_eq!((s.in_flight_count(), s.waiter_count()), (1, 0));
    // The waiter's own timeout was cancelled with it.
    assert!(expire_all(&mut s, t0 + secs(5)).is_empty());
    // The handoff's lease is owned by the waiter: its disconnect returns it.
    s.disconnect(2, t0 + secs(5));
    assert_eq!(s.in_flight_count(), 0);
}

/// A NACK hands the returned message to a parked LEASE, and a parked plain GET gets
/// the payload itself (the message leaves the store).
#[test]
fn nack_serves_parked_consumers_in_order() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"a", t0);
    put(&mut s, "q", b"b", t0);
    let got = lease(&mut s, "q", 2, spec(1000), 1, t0);
    s.park_lease("q", 2, None, spec(1000), t0);
    s.park("q", 3, None, t0);
    assert_eq!(s.nack("q", got[1].0, Nack::default(), t0), SettleResult::Ok);
    let h = s.take_handoff().unwrap();
    assert_eq!(h.waiter, 2);
    assert_eq!(
        h.lease,
        Some(LeaseRef {
            id: got[1].0.id,
            attempt: 2
        })
    );
    assert_eq!(s.nack("q", got[0].0, Nack::default(), t0), SettleResult::Ok);
    let h = s.take_handoff().unwrap();
    assert_eq!((h.waiter, h.lease), (3, None));
    assert_eq!(h.payload.as_deref(), Some(&b"a"[..]));
    assert_eq!(s.message_count(), 1);
    check_consistency(&s, t0);
}

/// move_ready serves the destination's parked LEASE.
#[test]
fn move_ready_serves_a_parked_lease() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "from", b"a", t0);
    s.park_lease("to", 5, None, spec(1000), t0);
    assert_eq!(s.move_ready("from", "to", 10, t0), 1);
    let h = s.take_handoff().unwrap();
    assert_eq!((h.waiter, h.lease), (5, Some(LeaseRef { id, attempt: 1 })));
    assert_eq!(
        s.ack("to", LeaseRef { id, attempt: 1 }, t0),
        SettleResult::Ok
    );
    assert_eq!(s.message_count(), 0);
    check_consistency(&s, t0);
}

/// give_back of a lease handoff puts the message back at the front, uncharged: with
/// max_deliveries 2 and one charged expiry, giving back does not dead-letter it, and
/// the next expiry does.
#[test]
fn give_back_of_a_lease_handoff_is_uncharged() {
    let t0 = Instant::now();
    let mut s = store();
    let id = put(&mut s, "q", b"a", t0);
    let newer = put(&mut s, "q", b"b", t0);
    lease_one(&mut s, "q", spec_max(100, 2), 1, t0);
    // Keep "b" out of the way while the waiter parks.
    let b = lease_one(&mut s, "q", spec(1000), 9, t0);
    s.park_lease("q", 2, None, spec_max(100, 2), t0);
    expire_all(&mut s, t0 + ms(100));
    let h = s.take_handoff().unwrap();
    assert_eq!(h.lease, Some(LeaseRef { id, attempt: 2 }));
    s.give_back(h, t0 + ms(100));
    assert_eq!(s.in_flight_count(), 1, "only b");
    assert!(s.queue_info("q.dead", t0).is_none());
    assert_eq!(
        s.nack("q", b, Nack::default(), t0 + ms(100)),
        SettleResult::Ok
    );
    assert_eq!(peek_ids(&s, "q"), vec![id, newer], "back in its place");
    let l = lease_one(&mut s, "q", spec_max(100, 2), 1, t0 + ms(100));
    assert_eq!(l, LeaseRef { id, attempt: 3 });
    expire_all(&mut s, t0 + ms(200));
    assert_eq!(peek_ids(&s, "q.dead"), vec![id]);
}

/// give_back of a plain GET handoff puts the payload back at the front of its
/// queue, and the GET is not counted.
#[test]
fn give_back_of_a_get_handoff_restores_the_message() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"a", t0);
    let l = lease_one(&mut s, "q", spec(1000), 1, t0);
    put(&mut s, "q", b"newer", t0);
    get_all(&mut s, "q", t0);
    let gets = s.totals().gets;
    s.park("q", 2, None, t0);
    assert_eq!(s.nack("q", l, Nack::default(), t0), SettleResult::Ok);
    let h = s.take_handoff().unwrap();
    assert_eq!(h.payload.as_deref(), Some(&b"a"[..]));
    assert_eq!(s.message_count(), 0);
    put(&mut s, "q", b"after", t0);
    s.give_back(h, t0);
    assert_eq!(s.totals().gets, gets);
    assert_eq!(
        get_all(&mut s, "q", t0),
        vec![b"a".to_vec(), b"after".to_vec()]
    );
    check_consistency(&s, t0);
}

// ---------------------------------------------------------------------------
// PEEK, MOVE, PURGE
// ---------------------------------------------------------------------------

/// PEEK changes nothing: figures, idle time, memory and the next delivery are the
/// same before and after; it honours max and the byte rule.
#[test]
fn peek_changes_nothing() {
    let t0 = Instant::now();
    let mut s = store();
    for i in 0..5u8 {
        put_opt(&mut s, "q", &[i; 10], 0, 9 - i, t0);
    }
    let l = lease_one(&mut s, "q", spec(1000), 1, t0);
    assert_eq!(s.nack("q", l, Nack::default(), t0), SettleResult::Ok);
    let later = t0 + secs(5);
    let info = s.queue_info("q", later);
    let (memory, totals) = (s.memory(), s.totals());
    let all = peek(&s, "q");
    assert_eq!(all.len(), 5);
    assert_eq!(s.peek("q", 2, usize::MAX, |_, _, _| {}), 2);
    assert_eq!(s.peek("q", 10, 15, |_, _, _| {}), 1, "byte rule");
    assert_eq!(s.peek("q", 10, 0, |_, _, _| {}), 1, "at least one");
    assert_eq!(s.peek("missing", 10, 0, |_, _, _| {}), 0);
    assert!(s.queue_info("missing", later).is_none());
    assert_eq!(s.queue_info("q", later), info);
    assert_eq!((s.memory(), s.totals()), (memory, totals));
    assert_eq!(peek(&s, "q"), all);
    let leased: Vec<u64> = leasable_ids(&mut s, "q", later);
    assert_eq!(leased, all.iter().map(|p| p.0).collect::<Vec<_>>());
}

/// move_ready moves ready messages in delivery order to the end of the destination,
/// keeping ids, priorities and attempt numbers, and leaves in-flight and delayed
/// ones behind; charged deliveries start again.
#[test]
fn move_ready_keeps_ids_priorities_and_attempts() {
    let t0 = Instant::now();
    let mut s = store();
    let a = put_opt(&mut s, "q", b"a", 0, 7, t0);
    let b = put_opt(&mut s, "q", b"b", 0, 3, t0);
    let c = put_opt(&mut s, "q", b"c", 0, 5, t0);
    put_opt(&mut s, "q", b"delayed", 1000, 0, t0);
    // c: one charged delivery of max 2, returned.
    let l = lease_one(&mut s, "q", spec(1000), 1, t0);
    assert_eq!(l.id, b);
    let inflight = l;
    let l = lease_one(&mut s, "q", spec_max(1000, 2), 1, t0);
    assert_eq!(l.id, c);
    assert_eq!(s.nack("q", l, Nack::default(), t0), SettleResult::Ok);
    let d = put_opt(&mut s, "dst", b"d", 0, 5, t0);
    assert_eq!(s.move_ready("q", "dst", 100, t0), 2);
    // To the end of dst's priority 5, behind d.
    assert_eq!(
        peek(&s, "dst"),
        vec![
            (d, 0, b"d".to_vec()),
            (c, 1, b"c".to_vec()),
            (a, 0, b"a".to_vec())
        ]
    );
    let info = s.queue_info("q", t0).unwrap();
    assert_eq!((info.ready, info.in_flight, info.delayed), (0, 1, 1));
    let l = lease_one(&mut s, "dst", spec(1000), 1, t0);
    assert_eq!((l.id, s.ack("dst", l, t0)), (d, SettleResult::Ok));
    // c starts afresh: two more charged deliveries before it is dead.
    let l = lease_one(&mut s, "dst", spec_max(1000, 2), 1, t0);
    assert_eq!(l, LeaseRef { id: c, attempt: 2 });
    assert_eq!(s.nack("dst", l, Nack::default(), t0), SettleResult::Ok);
    assert!(s.queue_info("dst.dead", t0).is_none());
    assert_eq!(s.ack("q", inflight, t0), SettleResult::Ok);
    assert_eq!(s.move_ready("missing", "dst", 1, t0), 0);
    assert_eq!(s.move_ready("q", "dst", 1, t0), 0, "nothing ready");
    assert_eq!(s.move_ready("dst", "other", 1, t0), 1, "max honoured");
    check_consistency(&s, t0);
}

/// PURGE drops ready, returned, delayed and in-flight messages; later settles of
/// those leases are NOT_FOUND, timers do nothing, and memory is back to an empty
/// queue's.
#[test]
fn purge_drops_ready_delayed_and_in_flight() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"ready", t0);
    put(&mut s, "q", b"returned", t0);
    put(&mut s, "q", b"leased", t0);
    put_opt(&mut s, "q", b"delayed", 50, 5, t0);
    put(&mut s, "q.dead", b"untouched", t0);
    let got = lease(&mut s, "q", 3, spec(100), 1, t0);
    assert_eq!(s.nack("q", got[1].0, Nack::default(), t0), SettleResult::Ok);
    assert_eq!(s.purge("q", t0), 4);
    assert_eq!(s.totals().purged, 4);
    assert_eq!(s.message_count(), 1);
    assert_eq!((s.in_flight_count(), s.delayed_count()), (0, 0));
    for (l, _) in &got {
        assert_eq!(s.ack("q", *l, t0), SettleResult::NotFound);
    }
    let info = s.queue_info("q", t0).unwrap();
    assert_eq!((info.messages, info.bytes), (0, 0));
    assert!(info.memory <= (QUEUE_OVERHEAD + 1 + 256) as u64);
    expire_all(&mut s, t0 + ms(100));
    assert_eq!(s.message_count(), 1);
    s.disconnect(1, t0 + ms(100));
    assert_eq!(s.message_count(), 1);
    check_consistency(&s, t0 + ms(100));
}

// ---------------------------------------------------------------------------
// Memory, idle queues, bounded work
// ---------------------------------------------------------------------------

/// Leased messages hold memory: a PUT that needs more is refused with FULL until
/// the lease is acknowledged.
#[test]
fn memory_cap_counts_leased_messages() {
    let t0 = Instant::now();
    let payload = [1u8; 1000];
    let queue_memory = QUEUE_OVERHEAD + 1 + Records::default().growth_for(1, 0, payload.len());
    let mut s = Store::<u32>::new(2 * queue_memory, Some(IDLE));
    put(&mut s, "q", &payload, t0);
    let l = lease_one(&mut s, "q", spec(1000), 1, t0);
    let held = s.memory();
    assert_eq!(held, queue_memory + HELD_OVERHEAD + payload.len());
    let refused = s.put("r", &payload, payload.len(), t0);
    assert_eq!(
        refused,
        Err(Full {
            used: held,
            limit: 2 * queue_memory,
            cap: FullCap::Memory,
        })
    );
    assert_eq!(s.totals().rejected_full, 1);
    assert_eq!(s.ack("q", l, t0), SettleResult::Ok);
    put(&mut s, "r", &payload, t0);
    assert_eq!(s.memory(), 2 * queue_memory);
}

/// Leasing, returning and dead-lettering are never refused by the cap, even with
/// the store full.
#[test]
fn lease_paths_ignore_the_cap() {
    let t0 = Instant::now();
    let queue_memory = QUEUE_OVERHEAD + 1 + Records::default().growth_for(1, 0, 100);
    let mut s = Store::<u32>::new(queue_memory, Some(IDLE));
    let id = put(&mut s, "q", &[0u8; 100], t0);
    let l = lease_one(&mut s, "q", spec_max(100, 1), 1, t0);
    assert!(s.memory() > s.max_memory());
    expire_all(&mut s, t0 + ms(100));
    assert_eq!(peek_ids(&s, "q.dead"), vec![id]);
    assert_eq!(s.ack("q", l, t0 + ms(100)), SettleResult::NotFound);
    check_consistency(&s, t0 + ms(100));
}

/// A queue whose only messages are held (in flight or delayed) is not removed for
/// being idle; once all are acknowledged it is, and memory goes back to zero.
#[test]
fn queue_with_only_held_messages_is_not_idle_expired() {
    let t0 = Instant::now();
    let mut s = store();
    put(&mut s, "q", b"a", t0);
    put_opt(&mut s, "d", b"later", 3_600_000, 5, t0);
    let l = lease_one(&mut s, "q", spec(3_600_000), 1, t0);
    let later = t0 + IDLE * 3;
    expire_all(&mut s, later);
    assert!(s.queue_info("q", later).is_some());
    assert!(s.queue_info("d", later).is_some());
    assert_eq!(s.ack("q", l, later), SettleResult::Ok);
    expire_all(&mut s, later + IDLE - ms(1));
    assert!(
        s.queue_info("q", later + IDLE - ms(1)).is_some(),
        "not early"
    );
    expire_all(&mut s, later + IDLE);
    assert!(s.queue_info("q", later + IDLE).is_none());
    assert_eq!(s.queue_count(), 1);
    let t = t0 + secs(3600);
    expire_all(&mut s, t);
    assert_eq!(s.delayed_count(), 0);
    assert_eq!(get_all(&mut s, "d", t), vec![b"later".to_vec()]);
    expire_all(&mut s, t + IDLE);
    assert_eq!((s.queue_count(), s.memory()), (0, 0));
}

/// The owner's lease list stays bounded: 10,000 leases acknowledged on one
/// connection, then a disconnect returns nothing (and with one live lease among
/// them, exactly that one).
#[test]
fn many_acked_leases_on_one_owner() {
    let t0 = Instant::now();
    let mut s = store();
    let mut live = None;
    for i in 0..10_000u32 {
        put(&mut s, "q", &i.to_be_bytes(), t0);
        let l = lease_one(&mut s, "q", spec(1000), 1, t0);
        if i == 5_000 {
            live = Some(l);
        } else {
            assert_eq!(s.ack("q", l, t0), SettleResult::Ok);
        }
    }
    s.disconnect(1, t0);
    let live = live.unwrap();
    assert_eq!(
        peek(&s, "q"),
        vec![(live.id, 1, 5_000u32.to_be_bytes().to_vec())]
    );
    let l = lease_one(&mut s, "q", spec(1000), 2, t0);
    assert_eq!(s.ack("q", l, t0), SettleResult::Ok);
    s.disconnect(1, t0);
    assert_eq!((s.message_count(), s.in_flight_count()), (0, 0));
}

/// expire() runs at most EXPIRE_BUDGET timers per call: 100,000 leases expiring at
/// once take several calls, next_deadline says "now" until all are done, and every
/// message comes back.
#[test]
fn mass_expiry_is_spread_over_calls() {
    const N: usize = 100_000;
    let t0 = Instant::now();
    let mut s = Store::<u32>::new(1 << 30, Some(IDLE));
    for i in 0..N as u32 {
        put(&mut s, "q", &i.to_be_bytes(), t0);
    }
    assert_eq!(lease(&mut s, "q", N, spec(100), 1, t0).len(), N);
    let at = t0 + ms(100);
    let mut calls = 0;
    while s.in_flight_count() > 0 {
        assert!(s.next_deadline().is_some_and(|d| d <= at));
        let before = s.in_flight_count();
        s.expire(at, |_| panic!("no waiters"));
        calls += 1;
        assert_eq!(before - s.in_flight_count(), EXPIRE_BUDGET.min(before));
    }
    assert_eq!(calls, N.div_ceil(EXPIRE_BUDGET));
    assert!(s.next_deadline().is_none_or(|d| d > at));
    let info = s.queue_info("q", at).unwrap();
    assert_eq!(
        (info.ready, info.counters.expired_leases),
        (N as u64, N as u64)
    );
    check_consistency(&s, at);
}

// ---------------------------------------------------------------------------
// Model test
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum MState {
    /// In the never-delivered FIFO of its priority.
    Fresh,
    /// In the returned set.
    Returned,
    InFlight {
        deadline: Instant,
        owner: Option<u32>,
        max: u16,
    },
    Delayed {
        due: Instant,
    },
}

#[derive(Debug)]
struct MMsg {
    queue: String,
    priority: u8,
    attempt: u32,
    charged: u16,
    payload: Vec<u8>,
    state: MState,
}

/// What the store should hold: every message by id, and each queue's delivery
/// order (FIFOs per priority of never-delivered ids, and the returned set).
#[derive(Default)]
struct Model {
    msgs: BTreeMap<u64, MMsg>,
    fifo: BTreeMap<String, [VecDeque<u64>; 10]>,
    returned: BTreeMap<String, BTreeSet<(u8, u64)>>,
    /// Dead-letter queues made so far, in the order they were made.
    dead_queues: Vec<String>,
}

impl Model {
    fn push_fresh(&mut self, id: u64) {
        let m = &self.msgs[&id];
        self.fifo.entry(m.queue.clone()).or_default()[m.priority as usize].push_back(id);
    }

    fn push_returned(&mut self, id: u64) {
        let m = &self.msgs[&id];
        self.returned
            .entry(m.queue.clone())
            .or_default()
            .insert((m.priority, id));
    }

    /// Ends the lease on `id` (not acknowledged).
    fn end_lease(&mut self, id: u64, charged: bool, delay: Option<Duration>, now: Instant) {
        let m = self.msgs.get_mut(&id).unwrap();
        let MState::InFlight { max, .. } = m.state else {
            panic!("{id} not in flight");
        };
        if charged {
            m.charged += 1;
        }
        if charged && max != NEVER_DEAD && m.charged >= max {
            self.dead_letter(id);
            return;
        }
        match delay {
            Some(d) => m.state = MState::Delayed { due: now + d },
            None => {
                m.state = MState::Returned;
                self.push_returned(id);
            }
        }
    }

    fn dead_letter(&mut self, id: u64) {
        let m = self.msgs.get_mut(&id).unwrap();
        m.queue = format!("{}{DEAD_SUFFIX}", m.queue);
        if !self.dead_queues.contains(&m.queue) {
            self.dead_queues.push(m.queue.clone());
        }
        m.charged = 0;
        m.state = MState::Returned;
        self.push_returned(id);
    }

    /// Takes the next message `queue` delivers.
    fn pop_front(&mut self, queue: &str) -> Option<u64> {
        let r = self.returned.get(queue).and_then(|r| r.first().copied());
        let fifo = self.fifo.get_mut(queue).and_then(|f| {
            f.iter_mut()
                .enumerate()
                .find(|(_, l)| !l.is_empty())
                .map(|(p, l)| (p as u8, l))
        });
        match (r, fifo) {
            (Some(r), Some((p, l))) if p < r.0 => l.pop_front(),
            (Some(r), _) => {
                self.returned.get_mut(queue).unwrap().remove(&r);
                Some(r.1)
            }
            (None, Some((_, l))) => l.pop_front(),
            (None, None) => None,
        }
    }

    /// What a settle of `pair` on `queue` should answer.
    fn settle(&self, queue: &str, pair: LeaseRef, now: Instant) -> SettleResult {
        match self.msgs.get(&pair.id) {
            Some(m) if m.queue == queue => match m.state {
                MState::InFlight { deadline, .. }
                    if m.attempt == pair.attempt && deadline > now =>
                {
                    SettleResult::Ok
                }
                _ => SettleResult::Stale,
            },
            _ => SettleResult::NotFound,
        }
    }

    /// Runs the timers due at `now`: expiries, then delays in (due, id) order.
    fn expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .msgs
            .iter()
            .filter(
                |(_, m)| matches!(m.state, MState::InFlight { deadline, .. } if deadline <= now),
            )
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.end_lease(id, true, None, now);
        }
        let mut due: Vec<(Instant, u64)> = self
            .msgs
            .iter()
            .filter_map(|(id, m)| match m.state {
                MState::Delayed { due } if due <= now => Some((due, *id)),
                _ => None,
            })
            .collect();
        due.sort();
        for (_, id) in due {
            let m = self.msgs.get_mut(&id).unwrap();
            if m.attempt == 0 {
                m.state = MState::Fresh;
                self.push_fresh(id);
            } else {
                m.state = MState::Returned;
                self.push_returned(id);
            }
        }
    }

    fn count(&self, f: impl Fn(&MMsg) -> bool) -> usize {
        self.msgs.values().filter(|m| f(m)).count()
    }
}

/// A payload whose bytes identify the message, so any mix-up shows.
fn model_payload(id: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (id.wrapping_mul(31).wrapping_add(i as u64 * 7)) as u8)
        .collect()
}

/// Leases up to `max` from `queue` and checks each delivery against the model's
/// next message, recording the leases in `given`.
#[allow(clippy::too_many_arguments)]
fn lease_and_check(
    s: &mut Store<u32>,
    m: &mut Model,
    given: &mut Vec<(String, LeaseRef)>,
    queue: &str,
    max: usize,
    spec: LeaseSpec,
    owner: u32,
    now: Instant,
    step: usize,
) {
    let got = lease(s, queue, max, spec, owner, now);
    for (l, payload) in &got {
        let want = m
            .pop_front(queue)
            .unwrap_or_else(|| panic!("step {step}: leased {l:?} from {queue}, model has none"));
        assert_eq!(l.id, want, "step {step}: delivery order in {queue}");
        let msg = m.msgs.get_mut(&want).unwrap();
        msg.attempt += 1;
        assert_eq!(l.attempt, msg.attempt, "step {step}");
        assert_eq!(payload, &msg.payload, "step {step}");
        msg.state = MState::InFlight {
            deadline: now + ms(u64::from(spec.lease_ms)),
            owner: (!spec.detached).then_some(owner),
            max: spec.max_deliveries,
        };
        given.push((queue.to_string(), *l));
    }
    if got.len() < max {
        assert_eq!(
            m.pop_front(queue),
            None,
            "step {step}: lease left some behind"
        );
    }
}

/// A fixed-seed PRNG drives 20,000 random puts (with priorities and delays), leases
/// (attached or detached, various max_deliveries), acks, nacks (dead, no-charge,
/// delayed), time steps with and without expire(), and disconnects over three queues
/// and their dead-letter queues, against a model: every lease delivers exactly the
/// message the model says comes next, every settle answers what the model says,
/// the counters match after every step; at the end everything is drained and
/// acknowledged exactly once, and memory is down to the dead-letter queues' own
/// bookkeeping once idle queues have gone.
#[test]
fn randomized_leases_match_a_model() {
    const QUEUES: [&str; 3] = ["a", "bb", "c"];
    const STEPS: usize = 20_000;
    let t0 = Instant::now();
    let mut now = t0;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut s = Store::<u32>::new(1 << 30, Some(secs(3600)));
    let mut m = Model::default();
    // Every lease ever given, for settles (old ones test STALE and NOT_FOUND).
    let mut given: Vec<(String, LeaseRef)> = Vec::new();
    let mut put_ids = BTreeSet::new();
    let mut acked = HashSet::new();
    // Settles answered OK, STALE, NOT_FOUND; dead-letter queues made.
    let mut seen = [0usize; 4];
    let mut names: Vec<String> = QUEUES.iter().map(|q| q.to_string()).collect();

    for step in 0..STEPS {
        let roll = rng.below(100);
        if roll < 18 {
            let queue = QUEUES[rng.index(QUEUES.len())];
            let priority = if rng.below(3) == 0 {
                rng.below(10) as u8
            } else {
                5
            };
            let delay_ms = if rng.below(5) == 0 {
                rng.below(300) as u32
            } else {
                0
            };
            let len = rng.below(40) as usize;
            let id = s.totals().puts + 1;
            let payload = model_payload(id, len);
            assert_eq!(
                put_opt(&mut s, queue, &payload, delay_ms, priority, now),
                id
            );
            put_ids.insert(id);
            let state = if delay_ms > 0 {
                MState::Delayed {
                    due: now + ms(u64::from(delay_ms)),
                }
            } else {
                MState::Fresh
            };
            m.msgs.insert(
                id,
                MMsg {
                    queue: queue.to_string(),
                    priority,
                    attempt: 0,
                    charged: 0,
                    payload,
                    state,
                },
            );
            if state == MState::Fresh {
                m.push_fresh(id);
            }
        } else if roll < 42 {
            let queue = names[rng.index(names.len())].clone();
            let spec = LeaseSpec {
                lease_ms: 1 + rng.below(400) as u32,
                max_deliveries: if rng.below(4) == 0 {
                    NEVER_DEAD
                } else {
                    1 + rng.below(4) as u16
                },
                detached: rng.below(4) == 0,
            };
            let max = 1 + rng.index(4);
            let owner = rng.below(3) as u32;
            lease_and_check(
                &mut s, &mut m, &mut given, &queue, max, spec, owner, now, step,
            );
        } else if roll < 75 && !given.is_empty() {
            // Mostly recent leases, sometimes any old one.
            let i = if rng.below(4) == 0 {
                rng.index(given.len())
            } else {
                given.len() - 1 - rng.index(given.len().min(8))
            };
            let (queue, pair) = given[i].clone();
            let queue = if rng.below(20) == 0 {
                names[rng.index(names.len())].clone()
            } else {
                queue
            };
            let want = m.settle(&queue, pair, now);
            seen[want as usize] += 1;
            if rng.below(2) == 0 {
                assert_eq!(s.ack(&queue, pair, now), want, "step {step}: ack {pair:?}");
                if want == SettleResult::Ok {
                    assert!(acked.insert(pair.id), "step {step}: acked twice");
                    m.msgs.remove(&pair.id);
                }
            } else {
                let how = Nack {
                    delay: if rng.below(3) == 0 {
                        ms(rng.below(300))
                    } else {
                        Duration::ZERO
                    },
                    dead: rng.below(10) == 0,
                    no_charge: rng.below(4) == 0,
                };
                assert_eq!(s.nack(&queue, pair, how, now), want, "step {step}: nack");
                if want == SettleResult::Ok {
                    if how.dead {
                        m.dead_letter(pair.id);
                    } else {
                        let delay = (!how.delay.is_zero()).then_some(how.delay);
                        m.end_lease(pair.id, !how.no_charge, delay, now);
                    }
                }
            }
        } else if roll < 88 {
            now += ms(rng.below(60));
            if rng.below(3) != 0 {
                expire_all(&mut s, now);
                m.expire(now);
            }
        } else if roll < 93 {
            let owner = rng.below(3) as u32;
            s.disconnect(owner, now);
            let ids: Vec<u64> = m
                .msgs
                .iter()
                .filter(|(_, msg)| {
                    matches!(msg.state, MState::InFlight { owner: Some(o), deadline, .. }
                        if o == owner && deadline > now)
                })
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                m.end_lease(id, true, None, now);
            }
        } else {
            // Peek: the model's order, without taking.
            let queue = names[rng.index(names.len())].clone();
            let peeked = peek_ids(&s, &queue);
            let mut want: Vec<(u8, bool, u64)> = Vec::new();
            if let Some(r) = m.returned.get(&queue) {
                want.extend(r.iter().map(|&(p, id)| (p, false, id)));
            }
            if let Some(f) = m.fifo.get(&queue) {
                for (p, l) in f.iter().enumerate() {
                    want.extend(l.iter().map(|&id| (p as u8, true, id)));
                }
            }
            // A stable sort by (priority, returned first) keeps FIFO order within.
            want.sort_by_key(|w| (w.0, w.1));
            let want: Vec<u64> = want.into_iter().map(|w| w.2).collect();
            assert_eq!(peeked, want, "step {step}: peek {queue}");
        }
        names.truncate(QUEUES.len());
        names.extend(m.dead_queues.iter().cloned());
        seen[3] = m.dead_queues.len();
        assert_eq!(s.message_count(), m.msgs.len(), "step {step}");
        if step % 16 != 0 {
            continue;
        }
        assert_eq!(
            s.in_flight_count(),
            m.count(|msg| matches!(msg.state, MState::InFlight { .. })),
            "step {step}"
        );
        assert_eq!(
            s.delayed_count(),
            m.count(|msg| matches!(msg.state, MState::Delayed { .. })),
            "step {step}"
        );
        assert_eq!(
            s.bytes(),
            m.msgs.values().map(|msg| msg.payload.len()).sum::<usize>()
        );
        check_consistency(&s, now);
        let mut per_queue: BTreeMap<&str, u64> = BTreeMap::new();
        for msg in m.msgs.values() {
            *per_queue.entry(&msg.queue).or_default() += 1;
        }
        for name in &names {
            let messages = per_queue.get(name.as_str()).copied().unwrap_or(0);
            let info = s.queue_info(name, now);
            assert_eq!(
                info.map_or(0, |i| i.messages),
                messages,
                "step {step}: {name}"
            );
        }
    }
    assert!(seen[..3].iter().all(|&n| n > 100), "coverage: {seen:?}");
    assert!(seen[3] >= 3, "coverage: {seen:?}");
    assert!(s.totals().dead_lettered > 50 && s.totals().expired_leases > 100);

    // Drain: let every lease and delay run out, then lease and ack everything.
    now += secs(10);
    expire_all(&mut s, now);
    m.expire(now);
    while !m.msgs.is_empty() {
        let names: BTreeSet<String> = m.msgs.values().map(|msg| msg.queue.clone()).collect();
        for name in names {
            let start = given.len();
            lease_and_check(
                &mut s,
                &mut m,
                &mut given,
                &name,
                1000,
                spec(1000),
                1,
                now,
                STEPS,
            );
            for (queue, pair) in &given[start..] {
                assert_eq!(s.ack(queue, *pair, now), SettleResult::Ok);
                assert!(acked.insert(pair.id), "acked twice");
                m.msgs.remove(&pair.id);
            }
        }
    }
    let acked: BTreeSet<u64> = acked.into_iter().collect();
    assert_eq!(acked, put_ids, "every message acknowledged exactly once");
    assert_eq!(
        (s.message_count(), s.in_flight_count(), s.delayed_count()),
        (0, 0, 0)
    );
    now += secs(7200);
    expire_all(&mut s, now);
    let mut left = 0;
    for (name, info) in s.queue_infos(now) {
        assert!(name.ends_with(DEAD_SUFFIX), "{name} was not idle-expired");
        assert_eq!(info.memory as usize, QUEUE_OVERHEAD + name.len());
        left += QUEUE_OVERHEAD + name.len();
    }
    assert_eq!(s.memory(), left);
    check_consistency(&s, now);
}
