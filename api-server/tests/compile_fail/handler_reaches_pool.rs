//! A handler holds the application state; the connection pool behind it is private to the
//! data layer, so the handler cannot run SQL outside a scope.

use jeex_api::state::AppState;

async fn handler(state: &AppState) {
    let db = &state.deps().db;
    // The data layer's own door to the pool...
    let _ = sqlx::query("DELETE FROM documents").execute(db.exec()).await;
    // ...and the pool itself.
    let _ = db.pool.acquire().await;
}

fn main() {
    let _ = handler;
}
