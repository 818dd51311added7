//! Fixtures for end-to-end tests: the real `jeex-api` binary ([`binary`]), the real services
//! ([`services`]) and network faults to point it at ([`net`]).

pub mod binary;
pub mod http;
pub mod net;
pub mod services;
