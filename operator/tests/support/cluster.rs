//! The controllers the operator relies on, simulated one second at a time on the double's
//! clock, deterministically:
//!
//! - **Deployment**: one ReplicaSet per pod template (`pod-template-hash`), rolling updates
//!   within `maxSurge`/`maxUnavailable` as kube-controller-manager computes them (a write that
//!   changes replicas and template at once scales the new ReplicaSet up beside the old one),
//!   status (`observedGeneration`, `replicas`, `updatedReplicas`, `readyReplicas`) and the
//!   `Progressing` condition with `ProgressDeadlineExceeded`.
//! - **ReplicaSet**: pods to match its replicas; surplus pods go unready ones first.
//! - **Pods** resolve their environment when they start (`envFrom` ConfigMaps and Secret keys as
//!   they are at that moment, as the kubelet does) and load their JWT key files from the
//!   mounted Secret; a pod that cannot never becomes ready. A pod holds its pool's maximum
//!   (`JEEX_DB_POOL_SIZE` + `JEEX_DB_POOL_MAX_OVERFLOW`) from start until it is deleted.
//! - **Job**: one pod holding the migration's connections, then `Complete` or `Failed`
//!   (scripted per image, with its log), deleted `ttlSecondsAfterFinished` later.
//! - **Garbage collection**: objects whose owners are all gone are deleted.
//!
//! The **meter** adds up, at every step, the connections of every pod that exists, and checks
//! that every ready pod accepts the tokens every other ready pod signs.
//!
//! Simplification, stated: a deleted pod releases its connections at once (real pods drain for
//! their termination grace period; the budget's spare tenth is what covers that).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::apiserver::State;

/// What one running pod holds and does.
#[derive(Debug, Clone)]
pub struct PodFacts {
    /// Database connections it may hold.
    pub connections: i64,
    /// The key ID it signs with.
    pub signs: Option<String>,
    /// Key IDs whose tokens it accepts.
    pub accepts: Vec<String>,
    /// When it becomes ready (`None`: never).
    pub ready_at: Option<Timestamp>,
    /// Why it could not start.
    pub failed: Option<String>,
}

/// How the simulated workloads behave, and what the meters saw.
#[derive(Debug, Default)]
pub struct Sim {
    /// Seconds from a pod's creation to its readiness (default 3).
    pub pod_ready_after: Option<i64>,
    /// Images whose pods never become ready.
    pub broken_images: BTreeSet<String>,
    /// Seconds a migration pod runs (default 5).
    pub job_takes: Option<i64>,
    /// Images whose migration fails, with the log it leaves.
    pub failing_migrations: BTreeMap<String, String>,
    /// Facts of running pods, by path.
    pub pods: BTreeMap<String, PodFacts>,
    /// When each Deployment last made progress.
    progress: BTreeMap<String, Timestamp>,
    /// The most connections held at once, and when and by what.
    pub peak: (i64, String),
    /// Every instant a ready pod would have rejected another ready pod's token.
    pub token_rejections: Vec<String>,
    /// Pods that could not start, and why.
    pub start_failures: Vec<String>,
    /// Pods created so far.
    pub pods_created: u64,
}

fn secs(s: i64) -> SignedDuration {
    SignedDuration::from_secs(s)
}

fn owned_by(state: &State, collection: &str, uid: &str) -> Vec<(String, Value)> {
    let prefix = format!("{collection}/");
    state
        .objects
        .iter()
        .filter(|(k, v)| {
            k.starts_with(&prefix) && v["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|o| o["uid"] == uid)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn namespace_of(path: &str) -> String {
    path.split('/').skip_while(|s| *s != "namespaces").nth(1).unwrap_or("default").to_owned()
}

fn owner_ref(kind: &str, api_version: &str, object: &Value) -> Value {
    json!({ "apiVersion": api_version, "kind": kind, "name": object["metadata"]["name"], "uid": object["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true })
}

/// A started pod: its environment, the key it signs with, the keys it accepts.
type Started = (BTreeMap<String, String>, Option<String>, Vec<String>);

/// Resolves a pod's environment and key files as the kubelet would at container start.
fn start(state: &State, ns: &str, pod_spec: &Value) -> Result<Started, String> {
    let container = &pod_spec["containers"][0];
    let mut env = BTreeMap::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        if let Some(name) = from["configMapRef"]["name"].as_str() {
            let Some(cm) = state.objects.get(&format!("/api/v1/namespaces/{ns}/configmaps/{name}")) else {
                return Err(format!("CreateContainerConfigError: configmap \"{name}\" not found"));
            };
            for (k, v) in cm["data"].as_object().into_iter().flatten() {
                env.insert(k.clone(), v.as_str().unwrap_or("").to_owned());
            }
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or("").to_owned();
        if let Some(v) = var["value"].as_str() {
            env.insert(name, v.to_owned());
        } else if let Some(r) = var["valueFrom"].get("secretKeyRef") {
            let secret = state.objects.get(&format!("/api/v1/namespaces/{ns}/secrets/{}", r["name"].as_str().unwrap_or("")));
            if secret.is_none_or(|s| s["data"][r["key"].as_str().unwrap_or("")].is_null()) {
                return Err(format!("CreateContainerConfigError: secret \"{}\" key \"{}\" not found", r["name"], r["key"]));
            }
            env.insert(name, "<secret>".into());
        }
    }
    // Key files from the mounted Secret, read once at start.
    let mounted = pod_spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|v| v["secret"]["secretName"].as_str())
        .and_then(|name| state.objects.get(&format!("/api/v1/namespaces/{ns}/secrets/{name}")));
    let file = |path: &str| path.rsplit('/').next().unwrap_or("").to_owned();
    let has = |f: &str| mounted.is_some_and(|s| !s["data"][f].is_null());
    let signs = env.get("JEEX_JWT_PRIVATE_KEY").map(|p| file(p));
    if let Some(f) = &signs
        && !has(f)
    {
        return Err(format!("cannot load the signing key {f}: not in the mounted Secret"));
    }
    let mut accepts = Vec::new();
    for p in env.get("JEEX_JWT_PUBLIC_KEYS").map(|s| s.split(',').map(file).collect::<Vec<_>>()).unwrap_or_default() {
        if !has(&p) {
            return Err(format!("cannot load the public key {p}: not in the mounted Secret"));
        }
        accepts.push(p.trim_end_matches(".pub.pem").to_owned());
    }
    Ok((env, signs.map(|s| s.trim_end_matches(".key.pem").to_owned()), accepts))
}

/// Creates a pod from `template` owned by `owner`; returns its path.
fn create_pod(state: &mut State, ns: &str, base: &str, template: &Value, owner: Value, connections_override: Option<i64>) -> String {
    state.sim.pods_created += 1;
    let name = format!("{base}-{:05}", state.sim.pods_created);
    let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": ns, "labels": labels, "ownerReferences": [owner] },
        "spec": template["spec"],
        "status": { "phase": "Pending" }
    });
    let started = start(state, ns, &template["spec"]);
    let image = template["spec"]["containers"][0]["image"].as_str().unwrap_or("").to_owned();
    let now = state.now();
    let facts = match started {
        Ok((env, signs, accepts)) => {
            let pool = |k: &str| env.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
            let connections = connections_override.unwrap_or(pool("JEEX_DB_POOL_SIZE") + pool("JEEX_DB_POOL_MAX_OVERFLOW"));
            let ready_at = (!state.sim.broken_images.contains(&image)).then(|| now + secs(state.sim.pod_ready_after.unwrap_or(3)));
            PodFacts { connections, signs, accepts, ready_at, failed: None }
        }
        Err(why) => {
            state.sim.start_failures.push(format!("{now} {name}: {why}"));
            PodFacts { connections: 0, signs: None, accepts: vec![], ready_at: None, failed: Some(why) }
        }
    };
    state.store(&path, pod);
    state.sim.pods.insert(path.clone(), facts);
    measure(state, &format!("pod {name} started"));
    path
}

fn ready(state: &State, path: &str) -> bool {
    state.sim.pods.get(path).is_some_and(|f| f.ready_at.is_some_and(|t| t <= state.now()))
}

fn delete(state: &mut State, path: &str) {
    state.objects.remove(path);
    state.owners.remove(path);
    state.sim.pods.remove(path);
}

/// Adds up the connections held now; remembers the peak.
fn measure(state: &mut State, what: &str) {
    let total: i64 = state.sim.pods.values().map(|f| f.connections).sum();
    if total > state.sim.peak.0 {
        let detail: Vec<String> = state
            .sim
            .pods
            .iter()
            .filter(|(_, f)| f.connections > 0)
            .map(|(p, f)| format!("{}={}", p.rsplit('/').next().unwrap_or(""), f.connections))
            .collect();
        state.sim.peak = (total, format!("{} at {} ({what}): {}", total, state.now(), detail.join(" ")));
    }
}

/// One second of every controller.
pub fn step(state: &mut State) {
    let deployments: Vec<String> = state.objects.keys().filter(|k| k.contains("/deployments/")).cloned().collect();
    for d in deployments {
        deployment(state, &d);
    }
    let sets: Vec<String> = state.objects.keys().filter(|k| k.contains("/replicasets/")).cloned().collect();
    for rs in sets {
        replica_set(state, &rs);
    }
    let jobs: Vec<String> = state.objects.keys().filter(|k| k.contains("/jobs/")).cloned().collect();
    for j in jobs {
        job(state, &j);
    }
    garbage_collect(state);
    let ready_pods: Vec<PodFacts> =
        state.sim.pods.iter().filter(|(p, _)| ready(state, p)).map(|(_, f)| f.clone()).filter(|f| f.signs.is_some()).collect();
    for a in &ready_pods {
        for b in &ready_pods {
            let kid = a.signs.as_ref().unwrap();
            if !b.accepts.contains(kid) {
                let now = state.now();
                state.sim.token_rejections.push(format!("{now}: a pod accepting {:?} rejects tokens signed with {kid}", b.accepts));
            }
        }
    }
    measure(state, "step");
}

fn int(v: &Value, default: i64) -> i64 {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(default)
}

fn deployment(state: &mut State, path: &str) {
    let Some(d) = state.objects.get(path).cloned() else { return };
    let ns = namespace_of(path);
    let uid = d["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    let replicas = int(&d["spec"]["replicas"], 1);
    let template = &d["spec"]["template"];
    let hash = jeex_operator::objects::hash(&template.to_string())[..10].to_owned();
    let rs_collection = format!("/apis/apps/v1/namespaces/{ns}/replicasets");
    let sets = owned_by(state, &rs_collection, &uid);
    let mut progressed = false;
    let new_path = format!("{rs_collection}/{}-{hash}", d["metadata"]["name"].as_str().unwrap_or(""));
    if !sets.iter().any(|(p, _)| *p == new_path) {
        let mut labels = template["metadata"]["labels"].clone();
        labels["pod-template-hash"] = hash.clone().into();
        let mut t = template.clone();
        t["metadata"]["labels"] = labels.clone();
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": { "name": new_path.rsplit('/').next(), "namespace": ns, "labels": labels, "ownerReferences": [owner_ref("Deployment", "apps/v1", &d)] },
            "spec": { "replicas": 0, "selector": d["spec"]["selector"], "template": t }
        });
        state.store(&new_path, rs);
        progressed = true;
    }
    let pods_of = |state: &State, rs: &str| -> Vec<String> {
        let Some(uid) = state.objects.get(rs).and_then(|r| r["metadata"]["uid"].as_str().map(str::to_owned)) else { return vec![] };
        owned_by(state, &format!("/api/v1/namespaces/{ns}/pods"), &uid).into_iter().map(|(p, _)| p).collect()
    };
    let olds: Vec<String> = owned_by(state, &rs_collection, &uid).into_iter().map(|(p, _)| p).filter(|p| *p != new_path).collect();
    let rs_replicas = |state: &State, p: &str| int(&state.objects[p]["spec"]["replicas"], 0);
    let set_replicas = |state: &mut State, p: &str, n: i64| {
        let mut rs = state.objects[p].clone();
        rs["spec"]["replicas"] = n.into();
        state.store(p, rs);
    };
    let old_total: i64 = olds.iter().map(|p| rs_replicas(state, p)).sum();
    let new_replicas = rs_replicas(state, &new_path);
    if old_total == 0 {
        if new_replicas != replicas {
            set_replicas(state, &new_path, replicas);
            progressed = true;
        }
    } else {
        let strategy = &d["spec"]["strategy"]["rollingUpdate"];
        let surge = int(&strategy["maxSurge"], 1);
        let unavailable = int(&strategy["maxUnavailable"], 0);
        // Scale up the new ReplicaSet within replicas + maxSurge.
        let total = old_total + new_replicas;
        let up = (replicas + surge - total).min(replicas - new_replicas);
        if up > 0 {
            set_replicas(state, &new_path, new_replicas + up);
            progressed = true;
        }
        // Scale down old ones while replicas - maxUnavailable stay available.
        let all_pods: Vec<String> = olds.iter().chain([&new_path]).flat_map(|rs| pods_of(state, rs)).collect();
        let available = all_pods.iter().filter(|p| ready(state, p)).count() as i64;
        let new_pods = pods_of(state, &new_path);
        let new_unavailable = rs_replicas(state, &new_path) - new_pods.iter().filter(|p| ready(state, p)).count() as i64;
        let total_now: i64 = olds.iter().map(|p| rs_replicas(state, p)).sum::<i64>() + rs_replicas(state, &new_path);
        // Unhealthy old pods go first: removing them costs no availability.
        let mut max_scaled_down = (total_now - (replicas - unavailable) - new_unavailable).max(0);
        for old in &olds {
            let unready = pods_of(state, old).iter().filter(|p| !ready(state, p)).count() as i64;
            let take = unready.min(max_scaled_down).min(rs_replicas(state, old));
            if take > 0 {
                let have = rs_replicas(state, old);
                set_replicas(state, old, have - take);
                max_scaled_down -= take;
                progressed = true;
            }
        }
        let total_now: i64 = olds.iter().map(|p| rs_replicas(state, p)).sum::<i64>() + rs_replicas(state, &new_path);
        let mut can_remove = (total_now - (replicas - unavailable) - new_unavailable).min(available - (replicas - unavailable)).max(0);
        for old in &olds {
            let have = rs_replicas(state, old);
            let take = have.min(can_remove);
            if take > 0 {
                set_replicas(state, old, have - take);
                can_remove -= take;
                progressed = true;
            }
        }
        if rs_replicas(state, &new_path) > replicas {
            set_replicas(state, &new_path, replicas);
        }
    }
    // Status.
    let sets: Vec<String> = owned_by(state, &rs_collection, &uid).into_iter().map(|(p, _)| p).collect();
    let pods: Vec<String> = sets.iter().flat_map(|rs| pods_of(state, rs)).collect();
    let updated = pods_of(state, &new_path);
    let ready_count = pods.iter().filter(|p| ready(state, p)).count() as i64;
    let now = state.now();
    let newly_ready = updated.iter().any(|p| state.sim.pods.get(p).and_then(|f| f.ready_at) == Some(now));
    if progressed || newly_ready {
        state.sim.progress.insert(path.to_owned(), now);
    }
    let last = *state.sim.progress.entry(path.to_owned()).or_insert(now);
    let complete = updated.len() as i64 == replicas && pods.len() as i64 == replicas && ready_count == replicas;
    let deadline = int(&d["spec"]["progressDeadlineSeconds"], 600);
    let progressing = if complete {
        json!({ "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet {:?} has successfully progressed.", new_path.rsplit('/').next().unwrap_or("")) })
    } else if now.duration_since(last).as_secs() > deadline {
        json!({ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": format!("ReplicaSet {:?} has timed out progressing.", new_path.rsplit('/').next().unwrap_or("")) })
    } else {
        json!({ "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "rolling" })
    };
    let available = json!({ "type": "Available", "status": if ready_count >= replicas - int(&d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0) { "True" } else { "False" }, "reason": "MinimumReplicasAvailable" });
    let status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": pods.len(),
        "updatedReplicas": updated.len(),
        "readyReplicas": ready_count,
        "availableReplicas": ready_count,
        "conditions": [available, progressing]
    });
    if d["status"] != status {
        let mut d = state.objects[path].clone();
        d["status"] = status;
        state.store(path, d);
    }
}

fn replica_set(state: &mut State, path: &str) {
    let Some(rs) = state.objects.get(path).cloned() else { return };
    let ns = namespace_of(path);
    let uid = rs["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    let want = int(&rs["spec"]["replicas"], 0);
    let mut pods: Vec<String> = owned_by(state, &format!("/api/v1/namespaces/{ns}/pods"), &uid).into_iter().map(|(p, _)| p).collect();
    while (pods.len() as i64) < want {
        let base = rs["metadata"]["name"].as_str().unwrap_or("rs").to_owned();
        pods.push(create_pod(state, &ns, &base, &rs["spec"]["template"], owner_ref("ReplicaSet", "apps/v1", &rs), None));
    }
    if (pods.len() as i64) > want {
        // Unready pods go first, then the newest.
        pods.sort_by_key(|p| (ready(state, p), std::cmp::Reverse(p.clone())));
        for p in pods.iter().take(pods.len() - want as usize).cloned().collect::<Vec<_>>() {
            delete(state, &p);
        }
    }
    for p in pods.iter().filter(|p| state.objects.contains_key(*p)).cloned().collect::<Vec<_>>() {
        let phase = if ready(state, &p) { "Running" } else { "Pending" };
        if state.objects[&p]["status"]["phase"] != phase {
            let mut pod = state.objects[&p].clone();
            pod["status"] =
                json!({ "phase": phase, "conditions": [{ "type": "Ready", "status": if phase == "Running" { "True" } else { "False" } }] });
            state.store(&p, pod);
        }
    }
}

fn job(state: &mut State, path: &str) {
    let Some(j) = state.objects.get(path).cloned() else { return };
    let ns = namespace_of(path);
    let now = state.now();
    let finished = j["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True");
    if finished {
        let ttl = j["spec"]["ttlSecondsAfterFinished"].as_i64();
        let at = j["status"]["completionTime"].as_str().or(j["status"]["failedTime"].as_str()).and_then(|t| t.parse::<Timestamp>().ok());
        if let (Some(ttl), Some(at)) = (ttl, at)
            && now >= at + secs(ttl)
        {
            delete(state, path);
        }
        return;
    }
    let uid = j["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    let pods = owned_by(state, &format!("/api/v1/namespaces/{ns}/pods"), &uid);
    let name = j["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let Some((pod_path, pod)) = pods.into_iter().next() else {
        let mut template = j["spec"]["template"].clone();
        template["metadata"]["labels"]["job-name"] = name.clone().into();
        template["metadata"]["labels"]["batch.kubernetes.io/job-name"] = name.clone().into();
        create_pod(state, &ns, &name, &template, owner_ref("Job", "batch/v1", &j), Some(jeex_operator::pools::MIGRATION.into()));
        let mut j = j.clone();
        j["status"]["startTime"] = now.to_string().into();
        j["status"]["active"] = 1.into();
        state.store(path, j);
        return;
    };
    let started: Timestamp = pod["metadata"]["creationTimestamp"].as_str().and_then(|t| t.parse().ok()).unwrap_or(now);
    if now < started + secs(state.sim.job_takes.unwrap_or(5)) {
        return;
    }
    let image = j["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap_or("").to_owned();
    let failed = state.sim.pods.get(&pod_path).and_then(|f| f.failed.clone()).or_else(|| state.sim.failing_migrations.get(&image).cloned());
    let mut j = j.clone();
    let mut pod = pod.clone();
    j["status"]["active"] = 0.into();
    match failed {
        Some(log) => {
            state.logs.insert(pod_path.clone(), log);
            pod["status"]["phase"] = "Failed".into();
            j["status"]["failed"] = 1.into();
            j["status"]["failedTime"] = now.to_string().into();
            j["status"]["conditions"] =
                terminal(["FailureTarget", "Failed"], "BackoffLimitExceeded", "Job has reached the specified backoff limit");
        }
        None => {
            state.logs.insert(pod_path.clone(), "migrations applied\n".into());
            pod["status"]["phase"] = "Succeeded".into();
            j["status"]["succeeded"] = 1.into();
            j["status"]["completionTime"] = now.to_string().into();
            j["status"]["conditions"] =
                terminal(["SuccessCriteriaMet", "Complete"], "CompletionsReached", "Reached expected number of succeeded pods");
        }
    }
    // A finished pod holds no connections.
    if let Some(f) = state.sim.pods.get_mut(&pod_path) {
        f.connections = 0;
        f.ready_at = None;
    }
    state.store(&pod_path, pod);
    state.store(path, j);
}

/// A finished Job's two conditions (the interim one, then the final one), as the Job controller sets them.
fn terminal(kinds: [&str; 2], reason: &str, message: &str) -> Value {
    Value::Array(kinds.iter().map(|k| json!({ "type": k, "status": "True", "reason": reason, "message": message })).collect())
}

/// Deletes every object whose owners are all gone (background propagation).
fn garbage_collect(state: &mut State) {
    loop {
        let uids: BTreeSet<String> = state.objects.values().filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_owned)).collect();
        let orphans: Vec<String> = state
            .objects
            .iter()
            .filter(|(_, o)| {
                let owners = o["metadata"]["ownerReferences"].as_array();
                owners.is_some_and(|list| !list.is_empty() && list.iter().all(|r| !uids.contains(r["uid"].as_str().unwrap_or(""))))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if orphans.is_empty() {
            return;
        }
        for o in orphans {
            delete(state, &o);
        }
    }
}
