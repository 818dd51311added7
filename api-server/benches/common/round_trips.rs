//! Round trips to PostgreSQL, counted on the wire: a proxy between a server under test and
//! PostgreSQL that forwards every byte both ways and reads the messages the server sends.
//! A round trip is a message PostgreSQL answers with `ReadyForQuery`: a simple `Query`, or a
//! `Sync`. A `Sync` that closes an `Execute` ends a statement's round trip; one without an
//! `Execute` before it is the pool checking a connection (sqlx tests each connection it takes
//! back) or a statement being prepared, and is counted apart.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the proxy has seen so far, over all connections.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Seen {
    /// Round trips that ran statements (`Query`, or `Sync` after `Execute`).
    pub statements: u64,
    /// Round trips without a statement (`Sync` alone, or after `Parse`/`Describe` only).
    pub checks: u64,
}

impl std::ops::Sub for Seen {
    type Output = Seen;

    fn sub(self, earlier: Seen) -> Seen {
        Seen { statements: self.statements - earlier.statements, checks: self.checks - earlier.checks }
    }
}

#[derive(Default)]
struct Counts {
    statements: AtomicU64,
    checks: AtomicU64,
}

/// The proxy, listening on loopback.
pub struct Proxy {
    addr: SocketAddr,
    counts: Arc<Counts>,
}

impl Proxy {
    /// Listens on a free loopback port and relays each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, shared.clone()));
            }
        });
        Self { addr, counts }
    }

    /// `url` (a `postgres://user@host:port/db` URL) pointed at the proxy, without TLS (the
    /// proxy reads the messages).
    pub fn url(&self, url: &str) -> String {
        let (scheme_user, rest) = url.split_once('@').expect("URL with a user");
        let path = rest.split_once('/').map_or("", |(_, p)| p);
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{scheme_user}@{}/{path}{sep}sslmode=disable", self.addr)
    }

    /// The counts so far.
    pub fn seen(&self) -> Seen {
        Seen { statements: self.counts.statements.load(Ordering::SeqCst), checks: self.counts.checks.load(Ordering::SeqCst) }
    }
}

/// The protocol codes of the untyped requests a client may send before its startup message.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

async fn relay(client: TcpStream, upstream: SocketAddr, counts: Arc<Counts>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
    });
    let (mut pending, mut chunk) = (Vec::new(), vec![0u8; 64 * 1024]);
    let (mut started, mut executed) = (false, false);
    loop {
        let n = match from_client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to_server.write_all(&chunk[..n]).await.is_err() {
            return;
        }
        pending.extend_from_slice(&chunk[..n]);
        loop {
            if !started {
                // Untyped: length (itself included), then a protocol code.
                let Some(len) = pending.get(..4).map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize) else { break };
                if pending.len() < len || len < 8 {
                    break;
                }
                let code = u32::from_be_bytes(pending[4..8].try_into().unwrap());
                started = code != SSL_REQUEST && code != GSSENC_REQUEST;
                pending.drain(..len);
                continue;
            }
            // Typed: tag, then length (itself included, the tag not).
            let Some(len) = pending.get(1..5).map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize) else { break };
            if pending.len() < 1 + len {
                break;
            }
            match pending[0] {
                b'Q' => {
                    counts.statements.fetch_add(1, Ordering::SeqCst);
                }
                b'E' => executed = true,
                b'S' => {
                    let counter = if executed { &counts.statements } else { &counts.checks };
                    counter.fetch_add(1, Ordering::SeqCst);
                    executed = false;
                }
                _ => {}
            }
            pending.drain(..1 + len);
        }
    }
}
