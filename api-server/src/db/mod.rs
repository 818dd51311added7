//! Data access. Everything that touches project data goes through a [`crate::access::Scoped`]
//! transaction, which only the membership check can open (the pool is private to
//! [`Database`]); each resource has its own module
//! with its SQL in plain sight.

pub mod api_keys;
pub mod audit;
mod database;
pub mod documents;
pub mod event_outbox;
pub mod gate;
pub mod members;
pub mod migrate;
pub mod operations;
pub mod outbox;
pub mod page;
pub mod projects;
pub mod refresh_tokens;
pub mod roles;
pub mod users;

pub use database::{BadUrl, Database, describe};

use crate::error::{ApiError, ErrorCode, FieldError};

/// PostgreSQL error codes the API answers specifically.
mod sqlstate {
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    /// Classes 08 (connection), 53 (resources), 57 (operator intervention: shutdown, timeout).
    pub const TRANSIENT_CLASSES: [&str; 3] = ["08", "53", "57"];
    /// `jeex_enter` refused: no such project, or not the caller's (the two look the same).
    pub const NOT_ENTERED: &str = "JX404";
    /// `jeex_enter` refused: the caller's role in the project is weaker than needed.
    pub const ROLE_TOO_WEAK: &str = "JX403";
    /// `jeex_enter_user` refused: the user is deleted.
    pub const USER_GONE: &str = "JX401";
    /// Read-only transaction (a standby after failover).
    pub const READ_ONLY: &str = "25006";
    /// Classes input alone can reach: 22 (data exception: invalid text representation,
    /// numeric out of range, untranslatable character, …) and 54 (program limit exceeded:
    /// stack depth, too many columns, …). The input guard and validation refuse what they
    /// know of first; these are the net below them.
    pub const INPUT_CLASSES: [&str; 2] = ["22", "54"];
}

/// What a client may be told about a unique constraint it ran into.
fn conflict_detail(constraint: Option<&str>) -> &'static str {
    match constraint {
        Some("users_email_key") => "a user with this email already exists",
        Some("project_members_pkey") => "the user is already a member of this project",
        Some("api_keys_prefix_key") => "key prefix collision; try again",
        _ => "the resource already exists",
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some(sqlstate::NOT_ENTERED) => crate::access::project_not_found(),
                Some(sqlstate::USER_GONE) => crate::access::unauthorized(),
                // The message is the function's own, naming the role needed.
                Some(sqlstate::ROLE_TOO_WEAK) => ApiError::Status(ErrorCode::Forbidden, db.message().to_owned()),
                Some(sqlstate::UNIQUE_VIOLATION) => ApiError::Status(ErrorCode::Conflict, conflict_detail(db.constraint()).into()),
                Some(sqlstate::FOREIGN_KEY_VIOLATION) => {
                    ApiError::Status(ErrorCode::Conflict, "the change refers to something that does not exist".into())
                }
                // Requests are validated before SQL runs, so this names a rule the handler
                // missed; still the client's input, never a 500.
                Some(sqlstate::CHECK_VIOLATION) => ApiError::Validation {
                    detail: "the request violates a data rule".into(),
                    errors: vec![FieldError { field: db.constraint().unwrap_or("body").into(), message: "is not allowed".into() }],
                },
                Some(sqlstate::SERIALIZATION_FAILURE | sqlstate::DEADLOCK_DETECTED) => {
                    ApiError::Status(ErrorCode::Conflict, "a concurrent change interfered; retry the request".into())
                }
                Some(code) if sqlstate::INPUT_CLASSES.iter().any(|c| code.starts_with(c)) => {
                    // Logged (as a warning: a client's input, but also a rule the checks
                    // before SQL missed); the answer names the body, not the database message.
                    tracing::warn!(sqlstate = code, error = %db.message(), "input refused by the database");
                    ApiError::Validation {
                        detail: "the request holds a value the database cannot store".into(),
                        errors: vec![FieldError {
                            field: "body".into(),
                            message: "holds a value out of range or not representable".into(),
                        }],
                    }
                }
                Some(code) if code == sqlstate::READ_ONLY || sqlstate::TRANSIENT_CLASSES.iter().any(|c| code.starts_with(c)) => {
                    ApiError::Status(ErrorCode::Unavailable, "the database is unavailable; retry shortly".into())
                }
                _ => ApiError::Internal(describe(&err)),
            },
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => {
                ApiError::Status(ErrorCode::Unavailable, "the database is unavailable; retry shortly".into())
            }
            _ => ApiError::Internal(describe(&err)),
        }
    }
}
