//! Stream tickets: `EventSource` cannot send headers, and long-lived tokens must never travel
//! in URLs. A member exchanges their credentials for a ticket that opens the event streams of
//! one project, as that caller, until it expires (`JEEX_SSE_TICKET_TTL`).
//!
//! Why reusable and signed: a browser's `EventSource` reconnects with the very same URL — after
//! a stream's lifetime ends, a dropped connection or a server restart — and a refused reconnect
//! closes it for good. A single-use ticket made every reconnect fail. A ticket is therefore a
//! token signed with the server's key (so every replica, a restarted server, and a Redis that
//! lost its data all accept it) whose audience no access token has (so it never opens anything
//! but an event stream). Access itself is checked on every use and while streaming: a removed
//! member's or revoked key's ticket opens nothing, however long it has left.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::access::Principal;

/// The audience suffix of tickets: `<JEEX_JWT_AUDIENCE>:event-stream`.
pub const AUDIENCE_SUFFIX: &str = ":event-stream";

/// What a ticket grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The project whose streams it opens.
    pub project_id: Uuid,
    /// The user it was issued to, if a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    /// The API key it was issued to (id and role), if a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<(Uuid, String)>,
}

impl Grant {
    /// The grant for `principal` in `project`.
    pub fn new(principal: &Principal, project_id: Uuid) -> Self {
        match principal {
            Principal::User { user_id } => Self { project_id, user_id: Some(*user_id), api_key: None },
            Principal::ApiKey { key_id, role, .. } => {
                let role = poem_openapi::types::ToJSON::to_json(role).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                Self { project_id, user_id: None, api_key: Some((*key_id, role)) }
            }
        }
    }

    /// The principal the ticket acts as.
    pub fn principal(&self) -> Option<Principal> {
        match (&self.user_id, &self.api_key) {
            (Some(user_id), None) => Some(Principal::User { user_id: *user_id }),
            (None, Some((key_id, role))) => {
                let role = poem_openapi::types::ParseFromJSON::parse_from_json(Some(serde_json::Value::String(role.clone()))).ok()?;
                Some(Principal::ApiKey { key_id: *key_id, project_id: self.project_id, role })
            }
            _ => None,
        }
    }
}

/// The claims of a ticket.
#[derive(Debug, Serialize, Deserialize)]
pub struct TicketClaims {
    /// Issuer (the access tokens' issuer).
    pub iss: String,
    /// `<audience>:event-stream`: no access token has it.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// Unique ticket id.
    pub jti: String,
    /// What it grants.
    #[serde(flatten)]
    pub grant: Grant,
}
