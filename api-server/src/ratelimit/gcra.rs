//! GCRA (generic cell rate algorithm): each key stores one number, its theoretical arrival
//! time (TAT). A request is admitted when, after adding one emission interval, the TAT is at
//! most one window ahead of now. Exact, O(1) per key, and the same arithmetic runs in Redis
//! (see `redis.rs`) and in memory (see `memory.rs`).

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

/// Evaluates `tats` (one per key; `None` when the key is new) at `now`; key `i` is allowed
/// `multipliers[i]` times the quota. On admission, returns the new TAT of every key to store.
pub fn evaluate(tats: &[Option<i64>], multipliers: &[u32], now: i64, quota: Quota) -> (Outcome, Vec<i64>) {
    let (base, window) = params(quota);
    let intervals: Vec<i64> = multipliers.iter().map(|m| (base / i64::from((*m).max(1))).max(1)).collect();
    let mut retry = 0i64;
    let mut next = Vec::with_capacity(tats.len());
    for (tat, interval) in tats.iter().zip(&intervals) {
        let tat = tat.unwrap_or(now).max(now);
        let new_tat = tat + interval;
        if new_tat - now > window {
            retry = retry.max(new_tat - window - now);
        }
        next.push(new_tat);
    }
    if retry > 0 {
        return (Outcome { allowed: false, remaining: 0, reset_secs: ceil_secs(retry) }, Vec::new());
    }
    let remaining = next.iter().zip(&intervals).map(|(t, interval)| ((window - (t - now)) / interval) as u64).min().unwrap_or(0);
    let reset = next.iter().map(|t| t - now).max().unwrap_or(0);
    (Outcome { allowed: true, remaining, reset_secs: ceil_secs(reset) }, next)
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
}
