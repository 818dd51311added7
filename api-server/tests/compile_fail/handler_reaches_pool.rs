//! A handler holds the application state; the connection pool behind it is private to the
//! data layer, so the handler cannot run SQL outside a scope.

use jeex_api::state::AppState;

async fn handler(state: &AppState) {
    let pool = state.deps().db.pool();
    let _ = sqlx::query("DELETE FROM documents").execute(pool).await;
}

fn main() {
    let _ = handler;
}
