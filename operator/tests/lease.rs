//! Leader election against the scripted API server: one holder at a time, a standby takes
//! over only after the holder stopped renewing for a whole lease duration.

mod support;

use jeex_operator::lease::{Claim, DURATION, Elector};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use support::apiserver::ApiServer;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/jeex-operator";

#[tokio::test]
async fn one_leader_at_a_time_and_a_takeover_only_after_expiry() {
    let api = ApiServer::default();
    let a = Elector::new(api.client(), "ops", "jeex-operator", "operator-a");
    let b = Elector::new(api.client(), "ops", "jeex-operator", "operator-b");
    let t0 = Timestamp::from_second(1_800_000_000).unwrap();
    let at = |s: i64| t0.checked_add(SignedDuration::from_secs(s)).unwrap();

    assert_eq!(a.try_claim(t0).await.unwrap(), Claim::Held, "the first replica takes the free Lease");
    assert_eq!(b.try_claim(at(1)).await.unwrap(), Claim::HeldBy("operator-a".into()));
    assert_eq!(a.try_claim(at(5)).await.unwrap(), Claim::Held, "the holder renews");
    let lasts = DURATION.as_secs() as i64;
    assert_eq!(b.try_claim(at(5 + lasts - 1)).await.unwrap(), Claim::HeldBy("operator-a".into()), "not yet expired");
    assert_eq!(b.try_claim(at(5 + lasts)).await.unwrap(), Claim::Held, "expired: the standby takes over");
    let lease = api.get(LEASE).unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert_eq!(a.try_claim(at(5 + lasts + 1)).await.unwrap(), Claim::HeldBy("operator-b".into()), "the old leader stands by");
}
