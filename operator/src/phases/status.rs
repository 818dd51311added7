//! The last phase, status: announces every condition transition as an Event and writes the
//! status the phases built. It runs after a failed reconcile too, so that what got done (a
//! migration that succeeded) and why it stopped reach the resource.

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::EventType,
};

use super::{
    context::{Context, publish},
    error::Error,
    progress::Progress,
};
use crate::{conditions, crd::JeexBackend};

/// Writes the status when it changed and an Event for every condition transition.
pub(crate) async fn write(jb: &JeexBackend, ctx: &Context, ns: &str, p: Progress) -> Result<(), Error> {
    for t in &p.transitions {
        let bad = if t.kind == conditions::STALLED { t.status } else { !t.status && t.kind != conditions::RECONCILING };
        let kind = if bad { EventType::Warning } else { EventType::Normal };
        let note = format!("{} is {}: {}", t.kind, if t.status { "True" } else { "False" }, t.message);
        publish(ctx, jb, kind, &t.reason, &note).await;
    }
    if jb.status.as_ref() != Some(&p.status) {
        let api: Api<JeexBackend> = Api::namespaced(ctx.client.clone(), ns);
        // A merge patch keeps fields it does not mention: clear the ones that went away.
        let mut status = serde_json::to_value(&p.status).expect("status serialises");
        if let (Some(old), Some(new)) = (serde_json::to_value(&jb.status).ok().as_ref().and_then(|o| o.as_object()), status.as_object_mut())
        {
            for gone in old.keys().filter(|k| !new.contains_key(*k)).cloned().collect::<Vec<_>>() {
                new.insert(gone, serde_json::Value::Null);
            }
        }
        api.patch_status(&jb.name_any(), &PatchParams::default(), &Patch::Merge(serde_json::json!({ "status": status }))).await?;
    }
    Ok(())
}
