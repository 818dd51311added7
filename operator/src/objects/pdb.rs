//! The PodDisruptionBudget: with more than one replica, voluntary evictions (node drains)
//! leave at least one pod serving.

use k8s_openapi::{
    api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::{Names, meta, selector};
use crate::crd::JeexBackend;

/// `maxUnavailable: 1` when `replicas > 1`; `None` (delete any) otherwise, since a budget on
/// a single pod would block every node drain.
pub fn pdb(jb: &JeexBackend) -> Option<PodDisruptionBudget> {
    (jb.spec.replicas > 1).then(|| PodDisruptionBudget {
        metadata: meta(jb, Names::of(jb).api(), "api"),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(selector(jb, "api")), ..LabelSelector::default() }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    #[test]
    fn only_with_more_than_one_replica() {
        let mut jb = fixtures::minimal();
        assert!(pdb(&jb).is_some(), "the default is 2 replicas");
        jb.spec.replicas = 1;
        assert!(pdb(&jb).is_none());
    }
}
