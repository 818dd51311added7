//! Records every request: one access-log line (inside the request span, so it carries the
//! correlation ID) and the HTTP server metrics, labelled by route template, never by raw path.
//! Only the path is logged: query strings and headers may hold tokens.

use std::{sync::Arc, time::Instant};

use opentelemetry::KeyValue;
use poem::{Endpoint, IntoResponse, Request, Response, Result};

use crate::{routes::RouteTable, telemetry::metrics::Metrics};

/// What the observer needs.
pub struct Observer {
    /// Instruments.
    pub metrics: Metrics,
    /// Route templates for the `http.route` label.
    pub routes: RouteTable,
}

/// The middleware function.
pub async fn handle<E: Endpoint>(obs: Arc<Observer>, ep: Arc<E>, req: Request) -> Result<Response> {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = obs.routes.find(req.uri().path()).map(|r| r.template.clone());
    let quiet = route.as_deref().is_some_and(|r| r.starts_with("/health") || r == "/metrics");
    let method_attr = KeyValue::new("http.request.method", method.clone());
    obs.metrics.active_requests.add(1, std::slice::from_ref(&method_attr));

    let result = ep.call(req).await.map(IntoResponse::into_response);

    obs.metrics.active_requests.add(-1, std::slice::from_ref(&method_attr));
    let status = match &result {
        Ok(resp) => resp.status().as_u16(),
        Err(err) => err.status().as_u16(),
    };
    let elapsed = started.elapsed();
    let mut attrs = vec![method_attr, KeyValue::new("http.response.status_code", i64::from(status))];
    if let Some(route) = &route {
        attrs.push(KeyValue::new("http.route", route.clone()));
    }
    obs.metrics.request_duration.record(elapsed.as_secs_f64(), &attrs);

    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let route = route.as_deref().unwrap_or("unmatched");
    if quiet {
        tracing::debug!(status, duration_ms, route, "request completed");
    } else {
        tracing::info!(status, duration_ms, route, "request completed");
    }
    result
}
