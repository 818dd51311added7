//! Entering a project from a handler. [`Project<R>`] is the extractor of every operation under
//! `/projects/{project_id}`: it authenticates the caller and reads the project id from the
//! matched route, and its type states the least role the operation needs (`project::Path<Editor>`).
//! [`Project::open`] then runs the membership and role check — once per request — and charges
//! the project's shared rate-limit quota, in that order: only a caller the check admitted
//! spends the project's budget. The check runs when the handler asks (after the body was
//! validated), so no connection is held while a request body is still arriving.
//! [`Project::read`] and [`Project::check`] do the same for the statements that enter the
//! project themselves ([`Entry`]): a read in one round trip, a write in two.
//!
//! And staying in it: [`StreamWatch`] repeats the check for every open event stream, so a
//! stream ends soon after its caller's access does.

use std::{marker::PhantomData, time::Duration};

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    param::Path,
    registry::{MetaParamIn, MetaSchemaRef, Registry},
    types::Type,
};
use uuid::Uuid;

use crate::{
    access::{Caller, Checked, Entry, Level, Scoped, Viewer},
    auth::{
        principal::{SCHEMES, authenticate, register_schemes},
        request::RequestAuth,
    },
    error::{ApiError, ErrorCode},
    ratelimit::meter::ProjectMeter,
    state::AppState,
};

/// How a handler names it: `project_id: project::Path<Editor>`. poem-openapi numbers a route's
/// path parameters by spotting `Path` in each argument's type, so the extractor is spelled
/// with `Path` in its name to take the project's place among them.
pub mod project {
    /// [`super::Project`], as a path parameter.
    pub type Path<R> = super::Project<R>;
}

/// An authenticated caller's claim on the project the route names, for an operation that
/// needs at least the role level `R`. Declared as the `project_id` path parameter, so the
/// spec documents it exactly as a plain `Path<Uuid>` plus the security schemes.
pub struct Project<R> {
    caller: Caller,
    meter: ProjectMeter,
    project_id: Uuid,
    level: PhantomData<R>,
}

impl<R: Level> Project<R> {
    /// The project the route names (not yet checked).
    pub fn id(&self) -> Uuid {
        self.project_id
    }

    /// Who is asking.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The membership and role check: the project's scope for this request, checked for
    /// `R`, with the project's quota charged.
    pub async fn open(&self, state: &AppState) -> Result<Scoped<R>, ApiError> {
        let scoped = state.deps().db.scoped::<R>(&self.caller, self.project_id).await?;
        // A refused charge drops (rolls back) the transaction before anything ran in it.
        self.meter.charge(state.limiter(), self.project_id).await?;
        Ok(scoped)
    }

    /// A read in one statement that enters the project ([`Entry`]), then the project's quota
    /// charge, for every caller the check admitted, whatever the read found (a member probing
    /// for ids pays for each probe). A caller the check refused (404, 403) spends nothing. The
    /// read runs before the charge, so a member over the quota still costs the database that
    /// one statement before the 429 (a scope used to cost it three: `BEGIN`, settings, check).
    pub async fn read<T>(&self, state: &AppState, read: impl AsyncFnOnce(&Entry<R>) -> Result<T, ApiError>) -> Result<T, ApiError> {
        let entry = state.deps().db.entry::<R>(&self.caller, self.project_id)?;
        let value = read(&entry).await;
        if matches!(&value, Err(e) if crate::access::is_refusal(e)) {
            return value;
        }
        crate::client_span::scoped(self.project_id);
        self.meter.charge(state.limiter(), self.project_id).await?;
        value
    }

    /// A write's check ([`Entry::check`]), then the quota charge; the write's own statement,
    /// which enters again, follows on the same connection.
    pub async fn check(&self, state: &AppState) -> Result<Checked<R>, ApiError> {
        let checked = state.deps().db.entry::<R>(&self.caller, self.project_id)?.check().await?;
        crate::client_span::scoped(self.project_id);
        self.meter.charge(state.limiter(), self.project_id).await?;
        Ok(checked)
    }
}

impl<'a, R: Level> ApiExtractor<'a> for Project<R> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme, ApiExtractorType::Parameter];
    const PARAM_IS_REQUIRED: bool = true;
    type ParamType = Uuid;
    type ParamRawType = Uuid;

    fn register(registry: &mut Registry) {
        register_schemes(registry);
        Uuid::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        SCHEMES.to_vec()
    }

    fn param_in() -> Option<MetaParamIn> {
        Some(MetaParamIn::Path)
    }

    fn param_schema_ref() -> Option<MetaSchemaRef> {
        Some(Uuid::schema_ref())
    }

    fn param_raw_type(&self) -> Option<&Self::ParamRawType> {
        Some(&self.project_id)
    }

    async fn from_request(req: &'a Request, body: &mut RequestBody, opts: ExtractParamOptions<Uuid>) -> poem::Result<Self> {
        // Authentication first: an unauthenticated request learns nothing about its path.
        let caller = authenticate(req).await?;
        let meter = req.extensions().get::<ProjectMeter>().cloned().unwrap_or_default();
        // The project the chain read from the matched route; when it does not parse (or
        // outside the chain), the path parameter itself, with its own error, exactly as
        // `Path<Uuid>` reports it.
        let project_id = match req.extensions().get::<RequestAuth>().and_then(RequestAuth::project) {
            Some(project_id) => project_id,
            None => Path::<Uuid>::from_request(req, body, opts).await?.0,
        };
        Ok(Self { caller, meter, project_id, level: PhantomData })
    }
}

/// Re-checks the access of every open event stream of this replica every
/// `JEEX_SSE_ACCESS_CHECK`: a removed member's, a deleted project's or a revoked key's streams
/// end within that interval (plus one check), and their reconnects are refused by the same
/// check. A database that cannot answer ends nothing (its outage is not a revocation).
/// Stops when dropped.
pub struct StreamWatch(Option<tokio::task::JoinHandle<()>>);

impl StreamWatch {
    /// Starts watching `state`'s streams.
    pub fn spawn(state: AppState) -> Self {
        let every = state.config().events.access_check;
        Self(Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                recheck(&state).await;
            }
        })))
    }
}

impl StreamWatch {
    /// Stops watching and waits until the task has let go of the state (and with it the
    /// connections and the vector index it holds).
    pub async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for StreamWatch {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// One round: each distinct (project, caller) streaming here goes through the membership
/// check again (one short read-only transaction each).
async fn recheck(state: &AppState) {
    for (project, principal) in state.events().holders() {
        let caller = Caller { principal, correlation_id: "stream-access".into() };
        let checked = tokio::time::timeout(Duration::from_secs(5), state.deps().db.scoped::<Viewer>(&caller, project)).await;
        match checked {
            Ok(Ok(scoped)) => drop(scoped),
            Ok(Err(ApiError::Status(ErrorCode::NotFound, _))) => {
                let ended = state.events().revoke(project, &caller.principal);
                tracing::info!(%project, streams = ended, "access to the project ended; its streams end");
            }
            // Unreachable or slow database: keep streaming, ask again next round.
            Ok(Err(_)) | Err(_) => {}
        }
    }
}
