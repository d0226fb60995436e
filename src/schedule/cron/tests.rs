use super::*;
use crate::civil::{Date, days_from_civil};
use crate::test_rng::Rng;

/// `2026-12-03T13:07:00Z`-style text to milliseconds.
fn ms(text: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| text[r].parse::<u32>().unwrap();
    let days = days_from_civil(Date {
        year: i64::from(n(0..4)),
        month: n(5..7),
        day: n(8..10),
    });
    let secs = days * 86_400 + i64::from(n(11..13) * 3600 + n(14..16) * 60 + n(17..19));
    let millis = if text.len() > 20 { n(20..23) } else { 0 };
    secs as u64 * 1000 + u64::from(millis)
}

fn next(spec: &str, after: &str) -> String {
    let spec = Spec::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    civil::rfc3339(spec.next_after(ms(after), 0).expect("fires"))
}

/// Expressions and their next run after a time: month ends, leap years, the
/// day-of-month/day-of-week rule, steps, names, zones and macros.
#[test]
fn next_run_table() {
    let table = [
        (
            "*/15 * * * *",
            "2026-12-03T13:07:00Z",
            "2026-12-03T13:15:00Z",
        ),
        (
            "*/15 * * * *",
            "2026-12-03T13:45:00Z",
            "2026-12-03T14:00:00Z",
        ),
        ("* * * * *", "2026-12-03T13:07:30Z", "2026-12-03T13:08:00Z"),
        ("* * * * *", "2026-12-03T13:07:00Z", "2026-12-03T13:08:00Z"),
        (
            "0 9 * * 1-5",
            "2026-12-04T09:00:00Z",
            "2026-12-07T09:00:00Z",
        ),
        (
            "0 9 * * MON-FRI",
            "2026-12-05T10:00:00Z",
            "2026-12-07T09:00:00Z",
        ),
        ("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
        ("0 0 29 2 *", "2097-01-01T00:00:00Z", "2104-02-29T00:00:00Z"),
        ("0 0 29 2 *", "2000-01-01T00:00:00Z", "2000-02-29T00:00:00Z"),
        ("0 0 31 * *", "2026-04-15T00:00:00Z", "2026-05-31T00:00:00Z"),
        (
            "0 12 30 * *",
            "2027-01-31T00:00:00Z",
            "2027-03-30T12:00:00Z",
        ),
        ("30 2 1 * *", "2026-12-31T23:59:00Z", "2027-01-01T02:30:00Z"),
        (
            "59 23 31 12 *",
            "2026-12-31T23:59:00Z",
            "2027-12-31T23:59:00Z",
        ),
        // Both day fields restricted: either matches (Friday the 4th comes first).
        (
            "0 0 1,15 * 5",
            "2026-12-02T00:00:00Z",
            "2026-12-04T00:00:00Z",
        ),
        ("0 0 13 * 5", "2026-12-05T00:00:00Z", "2026-12-11T00:00:00Z"),
        // Day of month restricted, day of week '*': only the date counts.
        ("0 0 13 * *", "2026-12-05T00:00:00Z", "2026-12-13T00:00:00Z"),
        // A stepped star restricts: */2 is the odd days only, and ANDs nothing.
        (
            "0 0 */2 * *",
            "2026-12-31T00:00:00Z",
            "2027-01-01T00:00:00Z",
        ),
        (
            "0 0 */2 * 1",
            "2026-12-02T00:00:00Z",
            "2026-12-03T00:00:00Z",
        ),
        ("0 0 * * 7", "2026-12-03T00:00:00Z", "2026-12-06T00:00:00Z"),
        ("0 0 * * 0", "2026-12-03T00:00:00Z", "2026-12-06T00:00:00Z"),
        (
            "5 4 * * sun",
            "2026-12-06T04:05:00Z",
            "2026-12-13T04:05:00Z",
        ),
        (
            "0 0 1 jan-jun/2 *",
            "2026-01-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
        ),
        (
            "0 0 1 */4 *",
            "2026-06-01T00:00:00Z",
            "2026-09-01T00:00:00Z",
        ),
        (
            "10-20/5 8 * * *",
            "2026-12-03T08:15:00Z",
            "2026-12-03T08:20:00Z",
        ),
        (
            "10/20 * * * *",
            "2026-12-03T08:50:00Z",
            "2026-12-03T09:10:00Z",
        ),
        ("@hourly", "2026-12-03T13:00:00Z", "2026-12-03T14:00:00Z"),
        (
            "@hourly",
            "2026-12-03T12:59:59.999Z",
            "2026-12-03T13:00:00Z",
        ),
        ("@daily", "2026-12-03T13:00:00Z", "2026-12-04T00:00:00Z"),
        ("@midnight", "2026-12-31T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("@weekly", "2026-12-03T13:00:00Z", "2026-12-06T00:00:00Z"),
        ("@monthly", "2027-02-15T00:00:00Z", "2027-03-01T00:00:00Z"),
        ("@yearly", "2026-12-03T13:00:00Z", "2027-01-01T00:00:00Z"),
        ("@annually", "2026-12-03T13:00:00Z", "2027-01-01T00:00:00Z"),
        // Zones: the fields are read on the zone's clock.
        (
            "TZ=+02:00 0 9 * * *",
            "2026-12-03T06:00:00Z",
            "2026-12-03T07:00:00Z",
        ),
        (
            "TZ=+02:00 0 9 * * *",
            "2026-12-03T07:00:00Z",
            "2026-12-04T07:00:00Z",
        ),
        (
            "TZ=-05:30 0 0 * * *",
            "2026-12-03T00:00:00Z",
            "2026-12-03T05:30:00Z",
        ),
        (
            "CRON_TZ=+1400 0 0 1 1 *",
            "2026-06-01T00:00:00Z",
            "2026-12-31T10:00:00Z",
        ),
        (
            "TZ=-12 0 0 1 1 *",
            "2026-06-01T00:00:00Z",
            "2027-01-01T12:00:00Z",
        ),
        (
            "TZ=UTC @daily",
            "2026-12-03T13:00:00Z",
            "2026-12-04T00:00:00Z",
        ),
        (
            "TZ=+01:00 @daily",
            "2026-12-03T13:00:00Z",
            "2026-12-03T23:00:00Z",
        ),
        (
            "  0  0  *  *  *  ",
            "2026-12-03T13:00:00Z",
            "2026-12-04T00:00:00Z",
        ),
    ];
    for (spec, after, expected) in table {
        assert_eq!(next(spec, after), expected, "{spec} after {after}");
    }
}

#[test]
fn every_runs_on_whole_intervals_from_its_anchor() {
    let spec = Spec::parse("@every 2s").unwrap();
    assert_eq!(spec.every_ms(), Some(2000));
    assert_eq!(spec.next_after(0, 1000), Some(3000));
    assert_eq!(spec.next_after(1000, 1000), Some(3000));
    assert_eq!(spec.next_after(2999, 1000), Some(3000));
    assert_eq!(spec.next_after(3000, 1000), Some(5000));
    // After downtime: the next whole interval, not every missed one.
    assert_eq!(spec.next_after(1_000_000, 1000), Some(1_001_000));
    for (text, interval) in [
        ("@every 100ms", 100),
        ("@every 90s", 90_000),
        ("@every 1h30m", 5_400_000),
        ("@every 1d", 86_400_000),
        ("@every 1m500ms", 60_500),
        ("@every 366d", 366 * 86_400_000),
    ] {
        assert_eq!(
            Spec::parse(text).unwrap().every_ms(),
            Some(interval),
            "{text}"
        );
    }
    assert_eq!(Spec::parse("@daily").unwrap().every_ms(), None);
    // Nothing past the year 9999.
    assert_eq!(spec.next_after(LAST_MS, 0), None);
    assert_eq!(Spec::parse("@daily").unwrap().next_after(LAST_MS, 0), None);
    assert_eq!(Spec::parse("@daily").unwrap().next_after(u64::MAX, 0), None);
}

#[test]
fn bad_expressions_say_what_is_wrong() {
    let cases = [
        ("61 * * * *", "minute field"),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day-of-month field"),
        ("* * * 13 *", "month field"),
        ("* * * * 8", "day-of-week field"),
        ("* * * FOO *", "JAN..DEC"),
        ("* * * *", "has 4 fields"),
        ("* * * * * *", "has 6 fields"),
        ("", "has 0 fields"),
        ("@often", "unknown macro"),
        ("0 0 30 2 *", "never fire"),
        ("0 0 31 4,6,9,11 *", "never fire"),
        ("TZ=Europe/Paris 0 0 * * *", "named zones"),
        ("TZ=+15:00 0 0 * * *", "fixed offset"),
        ("TZ=+1:00 0 0 * * *", "fixed offset"),
        ("TZ=+02:00 @every 1s", "time zone means nothing"),
        ("TZ=UTC @every 1s", "time zone means nothing"),
        ("@every 10", "number and a unit"),
        ("@every", "give a duration"),
        ("@every 50ms", "shortest interval"),
        ("@every 367d", "longest interval"),
        ("@every 99999999999999999999d", "number and a unit"),
        ("@every 9999999999999999d", "too long"),
        ("*/0 * * * *", "step"),
        ("*/61 * * * *", "step"),
        ("5-1 * * * *", "backwards"),
        ("0 22-2 * * *", "backwards"),
        ("1,,2 * * * *", "minute field"),
        ("- * * * *", "minute field"),
        ("*/ * * * *", "step"),
    ];
    for (text, needle) in cases {
        let error = Spec::parse(text).expect_err(text);
        assert!(error.contains(needle), "{text:?}: {error}");
    }
}

/// The first matching minute after `after`, one minute at a time: the definition
/// that `next_after` must agree with.
fn brute_force(fields: &Fields, after_ms: i64) -> i64 {
    let mut minute = after_ms.div_euclid(MINUTE_MS) + 1;
    loop {
        let day = minute.div_euclid(1440);
        let of_day = minute.rem_euclid(1440) as u32;
        if fields.day_matches(day)
            && fields.hours & (1 << (of_day / 60)) != 0
            && fields.minutes & (1 << (of_day % 60)) != 0
        {
            return minute * MINUTE_MS;
        }
        minute += 1;
    }
}

/// Random expressions from random times between 1999 and 2101 agree with the
/// minute-by-minute search.
#[test]
fn agrees_with_a_minute_by_minute_search() {
    let mut rng = Rng(0x5eed_c0de);
    let pick = |rng: &mut Rng, min: u64, max: u64| -> String {
        match rng.below(5) {
            0 => "*".to_owned(),
            1 => (min + rng.below(max - min + 1)).to_string(),
            2 => {
                let a = min + rng.below(max - min + 1);
                let b = a + rng.below(max - a + 1);
                format!("{a}-{b}")
            }
            3 => format!("*/{}", 1 + rng.below(max.min(12))),
            _ => {
                let a = min + rng.below(max - min + 1);
                let b = min + rng.below(max - min + 1);
                format!("{a},{b}")
            }
        }
    };
    let start = ms("1999-01-01T00:00:00Z");
    let span = ms("2101-01-01T00:00:00Z") - start;
    let mut checked = 0;
    while checked < 400 {
        let text = format!(
            "{} {} {} {} {}",
            pick(&mut rng, 0, 59),
            pick(&mut rng, 0, 23),
            pick(&mut rng, 1, 31),
            // Mostly every month, so that a search stays short.
            if rng.below(4) == 0 {
                pick(&mut rng, 1, 12)
            } else {
                "*".to_owned()
            },
            pick(&mut rng, 0, 7),
        );
        let Ok(spec) = Spec::parse(&text) else {
            continue; // a day that never exists
        };
        let Timing::Cron(fields) = &spec.timing else {
            unreachable!()
        };
        let after = start + rng.below(span);
        let expected = brute_force(fields, after as i64) as u64;
        assert_eq!(
            spec.next_after(after, 0),
            Some(expected),
            "{text} after {}",
            civil::rfc3339(after)
        );
        checked += 1;
    }
}
