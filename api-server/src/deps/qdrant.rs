//! Qdrant client.

use std::time::Duration;

use qdrant_client::Qdrant;

use super::SetupError;
use crate::config::QdrantConfig;

/// The Qdrant client and the collection the server uses.
#[derive(Clone)]
pub struct QdrantIndex {
    client: std::sync::Arc<Qdrant>,
    collection: String,
}

impl QdrantIndex {
    /// Builds the client without contacting the server.
    pub fn connect(cfg: &QdrantConfig, timeout: Duration) -> Result<Self, SetupError> {
        let client = Qdrant::from_url(&cfg.url)
            .api_key(cfg.api_key.clone())
            .timeout(timeout)
            .connect_timeout(timeout)
            // The compatibility check would block start-up on a server round trip.
            .skip_compatibility_check()
            .build()
            .map_err(|e| SetupError { dependency: "qdrant", message: e.to_string() })?;
        Ok(Self { client: std::sync::Arc::new(client), collection: cfg.collection.clone() })
    }

    /// The server's health endpoint, then the configured collection.
    pub async fn probe(&self) -> Result<(), String> {
        self.client.health_check().await.map_err(|e| e.to_string())?;
        match self.client.collection_exists(&self.collection).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("collection {:?} does not exist", self.collection)),
            Err(e) => Err(e.to_string()),
        }
    }
}
