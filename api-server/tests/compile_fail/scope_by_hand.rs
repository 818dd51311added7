//! A project scope is proof of the membership check: it cannot be written by hand.

use jeex_api::access::{Caller, ProjectScope};

fn forged(caller: Caller) -> ProjectScope {
    ProjectScope { project_id: uuid::Uuid::nil(), caller }
}

fn main() {
    let _ = forged;
}
