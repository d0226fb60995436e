//! Calendar arithmetic on UTC: days since 1970-01-01 to and from a year, month and day
//! (the proleptic Gregorian calendar), weekdays, and RFC 3339 timestamps. Used by the
//! log's timestamps and by cron schedules; small enough that no date crate is needed.
//!
//! The two conversions are Howard Hinnant's `days_from_civil` and `civil_from_days`
//! algorithms, exact for every day a `u64` of milliseconds since 1970 can name.

/// A day of the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// The year, e.g. 2026.
    pub year: i64,
    /// 1..=12.
    pub month: u32,
    /// 1..=31.
    pub day: u32,
}

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// Days since 1970-01-01 (negative before it) of `date`.
pub fn days_from_civil(date: Date) -> i64 {
    let y = if date.month <= 2 {
        date.year - 1
    } else {
        date.year
    };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let m = i64::from(date.month);
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(date.day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Date { year, month, day }
}

/// Day of the week of the day `days` after 1970-01-01: 0 = Sunday .. 6 = Saturday
/// (1970-01-01 was a Thursday).
pub fn weekday(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

/// Whether `year` has a 29 February.
pub fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` of `year`.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// The wall clock now, in milliseconds since 1970-01-01T00:00:00Z (0 for a clock set
/// before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `ms` milliseconds after 1970-01-01T00:00:00Z as RFC 3339 to the second, e.g.
/// `2026-12-03T13:04:00Z`.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let date = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        date.year,
        date.month,
        date.day,
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_day_of_four_centuries() {
        // 1900-03-01 .. 2300: every leap-year rule (4, 100, 400) is crossed.
        let start = days_from_civil(Date {
            year: 1900,
            month: 3,
            day: 1,
        });
        let mut expected = Date {
            year: 1900,
            month: 3,
            day: 1,
        };
        for days in start..start + 146_097 {
            assert_eq!(civil_from_days(days), expected, "{days}");
            assert_eq!(days_from_civil(expected), days);
            expected.day += 1;
            if expected.day > days_in_month(expected.year, expected.month) {
                expected.day = 1;
                expected.month += 1;
                if expected.month > 12 {
                    expected.month = 1;
                    expected.year += 1;
                }
            }
        }
    }

    #[test]
    fn known_days() {
        let d = |year, month, day| days_from_civil(Date { year, month, day });
        assert_eq!(d(1970, 1, 1), 0);
        assert_eq!(d(2000, 3, 1), 11_017);
        assert_eq!(d(1969, 12, 31), -1);
        assert_eq!(weekday(0), 4); // Thursday
        assert_eq!(weekday(d(2026, 12, 3)), 4); // Thursday
        assert_eq!(weekday(d(2024, 2, 29)), 4);
        assert_eq!(weekday(d(2000, 1, 1)), 6); // Saturday
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2024, 2), 29);
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_999), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_223_845_000), "2026-12-02T15:04:05Z");
    }
}
