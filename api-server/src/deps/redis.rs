//! Redis through a connection manager that reconnects by itself, each command in its client
//! span.

use std::{sync::Arc, time::Duration};

use redis::{
    Client, Cmd, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
};
use tracing::Instrument;

use super::SetupError;
use crate::client_span::{self, Endpoint};

/// The shared connection (cheap to clone; all clones multiplex one connection). Every command
/// gets a client span naming the command (never its arguments) when its caller is traced.
#[derive(Clone)]
pub struct Connection {
    manager: ConnectionManager,
    endpoint: Arc<Endpoint>,
}

impl Connection {
    fn traced<'a, T: Send + 'a>(span: tracing::Span, call: RedisFuture<'a, T>) -> RedisFuture<'a, T> {
        if span.is_none() {
            return call;
        }
        Box::pin(
            async move {
                let result = call.await;
                if let Err(e) = &result {
                    client_span::fail(&tracing::Span::current(), e.code().unwrap_or("io"));
                }
                result
            }
            .instrument(span),
        )
    }
}

/// A command's name, as its span is named (`EVALSHA`, `XRANGE`).
fn command_name(cmd: &Cmd) -> String {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(name)) => String::from_utf8_lossy(name).to_ascii_uppercase(),
        _ => "COMMAND".to_owned(),
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let span = if client_span::sampled() { client_span::redis(&self.endpoint, &command_name(cmd)) } else { tracing::Span::none() };
        Self::traced(span, self.manager.req_packed_command(cmd))
    }

    fn req_packed_commands<'a>(&'a mut self, pipeline: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        let span = if client_span::sampled() {
            let names: Vec<String> = pipeline.cmd_iter().map(command_name).collect();
            client_span::redis(&self.endpoint, &format!("PIPELINE {}", names.join(" ")))
        } else {
            tracing::Span::none()
        };
        Self::traced(span, self.manager.req_packed_commands(pipeline, offset, count))
    }

    fn get_db(&self) -> i64 {
        self.manager.get_db()
    }
}

/// A lazily connected, self-healing, multiplexed Redis connection.
#[derive(Clone)]
pub struct Redis {
    client: Client,
    connection: Connection,
}

impl Redis {
    /// Sets up the manager without connecting; `timeout` bounds connects and responses.
    pub fn connect(url: &str, timeout: Duration) -> Result<Self, SetupError> {
        let client = Client::open(url)
            .map_err(|e| SetupError { dependency: "redis", message: format!("REDIS_URL is not usable: {:?}", e.kind()) })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| SetupError { dependency: "redis", message: e.to_string() })?;
        let info = client.get_connection_info();
        let endpoint = Endpoint {
            namespace: info.redis_settings().db().to_string(),
            address: match info.addr() {
                redis::ConnectionAddr::Tcp(host, _) | redis::ConnectionAddr::TcpTls { host, .. } => host.clone(),
                redis::ConnectionAddr::Unix(path) => path.display().to_string(),
                _ => String::new(),
            },
            port: match info.addr() {
                redis::ConnectionAddr::Tcp(_, port) | redis::ConnectionAddr::TcpTls { port, .. } => *port,
                _ => 0,
            },
        };
        Ok(Self { client, connection: Connection { manager, endpoint: Arc::new(endpoint) } })
    }

    /// The shared connection (cheap to clone; all clones multiplex one connection).
    pub fn connection(&self) -> Connection {
        self.connection.clone()
    }

    /// The client, for the one dedicated connection (the event subscription).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// `PING`.
    pub async fn probe(&self) -> Result<(), String> {
        let mut conn = self.connection.clone();
        let reply: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| e.to_string())?;
        if reply == "PONG" { Ok(()) } else { Err(format!("unexpected PING reply {reply:?}")) }
    }
}
