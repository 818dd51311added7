//! Leader election against the scripted API server: one holder at a time, a standby takes
//! over only after the holder stopped renewing for a whole lease duration.

mod support;

use std::time::Duration;

use jeex_operator::lease::{Claim, DURATION, Elector};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use support::apiserver::ApiServer;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/jeex-operator";

/// A server and two replicas competing for its Lease.
fn candidates() -> (ApiServer, Elector, Elector) {
    let api = ApiServer::default();
    let a = Elector::new(api.client(), "ops", "jeex-operator", "operator-a");
    let b = Elector::new(api.client(), "ops", "jeex-operator", "operator-b");
    (api, a, b)
}

#[tokio::test(start_paused = true)]
async fn one_leader_at_a_time_and_a_takeover_only_after_expiry() {
    let (api, a, b) = candidates();
    let t0 = Timestamp::from_second(1_800_000_000).unwrap();
    let at = |s: i64| t0.checked_add(SignedDuration::from_secs(s)).unwrap();

    let wait = |s: u64| tokio::time::advance(Duration::from_secs(s));
    assert_eq!(a.try_claim(t0).await.unwrap(), Claim::Held, "the first replica takes the free Lease");
    wait(1).await;
    assert_eq!(b.try_claim(at(1)).await.unwrap(), Claim::HeldBy("operator-a".into()));
    wait(4).await;
    assert_eq!(a.try_claim(at(5)).await.unwrap(), Claim::Held, "the holder renews");
    let lasts = DURATION.as_secs();
    wait(1).await;
    assert_eq!(b.try_claim(at(6)).await.unwrap(), Claim::HeldBy("operator-a".into()), "b sees the renewal");
    wait(lasts - 1).await;
    assert_eq!(b.try_claim(at(5 + lasts as i64)).await.unwrap(), Claim::HeldBy("operator-a".into()), "not yet expired");
    wait(1).await;
    assert_eq!(b.try_claim(at(6 + lasts as i64)).await.unwrap(), Claim::Held, "expired: the standby takes over");
    let lease = api.get(LEASE).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert_eq!(a.try_claim(at(7 + lasts as i64)).await.unwrap(), Claim::HeldBy("operator-b".into()), "the old leader stands by");
}

#[tokio::test(start_paused = true)]
async fn expiry_is_judged_by_local_observation_not_by_the_holders_clock() {
    let (_api, a, b) = candidates();
    // The leader's clock runs 10 minutes behind the standby's: its renewTime looks long expired.
    let standby_now = Timestamp::from_second(1_800_000_000).unwrap();
    let leader_now =
        |s: i64| standby_now.checked_sub(SignedDuration::from_mins(10)).unwrap().checked_add(SignedDuration::from_secs(s)).unwrap();
    assert_eq!(a.try_claim(leader_now(0)).await.unwrap(), Claim::Held);
    for s in (5..60).step_by(5) {
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(a.try_claim(leader_now(s)).await.unwrap(), Claim::Held, "the leader renews");
        assert_eq!(b.try_claim(standby_now).await.unwrap(), Claim::HeldBy("operator-a".into()), "a live leader is never taken over");
    }
    // The leader stops renewing: a whole lease duration later, locally, the standby takes over.
    tokio::time::advance(DURATION).await;
    assert_eq!(b.try_claim(standby_now).await.unwrap(), Claim::Held);
}

#[tokio::test]
async fn two_candidates_racing_for_a_stale_lease_one_wins_by_resource_version() {
    let api = ApiServer::default();
    let a = Elector::new(api.client(), "ops", "jeex-operator", "operator-a");
    assert_eq!(a.try_claim(Timestamp::now()).await.unwrap(), Claim::Held);
    // b and c read the same Lease; c writes first; b's write carries the stale resourceVersion.
    let stale = api.get(LEASE).unwrap();
    let mut c_wins = stale.clone();
    c_wins["spec"]["holderIdentity"] = "operator-c".into();
    api.put(LEASE, c_wins);
    let client = api.client();
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = kube::Api::namespaced(client, "ops");
    let mut b_claim: k8s_openapi::api::coordination::v1::Lease = serde_json::from_value(stale).unwrap();
    b_claim.spec.as_mut().unwrap().holder_identity = Some("operator-b".into());
    let err = leases.replace("jeex-operator", &Default::default(), &b_claim).await.unwrap_err();
    let kube::Error::Api(status) = err else { panic!("{err}") };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"), "{}", status.message);
    assert_eq!(api.get(LEASE).unwrap()["spec"]["holderIdentity"], "operator-c");
}
