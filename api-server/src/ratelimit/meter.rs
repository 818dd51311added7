//! The project quota of one request, charged only once the membership check has passed.
//!
//! A project's members share a quota ([`PROJECT_MULTIPLE`] times the class quota). Counting it
//! before the membership check would let anyone with an account spend a project's budget by
//! naming it in a path, and learn from the 429 that it exists. So the chain only hands each
//! request an empty meter; the scope that proves membership charges it, once, and the chain
//! then reports the charge in the `RateLimit` fields (or answers the 429 itself).

use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::{Class, Limiter, Verdict};
use crate::error::{ApiError, ErrorCode};

/// How many times the class quota a project gets (its members share it).
pub const PROJECT_MULTIPLE: u32 = 10;

/// One request's project meter. The default meter (an unlimited route) charges nothing and
/// allocates nothing.
#[derive(Clone, Default)]
pub struct ProjectMeter(Option<Arc<Charge>>);

/// A limited request's class, and its charge once made.
struct Charge {
    class: Class,
    made: Mutex<Option<(Uuid, Verdict)>>,
}

impl ProjectMeter {
    /// A meter for a request of `class`.
    pub fn new(class: Class) -> Self {
        Self(Some(Arc::new(Charge { class, made: Mutex::new(None) })))
    }

    /// Counts the request against `project`'s quota; a second charge for the same project
    /// (a handler opening two scopes) repeats the first verdict without counting again.
    pub async fn charge(&self, limiter: &Limiter, project: Uuid) -> Result<(), ApiError> {
        let Some(charge) = &self.0 else { return Ok(()) };
        let earlier = lock(charge).as_ref().filter(|(p, _)| *p == project).map(|(_, v)| v.clone());
        let verdict = match earlier {
            Some(verdict) => verdict,
            None => {
                let verdict = limiter.check(charge.class, &[(format!("project:{project}"), PROJECT_MULTIPLE)]).await;
                *lock(charge) = Some((project, verdict.clone()));
                verdict
            }
        };
        match verdict {
            Verdict::Refused(..) => Err(ApiError::Status(ErrorCode::RateLimited, "the project's shared quota is used up".into())),
            Verdict::Unavailable => Err(ApiError::Status(ErrorCode::Unavailable, "the rate limiter is unavailable; retry shortly".into())),
            Verdict::Allowed(..) | Verdict::Unlimited => Ok(()),
        }
    }

    /// The verdict of the charge, if one was made.
    pub fn verdict(&self) -> Option<Verdict> {
        self.0.as_ref().and_then(|charge| lock(charge).as_ref().map(|(_, v)| v.clone()))
    }
}

fn lock(charge: &Charge) -> std::sync::MutexGuard<'_, Option<(Uuid, Verdict)>> {
    charge.made.lock().unwrap_or_else(|p| p.into_inner())
}
