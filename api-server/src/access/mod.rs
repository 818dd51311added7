//! Who may do what, as types: the bottom of the crate (it imports only [`crate::error`] and,
//! for the statements' spans, [`crate::client_span`]).
//!
//! - [`Principal`] and [`Caller`]: who is acting (a user or a project's API key).
//! - [`Role`] and the role levels [`Viewer`], [`Editor`], [`Owner`]: a level is a type, so a
//!   function that needs an editor says so in its signature (`Scoped<impl Admits<Editor>>`),
//!   and a viewer's scope handed to it does not compile.
//! - [`ProjectScope`], [`Scoped`], [`UserTx`]: proof of the membership check, and the
//!   transactions that carry it. Only [`Scoped::begin`] (after the check) builds a
//!   `ProjectScope`; every repository function on project data takes a `Scoped`.
//! - [`Entry`] and [`Checked`]: a claim on a project checked by the statement that uses it
//!   (`jeex_enter`), for one-round-trip reads and two-round-trip writes.
//! - [`WorkerScope`]: the right to work on one claimed operation; only the claim builds it.
//! - [`Backend`]: the database as the statements see it (its name in spans, when a
//!   connection to it was last found dead).
//! - [`Tx`], [`Conn`] and [`Pooled`]: where SQL runs, each statement in its client span.
//!
//! The pool itself is private to the data layer ([`crate::db::Database`]): the transactions
//! here are opened from there, never from a handler.

mod backend;
mod caller;
mod entry;
mod pool;
mod role;
mod scope;
mod statement;
mod worker;

pub use backend::Backend;
pub use caller::{Caller, Principal};
pub use entry::{Checked, Entry};
pub use pool::{Lease, Limits, Pool};
pub use role::{Admits, Editor, Level, Owner, Role, Viewer};
pub(crate) use scope::set_rls;
pub use scope::{ProjectScope, Scoped, UserTx, is_refusal, project_not_found, unauthorized};
pub use statement::{Conn, Pooled, Tx};
pub use worker::WorkerScope;
