//! Phase 1, secrets: reads the Secrets the resource references, creates the ones the operator
//! generates (app database credentials, the JWT key pair) and never overwrites any. A missing
//! Secret waits for someone to create it; one that cannot be used stalls. The later phases get
//! every credential they need, or none of them runs.

use std::{collections::BTreeMap, ops::ControlFlow};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, api::PostParams, runtime::controller::Action};

use super::{context::Context, error::Error, handoff::Resolved, progress::Progress};
use crate::{
    conditions,
    crd::{JeexBackend, SecretKeyRef},
    objects::Names,
    probes, secrets,
};

/// Resolves every Secret `jb` needs, in a fixed order: the owner's database URL, the app's
/// credentials, the JWT keys, then Redis and Qdrant.
pub(crate) async fn resolve(jb: &JeexBackend, ctx: &Context, ns: &str, p: &mut Progress) -> Result<ControlFlow<Action, Resolved>, Error> {
    let spec = &jb.spec;
    let names = Names::of(jb);
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);

    let Some(owner) = read_key(&secret_api, &spec.database.owner_secret).await? else {
        return Ok(ControlFlow::Break(p.missing_secret(&spec.database.owner_secret)));
    };
    let mut fingerprints = BTreeMap::new();
    let app_database = match &spec.database.app_secret {
        Some(given) => {
            let Some(secret) = secret_api.get_opt(&given.name).await? else { return Ok(ControlFlow::Break(p.missing_secret(given))) };
            if secrets::string(&secret, &given.key).is_none() {
                return Ok(ControlFlow::Break(p.missing_secret(given)));
            }
            fingerprints.insert(given.name.clone(), secrets::fingerprint(&secret));
            given.clone()
        }
        None => {
            // Generated from the owner's URL once; an existing one is kept as it is.
            let name = names.db_app();
            let secret = match secret_api.get_opt(&name).await? {
                Some(s) => s,
                None => match secrets::app_secret(jb, &owner) {
                    Ok(secret) => secret_api.create(&PostParams::default(), &secret).await?,
                    Err(problem) => return Ok(ControlFlow::Break(p.bad_secret(&spec.database.owner_secret.name, &problem))),
                },
            };
            fingerprints.insert(name.clone(), secrets::fingerprint(&secret));
            SecretKeyRef { name, key: "url".into() }
        }
    };
    let generated_keys = spec.auth.signing_key_secret.is_none();
    let key_secret = match &spec.auth.signing_key_secret {
        Some(name) => match secret_api.get_opt(name).await? {
            Some(s) => s,
            None => return Ok(ControlFlow::Break(p.missing_secret(&SecretKeyRef { name: name.clone(), key: "<kid>.key.pem".into() }))),
        },
        None => {
            let name = names.jwt();
            match secret_api.get_opt(&name).await? {
                None => {
                    let rotation = jb.annotations().get(secrets::ROTATE).cloned();
                    secret_api.create(&PostParams::default(), &secrets::jwt_secret(jb, rotation.as_deref())?).await?
                }
                Some(existing) => existing,
            }
        }
    };
    if let Err(problem) = secrets::signing_keys(&key_secret, p.now) {
        return Ok(ControlFlow::Break(p.bad_secret(&key_secret.name_any(), &problem)));
    }
    let mut targets = probes::Targets { postgres: owner, ..probes::Targets::default() };
    if let Some(redis) = &spec.redis {
        let Some((url, fingerprint)) = read_watched(&secret_api, &redis.url_secret).await? else {
            return Ok(ControlFlow::Break(p.missing_secret(&redis.url_secret)));
        };
        fingerprints.insert(redis.url_secret.name.clone(), fingerprint);
        targets.redis = Some(url);
    }
    if let Some(qdrant) = &spec.qdrant {
        let key = match &qdrant.api_key_secret {
            Some(r) => match read_watched(&secret_api, r).await? {
                Some((k, fingerprint)) => {
                    fingerprints.insert(r.name.clone(), fingerprint);
                    Some(k)
                }
                None => return Ok(ControlFlow::Break(p.missing_secret(r))),
            },
            None => None,
        };
        targets.qdrant = Some((qdrant.url.clone(), key));
    }
    p.set(conditions::SECRETS_READY, true, "SecretsPresent", "");
    Ok(ControlFlow::Continue(Resolved { app_database, key_secret, generated_keys, fingerprints, targets }))
}

/// A referenced Secret's value (`None`: the Secret or its key is missing).
async fn read_key(api: &Api<Secret>, r: &SecretKeyRef) -> Result<Option<String>, Error> {
    Ok(api.get_opt(&r.name).await?.and_then(|s| secrets::string(&s, &r.key)))
}

/// A referenced Secret's value and its fingerprint (so rotating it rolls the pods).
async fn read_watched(api: &Api<Secret>, r: &SecretKeyRef) -> Result<Option<(String, String)>, Error> {
    Ok(api.get_opt(&r.name).await?.and_then(|s| secrets::string(&s, &r.key).map(|v| (v, secrets::fingerprint(&s)))))
}
