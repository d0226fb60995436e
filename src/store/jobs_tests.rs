//! Unit tests of unique keys and replace (protocol.md section 18), with synthetic
//! time: `t0 + Duration`.

use super::*;
use crate::journal::replay::Replay;
use crate::journal::scan::Scanner;
use crate::protocol::{Holder, Ttl, Unique};

const MIB: usize = 1 << 20;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn store() -> Store<u32> {
    Store::new(MIB, Some(Duration::from_secs(60)))
}

fn unique(key: &[u8]) -> Unique<'_> {
    Unique {
        key,
        replace: false,
        window_ms: 0,
    }
}

/// A key remembered for `window_ms` after its message left.
fn windowed(key: &[u8], window_ms: u32) -> Unique<'_> {
    Unique {
        window_ms,
        ..unique(key)
    }
}

/// A key that replaces the waiting message holding it.
fn replacing(key: &[u8]) -> Unique<'_> {
    Unique {
        replace: true,
        ..unique(key)
    }
}

fn opts(delay_ms: u32, priority: u8) -> PutOptions {
    PutOptions { delay_ms, priority }
}

/// A keyed put with default options.
fn kput(
    s: &mut Store<u32>,
    q: &str,
    payload: &[u8],
    u: Unique<'_>,
    now: Instant,
) -> (u64, JobPut<u32>) {
    kput_opt(s, q, payload, opts(0, 5), u, now)
}

fn kput_opt(
    s: &mut Store<u32>,
    q: &str,
    payload: &[u8],
    o: PutOptions,
    u: Unique<'_>,
    now: Instant,
) -> (u64, JobPut<u32>) {
    s.put_job(q, payload, payload.len(), o, Some(u), None, now)
        .expect("store has room")
}

const STORED: JobPut<u32> = JobPut::New(PutOutcome::Stored);

fn spec() -> LeaseSpec {
    LeaseSpec {
        lease_ms: 1000,
        max_deliveries: NEVER_DEAD,
        detached: false,
    }
}

fn lease_one(s: &mut Store<u32>, q: &str, now: Instant) -> (LeaseRef, Vec<u8>) {
    let mut got = Vec::new();
    s.lease(q, 1, usize::MAX, spec(), 1, now, |l, p, _| {
        got.push((l, p.to_vec()))
    });
    assert_eq!(got.len(), 1, "a message to lease");
    got.remove(0)
}

fn get_all(s: &mut Store<u32>, q: &str, now: Instant) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    s.get_with(q, usize::MAX, usize::MAX, now, |id, _, p, _| {
        out.push((id, p.to_vec()))
    });
    out
}

fn peek_ids(s: &Store<u32>, q: &str) -> Vec<u64> {
    let mut out = Vec::new();
    s.peek(q, usize::MAX, usize::MAX, |l, _, _| out.push(l.id));
    out
}

#[test]
fn a_duplicate_is_refused_while_ready_delayed_or_in_flight() {
    let t0 = Instant::now();
    let mut s = store();
    let (a, done) = kput(&mut s, "q", b"one", unique(b"k"), t0);
    assert_eq!(done, STORED);
    assert_eq!(
        kput(&mut s, "q", b"two", unique(b"k"), t0),
        (a, JobPut::Duplicate(Holder::Ready))
    );
    assert_eq!(s.message_count(), 1);
    assert_eq!(s.totals().duplicates, 1);

    let (d, _) = kput_opt(&mut s, "q", b"later", opts(500, 5), unique(b"d"), t0);
    assert_eq!(
        kput(&mut s, "q", b"x", unique(b"d"), t0),
        (d, JobPut::Duplicate(Holder::Delayed))
    );

    let (lease, payload) = lease_one(&mut s, "q", t0);
    assert_eq!((lease.id, payload.as_slice()), (a, &b"one"[..]));
    assert_eq!(
        kput(&mut s, "q", b"x", unique(b"k"), t0),
        (a, JobPut::Duplicate(Holder::InFlight))
    );
    // Another queue's key of the same bytes is another key.
    assert_eq!(kput(&mut s, "other", b"x", unique(b"k"), t0).1, STORED);
}

#[test]
fn the_key_is_free_again_once_its_message_leaves() {
    let t0 = Instant::now();
    let mut s = store();
    let (a, _) = kput(&mut s, "q", b"one", unique(b"k"), t0);
    let (lease, _) = lease_one(&mut s, "q", t0);
    assert_eq!(s.ack("q", lease, t0), SettleResult::Ok);
    let (b, done) = kput(&mut s, "q", b"two", unique(b"k"), t0);
    assert_eq!(done, STORED);
    assert!(b > a);
    assert_eq!(get_all(&mut s, "q", t0), vec![(b, b"two".to_vec())]);
    assert_eq!(kput(&mut s, "q", b"three", unique(b"k"), t0).1, STORED);
    assert_eq!(s.purge("q", t0), 1);
    assert_eq!(kput(&mut s, "q", b"four", unique(b"k"), t0).1, STORED);
    assert_eq!(s.key_counts().held, 1);
}

#[test]
fn a_window_refuses_the_key_after_its_message_left() {
    let t0 = Instant::now();
    let mut s = store();
    let u = windowed(b"k", 1000);
    let (a, _) = kput(&mut s, "q", b"one", u, t0);
    let (lease, _) = lease_one(&mut s, "q", t0);
    assert_eq!(s.ack("q", lease, t0 + ms(100)), SettleResult::Ok);
    assert_eq!(s.key_counts().remembered, 1);
    // The window runs from the ACK, not from the PUT.
    assert_eq!(
        kput(&mut s, "q", b"two", unique(b"k"), t0 + ms(1099)),
        (a, JobPut::Duplicate(Holder::Gone))
    );
    assert_eq!(s.next_deadline(), Some(t0 + ms(1100)));
    s.expire(t0 + ms(1100), |_| {});
    assert_eq!(s.key_counts().remembered, 0);
    assert_eq!(
        kput(&mut s, "q", b"two", unique(b"k"), t0 + ms(1100)).1,
        STORED
    );
}

#[test]
fn the_cap_on_remembered_keys_forgets_the_first_window_to_end() {
    let t0 = Instant::now();
    let mut s = store();
    s.set_max_remembered_keys(2);
    for (key, window_ms) in [(b"a", 3000), (b"b", 1000), (b"c", 2000)] {
        let u = Unique {
            key,
            replace: false,
            window_ms,
        };
        kput(&mut s, "q", b"x", u, t0);
        get_all(&mut s, "q", t0);
    }
    let counts = s.key_counts();
    assert_eq!((counts.remembered, counts.forgotten), (2, 1));
    assert_eq!(kput(&mut s, "q", b"x", unique(b"b"), t0).1, STORED);
    assert!(matches!(
        kput(&mut s, "q", b"x", unique(b"a"), t0).1,
        JobPut::Duplicate(Holder::Gone)
    ));
}

#[test]
fn keyed_messages_take_their_turn_by_id_among_the_others() {
    let t0 = Instant::now();
    let mut s = store();
    let p1 = s.put_with("q", b"p1", 2, opts(0, 5), t0).unwrap().0;
    let k1 = kput(&mut s, "q", b"k1", unique(b"1"), t0).0;
    let p2 = s.put_with("q", b"p2", 2, opts(0, 5), t0).unwrap().0;
    let urgent = kput_opt(&mut s, "q", b"k2", opts(0, 1), unique(b"2"), t0).0;
    let k3 = kput(&mut s, "q", b"k3", unique(b"3"), t0).0;
    let expected = vec![urgent, p1, k1, p2, k3];
    assert_eq!(peek_ids(&s, "q"), expected);
    let got: Vec<u64> = get_all(&mut s, "q", t0)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(got, expected);
    assert_eq!(s.message_count(), 0);
    assert_eq!(s.key_counts().held, 0);
}

#[test]
fn replace_changes_payload_and_priority_in_place() {
    let t0 = Instant::now();
    let mut s = store();
    let a = s.put_with("q", b"a", 1, opts(0, 5), t0).unwrap().0;
    let k = kput(&mut s, "q", b"old", unique(b"k"), t0).0;
    let b = s.put_with("q", b"b", 1, opts(0, 5), t0).unwrap().0;
    let replace = replacing(b"k");
    let memory = s.memory();
    assert_eq!(
        kput(&mut s, "q", b"newer", replace, t0),
        (k, JobPut::Replaced)
    );
    assert_eq!(s.memory(), memory + 2, "two more payload bytes");
    assert_eq!(s.bytes(), 1 + 5 + 1);
    assert_eq!(peek_ids(&s, "q"), vec![a, k, b], "same place");
    // A higher priority moves it ahead; its id keeps its place among its peers.
    assert_eq!(
        kput_opt(&mut s, "q", b"first", opts(0, 0), replace, t0),
        (k, JobPut::Replaced)
    );
    assert_eq!(
        get_all(&mut s, "q", t0),
        vec![
            (k, b"first".to_vec()),
            (a, b"a".to_vec()),
            (b, b"b".to_vec())
        ]
    );
    assert_eq!(s.totals().replaced, 2);
}

#[test]
fn replace_is_refused_in_flight_and_stores_anew_when_nothing_waits() {
    let t0 = Instant::now();
    let mut s = store();
    let replace = replacing(b"k");
    let (k, done) = kput(&mut s, "q", b"one", replace, t0);
    assert_eq!(done, STORED, "nothing to replace: a new message");
    let (lease, _) = lease_one(&mut s, "q", t0);
    assert_eq!(
        kput(&mut s, "q", b"two", replace, t0),
        (k, JobPut::Duplicate(Holder::InFlight))
    );
    assert_eq!(s.payload(k), Some(&b"one"[..]), "untouched");
    // Back to ready after a NACK, it can be replaced again, and keeps its attempts.
    assert_eq!(s.nack("q", lease, Nack::default(), t0), SettleResult::Ok);
    assert_eq!(
        kput(&mut s, "q", b"three", replace, t0),
        (k, JobPut::Replaced)
    );
    let (again, payload) = lease_one(&mut s, "q", t0);
    assert_eq!(
        (again.id, again.attempt, payload.as_slice()),
        (k, 2, &b"three"[..])
    );
}

#[test]
fn replace_can_delay_or_undelay_the_waiting_message() {
    let t0 = Instant::now();
    let mut s = store();
    let replace = replacing(b"k");
    let (k, _) = kput_opt(&mut s, "q", b"one", opts(10_000, 5), replace, t0);
    assert_eq!(s.delayed_count(), 1);
    assert_eq!(
        kput(&mut s, "q", b"now", replace, t0),
        (k, JobPut::Replaced)
    );
    assert_eq!(s.delayed_count(), 0);
    assert_eq!(peek_ids(&s, "q"), vec![k]);
    assert_eq!(
        kput_opt(&mut s, "q", b"later", opts(50, 5), replace, t0),
        (k, JobPut::Replaced)
    );
    assert_eq!(s.delayed_count(), 1);
    assert!(peek_ids(&s, "q").is_empty());
    s.expire(t0 + ms(50), |_| {});
    assert_eq!(
        get_all(&mut s, "q", t0 + ms(50)),
        vec![(k, b"later".to_vec())]
    );
}

#[test]
fn a_parked_consumer_gets_a_keyed_message_as_a_handoff() {
    let t0 = Instant::now();
    let mut s = store();
    s.park("q", 7, None, t0);
    let (k, done) = kput(&mut s, "q", b"hi", unique(b"k"), t0);
    assert_eq!(done, STORED);
    let h = s.take_handoff().expect("a handoff");
    assert_eq!(
        (h.waiter, h.id, h.payload.as_deref()),
        (7, k, Some(&b"hi"[..]))
    );
    assert_eq!(s.key_counts().held, 0, "the key left with the message");
}

#[test]
fn dead_lettering_releases_the_key() {
    let t0 = Instant::now();
    let mut s = store();
    let (k, _) = kput(&mut s, "q", b"x", unique(b"k"), t0);
    let (lease, _) = lease_one(&mut s, "q", t0);
    let dead = Nack {
        dead: true,
        ..Nack::default()
    };
    assert_eq!(s.nack("q", lease, dead, t0), SettleResult::Ok);
    assert_eq!(peek_ids(&s, "q.dead"), vec![k]);
    assert_eq!(kput(&mut s, "q", b"y", unique(b"k"), t0).1, STORED);
    // Moved back, it is a plain message.
    assert_eq!(s.move_ready("q.dead", "q", 10, t0), 1);
    assert_eq!(s.key_counts().held, 1);
}

#[test]
fn memory_comes_back_when_everything_left() {
    let t0 = Instant::now();
    let mut s = store();
    let base = s.memory();
    let _ = s.put("q", b"warm", 4, t0);
    get_all(&mut s, "q", t0);
    let empty = s.memory();
    let windowed = windowed(b"k", 10);
    kput(&mut s, "q", b"abc", windowed, t0);
    assert!(s.memory() > empty + HELD_OVERHEAD);
    get_all(&mut s, "q", t0);
    assert!(s.memory() > empty, "the key is remembered");
    s.expire(t0 + ms(10), |_| {});
    assert_eq!(s.memory(), empty);
    assert!(empty >= base);
}

#[test]
fn a_put_past_the_memory_cap_is_refused_and_changes_nothing() {
    let t0 = Instant::now();
    let mut s = Store::<u32>::new(4096, None);
    let big = vec![0u8; 3000];
    kput(&mut s, "q", &big, unique(b"a"), t0);
    let before = (s.memory(), s.key_counts());
    assert!(
        s.put_job(
            "q",
            &big,
            big.len(),
            opts(0, 5),
            Some(unique(b"b")),
            None,
            t0
        )
        .is_err()
    );
    let replace = replacing(b"a");
    let bigger = vec![0u8; 4000];
    assert!(
        s.put_job(
            "q",
            &bigger,
            bigger.len(),
            opts(0, 5),
            Some(replace),
            None,
            t0
        )
        .is_err()
    );
    assert_eq!((s.memory(), s.key_counts()), before);
}

/// Replays what the store logged into a fresh store at `wall_ms` + `later` ms.
fn reopen(s: &mut Store<u32>, wall_ms: u64, later: u64) -> Store<u32> {
    let mut bytes = Vec::new();
    s.take_log(&mut bytes);
    let mut replay = Replay::new();
    for (_, r) in Scanner::new(&bytes, 0) {
        replay.apply(&r);
    }
    let mut fresh = store();
    let t1 = Instant::now();
    fresh.restore(replay.finish(), t1, wall_ms + later);
    fresh
}

#[test]
fn keys_and_windows_survive_a_restart() {
    const WALL: u64 = 1_700_000_000_000;
    let t0 = Instant::now();
    let mut s = store();
    s.enable_log(t0, WALL);
    let windowed = windowed(b"gone", 60_000);
    let (held, _) = kput(&mut s, "q", b"held", unique(b"held"), t0);
    let plain = s.put("q", b"plain", 5, t0).map(|_| ()).ok();
    assert!(plain.is_some());
    let (gone, _) = kput(&mut s, "q", b"gone", windowed, t0);
    let (delayed, _) = kput_opt(&mut s, "q", b"d", opts(30_000, 5), unique(b"d"), t0);
    // Leave `gone`: take the first two (held, plain) back? No: lease and ack it.
    let mut lease = None;
    s.lease("q", 3, usize::MAX, spec(), 1, t0, |l, _, _| {
        if l.id == gone {
            lease = Some(l);
        }
    });
    let lease = lease.expect("gone was leased");
    assert_eq!(s.ack("q", lease, t0), SettleResult::Ok);
    s.return_leases(t0);
    let replace = replacing(b"held");
    assert_eq!(
        kput(&mut s, "q", b"held2", replace, t0),
        (held, JobPut::Replaced)
    );

    let mut r = reopen(&mut s, WALL, 1000);
    let now = Instant::now();
    assert_eq!(r.key_counts().held, 2);
    assert_eq!(r.key_counts().remembered, 1);
    assert_eq!(kput(&mut r, "q", b"x", unique(b"held"), now).0, held);
    assert_eq!(
        kput(&mut r, "q", b"x", unique(b"gone"), now),
        (gone, JobPut::Duplicate(Holder::Gone))
    );
    assert_eq!(
        kput(&mut r, "q", b"x", unique(b"d"), now),
        (delayed, JobPut::Duplicate(Holder::Delayed))
    );
    assert_eq!(r.payload(held), Some(&b"held2"[..]));

    // After the window, the remembered key is not loaded.
    let mut s2 = store();
    s2.enable_log(t0, WALL);
    let (_, _) = kput(&mut s2, "q", b"gone", windowed, t0);
    get_all(&mut s2, "q", t0);
    let r2 = reopen(&mut s2, WALL, 60_001);
    assert_eq!(r2.key_counts().remembered, 0);
}

#[test]
fn a_snapshot_carries_the_keys() {
    const WALL: u64 = 1_700_000_000_000;
    let t0 = Instant::now();
    let mut s = store();
    s.enable_log(t0, WALL);
    let windowed = windowed(b"w", 60_000);
    let (k, _) = kput(&mut s, "q", b"a", unique(b"k"), t0);
    kput(&mut s, "q", b"b", windowed, t0);
    get_all(&mut s, "q", t0);
    let (k2, _) = kput(&mut s, "q", b"c", unique(b"k2"), t0);
    let mut bytes = Vec::new();
    s.snapshot(&mut bytes);
    let mut replay = Replay::new();
    for (_, r) in Scanner::new(&bytes, 0) {
        replay.apply(&r);
    }
    let mut r = store();
    let now = Instant::now();
    r.restore(replay.finish(), now, WALL + 10);
    assert_eq!(r.key_counts().held, 1, "k left with the get; k2 stays");
    assert_eq!(r.key_counts().remembered, 1);
    assert_eq!(kput(&mut r, "q", b"x", unique(b"k2"), now).0, k2);
    assert_eq!(kput(&mut r, "q", b"x", unique(b"k"), now).1, STORED);
    assert!(k < k2);
}

// ---------------------------------------------------------------------------
// Expiry (protocol.md section 19)
// ---------------------------------------------------------------------------

fn ttl(ms: u64) -> Option<Ttl> {
    Some(Ttl {
        ttl_ms: ms as u32,
        dead_letter: false,
    })
}

/// Puts a message with a time to live and options; it must be stored.
fn tput(
    s: &mut Store<u32>,
    q: &str,
    payload: &[u8],
    o: PutOptions,
    t: Option<Ttl>,
    now: Instant,
) -> u64 {
    let (id, done) = s
        .put_job(q, payload, payload.len(), o, None, t, now)
        .expect("store has room");
    assert_eq!(done, STORED);
    id
}

#[test]
fn an_expired_message_is_never_delivered() {
    let t0 = Instant::now();
    let mut s = store();
    let plain = s.put_with("q", b"plain", 5, opts(0, 5), t0).unwrap().0;
    let short = tput(&mut s, "q", b"short", opts(0, 5), ttl(100), t0);
    let long = tput(&mut s, "q", b"long", opts(0, 5), ttl(1000), t0);
    assert_eq!(peek_ids(&s, "q"), vec![plain, short, long]);
    assert_eq!(s.next_deadline(), Some(t0 + ms(100)));
    s.expire(t0 + ms(99), |_| {});
    assert_eq!(s.expiring_count(), 2);
    s.expire(t0 + ms(100), |_| {});
    assert_eq!(peek_ids(&s, "q"), vec![plain, long]);
    assert_eq!(s.totals().expired, 1);
    assert_eq!(s.queue_info("q", t0).unwrap().counters.expired, 1);
    assert_eq!(s.message_count(), 2);
    assert_eq!(
        get_all(&mut s, "q", t0 + ms(100)),
        vec![(plain, b"plain".to_vec()), (long, b"long".to_vec())]
    );
    assert_eq!(s.expiring_count(), 0, "taken: its expiry went with it");
}

#[test]
fn a_delayed_message_past_its_time_to_live_never_becomes_ready() {
    let t0 = Instant::now();
    let mut s = store();
    tput(&mut s, "q", b"x", opts(200, 5), ttl(100), t0);
    assert_eq!(s.delayed_count(), 1);
    s.expire(t0 + ms(100), |_| {});
    assert_eq!((s.delayed_count(), s.message_count()), (0, 0));
    s.expire(t0 + ms(200), |_| {});
    assert!(peek_ids(&s, "q").is_empty());
    assert_eq!(s.totals().expired, 1);
}

#[test]
fn a_leased_message_expires_only_when_its_lease_ends_unacked() {
    let t0 = Instant::now();
    let mut s = store();
    let a = tput(&mut s, "q", b"a", opts(0, 5), ttl(100), t0);
    let b = tput(&mut s, "q", b"b", opts(0, 5), ttl(100), t0);
    let (la, _) = lease_one(&mut s, "q", t0);
    let (lb, _) = lease_one(&mut s, "q", t0);
    assert_eq!((la.id, lb.id), (a, b));
    s.expire(t0 + ms(100), |_| {});
    assert_eq!(s.in_flight_count(), 2, "a lease outlives the time to live");
    // The worker finished in time: the ACK deletes it as usual.
    assert_eq!(s.ack("q", la, t0 + ms(150)), SettleResult::Ok);
    // This one failed: it is not given out again, it expires.
    assert_eq!(
        s.nack("q", lb, Nack::default(), t0 + ms(150)),
        SettleResult::Ok
    );
    assert_eq!(s.message_count(), 0);
    assert_eq!(s.totals().expired, 1);
    assert_eq!(s.totals().redeliveries, 0);
}

#[test]
fn a_dead_letter_time_to_live_moves_it_to_the_dead_letter_queue() {
    let t0 = Instant::now();
    let mut s = store();
    let dead = Some(Ttl {
        ttl_ms: 100,
        dead_letter: true,
    });
    let id = tput(&mut s, "q", b"x", opts(0, 5), dead, t0);
    s.expire(t0 + ms(100), |_| {});
    assert_eq!(peek_ids(&s, "q.dead"), vec![id]);
    assert_eq!(s.expiring_count(), 0, "a dead letter does not expire");
    let t = s.totals();
    assert_eq!((t.expired, t.dead_lettered), (1, 1));
}

#[test]
fn a_queue_default_applies_to_messages_without_a_time_to_live() {
    let t0 = Instant::now();
    let mut s = store();
    s.set_default_ttl("q", ms(100));
    s.set_default_ttl("*", ms(500));
    let plain = s.put("q", b"plain", 5, t0).map(|_| ()).ok();
    assert!(plain.is_some());
    let forever = tput(&mut s, "q", b"forever", opts(0, 5), ttl(0), t0);
    let longer = tput(&mut s, "q", b"longer", opts(0, 5), ttl(300), t0);
    s.put("other", b"o", 1, t0).unwrap();
    assert_eq!(s.expiring_count(), 3);
    s.expire(t0 + ms(100), |_| {});
    assert_eq!(peek_ids(&s, "q"), vec![forever, longer]);
    s.expire(t0 + ms(300), |_| {});
    assert_eq!(peek_ids(&s, "q"), vec![forever]);
    s.expire(t0 + ms(500), |_| {});
    assert!(peek_ids(&s, "other").is_empty(), "the * default");
    assert_eq!(s.totals().expired, 3);
    s.set_default_ttl("q", Duration::ZERO);
    assert_eq!(s.default_ttl("q"), None, "exempt from *");
    assert_eq!(s.default_ttl("other"), Some(ms(500)));
}

#[test]
fn a_published_copy_takes_its_queues_default() {
    let t0 = Instant::now();
    let mut s = store();
    s.set_default_ttl("audit", ms(100));
    assert!(s.bind("orders.>", "audit", t0).is_ok());
    assert!(s.bind("orders.>", "keep", t0).is_ok());
    let mut handed = Vec::new();
    s.publish("orders.eu", b"o", 1, opts(0, 5), 0, 0, t0, &mut handed)
        .unwrap();
    assert_eq!(s.expiring_count(), 1);
    s.expire(t0 + ms(100), |_| {});
    assert!(peek_ids(&s, "audit").is_empty());
    assert_eq!(peek_ids(&s, "keep").len(), 1);
}

#[test]
fn replace_sets_the_time_to_live_anew() {
    let t0 = Instant::now();
    let mut s = store();
    let replace = replacing(b"k");
    let put = |s: &mut Store<u32>, t: Option<Ttl>, now| {
        s.put_job("q", b"v", 1, opts(0, 5), Some(replace), t, now)
            .expect("room")
    };
    let (id, _) = put(&mut s, ttl(100), t0);
    assert_eq!(put(&mut s, ttl(300), t0 + ms(50)), (id, JobPut::Replaced));
    s.expire(t0 + ms(100), |_| {});
    assert_eq!(peek_ids(&s, "q"), vec![id]);
    assert_eq!(put(&mut s, ttl(0), t0 + ms(200)), (id, JobPut::Replaced));
    assert_eq!(s.expiring_count(), 0);
    s.expire(t0 + ms(400), |_| {});
    assert_eq!(peek_ids(&s, "q"), vec![id]);
}

#[test]
fn expiry_memory_comes_back() {
    let t0 = Instant::now();
    let mut s = store();
    s.put("q", b"warm", 4, t0).unwrap();
    get_all(&mut s, "q", t0);
    let empty = s.memory();
    tput(&mut s, "q", b"x", opts(0, 5), ttl(10), t0);
    assert_eq!(s.memory(), empty + HELD_OVERHEAD + 1 + EXPIRY_OVERHEAD);
    s.expire(t0 + ms(10), |_| {});
    assert_eq!(s.memory(), empty);
}

#[test]
fn expiries_survive_a_restart_and_downtime_counts() {
    const WALL: u64 = 1_700_000_000_000;
    let t0 = Instant::now();
    let mut s = store();
    s.enable_log(t0, WALL);
    let soon = tput(&mut s, "q", b"soon", opts(0, 5), ttl(1000), t0);
    let late = tput(&mut s, "q", b"late", opts(0, 5), ttl(60_000), t0);
    let dead = Some(Ttl {
        ttl_ms: 2000,
        dead_letter: true,
    });
    let d = tput(&mut s, "q", b"dead", opts(0, 5), dead, t0);
    // Moved while it had an expiry: it loses it, and that is logged.
    let moved = tput(&mut s, "m", b"moved", opts(0, 5), ttl(1000), t0);
    assert_eq!(s.move_ready("m", "n", 1, t0), 1);
    let mut bytes = Vec::new();
    s.take_log(&mut bytes);
    let mut replay = Replay::new();
    for (_, r) in Scanner::new(&bytes, 0) {
        replay.apply(&r);
    }
    let mut r = store();
    let now = Instant::now();
    // Down for 5 s: `soon` and `dead` expired meanwhile.
    let restored = r.restore(replay.finish(), now, WALL + 5000);
    assert_eq!(restored.expired, 2);
    assert_eq!(peek_ids(&r, "q"), vec![late]);
    assert_eq!(peek_ids(&r, "q.dead"), vec![d]);
    assert_eq!(peek_ids(&r, "n"), vec![moved]);
    assert_eq!(r.expiring_count(), 1);
    assert_eq!(r.next_deadline(), Some(now + ms(55_000)));
    assert!(soon < late);
}

// ---------------------------------------------------------------------------
// Found in review
// ---------------------------------------------------------------------------

#[test]
fn a_handoff_given_back_keeps_its_key_and_expiry() {
    let t0 = Instant::now();
    let mut s = store();
    s.park("q", 7, None, t0);
    let windowed = windowed(b"k", 60_000);
    let (id, _) = s
        .put_job("q", b"x", 1, opts(0, 5), Some(windowed), ttl(500), t0)
        .unwrap();
    let h = s.take_handoff().expect("a handoff");
    assert_eq!(h.id, id);
    // The consumer's socket failed: the message is back, and so are its key and
    // its expiry.
    s.give_back(h, t0);
    assert_eq!(peek_ids(&s, "q"), vec![id]);
    assert_eq!(
        kput(&mut s, "q", b"y", unique(b"k"), t0),
        (id, JobPut::Duplicate(Holder::Ready))
    );
    assert_eq!(s.key_counts().held, 1);
    assert_eq!(s.key_counts().remembered, 0);
    assert_eq!(s.expiring_count(), 1);
    s.expire(t0 + ms(500), |_| {});
    assert!(peek_ids(&s, "q").is_empty());
}

#[test]
fn a_release_the_cap_forgets_at_once_is_logged() {
    const WALL: u64 = 1_700_000_000_000;
    let t0 = Instant::now();
    let mut s = store();
    s.enable_log(t0, WALL);
    s.set_max_remembered_keys(1);
    let long = windowed(b"a", 3_600_000);
    let short = windowed(b"b", 1000);
    kput(&mut s, "q", b"a", long, t0);
    get_all(&mut s, "q", t0);
    kput(&mut s, "q", b"b", short, t0);
    // Moved within its queue: it leaves with its key, which the cap forgets.
    assert_eq!(s.move_ready("q", "q", 1, t0), 1);
    assert_eq!(kput(&mut s, "q", b"c", unique(b"b"), t0).1, STORED);
    let mut r = reopen(&mut s, WALL, 10);
    let now = Instant::now();
    assert_eq!(r.key_counts().held, 1, "only c holds b");
    assert!(matches!(
        kput(&mut r, "q", b"x", unique(b"a"), now).1,
        JobPut::Duplicate(Holder::Gone)
    ));
}

#[test]
fn a_keyed_lease_dead_lettered_by_a_restart_is_remembered_for_its_window() {
    const WALL: u64 = 1_700_000_000_000;
    let t0 = Instant::now();
    let mut s = store();
    s.enable_log(t0, WALL);
    let windowed = windowed(b"k", 60_000);
    let (id, _) = kput(&mut s, "q", b"x", windowed, t0);
    let mut got = Vec::new();
    let last = LeaseSpec {
        lease_ms: 1000,
        max_deliveries: 1,
        detached: false,
    };
    s.lease("q", 1, usize::MAX, last, 1, t0, |l, _, _| got.push(l));
    assert_eq!(got.len(), 1);
    // The server crashes with it in flight: the restart charges that delivery, its
    // last, and dead-letters it.
    let mut journal = Vec::new();
    let mut r = restart(&mut journal, &mut s, WALL + 10);
    let now = Instant::now();
    assert_eq!(peek_ids(&r, "q.dead"), vec![id]);
    assert_eq!(
        kput(&mut r, "q", b"y", unique(b"k"), now),
        (id, JobPut::Duplicate(Holder::Gone))
    );
    // Moved back after another restart, it has no key.
    let mut r2 = restart(&mut journal, &mut r, WALL + 20);
    let now = Instant::now();
    assert_eq!(r2.move_ready("q.dead", "q", 1, now), 1);
    assert_eq!(r2.key_counts().held, 0);
    assert_eq!(
        kput(&mut r2, "q", b"z", unique(b"k"), now).0,
        id,
        "still remembered"
    );
}

/// Appends what `s` logged to `journal`, replays all of it into a fresh store at
/// `wall_ms`, with its log on, as a server restarting on that journal would.
fn restart(journal: &mut Vec<u8>, s: &mut Store<u32>, wall_ms: u64) -> Store<u32> {
    s.take_log(journal);
    let mut replay = Replay::new();
    for (_, r) in Scanner::new(journal, 0) {
        replay.apply(&r);
    }
    let mut fresh = store();
    let t1 = Instant::now();
    fresh.enable_log(t1, wall_ms);
    fresh.restore(replay.finish(), t1, wall_ms);
    fresh
}

#[test]
fn a_receive_before_the_expiry_timer_ran_never_gets_an_expired_message() {
    let t0 = Instant::now();
    let mut s = store();
    let old = tput(&mut s, "q", b"old", opts(0, 5), ttl(100), t0);
    let dead = Some(Ttl {
        ttl_ms: 100,
        dead_letter: true,
    });
    let old2 = tput(&mut s, "q", b"old2", opts(0, 5), dead, t0);
    let fresh = tput(&mut s, "q", b"fresh", opts(0, 5), ttl(10_000), t0);
    assert!(old < old2 && old2 < fresh);
    // No expire() call: the GET itself must see that the first two ran out.
    let late = t0 + ms(100);
    assert_eq!(get_all(&mut s, "q", late), vec![(fresh, b"fresh".to_vec())]);
    assert_eq!(s.totals().expired, 2);
    assert_eq!(peek_ids(&s, "q.dead"), vec![old2]);
    // A parked consumer is not handed one either.
    tput(&mut s, "q", b"old3", opts(0, 5), ttl(100), late);
    s.park("q", 3, None, late + ms(100));
    assert!(s.take_handoff().is_none());
    let mut got = Vec::new();
    s.lease("q", 5, usize::MAX, spec(), 1, late + ms(100), |l, _, _| {
        got.push(l)
    });
    assert!(got.is_empty());
    assert_eq!(s.totals().expired, 3);
}

#[test]
fn a_published_copy_leased_at_once_keeps_its_queues_time_to_live() {
    let t0 = Instant::now();
    let mut s = store();
    s.set_default_ttl("audit", ms(100));
    assert!(s.bind("orders.>", "audit", t0).is_ok());
    s.park_lease("audit", 4, None, spec(), t0);
    let mut handed = Vec::new();
    s.publish("orders.eu", b"o", 1, opts(0, 5), 0, 0, t0, &mut handed)
        .unwrap();
    assert_eq!(handed.len(), 1);
    let lease = handed[0].lease.expect("leased at once");
    assert_eq!(s.expiring_count(), 1);
    assert_eq!(
        s.nack("audit", lease, Nack::default(), t0 + ms(150)),
        SettleResult::Ok
    );
    assert!(
        peek_ids(&s, "audit").is_empty(),
        "expired, not given out again"
    );
    assert_eq!(s.totals().expired, 1);
}

#[test]
fn an_expired_lease_at_a_restart_expires_and_is_not_dead_lettered() {
    const WALL: u64 = 1_700_000_000_000;
    let t0 = Instant::now();
    let mut s = store();
    s.enable_log(t0, WALL);
    tput(&mut s, "q", b"x", opts(0, 5), ttl(100), t0);
    let last = LeaseSpec {
        lease_ms: 1000,
        max_deliveries: 1,
        detached: false,
    };
    let mut got = Vec::new();
    s.lease("q", 1, usize::MAX, last, 1, t0, |l, _, _| got.push(l));
    assert_eq!(got.len(), 1);
    let mut journal = Vec::new();
    let r = restart(&mut journal, &mut s, WALL + 200);
    assert!(peek_ids(&r, "q").is_empty());
    assert!(
        peek_ids(&r, "q.dead").is_empty(),
        "expired, not dead-lettered"
    );
    assert_eq!((r.totals().expired, r.totals().dead_lettered), (1, 0));
}

#[test]
fn a_queue_named_with_zero_is_exempt_from_the_star_default() {
    let t0 = Instant::now();
    let mut s = store();
    s.set_default_ttl("jobs", Duration::ZERO);
    s.set_default_ttl("*", ms(100));
    s.put("jobs", b"kept", 4, t0).unwrap();
    s.put("other", b"gone", 4, t0).unwrap();
    s.expire(t0 + ms(100), |_| {});
    assert_eq!(peek_ids(&s, "jobs").len(), 1);
    assert!(peek_ids(&s, "other").is_empty());
}

/// A message with a 1 s time to live and key `k` remembered for 60 s once it leaves,
/// then a restart `down_ms` after the PUT: the restarted store and the message's id.
fn restart_after_expiry(down_ms: u64) -> (Store<u32>, u64) {
    const WALL: u64 = 1_700_000_000_000;
    let t0 = Instant::now();
    let mut s = store();
    s.enable_log(t0, WALL);
    let key = Some(windowed(b"k", 60_000));
    let (id, _) = s
        .put_job("q", b"x", 1, opts(0, 5), key, ttl(1000), t0)
        .unwrap();
    let mut journal = Vec::new();
    (restart(&mut journal, &mut s, WALL + down_ms), id)
}

#[test]
fn a_key_whose_message_expired_during_downtime_is_remembered_from_the_expiry() {
    // Down for 30 s past the expiry: 29 s of the window are left.
    let (mut r, id) = restart_after_expiry(31_000);
    assert_eq!(r.totals().expired, 1);
    let now = Instant::now();
    assert_eq!(
        kput(&mut r, "q", b"y", unique(b"k"), now),
        (id, JobPut::Duplicate(Holder::Gone))
    );
    // Down for an hour: the window ended long ago. (Unless this machine booted less
    // than an hour ago: the monotonic clock cannot go back that far.)
    let (mut r2, _) = restart_after_expiry(3_600_000);
    let now = Instant::now();
    if now.checked_sub(Duration::from_secs(3600)).is_some() {
        assert_eq!(kput(&mut r2, "q", b"y", unique(b"k"), now).1, STORED);
    }
}
