//! When a schedule fires: a 5-field cron expression, a macro such as `@daily`, or a
//! fixed interval (`@every 2s`), in UTC or at a fixed offset from it.
//!
//! ```text
//! [TZ=<zone>] <minute> <hour> <day of month> <month> <day of week>
//! [TZ=<zone>] @yearly | @annually | @monthly | @weekly | @daily | @midnight | @hourly
//! @every <duration>            e.g. 500ms, 2s, 90s, 5m, 1h30m, 1d (100 ms at least)
//! ```
//!
//! Fields take `*`, numbers, ranges `a-b`, steps `*/n`, `a-b/n` and `a/n` (from `a`
//! to the field's end), and comma lists of those. Months take `JAN`-`DEC`, days of
//! the week `SUN`-`SAT` (0 or 7 is Sunday), in any case. As in Vixie cron, when both
//! day fields are restricted a day matches if *either* does; a field is unrestricted
//! when it is `*` (or `?`). `<zone>` is `UTC`, `Z`, or a fixed offset `+HH:MM`,
//! `-HH:MM`, `+HH` or `+HHMM`: named zones with daylight-saving rules are not read, so
//! a time never falls into a gap or happens twice.

use crate::civil::{self, Date};

/// The shortest interval `@every` takes, in milliseconds.
pub const MIN_EVERY_MS: u64 = 100;

/// The longest interval `@every` takes: a year, in milliseconds.
pub const MAX_EVERY_MS: u64 = 366 * civil::DAY_MS;

/// No run time is computed past this (9999-12-31T23:59:59Z).
const LAST_MS: u64 = 253_402_300_799_000;

/// Days searched for a matching day: more than the longest gap between two
/// 29 Februaries (2096 to 2104), so that any expression that can fire is found.
const SEARCH_DAYS: i64 = 9 * 366;

const MINUTE_MS: i64 = 60_000;

/// A parsed schedule expression: when it fires, and its time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    timing: Timing,
    /// Minutes east of UTC that the fields are read in.
    offset_min: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Timing {
    Cron(Fields),
    /// Every so many milliseconds from the schedule's anchor (its creation).
    Every(u64),
}

/// The five fields as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    weekdays: u8,
    days_star: bool,
    weekdays_star: bool,
}

/// One field's range and names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
// 7 is Sunday too; it is folded onto 0 after parsing.
const WEEKDAY: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl Spec {
    /// Parses an expression (module docs).
    ///
    /// # Errors
    /// A sentence saying what is wrong, for the client: an unknown macro, a field out
    /// of range, a named time zone, or an expression that can never fire (`0 0 31 2 *`).
    pub fn parse(text: &str) -> Result<Spec, String> {
        let text = text.trim();
        let zoned = text.strip_prefix("TZ=").or(text.strip_prefix("CRON_TZ="));
        let (offset_min, rest) = match zoned {
            Some(after) => {
                let (zone, rest) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
                (parse_zone(zone)?, rest.trim_start())
            }
            None => (0, text),
        };
        let timing = if let Some(duration) = rest.strip_prefix("@every") {
            if zoned.is_some() {
                return Err("a time zone means nothing to @every: leave TZ= out".into());
            }
            Timing::Every(parse_every(duration.trim())?)
        } else {
            let expanded = match rest {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                m if m.starts_with('@') => {
                    return Err(format!(
                        "unknown macro {m:?}: @yearly, @annually, @monthly, @weekly, @daily, \
                         @midnight, @hourly or @every <duration>"
                    ));
                }
                fields => fields,
            };
            Timing::Cron(parse_fields(expanded)?)
        };
        let spec = Spec { timing, offset_min };
        if spec.next_after(0, 0).is_none() {
            return Err(format!(
                "{text:?} names no day that exists: it would never fire"
            ));
        }
        Ok(spec)
    }

    /// The interval of an `@every` spec, in milliseconds.
    pub fn every_ms(&self) -> Option<u64> {
        match self.timing {
            Timing::Every(ms) => Some(ms),
            Timing::Cron(_) => None,
        }
    }

    /// The first run time strictly after `after_ms` (milliseconds since 1970, UTC),
    /// or `None` past the year 9999. An `@every` spec runs at `anchor_ms` plus
    /// whole intervals; a cron spec at whole minutes of its zone.
    pub fn next_after(&self, after_ms: u64, anchor_ms: u64) -> Option<u64> {
        // Also keeps the arithmetic below far from overflow, whatever a damaged
        // journal says.
        if after_ms >= LAST_MS {
            return None;
        }
        let next = match &self.timing {
            Timing::Every(interval) => {
                if after_ms < anchor_ms {
                    anchor_ms.checked_add(*interval)
                } else {
                    let steps = (after_ms - anchor_ms) / interval + 1;
                    steps
                        .checked_mul(*interval)
                        .and_then(|d| d.checked_add(anchor_ms))
                }
            }
            Timing::Cron(fields) => fields
                .next_after(after_ms as i64 + i64::from(self.offset_min) * MINUTE_MS)
                .map(|local| (local - i64::from(self.offset_min) * MINUTE_MS).max(0) as u64),
        };
        next.filter(|&ms| ms <= LAST_MS && ms > after_ms)
    }
}

impl Fields {
    /// The first whole minute strictly after `local_ms` (on the zone's clock, which
    /// may be before 1970) that matches.
    fn next_after(&self, local_ms: i64) -> Option<i64> {
        if local_ms > LAST_MS as i64 + civil::DAY_MS as i64 {
            return None;
        }
        let first = local_ms.div_euclid(MINUTE_MS) + 1;
        let start = first.div_euclid(1440);
        let mut from_minute = first.rem_euclid(1440) as u32;
        for day in start..start + SEARCH_DAYS {
            if self.day_matches(day)
                && let Some(minute) = self.first_minute(from_minute)
            {
                return Some((day * 1440 + i64::from(minute)) * MINUTE_MS);
            }
            from_minute = 0;
        }
        None
    }

    fn day_matches(&self, day: i64) -> bool {
        let Date {
            month, day: dom, ..
        } = civil::civil_from_days(day);
        if self.months & (1 << month) == 0 {
            return false;
        }
        let by_date = self.days & (1 << dom) != 0;
        let by_weekday = self.weekdays & (1 << civil::weekday(day)) != 0;
        if self.days_star || self.weekdays_star {
            by_date && by_weekday
        } else {
            by_date || by_weekday
        }
    }

    /// The first matching minute of the day at or after `from` (minutes since 00:00).
    fn first_minute(&self, from: u32) -> Option<u32> {
        let (mut hour, mut minute) = (from / 60, from % 60);
        while hour < 24 {
            if self.hours & (1 << hour) != 0 {
                let later = self.minutes >> minute << minute;
                if later != 0 {
                    return Some(hour * 60 + later.trailing_zeros());
                }
            }
            hour += 1;
            minute = 0;
        }
        None
    }
}

fn parse_fields(text: &str) -> Result<Fields, String> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [minute, hour, day, month, weekday] = parts[..] else {
        return Err(format!(
            "{text:?} has {} fields; a cron expression has 5 (minute hour day-of-month \
             month day-of-week), or is a macro such as @daily or @every 10s",
            parts.len()
        ));
    };
    let weekdays = parse_field(&WEEKDAY, weekday)?;
    Ok(Fields {
        minutes: parse_field(&MINUTE, minute)?,
        hours: parse_field(&HOUR, hour)? as u32,
        days: parse_field(&DAY, day)? as u32,
        months: parse_field(&MONTH, month)? as u16,
        // Fold 7 (Sunday) onto 0.
        weekdays: ((weekdays | (weekdays >> 7)) & 0x7f) as u8,
        days_star: is_star(day),
        weekdays_star: is_star(weekday),
    })
}

fn is_star(field: &str) -> bool {
    matches!(field, "*" | "?" | "*/1")
}

/// A field as a bit set: bit `n` for value `n`.
fn parse_field(field: &Field, text: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| (1..=field.max).contains(s))
                    .ok_or_else(|| {
                        format!(
                            "{} field {text:?}: step {step:?} is not a number from 1 to {}",
                            field.name, field.max
                        )
                    })?;
                (range, Some(step))
            }
            None => (item, None),
        };
        let (low, high) = if range == "*" || range == "?" {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(field, text, a)?, value(field, text, b)?)
        } else {
            let start = value(field, text, range)?;
            // `a/n` runs from a to the end of the field; a bare number is itself.
            (start, if step.is_some() { field.max } else { start })
        };
        if low > high {
            return Err(format!(
                "{} field {text:?}: range {range:?} runs backwards",
                field.name
            ));
        }
        let step = step.unwrap_or(1);
        let mut v = low;
        while v <= high {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn value(field: &Field, text: &str, word: &str) -> Result<u32, String> {
    let by_name = field
        .names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(word))
        .map(|i| i as u32 + if field.min == 1 { 1 } else { 0 });
    by_name
        .or_else(|| word.parse().ok())
        .filter(|v| (field.min..=field.max).contains(v))
        .ok_or_else(|| {
            let names = match field.names.first() {
                Some(first) => format!(
                    " or a name {first}..{}",
                    field.names.last().unwrap_or(first)
                ),
                None => String::new(),
            };
            format!(
                "{} field {text:?}: {word:?} is not a number from {} to {}{names}",
                field.name, field.min, field.max
            )
        })
}

/// `UTC`, `Z`, `+HH:MM`, `-HH:MM`, `+HH` or `+HHMM`, as minutes east of UTC.
fn parse_zone(zone: &str) -> Result<i32, String> {
    if zone.eq_ignore_ascii_case("UTC") || zone == "Z" || zone.eq_ignore_ascii_case("GMT") {
        return Ok(0);
    }
    let bad = || {
        format!(
            "time zone {zone:?}: only UTC or a fixed offset such as +01:00 or -0530 is read \
             (named zones and their daylight-saving rules are not)"
        )
    };
    let (sign, digits) = match zone.as_bytes().first() {
        Some(b'+') => (1, &zone[1..]),
        Some(b'-') => (-1, &zone[1..]),
        _ => return Err(bad()),
    };
    let digits = digits.replace(':', "");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return Err(bad());
    }
    let hours: i32 = digits[..2].parse().map_err(|_| bad())?;
    let minutes: i32 = if digits.len() == 4 {
        digits[2..].parse().map_err(|_| bad())?
    } else {
        0
    };
    if hours > 14 || minutes > 59 {
        return Err(bad());
    }
    Ok(sign * (hours * 60 + minutes))
}

/// `500ms`, `2s`, `1h30m`, `1d`: numbers each followed by ms, s, m, h or d.
fn parse_every(text: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("@every {text:?}: {why}");
    if text.is_empty() {
        return Err(bad("give a duration such as 10s, 5m or 1h30m"));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("each part is a number and a unit (ms, s, m, h, d)"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => civil::DAY_MS,
            _ => return Err(bad("each part is a number and a unit (ms, s, m, h, d)")),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(factor)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| bad("too long"))?;
    }
    if total < MIN_EVERY_MS {
        return Err(bad("the shortest interval is 100ms"));
    }
    if total > MAX_EVERY_MS {
        return Err(bad("the longest interval is 366d"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
