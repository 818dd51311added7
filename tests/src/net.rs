//! Network faults on loopback: a port nothing listens on, listeners that accept and never
//! answer or reset every connection, and a proxy that can be switched on later.

use std::net::SocketAddr;

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// A loopback port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A loopback listener that mistreats every connection it accepts; stops when dropped.
pub struct FaultyListener {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FaultyListener {
    async fn start(mut on_accept: impl FnMut(TcpStream) + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                on_accept(sock);
            }
        });
        Self { addr, task }
    }

    /// Accepts connections and holds them open without ever sending a byte.
    pub async fn hung() -> Self {
        let mut held = Vec::new();
        Self::start(move |sock| held.push(sock)).await
    }

    /// Accepts connections and resets each at once (SO_LINGER 0, then close).
    pub async fn resetting() -> Self {
        Self::start(|sock| {
            let _ = sock.set_zero_linger();
            drop(sock);
        })
        .await
    }
}

impl Drop for FaultyListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP forwarder to `target` on a port fixed in advance, started only when asked: a
/// dependency that is down at first and comes back later.
pub struct Proxy {
    /// The port clients are told to use.
    pub port: u16,
    target: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Reserves a port for a proxy to `target`; nothing listens until [`Proxy::up`].
    pub fn down(target: &str) -> Self {
        Self { port: closed_port(), target: target.into(), task: None }
    }

    /// Starts forwarding.
    pub async fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("bind proxy port");
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}
