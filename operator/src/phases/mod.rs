//! The phases of one reconcile, in order: secrets → pools → gate → migrate → rollout → status.
//!
//! Each phase is one function in its own file. It takes what it needs and either hands the
//! next phase a typed output or stops the reconcile with the [`kube::runtime::controller::Action`]
//! to take (`ControlFlow::Break`): a phase that cannot pass keeps every later one from
//! starting anything. `reconcile.rs` calls them in order.
//!
//! A phase never imports another phase. What they share sits in the modules below them:
//! [`context`] (the client, Events), [`error`], [`progress`] (the status being built),
//! [`handoff`] (what one phase passes the next) and [`apply`] (server-side apply).

pub(crate) mod apply;
pub(crate) mod context;
pub(crate) mod error;
pub(crate) mod handoff;
pub(crate) mod progress;

pub(crate) mod gate;
pub(crate) mod migrate;
pub(crate) mod pools;
pub(crate) mod rollout;
pub(crate) mod secrets;
pub(crate) mod status;
