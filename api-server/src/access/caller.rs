//! Who is calling.

use uuid::Uuid;

use super::role::Role;

/// The authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A user, from an access token.
    User {
        /// `sub` of the token.
        user_id: Uuid,
    },
    /// A project API key: acts only in its project, with its role.
    ApiKey {
        /// The key's id (audit actor).
        key_id: Uuid,
        /// The one project it may act in.
        project_id: Uuid,
        /// Its role there.
        role: Role,
    },
}

/// The principal plus what the audit log records about the request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// The request's correlation ID.
    pub correlation_id: String,
}

impl Caller {
    /// The acting user, if a user (not a key) is acting.
    pub fn user_id(&self) -> Option<Uuid> {
        match self.principal {
            Principal::User { user_id } => Some(user_id),
            Principal::ApiKey { .. } => None,
        }
    }

    /// The acting key, if a key is acting.
    pub fn api_key_id(&self) -> Option<Uuid> {
        match self.principal {
            Principal::ApiKey { key_id, .. } => Some(key_id),
            Principal::User { .. } => None,
        }
    }
}
