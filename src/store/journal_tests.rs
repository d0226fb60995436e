//! Unit tests of the store's journal records: whatever the store does, replaying the
//! records it logged gives the same state as replaying a snapshot taken at that
//! moment, and a base snapshot plus the records after it gives the state at the end.
//! Synthetic time in whole milliseconds, so wall-clock conversions are exact.

use super::*;
use crate::journal::replay::{Recovered, Replay};
use crate::journal::scan::{ScanEnd, Scanner};
use crate::test_rng::Rng;

const WALL0: u64 = 1_700_000_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The bindings of a recovered state, as (queue, pattern).
fn bindings(r: &Recovered) -> Vec<(String, String)> {
    r.bindings
        .iter()
        .map(|b| (b.queue.clone(), b.pattern.clone()))
        .collect()
}

fn replay(bytes: &[u8]) -> Recovered {
    let mut replay = Replay::new();
    let mut scanner = Scanner::new(bytes, 0);
    for (_, r) in scanner.by_ref() {
        replay.apply(&r);
    }
    assert_eq!(
        scanner.end(),
        ScanEnd::Clean,
        "the store wrote a bad record"
    );
    replay.finish()
}

/// A message as compared: (id, due_ms, priority, attempt, charged, in_flight, payload,
/// subject).
type Msg = (u64, u64, u8, u32, u16, Option<u16>, Vec<u8>, Option<String>);

/// A recovered state with due times that have passed written as 0 (a snapshot
/// writes "ready now" for them, the log still has the time), and `next_id` left out
/// (the log reserves ids in blocks, a snapshot records the exact next one).
fn normalized(mut r: Recovered, wall_now: u64) -> Vec<(String, Vec<Msg>)> {
    r.queues.sort_by(|a, b| a.name.cmp(&b.name));
    r.queues
        .into_iter()
        .map(|q| {
            let msgs = q
                .messages
                .into_iter()
                .map(|m| {
                    let due = if m.due_ms <= wall_now { 0 } else { m.due_ms };
                    (
                        m.id,
                        due,
                        m.priority,
                        m.attempt,
                        m.charged,
                        m.in_flight,
                        m.payload.to_vec(),
                        m.subject.map(String::from),
                    )
                })
                .collect();
            (q.name, msgs)
        })
        .collect()
}

struct Run {
    s: Store<u32>,
    t0: Instant,
    now: Instant,
    log: Vec<u8>,
    rng: Rng,
    leases: Vec<(String, LeaseRef)>,
}

impl Run {
    fn new(seed: u64) -> Run {
        let t0 = Instant::now();
        let mut s = Store::new(1 << 30, Some(Duration::from_secs(3600)));
        s.enable_log(t0, WALL0);
        Run {
            s,
            t0,
            now: t0,
            log: Vec::new(),
            rng: Rng(seed),
            leases: Vec::new(),
        }
    }

    fn wall(&self) -> u64 {
        WALL0 + (self.now - self.t0).as_millis() as u64
    }

    fn tick(&mut self, by: u64) {
        self.now += ms(by);
        let wall = self.wall();
        self.s.set_log_clock(self.now, wall);
    }

    fn take(&mut self) {
        self.s.take_log(&mut self.log);
    }

    fn snapshot(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.s.snapshot(&mut out);
        out
    }

    /// One random operation.
    fn step(&mut self) {
        const QUEUES: [&str; 3] = ["a", "b", "c"];
        let queue = QUEUES[self.rng.index(3)];
        let now = self.now;
        match self.rng.below(110) {
            0..=24 => {
                let options = PutOptions {
                    delay_ms: if self.rng.below(4) == 0 {
                        self.rng.below(50) as u32
                    } else {
                        0
                    },
                    priority: self.rng.below(10) as u8,
                };
                let payload = vec![self.rng.byte(); self.rng.index(20)];
                if let Ok((_, outcome)) =
                    self.s
                        .put_with(queue, &payload, payload.len(), options, now)
                {
                    match outcome {
                        PutOutcome::Leased(_, lease) => {
                            self.leases.push((queue.to_owned(), lease));
                        }
                        PutOutcome::Handed(_) | PutOutcome::Stored => {}
                    }
                }
            }
            25..=34 => {
                self.s
                    .get(queue, 1 + self.rng.index(3), usize::MAX, now, |_| {});
            }
            35..=54 => {
                let spec = LeaseSpec {
                    lease_ms: 1 + self.rng.below(40) as u32,
                    max_deliveries: [1, 2, 3, NEVER_DEAD][self.rng.index(4)],
                    detached: self.rng.below(3) == 0,
                };
                let owner = self.rng.below(4) as u32;
                let mut got = Vec::new();
                self.s.lease(
                    queue,
                    1 + self.rng.index(4),
                    usize::MAX,
                    spec,
                    owner,
                    now,
                    |l, _, _| got.push(l),
                );
                self.leases
                    .extend(got.into_iter().map(|l| (queue.to_owned(), l)));
            }
            55..=74 if !self.leases.is_empty() => {
                let (q, lease) = self.leases.swap_remove(self.rng.index(self.leases.len()));
                match self.rng.below(4) {
                    0 | 1 => {
                        self.s.ack(&q, lease, now);
                    }
                    2 => {
                        let how = Nack {
                            delay: ms(if self.rng.below(2) == 0 {
                                0
                            } else {
                                self.rng.below(30)
                            }),
                            dead: self.rng.below(5) == 0,
                            no_charge: self.rng.below(4) == 0,
                        };
                        self.s.nack(&q, lease, how, now);
                    }
                    _ => {
                        self.s.touch(&q, lease, self.rng.below(30) as u32, now);
                        self.leases.push((q, lease));
                    }
                }
            }
            75..=79 => {
                let dead = format!("{queue}{DEAD_SUFFIX}");
                let (from, to) = if self.rng.below(2) == 0 {
                    (dead.as_str(), queue)
                } else {
                    (queue, QUEUES[self.rng.index(3)])
                };
                self.s.move_ready(from, to, 1 + self.rng.below(3), now);
            }
            80 => {
                self.s.purge(queue, now);
            }
            81..=84 => {
                self.s.disconnect(self.rng.below(4) as u32, now);
            }
            85..=88 => {
                // A plain GET parks, and a later PUT or timer hands it a message.
                let waiter = 100 + self.rng.below(3) as u32;
                self.s.park(queue, waiter, Some(now + ms(20)), now);
            }
            89..=91 => {
                let spec = LeaseSpec {
                    lease_ms: 10,
                    max_deliveries: 2,
                    detached: false,
                };
                self.s.park_lease(
                    queue,
                    200 + self.rng.below(2) as u32,
                    Some(now + ms(20)),
                    spec,
                    now,
                );
            }
            100..=102 => {
                const PATTERNS: [&str; 4] = [">", "x.*", "x.y", "*.y"];
                let pattern = PATTERNS[self.rng.index(4)];
                if self.rng.below(3) == 0 {
                    self.s.unbind(pattern, queue, now);
                } else {
                    let _ = self.s.bind(pattern, queue, now);
                }
            }
            103..=109 => {
                const SUBJECTS: [&str; 3] = ["x.y", "z.y", "q"];
                let subject = SUBJECTS[self.rng.index(3)];
                let options = PutOptions {
                    delay_ms: if self.rng.below(4) == 0 {
                        self.rng.below(50) as u32
                    } else {
                        0
                    },
                    priority: self.rng.below(10) as u8,
                };
                let payload = vec![self.rng.byte(); self.rng.index(20)];
                let mut handed = Vec::new();
                let published = self.s.publish(
                    subject,
                    &payload,
                    payload.len(),
                    options,
                    0,
                    0,
                    now,
                    &mut handed,
                );
                if published.is_ok() {
                    for d in handed {
                        if let Some(lease) = d.lease {
                            let q = self.s.queue_name_of(d);
                            if let Some(q) = q {
                                self.leases.push((q, lease));
                            }
                        }
                    }
                }
            }
            _ => {
                let by = self.rng.below(15);
                self.tick(by);
                let now = self.now;
                self.s.expire(now, |_| {});
            }
        }
        // Handoffs to parked consumers: most delivered, some given back (a socket
        // that failed).
        while let Some(h) = self.s.take_handoff() {
            if self.rng.below(5) == 0 {
                self.s.give_back(h, self.now);
            } else if let Some(lease) = h.lease {
                let q = h.queue.to_string();
                self.leases.push((q, lease));
            }
        }
    }
}

/// After every few random operations, the records logged since the start replay to
/// the same state as a snapshot taken then.
#[test]
fn the_log_replays_to_what_a_snapshot_holds() {
    for seed in [1u64, 7, 0x5EED, 0xDEAD_BEEF] {
        let mut run = Run::new(seed);
        for step in 0..3_000 {
            run.step();
            if step % 97 == 0 {
                run.take();
                let snap = run.snapshot();
                let wall = run.wall();
                assert_eq!(
                    normalized(replay(&run.log), wall),
                    normalized(replay(&snap), wall),
                    "seed {seed}, step {step}"
                );
                assert_eq!(
                    bindings(&replay(&run.log)),
                    bindings(&replay(&snap)),
                    "seed {seed}, step {step}"
                );
            }
        }
        // The run published: copies with subjects were among what was compared.
        assert!(run.s.totals().routed_copies > 50, "seed {seed}");
        assert!(run.s.binding_count() > 0, "seed {seed}");
    }
}

/// A base snapshot taken part-way, followed by the records logged after it, replays
/// to the state at the end (what start-up loads after a rewrite).
#[test]
fn a_base_plus_later_records_replays_to_the_end_state() {
    for seed in [3u64, 11, 0xABCDEF] {
        let mut run = Run::new(seed);
        let mut bases = Vec::new();
        for step in 0..2_000 {
            run.step();
            if step % 250 == 0 {
                run.take();
                let mut base = run.snapshot();
                let start = run.log.len();
                bases.push((std::mem::take(&mut base), start));
            }
        }
        run.take();
        let wall = run.wall();
        let end_state = replay(&run.snapshot());
        let end_bindings = bindings(&end_state);
        let end = normalized(end_state, wall);
        for (i, (base, start)) in bases.iter().enumerate() {
            let mut bytes = base.clone();
            bytes.extend_from_slice(&run.log[*start..]);
            let got = replay(&bytes);
            assert_eq!(bindings(&got), end_bindings, "seed {seed}, base {i}");
            assert_eq!(normalized(got, wall), end, "seed {seed}, base {i}");
        }
    }
}

/// What a replay recovered, restored into a new store, snapshots back to the same
/// state, with the leases in flight returned (their delivery charged, and
/// dead-lettered when it was the last); new ids come after every id in the log.
#[test]
fn restore_loads_what_was_recovered() {
    for seed in [5u64, 13, 0x0BAD_F00D] {
        let mut run = Run::new(seed);
        for _ in 0..2_000 {
            run.step();
        }
        run.take();
        let wall = run.wall();
        let recovered = replay(&run.log);
        let want_bindings = bindings(&recovered);
        let next_id = recovered.next_id;
        let mut want = normalized(replay(&run.log), wall);
        // In flight at the "crash": ready again, charged, dead-lettered at the limit.
        let mut dead: Vec<(String, Vec<Msg>)> = Vec::new();
        for (name, msgs) in &mut want {
            let mut keep = Vec::new();
            for mut m in std::mem::take(msgs) {
                if let Some(max) = m.5.take() {
                    m.4 += 1;
                    if max != NEVER_DEAD && m.4 >= max {
                        m.4 = 0;
                        dead.push((format!("{name}{DEAD_SUFFIX}"), vec![m]));
                        continue;
                    }
                }
                keep.push(m);
            }
            *msgs = keep;
        }
        for (name, msgs) in dead {
            match want.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.extend(msgs),
                None => want.push((name, msgs)),
            }
        }
        want.retain(|(_, v)| !v.is_empty());
        for (_, v) in &mut want {
            v.sort();
        }
        want.sort();

        let now = Instant::now();
        let mut s = Store::<u32>::new(1 << 30, None);
        s.restore(recovered, now, wall);
        s.enable_log(now, wall);
        let mut snap = Vec::new();
        s.snapshot(&mut snap);
        let snapped = replay(&snap);
        assert_eq!(bindings(&snapped), want_bindings, "seed {seed}");
        let mut got = normalized(snapped, wall);
        got.retain(|(_, v)| !v.is_empty());
        for (_, v) in &mut got {
            v.sort();
        }
        got.sort();
        assert_eq!(got, want, "seed {seed}");
        let (id, _) = s
            .put_with("a", b"x", 1, PutOptions::default(), now)
            .expect("room");
        assert!(id >= next_id, "seed {seed}: new id {id} below {next_id}");
    }
}

/// Start-up keeps the files it loaded: restore, with the log on, records what it
/// changes (the queues under their new numbers, the leases it ended), so that the
/// old records followed by the new ones replay to what the restored store holds.
#[test]
fn restore_with_the_log_on_keeps_the_loaded_files_valid() {
    for seed in [17u64, 23, 0xFACE] {
        let mut run = Run::new(seed);
        for _ in 0..2_000 {
            run.step();
        }
        run.take();
        let wall = run.wall();
        let now = Instant::now();
        let mut s = Store::<u32>::new(1 << 30, None);
        s.enable_log(now, wall);
        s.restore(replay(&run.log), now, wall);
        let mut bytes = run.log.clone();
        s.take_log(&mut bytes);
        let mut snap = Vec::new();
        s.snapshot(&mut snap);
        assert_eq!(
            bindings(&replay(&bytes)),
            bindings(&replay(&snap)),
            "seed {seed}"
        );
        assert_eq!(
            normalized(replay(&bytes), wall),
            normalized(replay(&snap), wall),
            "seed {seed}"
        );
    }
}

/// What PEEK shows of every queue: ids in delivery order.
fn delivery_order(s: &Store<u32>) -> Vec<(String, Vec<u64>)> {
    let mut names: Vec<String> = s.queues.iter().map(|(n, _)| n.to_owned()).collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let mut ids = Vec::new();
            s.peek(&name, usize::MAX, usize::MAX, |l, _, _| ids.push(l.id));
            (name, ids)
        })
        .filter(|(_, ids)| !ids.is_empty())
        .collect()
}

/// A restart keeps the order of delivery exactly: returned messages ahead in id
/// order, then the rest in the order they became ready (put, moved, dead-lettered,
/// or their delay ran out), priority by priority.
#[test]
fn restore_keeps_the_delivery_order() {
    for seed in [29u64, 31, 0xC0FFEE, 0x1234] {
        let mut run = Run::new(seed);
        for _ in 0..2_000 {
            run.step();
        }
        // No lease in flight and no delay run out unseen: both would be placed
        // anew by the restore.
        let now = run.now;
        run.s.return_leases(now);
        run.tick(100);
        let now = run.now;
        while run.s.next_deadline().is_some_and(|at| at <= now) {
            run.s.expire(now, |_| {});
        }
        while run.s.take_handoff().is_some() {}
        run.take();
        let want = delivery_order(&run.s);
        let wall = run.wall();
        let mut s = Store::<u32>::new(1 << 30, None);
        s.restore(replay(&run.log), now, wall);
        assert_eq!(delivery_order(&s), want, "seed {seed}");
    }
}

fn schedule_def(name: &str, spec: &str, queue: &str) -> crate::schedule::Definition {
    crate::schedule::Definition {
        name: name.into(),
        spec_text: spec.into(),
        spec: crate::schedule::Spec::parse(spec).unwrap(),
        target: crate::schedule::Target::Queue(queue.into()),
        priority: 3,
        payload: b"tick".as_slice().into(),
    }
}

/// Schedules through the journal: the log and a snapshot replay to the same
/// schedules, restored with their runs, pause and memory; the run recorded before a
/// crash is not run again.
#[test]
fn schedules_replay_and_restore() {
    let mut run = Run::new(7);
    let s = &mut run.s;
    let wall = WALL0;
    s.define_schedule(schedule_def("tick", "@every 1s", "q"), wall)
        .unwrap();
    s.define_schedule(schedule_def("gone", "@daily", "q"), wall)
        .unwrap();
    s.define_schedule(schedule_def("night", "0 3 * * *", "q"), wall)
        .unwrap();
    assert!(s.pause_schedule("night", true, wall).is_some());
    assert!(s.remove_schedule("gone"));
    let memory = s.memory();
    // Two runs of tick; the second is logged but "crashes" before its message.
    let first = s.take_due_run(wall + 1000).unwrap();
    assert_eq!(
        (first.at_ms, &*first.name, first.misfire),
        (wall + 1000, "tick", false)
    );
    assert!(s.take_due_run(wall + 1999).is_none());
    assert_eq!(s.take_due_run(wall + 2000).unwrap().at_ms, wall + 2000);
    s.schedule_failed("tick");
    run.take();
    let from_log = replay(&run.log);
    let mut snapshot = Vec::new();
    run.s.snapshot(&mut snapshot);
    let from_snapshot = replay(&snapshot);
    assert_eq!(from_log.schedules, from_snapshot.schedules);
    let names: Vec<&str> = from_log.schedules.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["night", "tick"]);

    let mut restored: Store<u32> = Store::new(1 << 30, None);
    let loaded = restored.restore(from_log, run.now, wall + 2500);
    assert_eq!((loaded.schedules, loaded.skipped_schedules.len()), (2, 0));
    assert_eq!(restored.memory(), memory);
    let tick = restored.schedules().get("tick").unwrap();
    assert_eq!(
        (tick.runs, tick.failures, tick.last_ms),
        (2, 1, wall + 2000)
    );
    // The run of +2 s is not run again; the next is +3 s.
    assert_eq!(tick.next_ms, wall + 3000);
    assert!(restored.take_due_run(wall + 2999).is_none());
    assert!(restored.schedules().get("night").unwrap().paused);
    // Down through several runs: one late run, a misfire.
    let late = restored.take_due_run(wall + 9500).unwrap();
    assert_eq!((late.at_ms, late.misfire), (wall + 3000, true));
    assert!(restored.take_due_run(wall + 9500).is_none());
    assert_eq!(restored.next_schedule_due(), Some(wall + 10_000));
}

/// Restores a journal of one SCHEDULE record with this spec, target and flags.
fn restore_one_schedule(spec: &str, target: &str, flags: u8) -> (Store<u32>, Restored) {
    let mut log = Vec::new();
    crate::journal::record::encode(
        &LogRecord::Schedule {
            name: "s",
            spec,
            target,
            flags,
            priority: 5,
            anchor_ms: WALL0,
            runs: Default::default(),
            payload: b"",
        },
        &mut log,
    );
    let mut s: Store<u32> = Store::new(1 << 30, None);
    let loaded = s.restore(replay(&log), Instant::now(), WALL0);
    (s, loaded)
}

/// A journal holding a schedule this build cannot read is loaded without it, and
/// the reason is reported.
#[test]
fn an_unreadable_schedule_is_skipped_on_restore() {
    let (s, loaded) = restore_one_schedule("@fortnightly", "q", 0);
    assert_eq!(loaded.schedules, 0);
    assert!(
        loaded.skipped_schedules[0].contains("unknown macro"),
        "{loaded:?}"
    );
    assert!(s.schedules().is_empty());
    assert_eq!(s.memory(), 0, "nothing charged for it");
}

/// A schedule counts against the memory cap: one that does not fit is refused and
/// changes nothing.
#[test]
fn schedules_count_against_the_memory_cap() {
    let mut s: Store<u32> = Store::new(600, None);
    s.define_schedule(schedule_def("a", "@daily", "q"), WALL0)
        .unwrap();
    let used = s.memory();
    let mut big = schedule_def("b", "@daily", "q");
    big.payload = vec![0; 600].into();
    assert!(s.define_schedule(big, WALL0).is_err());
    assert_eq!(s.memory(), used);
    assert_eq!(s.schedules().len(), 1);
    assert!(s.remove_schedule("a"));
    assert_eq!(s.memory(), 0);
}

/// A schedule whose target this build would refuse (a wildcard subject, an empty
/// queue name) is skipped on restore, with its reason.
#[test]
fn a_schedule_with_a_bad_target_is_skipped_on_restore() {
    let (_, loaded) = restore_one_schedule(
        "@daily",
        "orders.*",
        crate::journal::record::SCHEDULE_SUBJECT,
    );
    assert_eq!(loaded.schedules, 0);
    assert!(
        loaded.skipped_schedules[0].contains("orders.*"),
        "{loaded:?}"
    );
    let (_, loaded) = restore_one_schedule(
        "@daily",
        "orders.eu",
        crate::journal::record::SCHEDULE_SUBJECT,
    );
    assert_eq!(loaded.schedules, 1);
}

/// A run skipped while the journal cannot take records logs nothing and counts a
/// failure; the schedule goes on to its next run time.
#[test]
fn a_skipped_run_logs_nothing() {
    let mut run = Run::new(9);
    run.s
        .define_schedule(schedule_def("t", "@every 1s", "q"), WALL0)
        .unwrap();
    run.take();
    let before = run.log.len();
    assert_eq!(run.s.skip_due_run(WALL0 + 1000), Some(("t".into(), 1)));
    assert!(run.s.skip_due_run(WALL0 + 1000).is_none());
    run.take();
    assert_eq!(run.log.len(), before);
    assert_eq!(run.s.next_schedule_due(), Some(WALL0 + 2000));
    assert_eq!(run.s.schedules().get("t").unwrap().runs, 1);
}
