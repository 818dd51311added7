//! JEEX API server: configuration, middleware chain, endpoints and the connections behind them.
//! The binary (`jeex-api`) is a thin CLI over [`run`].

pub mod access;
pub mod api;
pub mod app;
pub mod auth;
pub mod client_span;
pub mod config;
pub mod db;
pub mod deps;
pub mod devdb;
pub mod error;
pub mod events;
pub mod health;
pub mod middleware;
pub mod ops;
pub mod problem;
pub mod ratelimit;
pub mod routes;
pub mod run;
pub mod sched;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod vectors;
