//! Server-Sent Events over HTTP: resuming with `Last-Event-ID` delivers exactly what was
//! missed; an operation's stream ends after its terminal event (or, for a finished operation,
//! after its final state); non-members get 404.

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use support::{db::TestDatabase, session, sse::Message};

/// Reads messages until `want` arrived or the stream ended; returns them and whether it ended.
async fn read(resp: reqwest::Response, want: usize, limit: Duration) -> (Vec<Message>, bool) {
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        out.extend(support::sse::drain(&mut text));
        if out.len() >= want {
            return (out, false);
        }
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(_) => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_resume_exactly_and_operation_streams_end() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_IMPORT_BATCH_SIZE", "10")])).await;
    let a = session::login(&app, "ann@example.com").await;
    let b = session::login(&app, "bob@example.com").await;
    let p = a.project("Streams").await;

    // Live: follow an import from the start; the stream ends after `operation.succeeded`.
    let op = a.import(&p, 50).await;
    let live = a.req(Method::GET, &format!("/api/v1/projects/{p}/operations/{op}/events")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert!(live.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let (messages, ended) = read(live, 100, Duration::from_secs(20)).await;
    assert!(ended, "the operation stream ends after its terminal event");
    let kinds: Vec<&str> = messages.iter().map(|m| m.event.as_str()).collect();
    assert_eq!(kinds.last(), Some(&"operation.succeeded"), "{kinds:?}");
    assert!(kinds.iter().filter(|k| **k == "operation.progress").count() >= 5, "{kinds:?}");
    assert!(messages.iter().all(|m| m.data["operation_id"] == op.as_str()));

    // Resume: from the second event of the project's history, exactly the rest, in order.
    let all = a.req(Method::GET, &format!("/api/v1/projects/{p}/events")).send().await.unwrap();
    let (history, _) = read(all, messages.len() + 1, Duration::from_secs(5)).await;
    let ids: Vec<String> = history.iter().map(|m| m.id.clone().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1] || w[0].len() < w[1].len()), "ordered: {ids:?}");
    let resumed = a.req(Method::GET, &format!("/api/v1/projects/{p}/events")).header("last-event-id", &ids[1]).send().await.unwrap();
    let (rest, _) = read(resumed, ids.len() - 2, Duration::from_secs(5)).await;
    let rest_ids: Vec<String> = rest.iter().map(|m| m.id.clone().unwrap()).collect();
    assert_eq!(rest_ids, ids[2..], "no gap, no duplicate");
    let by_query = a.req(Method::GET, &format!("/api/v1/projects/{p}/events?last_event_id={}", ids[ids.len() - 2])).send().await.unwrap();
    let (tail, _) = read(by_query, 1, Duration::from_secs(5)).await;
    assert_eq!(tail[0].id.as_deref(), Some(ids[ids.len() - 1].as_str()));

    // A finished operation's stream sends its final state and ends.
    let done = a.req(Method::GET, &format!("/api/v1/projects/{p}/operations/{op}/events")).send().await.unwrap();
    let (final_state, ended) = read(done, 10, Duration::from_secs(5)).await;
    assert!(ended);
    assert_eq!(final_state.len(), 1);
    assert_eq!((final_state[0].event.as_str(), final_state[0].data["data"]["status"].as_str()), ("operation.succeeded", Some("succeeded")));
    // Resuming a finished operation's stream (its end fell between a stream's end and the
    // browser's reconnect) sends what was missed, from the history, to its terminal event.
    let op_ids: Vec<String> = messages.iter().map(|m| m.id.clone().unwrap()).collect();
    let resumed = a
        .req(Method::GET, &format!("/api/v1/projects/{p}/operations/{op}/events"))
        .header("last-event-id", &op_ids[1])
        .send()
        .await
        .unwrap();
    let (missed, ended) = read(resumed, 100, Duration::from_secs(5)).await;
    assert!(ended);
    let missed_ids: Vec<String> = missed.iter().map(|m| m.id.clone().unwrap_or_default()).collect();
    assert_eq!(missed_ids, op_ids[2..], "the rest of its events, each with its ID, and nothing else");

    // Non-members get 404; a malformed Last-Event-ID is a 400.
    assert_eq!(b.req(Method::GET, &format!("/api/v1/projects/{p}/events")).send().await.unwrap().status(), 404);
    assert_eq!(b.req(Method::GET, &format!("/api/v1/projects/{p}/operations/{op}/events")).send().await.unwrap().status(), 404);
    let bad = a.req(Method::GET, &format!("/api/v1/projects/{p}/events")).header("last-event-id", "nonsense").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    // B's own project stream never carries A's events.
    let pb = b.project("Other").await;
    let other = b.req(Method::GET, &format!("/api/v1/projects/{pb}/events")).send().await.unwrap();
    let (nothing, _) = read(other, 1, Duration::from_millis(500)).await;
    assert!(nothing.is_empty(), "{nothing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_after_their_lifetime_with_a_retry_hint() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_SSE_MAX_LIFETIME", "1s")])).await;
    let a = session::login(&app, "ann@example.com").await;
    let p = a.project("Lifetime").await;
    let resp = a.req(Method::GET, &format!("/api/v1/projects/{p}/events")).send().await.unwrap();
    let body = tokio::time::timeout(Duration::from_secs(5), resp.text()).await.expect("the stream ends").unwrap();
    assert!(body.contains("retry: 1000") || body.contains("retry:1000"), "{body:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_ends_its_streams_with_a_retry_hint_instead_of_waiting_out_the_grace() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_SHUTDOWN_GRACE", "30s")])).await;
    let a = session::login(&app, "ann@example.com").await;
    let p = a.project("Draining").await;
    let resp = a.req(Method::GET, &format!("/api/v1/projects/{p}/events")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let reading = tokio::spawn(resp.text());
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), app.shutdown()).await.expect("the drain does not wait for the stream's grace");
    let body = tokio::time::timeout(Duration::from_secs(1), reading).await.expect("the stream ended").unwrap().unwrap();
    assert!(body.contains("retry: 1000"), "{body:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_started_on_one_instance_streams_completely_from_another() {
    let db = TestDatabase::create().await;
    let prefix = format!("sse-test:{}:", uuid::Uuid::now_v7().simple());
    let shared = [("DATABASE_URL", db.app_url.as_str()), ("JEEX_REDIS_PREFIX", prefix.as_str()), ("JEEX_IMPORT_BATCH_SIZE", "10")];
    let one = support::start(support::config(&shared)).await;
    let mut two_cfg = shared.to_vec();
    two_cfg.push(("JEEX_WORKERS", "0"));
    let two = support::start(support::config(&two_cfg)).await;
    let a1 = session::login(&one, "ann@example.com").await;
    let a2 = session::login(&two, "ann@example.com").await;
    let p = a1.project("Shared").await;
    // Instance two streams; instance one accepts and runs the work.
    let op = a1.import(&p, 80).await;
    let stream = a2.req(Method::GET, &format!("/api/v1/projects/{p}/operations/{op}/events")).send().await.unwrap();
    let (messages, ended) = read(stream, 100, Duration::from_secs(20)).await;
    assert!(ended, "{messages:?}");
    let kinds: Vec<&str> = messages.iter().map(|m| m.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"operation.queued"), "from the history: {kinds:?}");
    assert_eq!(kinds.last(), Some(&"operation.succeeded"));
    let progress: Vec<i64> =
        messages.iter().filter(|m| m.event == "operation.progress").map(|m| m.data["data"]["progress"].as_i64().unwrap()).collect();
    assert_eq!(progress, (1..=8).map(|i| i * 100 / 8).collect::<Vec<_>>(), "every step, once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_reopen_their_projects_streams_only_and_open_streams_per_user_are_capped() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[
        ("DATABASE_URL", &db.app_url),
        ("JEEX_SSE_MAX_STREAMS_PER_USER", "2"),
        ("JEEX_SSE_MAX_LIFETIME", "1s"),
    ]))
    .await;
    let a = session::login(&app, "ann@example.com").await;
    let b = session::login(&app, "bob@example.com").await;
    let p = a.project("Tickets").await;
    let pb = b.project("Theirs").await;
    let ticket = |user: &session::User, project: String| {
        let req = user.req(Method::POST, &format!("/api/v1/projects/{project}/events/ticket"));
        async move {
            let (status, body) = session::split(req.send().await.unwrap()).await;
            (status, body["ticket"].as_str().unwrap_or_default().to_owned())
        }
    };
    let anonymous = support::client();
    let (status, t1) = ticket(&a, p.clone()).await;
    assert_eq!(status, 200);
    let opened = anonymous.get(app.url(&format!("/api/v1/projects/{p}/events?ticket={t1}"))).send().await.unwrap();
    assert_eq!(opened.status(), 200, "a ticket opens the stream without any header");
    drop(opened);
    // EventSource reconnects with the very same URL: the ticket opens the stream again.
    let again = anonymous.get(app.url(&format!("/api/v1/projects/{p}/events?ticket={t1}"))).send().await.unwrap();
    assert_eq!(again.status(), 200, "a reconnect with the same ticket");
    drop(again);
    let as_bearer = anonymous.get(app.url(&format!("/api/v1/projects/{p}"))).bearer_auth(&t1).send().await.unwrap();
    assert_eq!(as_bearer.status(), 401, "a ticket is no access token");
    // One signature character changed (well inside it: the last one carries padding bits).
    let at = t1.len() - 10;
    let swap = if &t1[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swap}{}", &t1[..at], &t1[at + 1..]);
    let forged = anonymous.get(app.url(&format!("/api/v1/projects/{p}/events?ticket={forged}"))).send().await.unwrap();
    assert_eq!(forged.status(), 401, "a ticket whose signature does not hold");
    let (_, t2) = ticket(&a, p.clone()).await;
    let elsewhere = anonymous.get(app.url(&format!("/api/v1/projects/{pb}/events?ticket={t2}"))).send().await.unwrap();
    assert_eq!(elsewhere.status(), 401, "a ticket opens only its own project's streams");
    let (_, t3) = ticket(&a, p.clone()).await;
    let not_a_stream = anonymous.get(app.url(&format!("/api/v1/projects/{p}?ticket={t3}"))).send().await.unwrap();
    assert_eq!(not_a_stream.status(), 401, "tickets authenticate event streams only");
    assert_eq!(ticket(&b, p.clone()).await.0, 404, "no tickets for non-members");

    // The cap: two open streams per user; a third is refused until one ends and frees its
    // slot (here by reaching its 1 s lifetime).
    let c = session::login(&app, "cat@example.com").await;
    let pc = c.project("Capped").await;
    let path = format!("/api/v1/projects/{pc}/events");
    let s1 = c.req(Method::GET, &path).send().await.unwrap();
    let s2 = c.req(Method::GET, &path).send().await.unwrap();
    assert_eq!((s1.status(), s2.status()), (reqwest::StatusCode::OK, reqwest::StatusCode::OK));
    let (status, problem) = session::split(c.req(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!((status, problem["code"].as_str()), (429, Some("RATE_LIMITED")));
    assert_eq!(b.req(Method::GET, &format!("/api/v1/projects/{pb}/events")).send().await.unwrap().status(), 200, "the cap is per user");
    tokio::time::timeout(Duration::from_secs(5), s1.text()).await.expect("the stream ends at its lifetime").unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.req(Method::GET, &path).send().await.unwrap().status(), 200, "an ended stream frees its slot");
    drop(s2);
}

/// Opens `path` on a raw connection and reads the response head: its status and the socket.
async fn open_raw(addr: &str, path: &str, token: &str) -> (u16, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 256];
    let n = socket.read(&mut head).await.unwrap();
    let status = String::from_utf8_lossy(&head[..n]).get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, socket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_frees_its_stream_at_once() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_SSE_MAX_STREAMS_PER_USER", "1")])).await;
    let a = session::login(&app, "ann@example.com").await;
    let p = a.project("Vanishing").await;
    let path = format!("/api/v1/projects/{p}/events");
    let addr = app.base.trim_start_matches("http://").to_owned();
    // A quiet stream (no events; the next keepalive is 15 s away) whose client closes its
    // socket: the server notices at once and frees the user's only slot. Each round's new
    // stream proves the previous one was freed.
    let (status, mut client) = open_raw(&addr, &path, &a.token).await;
    assert_eq!(status, 200);
    for round in 0..5 {
        assert_eq!(open_raw(&addr, &path, &a.token).await.0, 429, "round {round}: the only slot is taken");
        drop(client);
        let gone = Instant::now();
        client = loop {
            let (status, socket) = open_raw(&addr, &path, &a.token).await;
            if status == 200 {
                break socket;
            }
            assert!(gone.elapsed() < Duration::from_secs(1), "round {round}: the slot is still held after its client left");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
    }
}

/// Resident memory of this process in KiB.
fn rss_kib() -> u64 {
    jeex_e2e::binary::rss_kib(std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_and_memory_stays_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_SSE_MAX_STREAMS_PER_USER", "1")])).await;
    let a = session::login(&app, "ann@example.com").await;
    let p = a.project("Backpressure").await;
    // A raw client: sends the request, reads the response head, then never reads again.
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stuck = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET /api/v1/projects/{p}/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n", a.token);
    stuck.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 256];
    let n = stuck.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));

    let bus = jeex_api::events::EventBus::new(
        Some({
            let redis = jeex_api::deps::redis::Redis::connect(&jeex_e2e::services::redis_url(), std::time::Duration::from_secs(5)).unwrap();
            (redis.client(), redis.connection())
        }),
        &app.redis_prefix,
        jeex_api::events::Retention { max_len: 1_000, ttl: Duration::from_secs(60) },
    );
    let project = &support::scope::of(&app, &a, &p).await;
    let payload = json!({ "padding": "x".repeat(200) });
    let before = rss_kib();
    let mut peak = before;
    for i in 0..100_000u32 {
        bus.publish(project, "test.flood", None, payload.clone()).await.unwrap();
        if i % 10_000 == 0 {
            peak = peak.max(rss_kib());
        }
    }
    peak = peak.max(rss_kib());
    assert!(peak - before < 64 * 1024, "memory grew by {} KiB while 100,000 events were published", peak - before);
    // The stuck stream was cut off: its slot (the user's only one) is free again.
    let mut freed = false;
    for _ in 0..40 {
        if a.req(Method::GET, &format!("/api/v1/projects/{p}/events")).send().await.unwrap().status() == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the client that stopped reading was disconnected");
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_operation_ends_its_stream_within_a_second() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url), ("JEEX_IMPORT_BATCH_SIZE", "10")])).await;
    let a = session::login(&app, "ann@example.com").await;
    let p = a.project("Cancel").await;
    let op = a.import(&p, 5_000).await;
    let path = format!("/api/v1/projects/{p}/operations/{op}");
    let stream = a.req(Method::GET, &format!("{path}/events")).send().await.unwrap();
    let reader = tokio::spawn(read(stream, 100_000, Duration::from_secs(30)));
    loop {
        let (_, state) = a.call(Method::GET, &path, None).await;
        if state["progress"].as_i64() > Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = std::time::Instant::now();
    assert_eq!(a.call(Method::POST, &format!("{path}/cancel"), None).await.0, 202);
    let (messages, ended) = reader.await.unwrap();
    assert!(ended, "the stream ends");
    assert!(asked.elapsed() < Duration::from_secs(1), "ended {:?} after the cancel", asked.elapsed());
    let kinds: Vec<&str> = messages.iter().map(|m| m.event.as_str()).collect();
    assert_eq!(kinds.last(), Some(&"operation.cancelled"), "{kinds:?}");
    assert!(kinds.contains(&"operation.cancel_requested"));
}

/// Issue 24, acceptance 3: access is checked again while streaming. A member removed from the
/// project loses an open stream within 5 s (`JEEX_SSE_ACCESS_CHECK` defaults to 2 s) and
/// reconnecting is refused; a revoked API key's open stream ends likewise, and a ticket it
/// minted earlier no longer opens one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_soon_after_access_does_and_reconnects_are_refused() {
    let db = TestDatabase::create().await;
    let app = support::start(support::config(&[("DATABASE_URL", &db.app_url)])).await;
    let owner = session::login(&app, "stream-owner@example.com").await;
    let member = session::login(&app, "stream-member@example.com").await;
    let p = owner.project("Streams").await;
    let events = format!("/api/v1/projects/{p}/events");
    let (status, _) = owner
        .call(
            Method::POST,
            &format!("/api/v1/projects/{p}/members"),
            Some(json!({ "email": "stream-member@example.com", "role": "viewer" })),
        )
        .await;
    assert_eq!(status, 201);
    let (status, member_ticket) = member.call(Method::POST, &format!("{events}/ticket"), None).await;
    assert_eq!(status, 200);
    let member_ticket = member_ticket["ticket"].as_str().unwrap().to_owned();

    // A member's stream, then the member is removed.
    let open = member.req(Method::GET, &events).send().await.unwrap();
    assert_eq!(open.status(), 200);
    let reading = tokio::spawn(read(open, usize::MAX, Duration::from_secs(15)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let removed = Instant::now();
    assert_eq!(owner.call(Method::DELETE, &format!("/api/v1/projects/{p}/members/{}", member.id), None).await.0, 204);
    let (_, ended) = reading.await.unwrap();
    assert!(ended && removed.elapsed() < Duration::from_secs(5), "the stream ended {:?} after the removal", removed.elapsed());
    assert_eq!(member.req(Method::GET, &events).send().await.unwrap().status(), 404, "the reconnect is refused");
    let with_ticket = support::client().get(app.url(&format!("{events}?ticket={member_ticket}"))).send().await.unwrap();
    assert_eq!(with_ticket.status(), 404, "and so is a reconnect with the ticket minted while a member");

    // An API key's stream through a ticket, and a second ticket kept for later; then the key
    // is revoked.
    let (status, key) =
        owner.call(Method::POST, &format!("/api/v1/projects/{p}/api-keys"), Some(json!({ "name": "stream", "role": "viewer" }))).await;
    assert_eq!(status, 201, "{key}");
    let secret = key["key"].as_str().unwrap().to_owned();
    let ticket = || async {
        let resp = support::client().post(app.url(&format!("{events}/ticket"))).header("x-api-key", &secret).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()["ticket"].as_str().unwrap().to_owned()
    };
    let (first, second) = (ticket().await, ticket().await);
    let open = support::client().get(app.url(&format!("{events}?ticket={first}"))).send().await.unwrap();
    assert_eq!(open.status(), 200);
    let reading = tokio::spawn(read(open, usize::MAX, Duration::from_secs(15)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revoked = Instant::now();
    let key_path = format!("/api/v1/projects/{p}/api-keys/{}", key["id"].as_str().unwrap());
    assert_eq!(owner.call(Method::DELETE, &key_path, None).await.0, 204);
    let (_, ended) = reading.await.unwrap();
    assert!(ended && revoked.elapsed() < Duration::from_secs(5), "the key's stream ended {:?} after the revocation", revoked.elapsed());
    let refused = support::client().get(app.url(&format!("{events}?ticket={second}"))).send().await.unwrap();
    assert_eq!(refused.status(), 404, "a ticket of a revoked key opens nothing");
    let reconnect = support::client().get(app.url(&format!("{events}?ticket={first}"))).send().await.unwrap();
    assert_eq!(reconnect.status(), 404, "not even the ticket of the stream that just ended");

    // The owner's own stream is untouched by all this.
    let open = owner.req(Method::GET, &events).send().await.unwrap();
    assert_eq!(open.status(), 200);
    let (_, ended) = read(open, usize::MAX, Duration::from_secs(3)).await;
    assert!(!ended, "a stream whose caller keeps access stays open");
}
