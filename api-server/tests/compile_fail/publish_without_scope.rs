//! The event bus publishes to, reads and subscribes to a project only through a scope (proof
//! of the membership check), never through a bare project id.

use jeex_api::events::EventBus;

async fn publish(bus: &EventBus, project: uuid::Uuid) {
    let _ = bus.publish(project, "document.created", None, serde_json::json!({})).await;
}

async fn read(bus: &EventBus, project: uuid::Uuid) {
    let _ = bus.history(project, None).await;
    let _ = bus.subscribe(project);
}

fn main() {
    let _ = (publish, read);
}
