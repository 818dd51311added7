//! The API Service.

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{Names, meta, selector};
use crate::crd::JeexBackend;

/// A ClusterIP Service in front of the API pods, port 80 → `http`.
pub fn service(jb: &JeexBackend) -> Service {
    Service {
        metadata: meta(jb, Names::of(jb).api(), "api"),
        spec: Some(ServiceSpec {
            selector: Some(selector(jb, "api")),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
