//! Secrets the operator generates when the resource names none: the app's database
//! credentials and the JWT signing key pair. Generated once, never overwritten, and kept when
//! the resource is deleted (`secretRetention: Retain`, the default). The key pair changes only
//! on an explicit rotation, in steps that each wait for the pods to roll (see [`rotation`]), so
//! no live pod ever rejects a token another live pod signed.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret, jiff};
use rand::{Rng, distributions::Alphanumeric};

use crate::{
    crd::{JeexBackend, SecretRetention},
    objects::{Names, config::SigningKeys, hash, labels},
};

/// Metadata of a generated Secret: owned by the resource only with `secretRetention: Delete`.
fn secret_meta(jb: &JeexBackend, name: String) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    let mut meta = crate::objects::meta(jb, name, "api");
    if jb.spec.secret_retention == SecretRetention::Retain {
        meta.owner_references = None;
    }
    meta.labels = Some(labels(jb, "api"));
    meta
}

/// Annotation on the resource: change its value to rotate the generated signing key.
pub const ROTATE: &str = "jeex.dev/rotate-signing-key";
/// Annotation on the key Secret: the signing key's ID.
pub const CURRENT_KID: &str = "jeex.dev/current-kid";
/// Annotation on the key Secret: the rotation request it has served.
pub const ROTATED_FOR: &str = "jeex.dev/rotated-for";
/// Annotation on the key Secret: the new key, distributed to the pods but not yet signing.
pub const NEXT_KID: &str = "jeex.dev/next-kid";
/// Annotation on the key Secret: the previous signing key, kept until no pod signs with it.
pub const RETIRING_KID: &str = "jeex.dev/retiring-kid";
/// Annotation prefix on the key Secret: `<prefix><kid>` = when that retired key stops being
/// accepted (RFC 3339).
pub const RETIRES: &str = "retires.jeex.dev/";

/// Key generation failed (should not happen with a working OS random source).
#[derive(Debug, thiserror::Error)]
#[error("cannot generate a key pair: {0}")]
pub struct KeyGenError(String);

/// Every Secret `jb` reads (given or generated): a change to any of them reconciles it.
pub fn referenced(jb: &JeexBackend) -> Vec<String> {
    let spec = &jb.spec;
    let names = Names::of(jb);
    let mut out = vec![spec.database.owner_secret.name.clone()];
    out.push(spec.database.app_secret.as_ref().map_or_else(|| names.db_app(), |s| s.name.clone()));
    out.push(spec.auth.signing_key_secret.clone().unwrap_or_else(|| names.jwt()));
    out.extend(spec.redis.as_ref().map(|r| r.url_secret.name.clone()));
    out.extend(spec.qdrant.as_ref().and_then(|q| q.api_key_secret.as_ref()).map(|k| k.name.clone()));
    out
}

/// A Secret key's value as text; `None` when absent or empty.
pub fn string(s: &Secret, key: &str) -> Option<String> {
    s.data.as_ref()?.get(key).and_then(|b| String::from_utf8(b.0.clone()).ok()).filter(|v| !v.is_empty())
}

/// A random password of 32 letters and digits (URL-safe, no escaping needed).
pub fn password() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

/// The app's database role for `jb`: unique per namespace and name, since roles belong to the
/// whole PostgreSQL cluster.
pub fn app_role(jb: &JeexBackend) -> String {
    let raw = format!("jeex_{}_{}", jb.metadata.namespace.as_deref().unwrap_or("default"), jb.metadata.name.as_deref().unwrap_or("jeex"));
    let mut role: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    role.truncate(63);
    role
}

/// The owner URL with the app role's credentials instead of the owner's: same host, port,
/// database and parameters.
pub fn app_url(owner_url: &str, role: &str, password: &str) -> Result<String, String> {
    let mut url = url::Url::parse(owner_url).map_err(|e| format!("the owner URL does not parse: {e}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!("the owner URL must start with postgres://, not {}://", url.scheme()));
    }
    url.set_username(role).map_err(|()| "the owner URL has no host".to_owned())?;
    url.set_password(Some(password)).map_err(|()| "the owner URL has no host".to_owned())?;
    Ok(url.into())
}

/// The generated app credentials Secret.
pub fn app_secret(jb: &JeexBackend, owner_url: &str) -> Result<Secret, String> {
    let role = app_role(jb);
    let password = password();
    let url = app_url(owner_url, &role, &password)?;
    Ok(Secret {
        metadata: secret_meta(jb, Names::of(jb).db_app()),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([("username".into(), role), ("password".into(), password), ("url".into(), url)])),
        ..Secret::default()
    })
}

/// A fresh RSA key pair: `(kid, private PEM, public PEM)`. The kid derives from the public key.
pub fn key_pair() -> Result<(String, String, String), KeyGenError> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| KeyGenError(e.to_string()))?;
    let private = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| KeyGenError(e.to_string()))?.to_string();
    let public = key.to_public_key().to_public_key_pem(LineEnding::LF).map_err(|e| KeyGenError(e.to_string()))?;
    let kid = format!("k-{}", &hash(&public)[..12]);
    Ok((kid, private, public))
}

/// The generated JWT key Secret with one key pair.
pub fn jwt_secret(jb: &JeexBackend, rotation: Option<&str>) -> Result<Secret, KeyGenError> {
    let (kid, private, public) = key_pair()?;
    let mut metadata = secret_meta(jb, Names::of(jb).jwt());
    let mut annotations = BTreeMap::from([(CURRENT_KID.to_owned(), kid.clone())]);
    if let Some(r) = rotation {
        annotations.insert(ROTATED_FOR.into(), r.into());
    }
    metadata.annotations = Some(annotations);
    Ok(Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (format!("{kid}.key.pem"), ByteString(private.into())),
            (format!("{kid}.pub.pem"), ByteString(public.into())),
        ])),
        ..Secret::default()
    })
}

/// What the key Secret needs now.
#[derive(Debug)]
pub enum KeyUpdate {
    /// Nothing to change.
    None,
    /// The replacement Secret content, and what the step was (for an Event).
    Replace(Box<Secret>, &'static str),
}

/// The pods' view of the keys: what the live Deployment's template signs with and accepts,
/// and whether every pod runs that template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rolled {
    /// Key ID the pods sign with.
    pub signs: Option<String>,
    /// Key IDs the pods accept.
    pub accepts: Vec<String>,
    /// Whether the rollout is over (no pod of another template is left).
    pub settled: bool,
}

/// The next step of a key rotation of the generated key Secret `existing`, given what the
/// pods run (`rolled`). Called only past the dependency gate with the rollout not held, so
/// nothing moves while either is closed. Each step waits for the previous one to have rolled
/// out everywhere:
///
/// 1. a rotation request adds the new pair; the pods roll to *accept* it (still signing
///    with the old key);
/// 2. once every pod accepts it, it becomes the signing key; the old private key stays for
///    pods still signing with it (and for any of them that restarts);
/// 3. once no pod signs with the old key, its private key goes and its public key is kept for
///    `auth.rotationGraceHours` (tokens it signed are still valid);
/// 4. after that the pods roll to stop accepting it, and once none does its file goes.
pub fn rotation(jb: &JeexBackend, existing: &Secret, rolled: &Rolled, now: jiff::Timestamp) -> Result<KeyUpdate, KeyGenError> {
    let mut annotations = existing.metadata.annotations.clone().unwrap_or_default();
    let mut data = existing.data.clone().unwrap_or_default();
    let requested = jb.metadata.annotations.as_ref().and_then(|a| a.get(ROTATE)).filter(|r| !r.is_empty());
    let current = annotations.get(CURRENT_KID).cloned();
    let next = annotations.get(NEXT_KID).cloned();
    let retiring = annotations.get(RETIRING_KID).cloned();
    let step: &'static str;
    if let Some(next) = next {
        if !(rolled.settled && rolled.accepts.contains(&next)) {
            return Ok(KeyUpdate::None);
        }
        if let Some(old) = current {
            annotations.insert(RETIRING_KID.into(), old);
        }
        annotations.insert(CURRENT_KID.into(), next);
        annotations.remove(NEXT_KID);
        step = "every pod accepts the new signing key: it signs from the next rollout on";
    } else if let Some(old) = retiring {
        if !(rolled.settled && rolled.signs.is_some() && rolled.signs != Some(old.clone())) {
            return Ok(KeyUpdate::None);
        }
        data.remove(&format!("{old}.key.pem"));
        annotations.remove(RETIRING_KID);
        let retire = now.saturating_add(jiff::SignedDuration::from_hours(jb.spec.auth.rotation_grace_hours.into())).expect("in range");
        annotations.insert(format!("{RETIRES}{old}"), retire.to_string());
        step = "no pod signs with the previous key: its public key stays accepted for the grace period";
    } else if let Some(request) = requested
        && annotations.get(ROTATED_FOR) != Some(request)
    {
        let (kid, private, public) = key_pair()?;
        data.insert(format!("{kid}.key.pem"), ByteString(private.into()));
        data.insert(format!("{kid}.pub.pem"), ByteString(public.into()));
        annotations.insert(NEXT_KID.into(), kid);
        annotations.insert(ROTATED_FOR.into(), request.clone());
        step = "a new signing key is distributed to the pods; they keep signing with the current one until all accept it";
    } else {
        // Expired public keys: dropped from the files once no pod accepts them any more.
        let gone: Vec<String> =
            retired(&annotations, now).into_iter().filter(|kid| rolled.settled && !rolled.accepts.contains(kid)).collect();
        if gone.is_empty() {
            return Ok(KeyUpdate::None);
        }
        for kid in &gone {
            data.remove(&format!("{kid}.pub.pem"));
            annotations.remove(&format!("{RETIRES}{kid}"));
        }
        step = "a retired public key's grace period is over and no pod accepts it any more: removed";
    }
    let mut secret = existing.clone();
    secret.data = Some(data);
    secret.metadata.annotations = Some(annotations);
    Ok(KeyUpdate::Replace(Box::new(secret), step))
}

/// Key IDs whose grace period is over at `now`.
fn retired(annotations: &BTreeMap<String, String>, now: jiff::Timestamp) -> Vec<String> {
    annotations
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(RETIRES)?.to_owned(), v.parse::<jiff::Timestamp>().ok()?)))
        .filter(|(_, at)| *at <= now)
        .map(|(kid, _)| kid)
        .collect()
}

/// When the next retired key's grace period ends, if one is pending.
pub fn next_expiry(secret: &Secret, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    secret
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter_map(|(k, v)| k.strip_prefix(RETIRES).and(v.parse::<jiff::Timestamp>().ok()))
        .filter(|at| *at > now)
        .min()
}

/// The keys a key Secret (generated or supplied) holds: the signing one (the `current-kid`
/// annotation, or the only `*.key.pem`) and every public key whose grace period (if it was
/// retired) is not over at `now`.
pub fn signing_keys(secret: &Secret, now: jiff::Timestamp) -> Result<SigningKeys, String> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let data = secret.data.as_ref().map(|d| d.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    let private: Vec<&str> = data.iter().filter_map(|k| k.strip_suffix(".key.pem")).collect();
    let current = match secret.metadata.annotations.as_ref().and_then(|a| a.get(CURRENT_KID)) {
        Some(kid) => kid.clone(),
        None if private.len() == 1 => private[0].to_owned(),
        None => {
            return Err(format!(
                "Secret {name} must hold exactly one <kid>.key.pem (or name the signing key in the {CURRENT_KID} annotation)"
            ));
        }
    };
    if string(secret, &format!("{current}.key.pem")).is_none() {
        return Err(format!("Secret {name} has no {current}.key.pem"));
    }
    let expired = retired(&secret.metadata.annotations.clone().unwrap_or_default(), now);
    let mut accepted: Vec<String> =
        data.iter().filter_map(|k| k.strip_suffix(".pub.pem")).filter(|k| !expired.iter().any(|e| e == k)).map(str::to_owned).collect();
    if !accepted.contains(&current) {
        return Err(format!("Secret {name} has no {current}.pub.pem for its signing key"));
    }
    // The signing key first, then the retired ones.
    accepted.sort_by_key(|k| (k != &current, k.clone()));
    Ok(SigningKeys { secret: name, current, accepted })
}

/// A fingerprint of a Secret's content, so a changed secret rolls the pods.
pub fn fingerprint(secret: &Secret) -> String {
    fingerprint_of(secret, |_| true)
}

/// A fingerprint of the key files the pods use: adding a key the pods do not use yet, or
/// removing one they no longer use, rolls nothing by itself.
pub fn key_fingerprint(secret: &Secret, keys: &SigningKeys) -> String {
    fingerprint_of(secret, |k| k == format!("{}.key.pem", keys.current) || keys.accepted.iter().any(|kid| k == format!("{kid}.pub.pem")))
}

fn fingerprint_of(secret: &Secret, keep: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for (k, v) in secret.data.iter().flatten().filter(|(k, _)| keep(k)) {
        text.push_str(k);
        text.push('=');
        text.push_str(&hash(&String::from_utf8_lossy(&v.0)));
        text.push('\n');
    }
    hash(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    #[test]
    fn the_app_url_keeps_everything_but_the_credentials() {
        let url = app_url("postgres://owner:s3cret@db.prod:5432/jeex?sslmode=require", "jeex_prod_jeex", "pw").unwrap();
        assert_eq!(url, "postgres://jeex_prod_jeex:pw@db.prod:5432/jeex?sslmode=require");
        assert!(app_url("mysql://x@y/z", "r", "p").unwrap_err().contains("postgres://"));
        assert_eq!(app_role(&fixtures::minimal()), "jeex_prod_jeex");
        assert_eq!(password().len(), 32);
        assert_ne!(password(), password());
    }

    fn replaced(update: KeyUpdate) -> Secret {
        match update {
            KeyUpdate::Replace(s, _) => *s,
            KeyUpdate::None => panic!("expected a step"),
        }
    }

    #[test]
    fn rotation_waits_for_the_pods_at_every_step() {
        let mut jb = fixtures::minimal();
        let now = jiff::Timestamp::now();
        let first = jwt_secret(&jb, None).unwrap();
        let old = signing_keys(&first, now).unwrap().current;
        let on = |keys: &SigningKeys, settled| Rolled { signs: Some(keys.current.clone()), accepts: keys.accepted.clone(), settled };
        let rolled = on(&signing_keys(&first, now).unwrap(), true);
        assert!(matches!(rotation(&jb, &first, &rolled, now).unwrap(), KeyUpdate::None), "no request, no change");

        // 1. The new pair is added; the old key still signs.
        jb.metadata.annotations = Some(BTreeMap::from([(ROTATE.to_owned(), "2026-11-24".to_owned())]));
        let added = replaced(rotation(&jb, &first, &rolled, now).unwrap());
        let keys = signing_keys(&added, now).unwrap();
        assert_eq!(keys.current, old, "still signing with the old key");
        assert_eq!(keys.accepted.len(), 2, "the new public key is accepted");
        assert!(matches!(rotation(&jb, &added, &rolled, now).unwrap(), KeyUpdate::None), "waits until the pods accept it");
        assert!(matches!(rotation(&jb, &added, &on(&keys, false), now).unwrap(), KeyUpdate::None), "and the rollout is over");

        // 2. Every pod accepts it: it signs; the old private key stays.
        let switched = replaced(rotation(&jb, &added, &on(&keys, true), now).unwrap());
        let keys2 = signing_keys(&switched, now).unwrap();
        assert_ne!(keys2.current, old);
        assert!(string(&switched, &format!("{old}.key.pem")).is_some(), "old pods may still sign (or restart)");
        assert!(matches!(rotation(&jb, &switched, &on(&keys, true), now).unwrap(), KeyUpdate::None), "pods still sign with the old key");

        // 3. No pod signs with it: the private key goes, the public key is kept for the grace period.
        let retired_at = replaced(rotation(&jb, &switched, &on(&keys2, true), now).unwrap());
        assert!(string(&retired_at, &format!("{old}.key.pem")).is_none());
        assert_eq!(signing_keys(&retired_at, now).unwrap().accepted, keys2.accepted, "both still accepted");
        assert!(
            matches!(rotation(&jb, &retired_at, &on(&keys2, true), now).unwrap(), KeyUpdate::None),
            "a served request does not rotate again"
        );

        // 4. After the grace period the pods stop accepting it, then its file goes.
        let later = now.saturating_add(jiff::SignedDuration::from_hours(25)).unwrap();
        let keys3 = signing_keys(&retired_at, later).unwrap();
        assert_eq!(keys3.accepted, vec![keys2.current.clone()], "no longer accepted after 24 h");
        assert!(string(&retired_at, &format!("{old}.pub.pem")).is_some(), "the file stays while pods may list it");
        assert!(matches!(rotation(&jb, &retired_at, &on(&keys2, true), later).unwrap(), KeyUpdate::None), "pods still list it");
        let cleaned = replaced(rotation(&jb, &retired_at, &on(&keys3, true), later).unwrap());
        assert!(string(&cleaned, &format!("{old}.pub.pem")).is_none());
        assert_eq!(key_fingerprint(&cleaned, &keys3), key_fingerprint(&retired_at, &keys3), "removing an unused file rolls nothing");
    }

    #[test]
    fn a_supplied_secret_with_one_key_needs_no_annotation() {
        let mut s = jwt_secret(&fixtures::minimal(), None).unwrap();
        s.metadata.annotations = None;
        let now = jiff::Timestamp::now();
        assert!(signing_keys(&s, now).is_ok());
        s.data.as_mut().unwrap().retain(|k, _| k.ends_with(".pub.pem"));
        assert!(signing_keys(&s, now).unwrap_err().contains("exactly one"));
    }

    #[test]
    fn generated_secrets_are_retained_unless_asked_otherwise() {
        let mut jb = fixtures::minimal();
        let s = jwt_secret(&jb, None).unwrap();
        assert!(s.metadata.owner_references.is_none(), "Retain: deleting the resource keeps the key");
        assert_eq!(s.metadata.labels.as_ref().unwrap()["app.kubernetes.io/instance"], "jeex");
        jb.spec.secret_retention = SecretRetention::Delete;
        assert!(app_secret(&jb, "postgres://o:p@db/jeex").unwrap().metadata.owner_references.is_some());
    }
}
