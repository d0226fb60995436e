//! Unit tests of bindings and publishing: one copy per bound queue, a payload shared
//! by its copies, all or nothing against the cap, copies as independent messages.

use super::*;
use crate::store::bodies::BODY_OVERHEAD;
use crate::store::{LeaseSpec, Nack, PutOutcome, Store};

const MIB: usize = 1 << 20;

fn spec(lease_ms: u32) -> LeaseSpec {
    LeaseSpec {
        lease_ms,
        max_deliveries: 2,
        detached: false,
    }
}

fn store() -> Store<u32> {
    Store::new(16 * MIB, Some(Duration::from_secs(60)))
}

fn publish(s: &mut Store<u32>, subject: &str, payload: &[u8], now: Instant) -> Published {
    let mut handed = Vec::new();
    let p = s
        .publish(
            subject,
            payload,
            payload.len(),
            PutOptions::default(),
            0,
            0,
            now,
            &mut handed,
        )
        .expect("room");
    assert!(handed.is_empty(), "nobody waits");
    p
}

fn get_all(s: &mut Store<u32>, queue: &str, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    s.get(queue, usize::MAX, usize::MAX, now, |p| out.push(p.to_vec()));
    out
}

/// Memory is the sum of the queues' figures plus what lives outside them, and
/// message and byte counts agree with the queues'.
fn check(s: &Store<u32>, now: Instant) {
    let (mut memory, mut messages, mut bytes) = (0, 0, 0);
    for (_, info) in s.queue_infos(now) {
        memory += info.memory as usize;
        messages += info.messages as usize;
        bytes += info.bytes as usize;
    }
    assert_eq!(s.memory(), memory + s.memory_outside_queues());
    assert_eq!(s.message_count(), messages);
    assert_eq!(s.bytes(), bytes);
}

/// A queue bound by two matching patterns gets one copy; two queues get two; a
/// subject nobody matches is counted, and is not an error.
#[test]
fn one_copy_per_queue() {
    let now = Instant::now();
    let mut s = store();
    assert_eq!(s.bind("orders.*.created", "audit", now), Ok(true));
    assert_eq!(s.bind("orders.>", "audit", now), Ok(true));
    assert_eq!(s.bind("orders.>", "audit", now), Ok(false), "already bound");
    assert_eq!(s.bind("orders.eu.*", "mail", now), Ok(true));
    assert_eq!(s.binding_count(), 3);
    let p = publish(&mut s, "orders.eu.created", b"o1", now);
    assert_eq!(p.queues, 2);
    assert_eq!(get_all(&mut s, "audit", now), vec![b"o1".to_vec()]);
    assert_eq!(get_all(&mut s, "mail", now), vec![b"o1".to_vec()]);
    assert_eq!(publish(&mut s, "orders.us.shipped", b"o2", now).queues, 1);
    assert_eq!(publish(&mut s, "invoices.eu", b"x", now).queues, 0);
    assert_eq!(s.totals().routed_copies, 3);
    check(&s, now);
}

/// A publish to 100 queues stores its payload once: after the queues' first chunks
/// exist, another 1 KiB publish costs one shared body, whatever the number of copies.
#[test]
fn copies_share_one_payload() {
    let now = Instant::now();
    let mut s = store();
    for i in 0..100 {
        s.bind("metrics.>", &format!("q{i}"), now).unwrap();
    }
    let payload = vec![7u8; 1024];
    let before = s.memory();
    publish(&mut s, "metrics.cpu", &payload, now);
    let first = s.memory() - before;
    // One body, plus each queue's first (256-byte) chunk.
    assert!(first <= 1024 + BODY_OVERHEAD + 20 + 100 * 256, "{first}");
    let before = s.memory();
    publish(&mut s, "metrics.cpu", &payload, now);
    let second = s.memory() - before;
    assert_eq!(second, Bodies::cost(1024, "metrics.cpu".len()));
    assert_eq!(s.bytes(), 2 * 100 * 1024, "each copy counts its payload");
    check(&s, now);
    for i in 0..100 {
        let got = get_all(&mut s, &format!("q{i}"), now);
        assert_eq!(got, vec![payload.clone(), payload.clone()]);
    }
    assert_eq!(s.bodies.len(), 0, "freed with the last copy");
    check(&s, now);
}

/// Over the cap, a publish to 1,000 queues stores nothing anywhere.
#[test]
fn all_or_nothing_against_the_cap() {
    let now = Instant::now();
    let mut s: Store<u32> = Store::new(600_000, None);
    for i in 0..1000 {
        s.bind("a.b", &format!("q{i:04}"), now).unwrap();
    }
    // Fill the first chunk of every queue with small messages, leaving the cap
    // just short of what one more publish needs.
    let mut n = 0;
    let mut handed = Vec::new();
    let refused = loop {
        match s.publish(
            "a.b",
            &[1; 200],
            200,
            PutOptions::default(),
            0,
            0,
            now,
            &mut handed,
        ) {
            Ok(p) => assert_eq!(p.queues, 1000),
            Err(full) => break full,
        }
        n += 1;
        assert!(n < 10_000);
    };
    assert!(refused.used <= refused.limit);
    let memory = s.memory();
    let messages = s.message_count();
    assert!(
        s.publish(
            "a.b",
            &[1; 200],
            200,
            PutOptions::default(),
            0,
            0,
            now,
            &mut handed
        )
        .is_err()
    );
    assert_eq!((s.memory(), s.message_count()), (memory, messages));
    for i in 0..1000 {
        let info = s.queue_info(&format!("q{i:04}"), now).unwrap();
        assert_eq!(
            info.messages, n,
            "queue {i} got no copy of the refused ones"
        );
    }
    assert_eq!(s.totals().rejected_full, 2);
    check(&s, now);
}

/// A bound queue is not idle-expired; once unbound it is, as any other.
#[test]
fn bound_queue_survives_idle_expiry_until_unbound() {
    let now = Instant::now();
    let mut s = store();
    s.bind("x.*", "kept", now).unwrap();
    let later = now + Duration::from_secs(3600);
    s.expire(later, |_| {});
    assert!(s.queue_info("kept", later).is_some());
    assert!(!s.unbind("x.y", "kept", later), "no such binding");
    assert!(s.unbind("x.*", "kept", later));
    assert_eq!(s.binding_count(), 0);
    let much_later = later + Duration::from_secs(61);
    s.expire(much_later, |_| {});
    assert!(s.queue_info("kept", much_later).is_none());
    assert_eq!(s.memory(), 0, "queue and binding released");
}

/// Each copy is its own message: leased, acked, nacked and dead-lettered on its
/// own, with the shared payload intact until the last copy goes.
#[test]
fn copies_are_independent_messages() {
    let now = Instant::now();
    let mut s = store();
    for q in ["a", "b", "c"] {
        s.bind("job", q, now).unwrap();
    }
    let base = s.memory();
    let p = publish(&mut s, "job", b"payload", now);
    assert_eq!(p.queues, 3);
    let mut got = Vec::new();
    s.lease("a", 1, usize::MAX, spec(1000), 1, now, |l, p, m| {
        got.push((l, p.to_vec(), m.map(|m| (m.subject.to_owned(), m.reply_to))));
    });
    let (la, payload, meta) = got.pop().unwrap();
    assert_eq!(payload, b"payload");
    assert_eq!(meta, Some(("job".to_owned(), 0)));
    assert_eq!(s.ack("a", la, now), crate::protocol::SettleResult::Ok);
    let mut lb = None;
    s.lease("b", 1, usize::MAX, spec(1000), 1, now, |l, _, _| {
        lb = Some(l)
    });
    let nack = Nack {
        dead: true,
        ..Nack::default()
    };
    s.nack("b", lb.unwrap(), nack, now);
    check(&s, now);
    assert_eq!(get_all(&mut s, "b.dead", now), vec![b"payload".to_vec()]);
    assert_eq!(get_all(&mut s, "c", now), vec![b"payload".to_vec()]);
    assert_eq!(s.bodies.len(), 0);
    // What stays: the dead-letter queue, and the first chunk each queue keeps for
    // reuse once drained.
    assert_eq!(s.memory() - base, QUEUE_OVERHEAD + "b.dead".len() + 3 * 256);
    check(&s, now);
}

/// A publish asking for a confirmation hears of each copy once it is settled:
/// acked or taken counts, dead-lettered or purged fails.
#[test]
fn settled_copies_are_reported() {
    let now = Instant::now();
    let mut s = store();
    for q in ["a", "b", "c", "d"] {
        s.bind("e", q, now).unwrap();
    }
    let mut handed = Vec::new();
    let p = s
        .publish("e", b"x", 1, PutOptions::default(), 0, 42, now, &mut handed)
        .unwrap();
    let ids: Vec<u64> = (p.first_id..p.first_id + 4).collect();
    let mut la = None;
    s.lease("a", 1, usize::MAX, spec(1000), 1, now, |l, _, _| {
        la = Some(l)
    });
    s.ack("a", la.unwrap(), now);
    get_all(&mut s, "b", now);
    let mut lc = None;
    s.lease("c", 1, usize::MAX, spec(1000), 1, now, |l, _, _| {
        lc = Some(l)
    });
    s.nack(
        "c",
        lc.unwrap(),
        Nack {
            dead: true,
            ..Nack::default()
        },
        now,
    );
    s.purge("d", now);
    let seen: Vec<_> = s.take_confirms().collect();
    assert_eq!(
        seen,
        vec![
            (42, ids[0], true),
            (42, ids[1], true),
            (42, ids[2], false),
            (42, ids[3], false),
        ]
    );
    // The dead letter taken later is reported again; the caller counts a copy once.
    get_all(&mut s, "c.dead", now);
    assert_eq!(
        s.take_confirms().collect::<Vec<_>>(),
        vec![(42, ids[2], true)]
    );
    assert_eq!(s.bodies.len(), 0);
    check(&s, now);
}

/// Copies go straight to consumers parked on their queues: a plain GET takes it
/// (confirmed at once), a LEASE holds it in flight; the others are stored.
#[test]
fn copies_handed_to_parked_consumers() {
    let now = Instant::now();
    let mut s = store();
    for q in ["g", "l", "s"] {
        s.bind("t", q, now).unwrap();
    }
    s.park("g", 7, None, now);
    s.park_lease("l", 8, None, spec(1000), now);
    let mut handed = Vec::new();
    let p = s
        .publish("t", b"m", 1, PutOptions::default(), 0, 5, now, &mut handed)
        .unwrap();
    assert_eq!(p.queues, 3);
    assert_eq!(handed.len(), 2);
    assert_eq!((handed[0].waiter, handed[0].lease), (7, None));
    let lease = handed[1].lease.expect("leased");
    assert_eq!(handed[1].waiter, 8);
    assert_eq!(s.payload(lease.id), Some(&b"m"[..]));
    assert!(
        s.take_confirms().next().is_none(),
        "written by the caller first"
    );
    s.confirm_taken(5, handed[0].id);
    assert_eq!(
        s.take_confirms().collect::<Vec<_>>(),
        vec![(5, p.first_id, true)]
    );
    assert_eq!(s.in_flight_count(), 1);
    assert_eq!(s.message_count(), 2);
    check(&s, now);
    s.ack("l", lease, now);
    assert_eq!(get_all(&mut s, "s", now), vec![b"m".to_vec()]);
    assert_eq!(s.bodies.len(), 0);
    check(&s, now);
}

/// A delayed publish delays every copy; each becomes ready at its time.
#[test]
fn delayed_publish() {
    let now = Instant::now();
    let mut s = store();
    s.bind("d", "q1", now).unwrap();
    s.bind("d", "q2", now).unwrap();
    let mut handed = Vec::new();
    let options = PutOptions {
        delay_ms: 500,
        priority: 3,
    };
    s.publish("d", b"later", 5, options, 0, 0, now, &mut handed)
        .unwrap();
    assert_eq!(s.delayed_count(), 2);
    assert!(get_all(&mut s, "q1", now).is_empty());
    let due = now + Duration::from_millis(500);
    s.expire(due, |_| {});
    assert_eq!(get_all(&mut s, "q1", due), vec![b"later".to_vec()]);
    assert_eq!(get_all(&mut s, "q2", due), vec![b"later".to_vec()]);
    assert_eq!(s.bodies.len(), 0);
    check(&s, due);
}

/// MOVE and PURGE handle shared copies: a moved copy keeps its payload, a purged
/// one releases it.
#[test]
fn move_and_purge_of_copies() {
    let now = Instant::now();
    let mut s = store();
    s.bind("m", "src", now).unwrap();
    s.bind("m", "other", now).unwrap();
    publish(&mut s, "m", b"one", now);
    publish(&mut s, "m", b"two", now);
    assert_eq!(s.move_ready("src", "dst", 10, now), 2);
    check(&s, now);
    assert_eq!(s.purge("other", now), 2);
    assert_eq!(s.bodies.len(), 2, "the moved copies still hold them");
    let mut peeked = Vec::new();
    s.peek("dst", 10, usize::MAX, |_, p, m| {
        peeked.push((p.to_vec(), m.map(|m| m.subject.to_owned())));
    });
    assert_eq!(
        peeked,
        vec![
            (b"one".to_vec(), Some("m".to_owned())),
            (b"two".to_vec(), Some("m".to_owned()))
        ]
    );
    assert_eq!(s.purge("dst", now), 2);
    assert_eq!(s.bodies.len(), 0);
    check(&s, now);
}

/// Charges for subscriptions count against the cap and come back.
#[test]
fn charges_count_against_the_cap() {
    let now = Instant::now();
    let mut s: Store<u32> = Store::new(1000, None);
    assert!(s.charge(900).is_ok());
    assert!(s.charge(200).is_err());
    assert!(s.put("q", b"x", 1, now).is_err());
    s.uncharge(900);
    assert_eq!(s.memory(), 0);
    assert!(matches!(s.put("q", b"x", 1, now), Ok(PutOutcome::Stored)));
}

/// With the journal on, a publish writes its payload once, whatever the number of
/// copies, and so does a snapshot; replayed and restored, the copies share one body
/// again.
#[test]
fn the_journal_holds_a_shared_payload_once() {
    let now = Instant::now();
    let mut s = store();
    s.enable_log(now, 1_700_000_000_000);
    for i in 0..100 {
        s.bind(">", &format!("q{i:03}"), now).unwrap();
    }
    let mut log = Vec::new();
    s.take_log(&mut log);
    let before = log.len();
    let payload = vec![5u8; 100 << 10];
    for i in 0..10 {
        let mut payload = payload.clone();
        payload[0] = i;
        publish(&mut s, "metrics.cpu", &payload, now);
    }
    s.take_log(&mut log);
    let written = log.len() - before;
    // Ten payloads, and about 40 bytes of record per copy.
    assert!(
        written < 10 * (payload.len() + 100) + 1000 * 60,
        "{written}"
    );
    let mut snap = Vec::new();
    s.snapshot(&mut snap);
    assert!(
        snap.len() < 10 * (payload.len() + 100) + 1000 * 60 + 100 * 300,
        "{}",
        snap.len()
    );
    // Replayed and restored: 1,000 copies, ten bodies.
    let mut replay = crate::journal::replay::Replay::new();
    for (_, r) in crate::journal::scan::Scanner::new(&snap, 0) {
        replay.apply(&r);
    }
    let mut t: Store<u32> = store();
    t.restore(replay.finish(), now, 1_700_000_000_000);
    assert_eq!(t.message_count(), 1000);
    assert_eq!(t.bodies.len(), 10);
    assert!(t.memory() < 10 * payload.len() + 200_000, "{}", t.memory());
    check(&t, now);
}

/// A copy handed to a parked plain GET after its publish (here by a MOVE) counts for
/// its confirmation only once the caller has written it; one given back keeps its
/// confirmation, and counts when it is taken later.
#[test]
fn handed_copies_keep_their_confirmation() {
    let now = Instant::now();
    let mut s = store();
    s.bind("c", "src", now).unwrap();
    let mut handed = Vec::new();
    let p = s
        .publish("c", b"x", 1, PutOptions::default(), 0, 9, now, &mut handed)
        .unwrap();
    s.park("dst", 7, None, now);
    assert_eq!(s.move_ready("src", "dst", 1, now), 1);
    let h = s.take_handoff().expect("handed to the parked GET");
    assert!(s.take_confirms().next().is_none(), "not written yet");
    // The write failed: back in its queue, still a copy of a confirmed publish.
    s.give_back(h, now);
    assert!(s.take_confirms().next().is_none());
    assert_eq!(get_all(&mut s, "dst", now), vec![b"x".to_vec()]);
    assert_eq!(
        s.take_confirms().collect::<Vec<_>>(),
        vec![(9, p.first_id, true)]
    );
    check(&s, now);
}
