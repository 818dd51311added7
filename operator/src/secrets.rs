//! Secrets the operator generates when the resource names none: the app's database
//! credentials and the JWT signing key pair. Generated once, never overwritten; the key pair
//! changes only on an explicit rotation, and a rotated-out public key stays accepted for a
//! grace period so tokens already issued keep working.

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret, jiff};
use rand::{Rng, distributions::Alphanumeric};

use crate::{
    crd::JeexBackend,
    objects::{Names, config::SigningKeys, hash, meta},
};

/// Annotation on the resource: change its value to rotate the generated signing key.
pub const ROTATE: &str = "jeex.dev/rotate-signing-key";
/// Annotation on the key Secret: the signing key's ID.
pub const CURRENT_KID: &str = "jeex.dev/current-kid";
/// Annotation on the key Secret: the rotation request it has served.
pub const ROTATED_FOR: &str = "jeex.dev/rotated-for";
/// Annotation prefix on the key Secret: `<prefix><kid>` = when that retired key stops being
/// accepted (RFC 3339).
pub const RETIRES: &str = "retires.jeex.dev/";

/// Key generation failed (should not happen with a working OS random source).
#[derive(Debug, thiserror::Error)]
#[error("cannot generate a key pair: {0}")]
pub struct KeyGenError(String);

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
        metadata: meta(jb, Names::of(jb).db_app(), "api"),
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
    let mut metadata = meta(jb, Names::of(jb).jwt(), "api");
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

/// What the key Secret needs now: nothing, a rotation, or dropping expired public keys.
#[derive(Debug)]
pub enum KeyUpdate {
    /// Nothing to change.
    None,
    /// The replacement Secret content.
    Replace(Box<Secret>),
}

/// Applies a requested rotation (new pair; the old public key retires after `grace`) and
/// drops retired keys whose time is up. `existing` is the generated key Secret.
pub fn key_update(jb: &JeexBackend, existing: &Secret, now: jiff::Timestamp) -> Result<KeyUpdate, KeyGenError> {
    let annotations = existing.metadata.annotations.clone().unwrap_or_default();
    let requested = jb.metadata.annotations.as_ref().and_then(|a| a.get(ROTATE)).filter(|r| !r.is_empty());
    let served = annotations.get(ROTATED_FOR);
    let mut data = existing.data.clone().unwrap_or_default();
    let mut annotations = annotations.clone();
    let mut changed = false;
    if let Some(request) = requested
        && served != Some(request)
    {
        let (kid, private, public) = key_pair()?;
        if let Some(old) = annotations.get(CURRENT_KID).cloned() {
            data.remove(&format!("{old}.key.pem"));
            let retire = now.saturating_add(jiff::SignedDuration::from_hours(jb.spec.auth.rotation_grace_hours.into())).expect("in range");
            annotations.insert(format!("{RETIRES}{old}"), retire.to_string());
        }
        data.insert(format!("{kid}.key.pem"), ByteString(private.into()));
        data.insert(format!("{kid}.pub.pem"), ByteString(public.into()));
        annotations.insert(CURRENT_KID.into(), kid);
        annotations.insert(ROTATED_FOR.into(), request.clone());
        changed = true;
    }
    let expired: Vec<String> = annotations
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(RETIRES)?.to_owned(), v.parse::<jiff::Timestamp>().ok()?)))
        .filter(|(_, at)| *at <= now)
        .map(|(kid, _)| kid)
        .collect();
    for kid in expired {
        data.remove(&format!("{kid}.pub.pem"));
        annotations.remove(&format!("{RETIRES}{kid}"));
        changed = true;
    }
    if !changed {
        return Ok(KeyUpdate::None);
    }
    let mut secret = existing.clone();
    secret.data = Some(data);
    secret.metadata.annotations = Some(annotations);
    Ok(KeyUpdate::Replace(Box::new(secret)))
}

/// The keys a key Secret (generated or supplied) holds: the signing one (the `current-kid`
/// annotation, or the only `*.key.pem`) and every public key.
pub fn signing_keys(secret: &Secret) -> Result<SigningKeys, String> {
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
    let mut accepted: Vec<String> = data.iter().filter_map(|k| k.strip_suffix(".pub.pem")).map(str::to_owned).collect();
    if !accepted.contains(&current) {
        return Err(format!("Secret {name} has no {current}.pub.pem for its signing key"));
    }
    // The signing key first, then the retired ones.
    accepted.sort_by_key(|k| (k != &current, k.clone()));
    Ok(SigningKeys { secret: name, current, accepted })
}

/// A fingerprint of a Secret's content, so a changed secret rolls the pods.
pub fn fingerprint(secret: &Secret) -> String {
    let mut text = String::new();
    for (k, v) in secret.data.iter().flatten() {
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

    #[test]
    fn rotation_keeps_the_old_public_key_for_the_grace_period_then_drops_it() {
        let mut jb = fixtures::minimal();
        let first = jwt_secret(&jb, None).unwrap();
        let before = signing_keys(&first).unwrap();
        let now = jiff::Timestamp::now();
        assert!(matches!(key_update(&jb, &first, now).unwrap(), KeyUpdate::None), "no request, no change");

        jb.metadata.annotations = Some(BTreeMap::from([(ROTATE.to_owned(), "2026-11-24".to_owned())]));
        let KeyUpdate::Replace(rotated) = key_update(&jb, &first, now).unwrap() else { panic!("rotation") };
        let after = signing_keys(&rotated).unwrap();
        assert_ne!(after.current, before.current);
        assert_eq!(after.accepted, vec![after.current.clone(), before.current.clone()], "the old public key is still accepted");
        assert!(string(&rotated, &format!("{}.key.pem", before.current)).is_none(), "the old private key is gone");
        assert!(matches!(key_update(&jb, &rotated, now).unwrap(), KeyUpdate::None), "a served request does not rotate again");

        let later = now.saturating_add(jiff::SignedDuration::from_hours(25)).unwrap();
        let KeyUpdate::Replace(expired) = key_update(&jb, &rotated, later).unwrap() else { panic!("expiry") };
        assert_eq!(signing_keys(&expired).unwrap().accepted, vec![after.current.clone()], "dropped after 24 h");
        assert_ne!(fingerprint(&expired), fingerprint(&rotated));
    }

    #[test]
    fn a_supplied_secret_with_one_key_needs_no_annotation() {
        let mut s = jwt_secret(&fixtures::minimal(), None).unwrap();
        s.metadata.annotations = None;
        assert!(signing_keys(&s).is_ok());
        s.data.as_mut().unwrap().retain(|k, _| k.ends_with(".pub.pem"));
        assert!(signing_keys(&s).unwrap_err().contains("exactly one"));
    }
}
