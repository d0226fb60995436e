use super::*;

const MIN: u64 = 60_000;
/// 2026-12-03T13:00:00Z.
const T0: u64 = 1_796_302_800_000;

fn def(name: &str, spec: &str) -> Definition {
    Definition {
        name: name.into(),
        spec_text: spec.into(),
        spec: Spec::parse(spec).unwrap(),
        target: Target::Queue("jobs".into()),
        priority: 5,
        payload: b"tick".as_slice().into(),
    }
}

/// Runs due at `now`, as (name, run time, misfire).
fn due(s: &mut Schedules, now: u64) -> Vec<(String, u64, bool)> {
    let mut runs = Vec::new();
    while let Some(run) = s.take_due(now) {
        runs.push((run.schedule.def.name.to_string(), run.at_ms, run.misfire));
    }
    runs
}

#[test]
fn t0_is_on_the_hour() {
    assert_eq!(crate::civil::rfc3339(T0), "2026-12-03T13:00:00Z");
}

#[test]
fn an_interval_fires_on_time_under_a_test_clock() {
    let mut s = Schedules::default();
    assert_eq!(s.define(def("tick", "@every 2s"), T0), (true, T0 + 2000));
    assert_eq!(s.next_due(), Some(T0 + 2000));
    assert!(due(&mut s, T0 + 1999).is_empty());
    assert_eq!(due(&mut s, T0 + 2000), [("tick".into(), T0 + 2000, false)]);
    // A run taken a little late keeps to the anchor's grid.
    assert_eq!(due(&mut s, T0 + 4003), [("tick".into(), T0 + 4000, false)]);
    assert_eq!(s.next_due(), Some(T0 + 6000));
    let tick = s.get("tick").unwrap();
    assert_eq!((tick.runs, tick.last_ms, tick.misfires), (2, T0 + 4000, 0));
}

#[test]
fn missed_runs_fire_once_late_then_on_time() {
    let mut s = Schedules::default();
    s.define(def("m", "* * * * *"), T0);
    // Ten run times passed (a restart, a stalled loop): one run, a misfire.
    assert_eq!(
        due(&mut s, T0 + 10 * MIN + 5),
        [("m".into(), T0 + MIN, true)]
    );
    assert_eq!(s.next_due(), Some(T0 + 11 * MIN));
    assert_eq!(
        due(&mut s, T0 + 11 * MIN),
        [("m".into(), T0 + 11 * MIN, false)]
    );
    let m = s.get("m").unwrap();
    assert_eq!((m.runs, m.misfires), (2, 1));
    assert_eq!(s.totals().misfires, 1);
}

#[test]
fn runs_come_in_time_order_across_schedules() {
    let mut s = Schedules::default();
    s.define(def("hourly", "@hourly"), T0);
    s.define(def("quarter", "*/15 * * * *"), T0);
    s.define(def("five", "@every 5m"), T0);
    let mut order = Vec::new();
    let mut now = T0;
    while now <= T0 + 60 * MIN {
        for (name, at, _) in due(&mut s, now) {
            order.push((name, (at - T0) / MIN));
        }
        now += MIN;
    }
    let names: Vec<String> = order.iter().map(|(n, m)| format!("{n}@{m}")).collect();
    assert_eq!(
        names.join(" "),
        "five@5 five@10 five@15 quarter@15 five@20 five@25 five@30 quarter@30 five@35 \
         five@40 five@45 quarter@45 five@50 five@55 five@60 hourly@60 quarter@60"
    );
}

#[test]
fn pause_skips_runs_and_resume_does_not_catch_up() {
    let mut s = Schedules::default();
    s.define(def("p", "* * * * *"), T0);
    assert!(s.set_paused("p", true, T0 + 30_000).unwrap().paused);
    assert_eq!(s.next_due(), None);
    assert!(due(&mut s, T0 + 10 * MIN).is_empty());
    let resumed = s.set_paused("p", false, T0 + 10 * MIN + 30_000).unwrap();
    assert_eq!(resumed.next_ms, T0 + 11 * MIN);
    assert_eq!(
        due(&mut s, T0 + 11 * MIN),
        [("p".into(), T0 + 11 * MIN, false)]
    );
    // Pausing twice, or resuming a running one, changes nothing.
    s.set_paused("p", false, T0 + 11 * MIN + 1);
    assert_eq!(s.next_due(), Some(T0 + 12 * MIN));
    assert!(s.set_paused("nope", true, T0).is_none());
}

#[test]
fn replace_remove_and_memory() {
    let mut s = Schedules::default();
    assert_eq!(s.memory(), 0);
    s.define(def("a", "@daily"), T0);
    let one = s.memory();
    assert_eq!(one, s.get("a").unwrap().memory());
    assert!(one > SCHEDULE_OVERHEAD);
    // Replacing: not new, the new expression, counters from zero, one due entry.
    due(&mut s, T0 + 24 * 60 * MIN);
    let (created, next) = s.define(def("a", "@hourly"), T0 + 24 * 60 * MIN + 1);
    assert!(!created);
    assert_eq!(next, T0 + 25 * 60 * MIN);
    assert_eq!(s.get("a").unwrap().runs, 0);
    assert_eq!(s.due.len(), 1);
    assert_eq!(s.memory(), one - "@daily".len() + "@hourly".len());
    assert!(s.remove("a").is_some());
    assert!(s.remove("a").is_none());
    assert_eq!((s.memory(), s.len(), s.next_due()), (0, 0, None));
}

#[test]
fn a_restored_schedule_never_runs_twice_for_one_time() {
    let mut s = Schedules::default();
    s.define(def("r", "*/5 * * * *"), T0);
    due(&mut s, T0 + 5 * MIN);
    // The state the journal keeps, put back as after a restart at +7 min: the run
    // of +5 is not repeated.
    let saved = s.get("r").unwrap().clone();
    let mut restarted = Schedules::default();
    assert_eq!(restarted.insert(saved.clone()), T0 + 10 * MIN);
    assert!(due(&mut restarted, T0 + 7 * MIN).is_empty());
    // Down through two run times: one late run, then on time.
    let mut late = Schedules::default();
    late.insert(saved);
    assert_eq!(
        due(&mut late, T0 + 17 * MIN),
        [("r".into(), T0 + 10 * MIN, true)]
    );
    assert_eq!(late.next_due(), Some(T0 + 20 * MIN));
}

#[test]
fn ten_thousand_schedules_cost_one_lookup_while_idle() {
    let mut s = Schedules::default();
    for i in 0..10_000 {
        s.define(def(&format!("s{i:05}"), "@every 1h"), T0 + i);
    }
    assert_eq!(s.next_due(), Some(T0 + 3_600_000));
    assert!(s.take_due(T0 + 3_599_999).is_none());
    assert_eq!(due(&mut s, T0 + 3_600_000 + 9_999).len(), 10_000);
    assert_eq!(s.totals().runs, 10_000);
}

#[test]
fn a_run_more_than_a_second_late_is_a_misfire() {
    let mut s = Schedules::default();
    s.define(def("h", "@hourly"), T0 - 1);
    // Taken a little late (a busy loop turn): on time.
    assert_eq!(
        due(&mut s, T0 + MISFIRE_AFTER_MS),
        [("h".into(), T0, false)]
    );
    // The 14:00 run taken at 14:30 (the server was down through it): a misfire,
    // though no second run time has passed.
    assert_eq!(
        due(&mut s, T0 + 90 * MIN),
        [("h".into(), T0 + 60 * MIN, true)]
    );
    assert_eq!(s.get("h").unwrap().misfires, 1);
}

#[test]
fn resuming_after_the_clock_went_back_does_not_run_a_time_again() {
    let mut s = Schedules::default();
    s.define(def("d", "@hourly"), T0 - 1);
    assert_eq!(due(&mut s, T0), [("d".into(), T0, false)]);
    s.set_paused("d", true, T0 + 1);
    // The wall clock is set back half an hour, then the schedule resumed.
    let resumed = s.set_paused("d", false, T0 - 30 * MIN).unwrap();
    assert_eq!(resumed.next_ms, T0 + 60 * MIN);
}

#[test]
fn counters_from_the_journal_saturate() {
    let mut s = Schedules::default();
    s.define(def("x", "@every 1s"), T0);
    let mut restored = s.get("x").unwrap().clone();
    restored.runs = u64::MAX;
    restored.misfires = u64::MAX;
    restored.failures = u64::MAX;
    let mut s = Schedules::default();
    s.insert(restored);
    assert_eq!(due(&mut s, T0 + 60_000).len(), 1);
    s.count_failure("x");
    let x = s.get("x").unwrap();
    assert_eq!(
        (x.runs, x.misfires, x.failures),
        (u64::MAX, u64::MAX, u64::MAX)
    );
}
