//! A client span for every call the operator makes to the Kubernetes API, named by the call's
//! path template (`GET /apis/apps/v1/namespaces/{namespace}/deployments/{name}`) with the HTTP
//! client conventions, as a child of the reconcile making it. Calls outside a sampled trace
//! (the controller's watches) get none. The query (label selectors, field managers) is left
//! out of the recorded URL.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use opentelemetry::trace::{Status, TraceContextExt};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The layer, added to the client's service stack ([`kube::client::ClientBuilder::with_layer`]).
#[derive(Debug, Clone, Default)]
pub struct ApiCalls {
    /// The API server's scheme, host and port, when known (the cluster URL).
    pub server: Option<Server>,
}

/// Where the API server is.
#[derive(Debug, Clone)]
pub struct Server {
    /// `https` (or `http`).
    pub scheme: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl ApiCalls {
    /// Spans naming the API server at `url`.
    pub fn for_cluster(url: &http::Uri) -> Self {
        let scheme = url.scheme_str().unwrap_or("https").to_owned();
        let port = url.port_u16().unwrap_or(if scheme == "http" { 80 } else { 443 });
        Self { server: url.host().map(|host| Server { scheme, host: host.to_owned(), port }) }
    }
}

impl<S> tower::Layer<S> for ApiCalls {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced { inner, server: self.server.clone() }
    }
}

/// The service the layer wraps.
#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
    server: Option<Server>,
}

type Boxed<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for Traced<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Boxed<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let sampled = opentelemetry::Context::map_current(|cx| cx.span().span_context().is_sampled());
        if !sampled {
            return Box::pin(self.inner.call(req));
        }
        let span = span(&req, self.server.as_ref());
        let call = self.inner.call(req);
        Box::pin(async move {
            let result = call.instrument(span.clone()).await;
            match &result {
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    span.set_attribute("http.response.status_code", i64::from(code));
                    if code >= 400 {
                        span.set_attribute("error.type", code.to_string());
                        span.set_status(Status::error(code.to_string()));
                    }
                }
                Err(_) => {
                    span.set_attribute("error.type", "transport");
                    span.set_status(Status::error("transport"));
                }
            }
            result
        })
    }
}

fn span<B>(req: &http::Request<B>, server: Option<&Server>) -> tracing::Span {
    let method = req.method().as_str();
    let path = req.uri().path();
    let (template, namespace) = template(path);
    let full = match server {
        Some(s) => format!("{}://{}:{}{path}", s.scheme, s.host, s.port),
        None => path.to_owned(),
    };
    tracing::error_span!(
        "k8s api",
        otel.name = %format!("{method} {template}"),
        otel.kind = "client",
        http.request.method = method,
        url.template = %template,
        url.full = %full,
        server.address = server.map(|s| s.host.as_str()),
        server.port = server.map(|s| i64::from(s.port)),
        k8s.namespace.name = namespace,
    )
}

/// A Kubernetes API path as a template, and the namespace it names: the namespace and the
/// object's name become `{namespace}` and `{name}`; groups, versions, resources and
/// subresources stay.
pub fn template(path: &str) -> (String, Option<&str>) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    let prefix = match parts.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => return (path.to_owned(), None),
    };
    let mut out: Vec<&str> = parts.iter().take(prefix).copied().collect();
    let mut rest = &parts[prefix.min(parts.len())..];
    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() >= 2 {
        namespace = Some(rest[1]);
        if rest.len() == 2 {
            // The Namespace object itself.
            out.extend(["namespaces", "{name}"]);
            return (format!("/{}", out.join("/")), namespace);
        }
        out.extend(["namespaces", "{namespace}"]);
        rest = &rest[2..];
    }
    if let Some((resource, tail)) = rest.split_first() {
        out.push(resource);
        if let Some((_, subresources)) = tail.split_first() {
            out.push("{name}");
            out.extend(subresources);
        }
    }
    (format!("/{}", out.join("/")), namespace)
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn paths_become_templates() {
        let t = |p| template(p).0;
        assert_eq!(t("/apis/apps/v1/namespaces/prod/deployments/jeex"), "/apis/apps/v1/namespaces/{namespace}/deployments/{name}");
        assert_eq!(t("/api/v1/namespaces/prod/secrets"), "/api/v1/namespaces/{namespace}/secrets");
        assert_eq!(
            t("/apis/jeex.io/v1/namespaces/prod/jeexbackends/b/status"),
            "/apis/jeex.io/v1/namespaces/{namespace}/jeexbackends/{name}/status"
        );
        assert_eq!(t("/apis/jeex.io/v1/jeexbackends"), "/apis/jeex.io/v1/jeexbackends");
        assert_eq!(t("/api/v1/namespaces/prod"), "/api/v1/namespaces/{name}");
        assert_eq!(t("/api/v1/namespaces/prod/pods/p-1/log"), "/api/v1/namespaces/{namespace}/pods/{name}/log");
        assert_eq!(template("/api/v1/namespaces/prod/secrets/s").1, Some("prod"));
        assert_eq!(t("/version"), "/version");
    }
}
