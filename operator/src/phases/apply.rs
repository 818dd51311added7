//! Server-side apply that costs a read, not a write, when nothing changed: every applied
//! object carries the hash of what was applied, and an object that carries it and still holds
//! every applied field is left alone. This keeps a resource in its desired state write-free.

use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{context::Context, error::Error};
use crate::objects::{MANAGER, hash};

/// Annotation on every applied object: the hash of what the operator last applied. An object
/// that carries it and still holds every applied field as applied costs a read, not a write;
/// a field someone changed by hand (drift) is applied again.
pub const APPLIED: &str = "jeex.dev/applied";

/// Whether `live` holds every field of `applied` with the applied value (fields the server
/// or other managers added are fine; one we set and someone changed is not).
fn holds(live: &serde_json::Value, applied: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => a.iter().all(|(k, v)| v.is_null() || l.get(k).is_some_and(|lv| holds(lv, v))),
        (Value::Array(l), Value::Array(a)) => l.len() == a.len() && l.iter().zip(a).all(|(lv, av)| holds(lv, av)),
        (l, a) => l == a,
    }
}

/// Server-side applies `desired` unless the live object already holds it.
pub(crate) async fn apply<K>(ctx: &Context, ns: &str, desired: K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let existing = api.get_opt(&desired.name_any()).await?;
    apply_to(&api, desired, existing).await
}

/// Server-side applies `desired` (force: the operator owns these fields) unless `existing`
/// (just read) carries the same applied hash and still holds every applied field.
pub(crate) async fn apply_to<K>(api: &Api<K>, mut desired: K, existing: Option<K>) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = desired.name_any();
    let digest = hash(&serde_json::to_string(&desired).expect("objects serialise"));
    desired.annotations_mut().insert(APPLIED.into(), digest);
    // The applied hash is one of the fields held, so a changed desired object is applied too.
    if let Some(existing) = existing
        && holds(&serde_json::to_value(&existing).expect("objects serialise"), &serde_json::to_value(&desired).expect("objects serialise"))
    {
        return Ok(existing);
    }
    // The full object for server-side apply carries its type.
    let mut body = serde_json::to_value(&desired).expect("objects serialise");
    body["apiVersion"] = K::api_version(&()).into();
    body["kind"] = K::kind(&()).into();
    Ok(api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body)).await?)
}
