//! The middleware chain, one concern per module. Order, outermost first:
//!
//! 1. [`correlation`] — correlation ID and the request span (everything below logs inside it);
//! 2. [`observe`] — access log and HTTP metrics, seeing the final status of every request;
//! 3. [`security_headers`] — on every response, errors and docs included;
//! 4. [`cors`] — answers preflights, adds CORS headers for allowed origins;
//! 5. [`compression`] — brotli/gzip over 1 KiB, never event streams;
//! 6. [`problem`] — every error becomes RFC 9457 problem JSON;
//! 7. [`panic`] — a handler panic becomes a 500 error;
//! 8. [`timeout`] — a slow request becomes a 503 error with `Retry-After`;
//! 9. [`body_limit`] — an oversized body becomes a 413 error;
//!
//! then the routes. Errors raised below [`problem`] are converted there, so the layers above
//! it only ever see responses.

pub mod body_limit;
pub mod compression;
pub mod correlation;
pub mod cors;
pub mod observe;
pub mod panic;
pub mod problem;
pub mod security_headers;
pub mod timeout;

use std::{sync::Arc, time::Duration};

use poem::{Endpoint, EndpointExt, endpoint::BoxEndpoint};

use crate::config::CorsConfig;

/// Everything the chain is configured with.
pub struct Chain {
    /// Metrics and route labels.
    pub observer: Arc<observe::Observer>,
    /// Security header policies.
    pub policies: Arc<security_headers::Policies>,
    /// CORS policy.
    pub cors: Arc<CorsConfig>,
    /// Problem mapping.
    pub problems: Arc<problem::ProblemContext>,
    /// Request time limit.
    pub timeout: Duration,
    /// Body size limit.
    pub body_limit: usize,
}

impl Chain {
    /// Wraps `ep` in the whole chain, in the documented order.
    pub fn wrap(self, ep: impl Endpoint + 'static) -> BoxEndpoint<'static> {
        let Chain { observer, policies, cors, problems, timeout, body_limit } = self;
        ep.around(move |ep, req| body_limit::handle(body_limit, ep, req))
            .around(move |ep, req| timeout::handle(timeout, ep, req))
            .around(panic::handle)
            .around(move |ep, req| problem::handle(problems.clone(), ep, req))
            // Boxing bounds the nesting of the chain's type (and its compile time).
            .boxed()
            .around(compression::handle)
            .around(move |ep, req| cors::handle(cors.clone(), ep, req))
            .around(move |ep, req| security_headers::handle(policies.clone(), ep, req))
            .around(move |ep, req| observe::handle(observer.clone(), ep, req))
            .around(correlation::handle)
            .boxed()
    }
}
