//! Stream tickets: `EventSource` cannot send headers, and long-lived tokens must never travel
//! in URLs. A member exchanges their credentials for a ticket that opens one event stream of
//! one project, once, within a minute. Stored hashed, in Redis (shared by every replica) or in
//! process.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{AsyncCommands, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{principal::Principal, secrets};

/// How long a ticket is valid.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// What a ticket grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The project whose streams it opens.
    pub project_id: Uuid,
    /// The user it was issued to, if a user.
    pub user_id: Option<Uuid>,
    /// The API key it was issued to, if a key.
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
            (Some(user_id), _) => Some(Principal::User { user_id: *user_id }),
            (None, Some((key_id, role))) => {
                let role = poem_openapi::types::ParseFromJSON::parse_from_json(Some(serde_json::Value::String(role.clone()))).ok()?;
                Some(Principal::ApiKey { key_id: *key_id, project_id: self.project_id, role })
            }
            (None, None) => None,
        }
    }
}

/// Where tickets live.
pub enum TicketStore {
    /// Shared by every replica.
    Redis {
        /// Connection.
        conn: ConnectionManager,
        /// Key prefix.
        prefix: String,
    },
    /// This replica only.
    Memory(Mutex<HashMap<Vec<u8>, (Grant, Instant)>>),
}

impl TicketStore {
    /// Issues a ticket for `grant`.
    pub async fn issue(&self, grant: &Grant) -> Result<String, String> {
        let ticket = secrets::random_token();
        let hash = secrets::hash(&ticket);
        match self {
            Self::Redis { conn, prefix } => {
                let body = serde_json::to_string(grant).map_err(|e| e.to_string())?;
                let mut conn = conn.clone();
                let _: () = conn.set_ex(key(prefix, &hash), body, TICKET_TTL.as_secs()).await.map_err(|e| e.to_string())?;
            }
            Self::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                map.retain(|_, (_, at)| at.elapsed() < TICKET_TTL);
                map.insert(hash, (grant.clone(), Instant::now()));
            }
        }
        Ok(ticket)
    }

    /// Redeems a ticket once.
    pub async fn redeem(&self, ticket: &str) -> Result<Option<Grant>, String> {
        let hash = secrets::hash(ticket);
        match self {
            Self::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let body: Option<String> =
                    redis::cmd("GETDEL").arg(key(prefix, &hash)).query_async(&mut conn).await.map_err(|e| e.to_string())?;
                Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
            }
            Self::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                Ok(map.remove(&hash).filter(|(_, at)| at.elapsed() < TICKET_TTL).map(|(g, _)| g))
            }
        }
    }
}

fn key(prefix: &str, hash: &[u8]) -> String {
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}ticket:{hex}")
}
