//! Connection budget: how big each replica's pool may be so that every pod that can exist at
//! once — all replicas, the extra pod of a rolling update and the migration Job — stays under
//! `database.maxConnections` with headroom to spare.

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

#[cfg(test)]
mod tests {
    use super::*;

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
