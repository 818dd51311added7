//! The app factory: state in, the complete endpoint (middleware chain, API, docs, spec) out.

use poem::{
    EndpointExt, IntoResponse, Route,
    endpoint::{BoxEndpoint, make_sync},
    http::Method,
};
use poem_openapi::OpenApi;

use crate::{
    api,
    middleware::{
        Chain,
        observe::Observer,
        security_headers::{DOCS_PATH, Policies},
    },
    routes::RouteTable,
    state::AppState,
};

/// Routes served outside the OpenAPI operations.
const EXTRA_ROUTES: &[(&str, &[Method])] =
    &[("/openapi.json", &[Method::GET]), ("/openapi.yaml", &[Method::GET]), (DOCS_PATH, &[Method::GET])];

/// The shipped application.
pub fn build(state: AppState) -> BoxEndpoint<'static> {
    build_with(state, ())
}

/// The application with `extra` operations mounted inside the same chain (tests use this to
/// exercise the chain with handlers that panic, sleep or take bodies).
pub fn build_with<T: OpenApi + 'static>(state: AppState, extra: T) -> BoxEndpoint<'static> {
    let service = api::service(extra);
    let spec_json = service.spec();
    let spec_yaml = service.spec_yaml();
    let docs_html = service.swagger_ui_html();
    let spec_value: serde_json::Value = serde_json::from_str(&spec_json).unwrap_or_default();
    let routes = RouteTable::from_spec(&spec_value, EXTRA_ROUTES);
    let config = state.config().clone();

    let docs = service.swagger_ui();
    let router = Route::new()
        .nest_no_strip("/", service)
        .at("/openapi.json", poem::get(make_sync(move |_| spec_json.clone().with_content_type("application/json"))))
        .at("/openapi.yaml", poem::get(make_sync(move |_| spec_yaml.clone().with_content_type("application/yaml"))))
        .nest(DOCS_PATH, docs)
        .data(state.clone());
    Chain {
        inner: router,
        routes,
        observer: Observer { metrics: state.metrics().clone() },
        policies: Policies::for_docs_page(&docs_html),
        cors: config.cors.clone(),
        expose_internal: config.expose_error_details,
        timeout: config.request_timeout,
        body_limit: config.body_limit,
        state,
    }
    .boxed()
}
