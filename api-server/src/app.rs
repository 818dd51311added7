//! The app factory: state in, the complete endpoint (middleware chain, API, docs, spec) out.

use poem::{
    Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Response, Result, Route,
    endpoint::{BoxEndpoint, DynEndpoint, make_sync},
    http::Method,
};
use poem_openapi::OpenApi;

use crate::{
    api,
    middleware::{
        Chain,
        body_limit::Uploads,
        observe::Observer,
        security_headers::{DOCS_PATH, Policies, is_docs},
    },
    routes::RouteTable,
    state::AppState,
};

/// Routes served outside the OpenAPI operations.
const EXTRA_ROUTES: &[(&str, &[Method])] =
    &[("/openapi.json", &[Method::GET]), ("/openapi.yaml", &[Method::GET]), (DOCS_PATH, &[Method::GET])];

/// The complete application: the middleware chain around the site. A concrete type rather
/// than a boxed endpoint: the server calls it without dynamic dispatch and boxes its future
/// once, itself.
pub type App = Chain<Site>;

/// The shipped application.
pub fn build(state: AppState) -> App {
    build_with(state, ())
}

/// The application with `extra` operations mounted inside the same chain (tests use this to
/// exercise the chain with handlers that panic, sleep or take bodies).
pub fn build_with<T: OpenApi + 'static>(state: AppState, extra: T) -> App {
    let service = api::service(extra);
    let api::contract::Rendered { json: spec_json, yaml: spec_yaml, docs_html } =
        api::contract::render(&service, state.config().vectors.dim);
    let spec_value: serde_json::Value = serde_json::from_str(&spec_json).unwrap_or_default();
    let routes = RouteTable::from_spec(&spec_value, EXTRA_ROUTES);
    let config = state.config().clone();

    let site = Site {
        docs: {
            let html = docs_html.clone();
            Route::new().at(DOCS_PATH, make_sync(move |_| poem::web::Html(html.clone()))).boxed()
        },
        api: service.into_endpoint(),
        spec_json: poem::get(make_sync(move |_| spec_json.clone().with_content_type("application/json"))).boxed(),
        spec_yaml: poem::get(make_sync(move |_| spec_yaml.clone().with_content_type("application/yaml"))).boxed(),
        state: state.clone(),
    };
    Chain {
        inner: site,
        routes,
        observer: Observer { metrics: state.metrics().clone() },
        policies: Policies::for_docs_page(&docs_html),
        cors: config.cors.clone(),
        expose_internal: config.expose_error_details,
        timeout: config.request_timeout,
        body_limit: config.body_limit,
        uploads: Uploads::new(config.import_body_limit),
        server_spans: config.telemetry.otlp_endpoint.is_some(),
        state,
    }
}

/// The top-level dispatch: the spec and the docs by their fixed paths, everything else to the
/// API's own router. A plain match instead of an outer `Route` spares every API request a
/// second route lookup and nesting layer (measured: about a microsecond); calling the boxed
/// endpoints' futures directly spares it poem's wrapper frames, each holding a copy of the
/// request.
pub struct Site {
    api: BoxEndpoint<'static>,
    spec_json: BoxEndpoint<'static>,
    spec_yaml: BoxEndpoint<'static>,
    docs: BoxEndpoint<'static>,
    /// Handed to every handler through the request (`Data<&AppState>`).
    state: AppState,
}

impl Endpoint for Site {
    type Output = Response;

    fn call(&self, mut req: Request) -> impl Future<Output = Result<Response>> + Send {
        req.extensions_mut().insert(self.state.clone());
        let path = req.uri().path();
        let target = if path == "/openapi.json" {
            &self.spec_json
        } else if path == "/openapi.yaml" {
            &self.spec_yaml
        } else if is_docs(path) {
            &self.docs
        } else {
            &self.api
        };
        DynEndpoint::call(&**target, req)
    }
}
