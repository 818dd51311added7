//! Fixtures for end-to-end tests: the real `jeex-api` binary ([`binary`]), the real services
//! ([`services`]), network faults to point it at ([`net`]), a Redis of a test's own to stop and start
//! ([`redis_server`]), the secrets no log may hold ([`leaks`]) and an OTLP receiver that
//! keeps the spans it is sent ([`otlp`]).

pub mod binary;
pub mod http;
pub mod leaks;
pub mod module_graph;
pub mod net;
pub mod otlp;
pub mod redis_server;
pub mod services;
