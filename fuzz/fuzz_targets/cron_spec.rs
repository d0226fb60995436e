//! The schedule expression parser and its next-run search, fed arbitrary text and
//! times (a client sends the text; the journal on disk holds it and the times).
//!
//! Input: 8 bytes of "after" time, 8 bytes of anchor, the rest is the expression
//! (lossily UTF-8).
//!
//! Checked, beyond "no panic" and "no hang": a parsed expression has a first run
//! after 0; every next run is strictly after the time asked about, no later than
//! the year 9999, and asking again from just before it gives it again (no run time
//! is skipped between two answers); an `@every` run falls on the anchor's grid.
#![no_main]

use beuss::schedule::Spec;
use libfuzzer_sys::fuzz_target;

/// 9999-12-31T23:59:59Z, the last time a run may have.
const LAST_MS: u64 = 253_402_300_799_000;

fuzz_target!(|data: &[u8]| {
    let Some((times, text)) = data.split_at_checked(16) else {
        return;
    };
    let after = u64::from_le_bytes(times[..8].try_into().unwrap_or_default());
    let anchor = u64::from_le_bytes(times[8..].try_into().unwrap_or_default());
    // Mostly times near now, so that the search has something to find.
    let after = if after & 1 == 0 {
        1_700_000_000_000 + (after >> 1) % (200 * 365 * 86_400_000)
    } else {
        after
    };
    let anchor = anchor % (LAST_MS + 1);
    let text = String::from_utf8_lossy(text);
    let Ok(spec) = Spec::parse(&text) else {
        return;
    };
    assert!(
        spec.next_after(0, 0).is_some(),
        "{text:?} parsed but never fires"
    );
    let mut at = after;
    for _ in 0..3 {
        let Some(next) = spec.next_after(at, anchor) else {
            assert!(
                at >= LAST_MS - 9 * 366 * 86_400_000 || spec.every_ms().is_some(),
                "{text:?} after {at}"
            );
            return;
        };
        assert!(next > at && next <= LAST_MS, "{text:?}: {next} after {at}");
        assert_eq!(spec.next_after(next - 1, anchor), Some(next), "{text:?}");
        match spec.every_ms() {
            Some(interval) if next > anchor => assert_eq!((next - anchor) % interval, 0),
            Some(_) => {}
            None => assert_eq!(next % 60_000, 0, "{text:?}: not a whole minute"),
        }
        at = next;
    }
});
