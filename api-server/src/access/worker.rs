//! The right to work on one claimed operation.

use uuid::Uuid;

/// Proof that this worker holds the lease of one operation: built only by the claim
/// (`db::operations::claim`), and required by every write a worker makes to its operation
/// (progress, finish). Work on the project's data itself goes through a [`super::Scoped`]
/// opened as the operation's creator, so their membership and role are checked again.
#[derive(Debug, Clone)]
pub struct WorkerScope {
    operation_id: Uuid,
    project_id: Uuid,
    owner: String,
}

impl WorkerScope {
    /// For the claim only: `owner` now holds `operation_id`'s lease.
    pub(crate) fn claimed(operation_id: Uuid, project_id: Uuid, owner: &str) -> Self {
        Self { operation_id, project_id, owner: owner.to_owned() }
    }

    /// The operation.
    pub fn operation_id(&self) -> Uuid {
        self.operation_id
    }

    /// Its project.
    pub fn project_id(&self) -> Uuid {
        self.project_id
    }

    /// The lease holder (`<instance>/<worker>`).
    pub fn owner(&self) -> &str {
        &self.owner
    }
}
