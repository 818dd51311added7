//! Fixtures for end-to-end tests: the real `jeex-api` binary ([`binary`]), the real services
//! ([`services`]), network faults to point it at ([`net`]) and the secrets no log may hold
//! ([`leaks`]).

pub mod binary;
pub mod http;
pub mod leaks;
pub mod net;
pub mod services;
