//! Runs the app: bind, serve HTTP/1.1, and on SIGTERM/SIGINT stop accepting, drain in-flight
//! requests for up to the grace period, then return so the caller can close pools and flush
//! telemetry.
//!
//! The accept loop is ours rather than `poem::Server`'s: poem boxes and splits every socket
//! and negotiates HTTP/2 per connection, which costs about 8 KiB per open connection and a lock
//! per read and write. Those costs show most with thousands of long-lived event streams.
//! TLS and HTTP/2 end at the ingress; the pods speak HTTP/1.1.
//!
//! A request refused before its body was read (a 401, 404, 413, 429 or 503, a time-out) leaves
//! the body's bytes on the connection. What has arrived of them, up to [`DRAIN_MAX`] within
//! [`DRAIN_TIME`], is read and discarded, so the connection carries the next request; a body
//! larger or slower than that makes the response say `Connection: close`, and the server closes
//! the connection: a client told nothing would send its next request into a connection about
//! to close (a browser's `fetch` then fails with a network error; a test client reusing its
//! connection showed it).

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use hyper::{
    body::{Body as _, Frame, Incoming, SizeHint},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::{
    Addr, Body, Endpoint, Request, Response,
    http::{HeaderValue, header, uri::Scheme},
    web::{LocalAddr, RemoteAddr},
};
use tokio::{net::TcpListener, sync::Notify};

/// A client that has not sent its request head within this time is disconnected (slow-loris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a body left unread by a refused request is read and discarded to keep the
/// connection, and for how long at most.
const DRAIN_MAX: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_millis(50);

type ResponseBody = http_body_util::combinators::BoxBody<Bytes, io::Error>;

/// A bound listener, so the caller learns the real port before serving.
pub struct Bound {
    listener: TcpListener,
    /// The local address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
}

/// Binds `addr`; fails with the OS error (port in use, permission).
pub async fn bind(addr: SocketAddr) -> io::Result<Bound> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    Ok(Bound { listener, local_addr })
}

/// Tells every connection to wind down: at once when idle, after its current response
/// otherwise; and, once the grace period is over, to stop regardless.
#[derive(Default)]
struct Stop {
    draining: AtomicBool,
    aborting: AtomicBool,
    notify: Notify,
}

impl Stop {
    fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    fn abort(&self) {
        self.aborting.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }
}

/// Serves until `shutdown` completes, then drains for up to `grace`.
pub async fn serve<E: Endpoint<Output = Response> + 'static>(
    bound: Bound,
    app: E,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> io::Result<()> {
    let app = Arc::new(app);
    let local = LocalAddr(Addr::SocketAddr(bound.local_addr));
    let stop = Arc::new(Stop::default());
    tracing::info!(addr = %bound.local_addr, "listening");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = bound.listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    // Events and small responses go out at once, not after Nagle's delay.
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(connection(socket, app.clone(), local.clone(), RemoteAddr(Addr::SocketAddr(peer)), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: say so and let the system breathe
                    // instead of spinning on the same error.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(bound.listener);
    tracing::info!(grace_seconds = grace.as_secs_f32(), "draining connections");
    stop.drain();
    // Each connection task holds a reference to `stop`; the last one gone ends the wait.
    let drained = tokio::time::timeout(grace, async {
        while Arc::strong_count(&stop) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("grace period over; closing the remaining connections");
        stop.abort();
    }
    tracing::info!("server stopped");
    Ok(())
}

/// Serves one connection until it closes, draining it when the server stops.
async fn connection<E: Endpoint<Output = Response>>(
    socket: tokio::net::TcpStream,
    app: Arc<E>,
    local: LocalAddr,
    remote: RemoteAddr,
    stop: Arc<Stop>,
) {
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        let body_read = (!req.body().is_end_stream()).then(|| Arc::new(BodyRead::default()));
        let mut req = Request::from((req, local.clone(), remote.clone(), Scheme::HTTP));
        if let Some(read) = &body_read {
            let inner: ResponseBody = req.take_body().into();
            req.set_body(Body::from(ResponseBody::new(ReadToEnd { inner, read: read.clone() })));
        }
        async move {
            // The endpoint's own future, without poem's `get_response` and `MapToResponse`
            // frames: each would hold another copy of the request. Boxed: hyper keeps room for
            // this future for as long as the connection lives, and an event stream lives long
            // (measured: 2 KiB more per open stream when held inline).
            let mut resp = match Box::pin(app.call(req)).await {
                Ok(resp) => resp,
                Err(err) => err.into_response(),
            };
            if let Some(read) = body_read
                && !read.drained().await
            {
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<hyper::Response<ResponseBody>, Infallible>(resp.into())
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        // Copy head and body into one buffer and `write` it, rather than `writev` the pieces:
        // responses and events are small, and the copy is cheaper than the vectored call.
        .writev(false)
        .serve_connection(TokioIo::new(socket), service);
    let mut conn = std::pin::pin!(conn);
    let notified = stop.notify.notified();
    let mut notified = std::pin::pin!(notified);
    let mut draining = false;
    loop {
        let signal = Signal { notified: notified.as_mut(), registered: None, stop: &stop, draining };
        match Either::race(conn.as_mut(), signal).await {
            Either::Done => return,
            Either::Drain => {
                draining = true;
                conn.as_mut().graceful_shutdown();
                notified.set(stop.notify.notified());
            }
            Either::Abort => return,
        }
    }
}

/// Whether a request's body was read to its end, and what is left of it once the request is
/// dropped.
#[derive(Default)]
struct BodyRead {
    to_end: AtomicBool,
    left: std::sync::Mutex<Option<ResponseBody>>,
}

impl BodyRead {
    /// Whether the body has been read to its end, reading what is left of it (see the module's
    /// doc) if need be.
    async fn drained(&self) -> bool {
        if self.to_end.load(Ordering::Acquire) {
            return true;
        }
        // Still held (by a task the handler started, say): the connection cannot be kept.
        let Some(mut left) = self.left.lock().ok().and_then(|mut left| left.take()) else { return false };
        let drain = async {
            let mut seen = 0;
            loop {
                match http_body_util::BodyExt::frame(&mut left).await {
                    None => return true,
                    Some(Ok(frame)) => {
                        seen += frame.data_ref().map_or(0, Bytes::len);
                        if seen > DRAIN_MAX {
                            return false;
                        }
                    }
                    Some(Err(_)) => return false,
                }
            }
        };
        tokio::time::timeout(DRAIN_TIME, drain).await.unwrap_or(false)
    }
}

/// A request body that notes when it has been read to its end, and leaves what is unread
/// behind when dropped.
struct ReadToEnd {
    inner: ResponseBody,
    read: Arc<BodyRead>,
}

impl Drop for ReadToEnd {
    fn drop(&mut self) {
        if !self.read.to_end.load(Ordering::Acquire)
            && let Ok(mut left) = self.read.left.lock()
        {
            *left = Some(std::mem::take(&mut self.inner));
        }
    }
}

impl hyper::body::Body for ReadToEnd {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.to_end.store(true, Ordering::Release);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What ended a wait on a connection.
enum Either {
    Done,
    Drain,
    Abort,
}

impl Either {
    /// Polls the connection, and the stop signal only when the task's waker changes: checking
    /// a flag costs an atomic load, re-registering on every wake-up would cost a lock.
    async fn race<C: Future>(mut conn: Pin<&mut C>, mut signal: Signal<'_, '_>) -> Either {
        std::future::poll_fn(move |cx| {
            if let Some(reason) = signal.poll(cx) {
                return Poll::Ready(reason);
            }
            conn.as_mut().poll(cx).map(|_| Either::Done)
        })
        .await
    }
}

struct Signal<'a, 'b> {
    notified: Pin<&'a mut tokio::sync::futures::Notified<'b>>,
    registered: Option<Waker>,
    stop: &'a Stop,
    draining: bool,
}

impl Signal<'_, '_> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Option<Either> {
        if !self.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            // Register (or re-register) this task's waker; a notification that already
            // happened is seen through the flags below.
            let _ = self.notified.as_mut().poll(cx);
            self.registered = Some(cx.waker().clone());
        }
        if self.stop.aborting.load(Ordering::Acquire) {
            return Some(Either::Abort);
        }
        (!self.draining && self.stop.draining.load(Ordering::Acquire)).then_some(Either::Drain)
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received; draining in-flight requests"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; draining in-flight requests"),
    }
}
