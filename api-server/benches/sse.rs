//! `cargo bench -p jeex-api --bench sse`: 5,000 concurrent SSE clients of one release
//! `jeex-api` instance, subscribed to one project, while events are published at 100/s from
//! another process standing for another replica — first straight onto its bus through Redis
//! (the figure measured since issue 4), then the way operation events travel since issue 24:
//! recorded in PostgreSQL's outbox in a transaction of their own and relayed to Redis by that
//! replica's relay. Prints delivery latency (target p99 < 50 ms) twice for each: to the
//! client's socket (the kernel's receive timestamp, i.e. what the server did), and to the load
//! generator's read of it (which adds the generator's own turn on the two shared cores); and
//! the server's resident memory per connection (target <= 20 KiB).

mod common;

use std::{
    os::fd::AsRawFd,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use common::{BenchDatabase, cpu_time, free_addr, percentile, rss_mib, serve_command, spawn, wait_for_200};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Semaphore,
};
use uuid::Uuid;

const CLIENTS: usize = 5_000;
const RATE: u64 = 100;
const MEASURE: Duration = Duration::from_secs(10);
/// Connections being opened at once.
const CONNECTING: usize = 64;

/// One event's way to one client, in microseconds from publishing.
#[derive(Clone, Copy)]
struct Latency {
    /// Until the bytes reached the client's socket (kernel receive timestamp).
    arrived: u64,
    /// Until the load generator read them.
    read: u64,
    /// When it was published (identifies the event).
    sent: u64,
}

fn main() {
    common::run_bench("sse", run);
}

/// The `"sent":<micros>` stamps in a run of complete messages.
fn sent_stamps<'a>(key: &'a memchr::memmem::Finder<'static>, text: &'a [u8]) -> impl Iterator<Item = u64> + 'a {
    key.find_iter(text).map(move |at| {
        text[at + key.needle().len()..].iter().take_while(|b| b.is_ascii_digit()).fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
    })
}

/// `recvmsg` with the kernel's receive timestamp (`SO_TIMESTAMPNS`) of the last segment read, in
/// microseconds since the epoch: when the server's bytes reached this socket, before the load
/// generator got round to reading them. Events from earlier segments of the same read get
/// the later time, so the figure never flatters.
fn recv_stamped(fd: std::os::fd::RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is valid; its pointers are set to live buffers below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `buf` and `control`, both alive for the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                stamp = Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

/// Reads every stream until the server closes it, recording each event's latency.
fn read_events(streams: Vec<std::net::TcpStream>, key: &memchr::memmem::Finder<'static>) -> Vec<Latency> {
    struct Conn {
        stream: std::net::TcpStream,
        /// `buf[..filled]`: the bytes after the last complete message (chunk framing is never
        /// mistaken for a stamp, so it needs no parsing).
        buf: Box<[u8; 4096]>,
        filled: usize,
        open: bool,
    }
    // The readers stand for clients on other machines: they take their fair share of the
    // cores, but as batch threads they never preempt the server when data wakes them (which
    // they did 4,500 times a second per worker, each a switch between address spaces).
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sets this thread's own scheduling policy from a valid parameter block.
    assert_eq!(unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) }, 0, "SCHED_BATCH");
    // SAFETY: creating an epoll instance; checked below.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(epoll >= 0, "epoll_create1");
    let mut conns: Vec<Conn> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            let fd = stream.as_raw_fd();
            let on: libc::c_int = 1;
            // SAFETY: an int option on a socket this thread owns.
            let set = unsafe {
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, (&raw const on).cast(), size_of::<libc::c_int>() as _)
            };
            assert_eq!(set, 0, "SO_TIMESTAMPNS");
            let mut event = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLET) as u32, u64: i as u64 };
            // SAFETY: registering a live socket with the epoll instance above.
            assert_eq!(unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) }, 0, "epoll_ctl");
            Conn { stream, buf: Box::new([0; 4096]), filled: 0, open: true }
        })
        .collect();
    // Touched now, before publishing starts: the first touch of a page faults, which on a
    // virtual machine costs enough to show in the latencies measured meanwhile.
    let mut latencies = vec![Latency { arrived: 0, read: 0, sent: 0 }; conns.len() * (RATE * MEASURE.as_secs()) as usize];
    latencies.clear();
    let mut open = conns.len();
    let mut ready = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
    // The streams end when the server is stopped after the last event.
    while open > 0 {
        // SAFETY: `ready` has room for the count passed.
        let n = unsafe { libc::epoll_wait(epoll, ready.as_mut_ptr(), ready.len() as i32, 1000) };
        if n < 0 {
            assert_eq!(std::io::Error::last_os_error().kind(), std::io::ErrorKind::Interrupted, "epoll_wait");
            continue;
        }
        for event in &ready[..n as usize] {
            let conn = &mut conns[event.u64 as usize];
            // Edge-triggered: read until the socket is drained (a read that did not fill the
            // space offered, or would block).
            while conn.open {
                let space = conn.buf.len() - conn.filled;
                assert!(space > 0, "an event larger than the read buffer");
                let (got, arrived) = match recv_stamped(conn.stream.as_raw_fd(), &mut conn.buf[conn.filled..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Ok((0, _)) | Err(_) => {
                        conn.open = false;
                        open -= 1;
                        // SAFETY: deregistering a socket registered above.
                        unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_DEL, conn.stream.as_raw_fd(), std::ptr::null_mut()) };
                        break;
                    }
                    Ok(read) => read,
                };
                let read = now_micros();
                let arrived = arrived.unwrap_or(read);
                conn.filled += got;
                if let Some(end) = memchr::memmem::rfind(&conn.buf[..conn.filled], b"\n\n") {
                    latencies.extend(sent_stamps(key, &conn.buf[..end]).map(|sent| Latency {
                        arrived: arrived.saturating_sub(sent),
                        read: read.saturating_sub(sent),
                        sent,
                    }));
                    conn.buf.copy_within(end + 2..conn.filled, 0);
                    conn.filled -= end + 2;
                }
                if got < space {
                    break;
                }
            }
        }
    }
    // SAFETY: closing the epoll instance this function created.
    unsafe { libc::close(epoll) };
    latencies
}

/// Prints p50/p90/p99/max of one measure and whether its p99 is under 50 ms.
fn latency_line(label: &str, all: &[Latency], pick: fn(&Latency) -> u64, (yes, no): (&str, &str)) {
    let mut v: Vec<u64> = all.iter().map(pick).collect();
    v.sort_unstable();
    let pct = |p: f64| percentile(&v, p) as f64 / 1000.0;
    let p99 = pct(0.99);
    println!(
        "{label} p50 {:.2} ms, p90 {:.2} ms, p99 {p99:.2} ms, max {:.2} ms (target p99 < 50 ms: {})",
        pct(0.5),
        pct(0.9),
        pct(1.0),
        if p99 < 50.0 { yes } else { no }
    );
}

/// Splits the socket latency into an event's way to its first stream (publishing, Redis, the
/// fan-out) and its spread from first to last stream (the server's pass over every stream).
fn per_event_line(all: &mut [Latency]) {
    all.sort_unstable_by_key(|l| (l.sent, l.arrived));
    let (mut first, mut spread) = (Vec::new(), Vec::new());
    for event in all.chunk_by(|a, b| a.sent == b.sent) {
        first.push(event[0].arrived);
        spread.push(event[event.len() - 1].arrived - event[0].arrived);
    }
    first.sort_unstable();
    spread.sort_unstable();
    let ms = |v: &[u64], p: f64| percentile(v, p) as f64 / 1000.0;
    println!(
        "per event: to its first stream p50 {:.2} ms, p99 {:.2} ms; first to last stream p50 {:.2} ms, p99 {:.2} ms",
        ms(&first, 0.5),
        ms(&first, 0.99),
        ms(&spread, 0.5),
        ms(&spread, 0.99)
    );
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_micros() as u64
}

async fn run() {
    let redis_url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into());
    let db = BenchDatabase::create().await;
    let (project, app_url) = (db.project, db.app_url.clone());
    let publisher_db = app_url.clone();
    let user = db.user;
    let prefix = format!("ssebench:{}:", Uuid::now_v7().simple());
    let addr = free_addr();
    let (mut cmd, data_dir) = serve_command(addr);
    cmd.env("DATABASE_URL", &app_url)
        .env("REDIS_URL", &redis_url)
        .env("JEEX_REDIS_PREFIX", &prefix)
        .env("JEEX_RATE_LIMIT_READS", "off")
        .env("JEEX_SSE_MAX_STREAMS_PER_USER", "10000")
        .env("JEEX_WORKERS", "0");
    let server = spawn(cmd, data_dir, addr);
    std::thread::spawn(move || wait_for_200(addr, "/health/live")).join().expect("jeex-api answers");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_mib(server.child.id());

    let auth = Arc::new(common::bearer(db.user));
    let path = Arc::new(format!("/api/v1/projects/{project}/events"));

    // Connect every client, a few at a time (so the figure is what an open stream holds, not the
    // transient peak of 5,000 simultaneous handshakes).
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let connecting: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (auth, path, gate) = (auth.clone(), path.clone(), gate.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                let mut stream = TcpStream::connect(addr).await.expect("connect");
                stream.set_nodelay(true).unwrap();
                let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {auth}\r\n\r\n");
                stream.write_all(request.as_bytes()).await.expect("send the request");
                let mut head = [0u8; 1024];
                let n = stream.read(&mut head).await.expect("response head");
                assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head[..n]));
                assert!(head[..n].ends_with(b"\r\n\r\n"), "the head alone, no event yet");
                stream.into_std().expect("a plain socket")
            })
        })
        .collect();
    let mut streams = Vec::with_capacity(CLIENTS);
    for c in connecting {
        streams.push(c.await.unwrap());
    }
    // Two reader threads, half of the streams each, on epoll directly: the load generator
    // shares the two cores with the server, so it spends as little of them as it can.
    let key = memchr::memmem::Finder::new(b"\"sent\":").into_owned();
    let second_half = streams.split_off(CLIENTS / 2);
    let readers: Vec<_> = [streams, second_half]
        .into_iter()
        .map(|half| {
            let key = key.clone();
            std::thread::spawn(move || read_events(half, &key))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_rss = rss_mib(server.child.id());

    eprintln!("sse bench: {CLIENTS} clients connected; publishing");
    let total = RATE * MEASURE.as_secs();
    // The publisher stands for another replica: it runs on a thread and runtime of its own.
    // On the clients' runtime its Redis connection's task would wait behind thousands of
    // client tasks after the event was stamped, and that wait would be counted as delivery.
    // It connects first and then says when its schedule starts, so no event goes out late.
    let (start_tx, start_rx) = std::sync::mpsc::channel();
    let publisher = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let redis = jeex_api::deps::redis::Redis::connect(&redis_url, Duration::from_secs(5)).unwrap();
            let bus = jeex_api::events::EventBus::new(
                Some((redis.client(), redis.connection())),
                &prefix,
                jeex_api::events::Retention { max_len: 10_000, ttl: Duration::from_secs(600) },
            );
            let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&publisher_db).await.unwrap();
            // The bus publishes only into a scope: the member's, through the membership check.
            let database = jeex_api::db::Database::connect_lazy(&publisher_db, &common::pool_config(4)).unwrap();
            let caller =
                jeex_api::access::Caller { principal: jeex_api::access::Principal::User { user_id: user }, correlation_id: "bench".into() };
            let scope = database.scoped::<jeex_api::access::Viewer>(&caller, project).await.unwrap().scope().clone();
            let started = Instant::now();
            start_tx.send(started).unwrap();
            for i in 0..total {
                tokio::time::sleep_until((started + Duration::from_micros(i * 1_000_000 / RATE)).into()).await;
                bus.publish(&scope, "bench.tick", None, serde_json::json!({ "sent": now_micros() })).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            // The outbox path: each event committed in a worker transaction of its own, then
            // relayed (this replica's relay is told at once, as a worker's commit tells it).
            let relay = jeex_api::events::relay::spawn(database.clone(), bus.clone());
            let outbox_from = now_micros();
            let started = Instant::now();
            for i in 0..total {
                tokio::time::sleep_until((started + Duration::from_micros(i * 1_000_000 / RATE)).into()).await;
                let data = serde_json::json!({ "sent": now_micros() });
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("SELECT set_config('jeex.worker', 'claim', true)").execute(&mut *tx).await.unwrap();
                // What `db::event_outbox::record` writes inside an operation's transaction.
                sqlx::query("INSERT INTO event_outbox (project_id, operation_id, kind, data) VALUES ($1, NULL, 'bench.recorded', $2)")
                    .bind(project)
                    .bind(&data)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                bus.recorded();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            relay.stop().await;
            outbox_from
        })
    });
    let started = tokio::task::spawn_blocking(move || start_rx.recv().expect("the publisher connects")).await.unwrap();
    let (server_cpu, own_cpu) = (cpu_time(server.child.id()), cpu_time(std::process::id()));
    let outbox_from = tokio::task::spawn_blocking(move || publisher.join().expect("the publisher finishes")).await.unwrap();
    let publishing = started.elapsed().as_secs_f64();
    let server_cores = (cpu_time(server.child.id()) - server_cpu).as_secs_f64() / publishing;
    let generator_cores = (cpu_time(std::process::id()) - own_cpu).as_secs_f64() / publishing;
    // Let the last events arrive, then stop the server: every stream ends.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(server);
    let mut all: Vec<Latency> = Vec::new();
    for r in readers {
        all.extend(tokio::task::spawn_blocking(move || r.join().expect("a reader finishes")).await.unwrap());
    }
    let expected = total as usize * CLIENTS;
    let per_conn_kib = (loaded_rss - idle_rss) * 1024.0 / CLIENTS as f64;
    let (mut direct, mut recorded): (Vec<Latency>, Vec<Latency>) = all.into_iter().partition(|l| l.sent < outbox_from);
    println!("\n{CLIENTS} SSE clients of one project, {RATE} events/s for {}s each way, through Redis", MEASURE.as_secs());
    println!("while publishing (both ways): server {server_cores:.2} cores, load generator {generator_cores:.2} cores (of 2)");
    for (way, all) in [("published onto the bus", &mut direct), ("recorded in the outbox and relayed", &mut recorded)] {
        println!("-- {way}: delivered {} of {expected} events", all.len());
        if !all.is_empty() {
            latency_line("delivery latency (publish to the client's socket)", all, |l| l.arrived, ("met", "MISSED"));
            latency_line("read by the load generator", all, |l| l.read, ("yes", "no"));
            per_event_line(all);
        }
    }
    println!(
        "server RSS idle {idle_rss:.1} MiB, with {CLIENTS} streams {loaded_rss:.1} MiB: {per_conn_kib:.1} KiB per connection (target <= 20: {})",
        if per_conn_kib <= 20.0 { "met" } else { "MISSED" }
    );
    db.drop().await;
}
