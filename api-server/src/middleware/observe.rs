//! Records every request: one access-log line (inside the request span, so it carries the
//! correlation ID) and the HTTP server metrics, labelled by route template, never by raw path.
//! Only the path is logged: query strings and headers may hold tokens.

use std::time::Instant;

use opentelemetry::{KeyValue, StringValue};
use poem::Request;

use crate::{
    routes::RouteEntry,
    telemetry::metrics::{ActiveRequests, METHODS, Metrics, method_slot},
};

/// What the observer needs.
pub struct Observer {
    /// Instruments.
    pub metrics: Metrics,
}

/// One request being observed. Dropped without [`Observer::finish`] (the client went away and
/// the request future was cancelled), it still leaves the in-flight gauge and logs the loss.
pub struct Observation<'a> {
    started: Instant,
    /// Index into [`METHODS`].
    method: usize,
    route: Option<&'a RouteEntry>,
    path: String,
    active: Option<ActiveRequests>,
}

impl<'a> Observation<'a> {
    /// The request's path (the one copy kept for the whole request).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The route the request matched (looked up once, by the chain, for every step that needs
    /// it).
    pub fn route(&self) -> Option<&'a RouteEntry> {
        self.route
    }
}

impl Drop for Observation<'_> {
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            active.add(self.method, -1);
            tracing::debug!(path = %self.path, "request abandoned before it completed");
        }
    }
}

impl Observer {
    /// Starts observing `req`, labelled with the template of `route`, the route it matched.
    pub fn start<'a>(&self, route: Option<&'a RouteEntry>, req: &Request) -> Observation<'a> {
        let method = method_slot(req.method());
        self.metrics.active_requests.add(method, 1);
        let path = req.uri().path();
        Observation { started: Instant::now(), method, route, path: path.to_owned(), active: Some(self.metrics.active_requests.clone()) }
    }

    /// Records the outcome: the duration histogram and one access-log line.
    pub fn finish(&self, mut obs: Observation<'_>, status: u16) {
        // Finished normally: the drop guard has nothing left to do.
        obs.active = None;
        let Observation { started, method, route, path, .. } = &obs;
        self.metrics.active_requests.add(*method, -1);
        let elapsed = started.elapsed();
        let method = METHODS[*method];
        let method_attr = KeyValue::new("http.request.method", method);
        let status_attr = KeyValue::new("http.response.status_code", i64::from(status));
        match route {
            Some(route) => {
                let route_attr = KeyValue::new("http.route", StringValue::from(route.template.clone()));
                self.metrics.request_duration.record(elapsed.as_secs_f64(), &[method_attr, status_attr, route_attr]);
            }
            None => self.metrics.request_duration.record(elapsed.as_secs_f64(), &[method_attr, status_attr]),
        }

        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        let route = route.map(|r| &*r.template);
        let quiet = route.is_some_and(|r| r.starts_with("/health") || r == "/metrics");
        let route = route.unwrap_or("unmatched");
        // Probes and scrapes arrive every few seconds: keep them out of the default log level.
        if quiet {
            tracing::debug!(%method, path, status, duration_ms, route, "request completed");
        } else {
            tracing::info!(%method, path, status, duration_ms, route, "request completed");
        }
    }
}

#[cfg(test)]
mod tests {
    use poem::http::Method;

    use super::*;

    #[test]
    fn methods_map_to_their_names() {
        assert_eq!(METHODS[method_slot(&Method::GET)], "GET");
        assert_eq!(METHODS[method_slot(&Method::OPTIONS)], "OPTIONS");
        assert_eq!(METHODS[method_slot(&Method::from_bytes(b"PROPFIND").unwrap())], "_OTHER");
    }
}
