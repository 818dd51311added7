//! GCRA (generic cell rate algorithm): each key stores one number, its theoretical arrival
//! time (TAT). A request is admitted when, after adding one emission interval, the TAT is at
//! most one window ahead of now. Exact and O(1) per key. The in-memory store (`memory.rs`)
//! evaluates here; the Redis script (`redis.rs`) decides admission with the same rule on
//! Redis's data and clock, and hands back what these functions need for the figures.

use crate::config::Quota;

/// What one evaluation decided, over every key of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Admitted.
    pub allowed: bool,
    /// Requests still allowed now (the smallest over the keys; 0 when refused).
    pub remaining: u64,
    /// Seconds until the quota is whole again (admitted) or until one request is admitted
    /// again (refused: also the `Retry-After`).
    pub reset_secs: u64,
}

/// Emission interval and window, in microseconds.
pub fn params(quota: Quota) -> (i64, i64) {
    let window = i64::try_from(quota.window.as_micros()).unwrap_or(i64::MAX);
    ((window / i64::from(quota.limit)).max(1), window)
}

/// The emission interval of each key (key `i` is allowed `multipliers[i]` times the quota)
/// and the window, in microseconds.
pub fn intervals(multipliers: &[u32], quota: Quota) -> (Vec<i64>, i64) {
    let (base, window) = params(quota);
    (multipliers.iter().map(|m| (base / i64::from((*m).max(1))).max(1)).collect(), window)
}

/// Of `count` identical requests evaluated one after another against keys whose TATs stand
/// `ahead` µs past now (0 for a new or lapsed key), how many are admitted: each admission moves
/// every key one interval on, and a request is refused once that would put a key more than a
/// window ahead. The refused ones change nothing, so the admitted ones are always the first.
pub fn admissible(ahead: &[i64], intervals: &[i64], window: i64, count: u64) -> u64 {
    ahead.iter().zip(intervals).map(|(a, interval)| window.saturating_sub(*a).div_euclid(*interval).max(0) as u64).fold(count, u64::min)
}

/// The outcome of the `nth` (from 1) of those requests when the first `admitted` were admitted.
pub fn nth(ahead: &[i64], intervals: &[i64], window: i64, admitted: u64, nth: u64) -> Outcome {
    // Where each key stands after `n` admissions.
    let after = |n: u64| {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        ahead.iter().zip(intervals).map(move |(a, interval)| a.saturating_add(interval.saturating_mul(n)))
    };
    if nth <= admitted {
        let remaining =
            after(nth).zip(intervals).map(|(t, interval)| (window.saturating_sub(t) / interval).max(0) as u64).min().unwrap_or(0);
        Outcome { allowed: true, remaining, reset_secs: ceil_secs(after(nth).max().unwrap_or(0)) }
    } else {
        let retry = after(admitted + 1).map(|t| t.saturating_sub(window)).max().unwrap_or(0);
        Outcome { allowed: false, remaining: 0, reset_secs: ceil_secs(retry) }
    }
}

/// Evaluates `tats` (one per key; `None` when the key is new) at `now`; key `i` is allowed
/// `multipliers[i]` times the quota. On admission, returns the new TAT of every key to store.
pub fn evaluate(tats: &[Option<i64>], multipliers: &[u32], now: i64, quota: Quota) -> (Outcome, Vec<i64>) {
    let (intervals, window) = intervals(multipliers, quota);
    let ahead: Vec<i64> = tats.iter().map(|tat| tat.map_or(0, |t| (t - now).max(0))).collect();
    let outcome = nth(&ahead, &intervals, window, admissible(&ahead, &intervals, window, 1), 1);
    let next = if outcome.allowed { ahead.iter().zip(&intervals).map(|(a, interval)| now + a + interval).collect() } else { Vec::new() };
    (outcome, next)
}

fn ceil_secs(micros: i64) -> u64 {
    (micros.max(0) as u64).div_ceil(1_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const Q: Quota = Quota { limit: 3, window: Duration::from_secs(60) };

    #[test]
    fn admits_the_quota_then_refuses_until_a_slot_frees() {
        let now = 1_000_000_000;
        let mut tat = None;
        for expected_remaining in [2, 1, 0] {
            let (o, next) = evaluate(&[tat], &[1], now, Q);
            assert!(o.allowed);
            assert_eq!(o.remaining, expected_remaining);
            tat = Some(next[0]);
        }
        let (refused, next) = evaluate(&[tat], &[1], now, Q);
        assert!(!refused.allowed && next.is_empty());
        assert_eq!(refused.reset_secs, 20, "one slot frees after window/limit");
        let (later, _) = evaluate(&[tat], &[1], now + 20_000_000, Q);
        assert!(later.allowed, "admitted again once the interval has passed");
    }

    #[test]
    fn the_tightest_key_decides() {
        let now = 5_000_000_000;
        let (_, full) = evaluate(&[None], &[1], now, Q);
        let busy = Some(full[0] + 2 * params(Q).0);
        let (o, _) = evaluate(&[None, busy], &[1, 1], now, Q);
        assert!(!o.allowed, "one exhausted key refuses the request");
        let (o, _) = evaluate(&[None, Some(full[0])], &[1, 1], now, Q);
        assert_eq!((o.allowed, o.remaining), (true, 1));
        let (o, _) = evaluate(&[None, Some(full[0])], &[1, 10], now, Q);
        assert_eq!((o.allowed, o.remaining), (true, 2), "a key with a larger multiple is not the tightest");
        let (o, _) = evaluate(&[None, Some(full[0])], &[1, 1], now, Q);
        assert_eq!((o.allowed, o.remaining), (true, 1));
    }

    #[test]
    fn a_group_of_identical_requests_matches_evaluating_them_one_by_one() {
        let now = 7_000_000_000;
        for (tats, multipliers, count) in [
            (vec![None], vec![1], 5),
            (vec![None, None, None], vec![1, 2, 10], 9),
            (vec![Some(now + 30_000_000), None], vec![1, 1], 4),
            (vec![Some(now - 5_000_000), Some(now + 59_000_000)], vec![1, 3], 3),
            (vec![Some(now + 61_000_000)], vec![1], 2),
            (vec![], vec![], 3),
        ] {
            let (intervals, window) = intervals(&multipliers, Q);
            let ahead: Vec<i64> = tats.iter().map(|t: &Option<i64>| t.map_or(0, |t| (t - now).max(0))).collect();
            let admitted = admissible(&ahead, &intervals, window, count);
            let mut current = tats.clone();
            for n in 1..=count {
                let (one_by_one, next) = evaluate(&current, &multipliers, now, Q);
                assert_eq!(nth(&ahead, &intervals, window, admitted, n), one_by_one, "{tats:?} x{multipliers:?}, request {n}");
                if one_by_one.allowed {
                    current = next.into_iter().map(Some).collect();
                }
            }
        }
    }
}
