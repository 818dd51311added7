//! Phase 2, pools: sizes each replica's connection pool so that every pod that can run at once
//! (replicas, the rolling update's surge pod, the migration Job) fits `database.maxConnections`.
//! A budget too small for the replicas stalls before anything starts: pods over the budget
//! would fail to connect at run time instead.

use std::ops::ControlFlow;

use kube::runtime::controller::Action;

use super::{handoff::Budget, progress::Progress};
use crate::crd::JeexBackend;

/// The budget the rollout steps within, with the target pools reported in the status; or a
/// stall when no pool fits.
pub(crate) fn fit(jb: &JeexBackend, p: &mut Progress) -> ControlFlow<Action, Budget> {
    let spec = &jb.spec;
    match Budget::check(spec.database.max_connections, spec.replicas) {
        Ok((budget, pools)) => {
            p.status.pools = Some(pools);
            ControlFlow::Continue(budget)
        }
        Err(e) => {
            p.status.pools = None;
            p.stalled("ConnectionBudgetTooSmall", &e.to_string());
            ControlFlow::Break(Action::await_change())
        }
    }
}
