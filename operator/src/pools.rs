//! Connection budget: how big each replica's pool may be so that every pod that can exist at
//! once — all replicas, the extra pod of a rolling update and the migration Job — stays under
//! `database.maxConnections` with headroom to spare.

/// The CRD's admission rule for the budget (defined with the CRD, which must not depend on
/// this module): exactly the condition under which [`size`] finds a pool (a unit test holds
/// the two together for every budget and replica count in range).
pub use crate::crd::BUDGET_RULE;
use crate::crd::PoolStatus;

/// Extra pods during a rolling update (the Deployment's `maxSurge`).
pub const SURGE: i32 = 1;
/// Connections the migration Job holds (its session and the advisory lock).
pub const MIGRATION: i32 = 2;

/// Why no pool fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "database.maxConnections {budget} cannot give {pods} API pods ({replicas} replicas + {SURGE} surge) a connection each after {MIGRATION} for the migration Job and {headroom} spare; raise it to at least {needed} or lower replicas"
)]
pub struct NoPoolFits {
    /// The budget.
    pub budget: i32,
    /// Replicas asked for.
    pub replicas: i32,
    /// Pods that may run at once.
    pub pods: i32,
    /// Connections kept spare.
    pub headroom: i32,
    /// The smallest budget that works.
    pub needed: i32,
}

/// Connections kept out of every pool: a tenth of the budget, at least one (for an operator
/// with `psql`, monitoring, a stuck connection).
pub fn headroom(budget: i32) -> i32 {
    (budget / 10).max(1)
}

/// Pool sizes for `replicas` under `budget`. Each pod may open `per_replica + overflow`
/// connections; the worst case is every pod at its maximum while the Job runs.
pub fn size(budget: i32, replicas: i32) -> Result<PoolStatus, NoPoolFits> {
    let pods = replicas.max(0) + SURGE;
    let spare = headroom(budget);
    let available = budget - spare - MIGRATION;
    let per_pod = if pods > 0 { available / pods } else { 0 };
    if per_pod < 1 {
        // Smallest budget b with b - headroom(b) - MIGRATION >= pods.
        let needed = (pods + MIGRATION..).find(|b| b - headroom(*b) - MIGRATION >= pods).unwrap_or(i32::MAX);
        return Err(NoPoolFits { budget, replicas, pods, headroom: spare, needed });
    }
    // A third of a pod's share is overflow for bursts; the rest stays open.
    let overflow = per_pod / 3;
    let per_replica = per_pod - overflow;
    Ok(PoolStatus { per_replica, overflow, migration: MIGRATION, worst_case_total: pods * per_pod + MIGRATION })
}

/// What runs now: the Deployment's replicas and the pool its pod template carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    /// `spec.replicas` of the Deployment.
    pub replicas: i32,
    /// The pools its pod template carries.
    pub pools: PoolStatus,
    /// Whether the rollout is over: every pod runs the current template and is ready, and no
    /// other pod is left.
    pub settled: bool,
}

/// One step towards `replicas` pods with the budget's pools, never over the budget on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Replicas to apply now.
    pub replicas: i32,
    /// Pools to apply now.
    pub pools: PoolStatus,
    /// Whether this is the destination (`false`: apply it, wait for the rollout, step again).
    pub last: bool,
}

/// A pod's most connections.
fn max(p: &PoolStatus) -> i32 {
    p.per_replica + p.overflow
}

/// The next safe step from `live` to `replicas` replicas under `budget`.
///
/// Replicas and pool size never change in one rollout, because during a rolling update old
/// pods (old pool) and new pods (new pool) run side by side. Scaling up first rolls the
/// smaller pool out at the current replica count, then adds replicas; scaling down first
/// removes replicas with the current (smaller) pool, then rolls the larger pool out. Each
/// second step waits until the first has settled. A pod count never exceeds `replicas +
/// SURGE` of the step in force, and every pod's pool is at most the larger step's, so the sum
/// stays within what [`size`] promised.
pub fn step(budget: i32, replicas: i32, live: Option<Live>) -> Result<Step, NoPoolFits> {
    let target = size(budget, replicas)?;
    let Some(live) = live else { return Ok(Step { replicas, pools: target, last: true }) };
    let grows = max(&target) > max(&live.pools);
    if grows {
        // Fewer pods first; the larger pool only once they are the only ones left.
        if live.replicas == replicas && live.settled {
            return Ok(Step { replicas, pools: target, last: true });
        }
        return Ok(Step { replicas: replicas.min(live.replicas), pools: live.pools, last: false });
    }
    // The pool shrinks or stays: roll it out at no more replicas than run now, then add pods
    // once no pod with a larger pool is left.
    if replicas > live.replicas && !(live.settled && max(&live.pools) == max(&target)) {
        return Ok(Step { replicas: live.replicas, pools: target, last: false });
    }
    Ok(Step { replicas, pools: target, last: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks `step` from `from` to `to` replicas as a rollout would go, checking the worst
    /// case at every stage (old and new pods side by side, plus the surge pod and the Job).
    fn walk(budget: i32, from: i32, to: i32) -> Vec<(i32, i32)> {
        let mut live = Live { replicas: from, pools: size(budget, from).unwrap(), settled: true };
        let mut seen = vec![(live.replicas, max(&live.pools))];
        for _ in 0..4 {
            let next = step(budget, to, Some(live)).unwrap();
            // One thing changes per step: the replica count or the pool, never both.
            let same_pool = (next.pools.per_replica, next.pools.overflow) == (live.pools.per_replica, live.pools.overflow);
            assert!(next.replicas == live.replicas || same_pool, "{budget}: {from} -> {to}: {live:?} -> {next:?}");
            // While it rolls out, old and new pods run side by side within the larger count + surge.
            let worst = (next.replicas.max(live.replicas) + SURGE) * max(&next.pools).max(max(&live.pools)) + MIGRATION;
            assert!(worst <= budget, "{budget}: {from} -> {to}: step {next:?} from {live:?} may hold {worst}");
            live = Live { replicas: next.replicas, pools: next.pools, settled: true };
            seen.push((live.replicas, max(&live.pools)));
            if next.last {
                return seen;
            }
        }
        panic!("{budget}: {from} -> {to} did not arrive: {seen:?}");
    }

    #[test]
    fn scaling_goes_in_two_steps_and_never_mixes_a_larger_pool_with_more_pods() {
        // 4 -> 8 at 100: pools shrink to 9 at 4 replicas first, then 8 replicas.
        assert_eq!(walk(100, 4, 8), vec![(4, 17), (4, 9), (8, 9)]);
        // 8 -> 2 at 100: down to 2 replicas with the small pool, then the larger pool.
        assert_eq!(walk(100, 8, 2), vec![(8, 9), (2, 9), (2, 29)]);
        // Same count: one step.
        assert_eq!(walk(100, 4, 4), vec![(4, 17), (4, 17)]);
        for budget in [8, 20, 100, 1000] {
            for from in 0..=12 {
                for to in 0..=12 {
                    if size(budget, from).is_ok() && size(budget, to).is_ok() {
                        walk(budget, from, to);
                    }
                }
            }
        }
    }

    #[test]
    fn an_unsettled_rollout_holds_the_second_step() {
        let live = Live { replicas: 4, pools: size(100, 8).unwrap(), settled: false };
        let next = step(100, 8, Some(live)).unwrap();
        assert_eq!((next.replicas, next.last), (4, false), "old 17-connection pods may still run");
        let live = Live { replicas: 2, pools: size(100, 8).unwrap(), settled: false };
        let next = step(100, 2, Some(live)).unwrap();
        assert_eq!((max(&next.pools), next.last), (9, false), "the removed pods may still run");
    }

    #[test]
    fn a_budget_of_100_for_4_replicas_stays_under_budget() {
        let pools = size(100, 4).unwrap();
        // 5 pods (4 + surge) × (12 + 5) + 2 for the Job = 87 <= 100 - 10 spare.
        assert_eq!(pools, PoolStatus { per_replica: 12, overflow: 5, migration: 2, worst_case_total: 87 });
        assert!(pools.worst_case_total < 100);
        assert!(pools.worst_case_total <= 100 - headroom(100));
    }

    #[test]
    fn every_budget_and_replica_count_either_fits_or_says_what_would() {
        for budget in 1..=400 {
            for replicas in 0..=50 {
                match size(budget, replicas) {
                    Ok(p) => {
                        assert!(p.per_replica >= 1, "{budget}/{replicas}");
                        let worst = (replicas + SURGE) * (p.per_replica + p.overflow) + p.migration;
                        assert_eq!(worst, p.worst_case_total);
                        assert!(worst <= budget - headroom(budget), "{budget}/{replicas}: {worst}");
                    }
                    Err(e) => {
                        assert!(e.needed > budget, "{budget}/{replicas}: needs {}", e.needed);
                        assert!(size(e.needed, replicas).is_ok(), "the suggested budget {} works", e.needed);
                        assert!(size(e.needed - 1, replicas).is_err(), "and is the smallest");
                    }
                }
            }
        }
    }

    #[test]
    fn edges() {
        // The smallest budget the schema admits for 0 replicas (replicas + 4) fits one pod.
        assert_eq!(size(4, 0).unwrap().per_replica, 1);
        // One connection short: a clear error naming what would work.
        let err = size(7, 4).unwrap_err();
        assert_eq!((err.pods, err.needed), (5, 8));
        assert!(err.to_string().contains("raise it to at least 8"), "{err}");
        // Exactly one connection per pod: no overflow.
        assert_eq!(size(8, 4).unwrap(), PoolStatus { per_replica: 1, overflow: 0, migration: 2, worst_case_total: 7 });
        // Large budgets keep a tenth spare.
        let big = size(10_000, 10).unwrap();
        assert!(big.worst_case_total <= 9_000);
    }
}
