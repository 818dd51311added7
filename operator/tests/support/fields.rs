//! Field ownership as server-side apply tracks it (`metadata.managedFields`): each manager owns
//! the leaf fields it last set. An apply that sets a field another manager owns to a different
//! value is a conflict (409) unless forced; forcing, or any plain update, takes the field over.
//! An apply that stops setting a field it owned removes it, unless another manager owns it.
//!
//! Simplification, stated: lists are atomic (one field each), where the real server merges
//! lists with merge keys (containers by name). That can only report more conflicts than the
//! real server, never fewer.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// A leaf field: the keys from the root.
pub type Path = Vec<String>;

/// Who owns which fields of one object.
pub type Owners = BTreeMap<String, BTreeSet<Path>>;

/// Top-level fields nobody owns: identity, server-set metadata and the status (its own
/// subresource).
fn owned(path: &[String]) -> bool {
    match path.first().map(String::as_str) {
        Some("apiVersion" | "kind" | "status") => false,
        Some("metadata") => matches!(path.get(1).map(String::as_str), Some("labels" | "annotations" | "ownerReferences" | "finalizers")),
        _ => true,
    }
}

/// Every owned leaf of `value` (an empty object is a leaf; so is every list).
pub fn leaves(value: &Value) -> BTreeSet<Path> {
    fn walk(v: &Value, at: &mut Path, out: &mut BTreeSet<Path>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    at.push(k.clone());
                    walk(child, at, out);
                    at.pop();
                }
            }
            _ => {
                if !at.is_empty() {
                    out.insert(at.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out.retain(|p| owned(p));
    out
}

/// The value at `path`.
pub fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

/// Sets `path` to `new`, creating objects on the way.
pub fn set(value: &mut Value, path: &[String], new: Value) {
    let mut at = value;
    for k in &path[..path.len() - 1] {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        at = at.as_object_mut().unwrap().entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
    if !at.is_object() {
        *at = Value::Object(Map::new());
    }
    at.as_object_mut().unwrap().insert(path[path.len() - 1].clone(), new);
}

/// Removes `path` and any object it leaves empty.
pub fn remove(value: &mut Value, path: &[String]) {
    fn go(v: &mut Value, path: &[String]) {
        let Some(m) = v.as_object_mut() else { return };
        if path.len() == 1 {
            m.remove(&path[0]);
            return;
        }
        if let Some(child) = m.get_mut(&path[0]) {
            go(child, &path[1..]);
            if child.as_object().is_some_and(Map::is_empty) {
                m.remove(&path[0]);
            }
        }
    }
    go(value, path);
}

/// `.spec.replicas` style.
pub fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// One conflict: the manager that owns a field the apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The field.
    pub field: Path,
}

/// Server-side apply of `applied` by `manager` onto `live` (`None`: created by this apply).
/// Returns the new object, or the conflicts when not forced.
pub fn apply(live: Option<&Value>, owners: &mut Owners, manager: &str, applied: &Value, force: bool) -> Result<Value, Vec<Conflict>> {
    let base = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let fields = leaves(applied);
    let mut conflicts = Vec::new();
    for (other, theirs) in owners.iter().filter(|(m, _)| m.as_str() != manager) {
        for field in &fields {
            if theirs.iter().any(|t| overlaps(t, field)) && get(&base, field) != get(applied, field) {
                conflicts.push(Conflict { manager: other.clone(), field: field.clone() });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for (other, theirs) in owners.iter_mut().filter(|(m, _)| m.as_str() != manager) {
        if force {
            theirs.retain(|t| !conflicts.iter().any(|c| &c.manager == other && overlaps(t, &c.field)));
        }
    }
    let mut object = base;
    let before = owners.remove(manager).unwrap_or_default();
    for gone in before.difference(&fields) {
        if !owners.values().any(|o| o.iter().any(|t| overlaps(t, gone))) {
            remove(&mut object, gone);
        }
    }
    for field in &fields {
        set(&mut object, field, get(applied, field).cloned().unwrap_or(Value::Null));
    }
    owners.insert(manager.to_owned(), fields);
    owners.retain(|_, o| !o.is_empty());
    Ok(object)
}

/// A plain write (create, update, merge patch) by `manager`: it takes over every field it
/// changed; removed fields belong to nobody.
pub fn update(before: Option<&Value>, after: &Value, owners: &mut Owners, manager: &str) {
    let old = before.map(leaves).unwrap_or_default();
    let new = leaves(after);
    let changed: BTreeSet<Path> = new.iter().filter(|p| before.and_then(|b| get(b, p)) != get(after, p)).cloned().collect();
    for (m, theirs) in owners.iter_mut() {
        theirs.retain(|t| new.contains(t) || !old.contains(t));
        if m != manager {
            theirs.retain(|t| !changed.iter().any(|c| overlaps(t, c)));
        }
    }
    owners.entry(manager.to_owned()).or_default().extend(changed);
    owners.retain(|_, o| !o.is_empty());
}
