//! Redis through a connection manager that reconnects by itself.

use std::time::Duration;

use redis::{
    Client,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::SetupError;

/// A lazily connected, self-healing, multiplexed Redis connection.
#[derive(Clone)]
pub struct Redis {
    client: Client,
    manager: ConnectionManager,
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
        Ok(Self { client, manager })
    }

    /// The shared connection (cheap to clone; all clones multiplex one connection).
    pub fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// The client, for the one dedicated connection (the event subscription).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// `PING`.
    pub async fn probe(&self) -> Result<(), String> {
        let mut conn = self.manager.clone();
        let reply: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| e.to_string())?;
        if reply == "PONG" { Ok(()) } else { Err(format!("unexpected PING reply {reply:?}")) }
    }
}
