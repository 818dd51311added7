//! A repository function on project data takes a scoped transaction or an entry: a bare
//! connection (no membership check, no row-level-security settings) is refused, and outside the data layer no
//! one can open one (`Scoped::begin` is the data layer's).

use jeex_api::{
    access::{Scoped, Viewer},
    db::documents,
};

async fn unscoped(conn: &mut sqlx::PgConnection) {
    let _ = documents::get(conn, uuid::Uuid::nil()).await;
}

async fn begun(pool: &jeex_api::access::Pool, caller: &jeex_api::access::Caller) {
    let _ = Scoped::<Viewer>::begin(pool, caller, uuid::Uuid::nil()).await;
}

fn main() {
    let _ = (unscoped, begun);
}
