//! The pool against a real PostgreSQL (`TEST_DATABASE_URL`), its round trips counted on the
//! wire by the data bench's proxy.

use std::{net::ToSocketAddrs, str::FromStr, sync::Arc, time::Duration};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{Limits, Pool};
use crate::{
    access::{Backend, Conn, Pooled, Tx},
    client_span::Endpoint,
};

#[path = "../../benches/common/round_trips.rs"]
mod round_trips;

fn limits(max_connections: u32) -> Limits {
    let long = Duration::from_secs(600);
    Limits { max_connections, acquire_timeout: Duration::from_secs(5), max_lifetime: long, idle_timeout: long, settle_timeout: long }
}

fn pool(url: &str, limits: Limits) -> Pool {
    let options = PgConnectOptions::from_str(url).expect("TEST_DATABASE_URL parses");
    let endpoint = Endpoint { namespace: "test".into(), address: options.get_host().into(), port: options.get_port() };
    Pool::new(options, limits, Arc::new(Backend::new(endpoint)))
}

async fn pid(pool: &Pool) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(Pooled::new(pool)).await.unwrap()
}

#[tokio::test]
async fn a_statement_costs_one_round_trip_and_its_connection_comes_back_without_another() {
    let url = jeex_e2e::services::database_url();
    let options = PgConnectOptions::from_str(&url).unwrap();
    let upstream = (options.get_host(), options.get_port()).to_socket_addrs().unwrap().next().unwrap();
    let proxy = round_trips::Proxy::start(upstream).await;
    let pool = pool(&proxy.url(&url), limits(2));
    for _ in 0..20 {
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(Pooled::new(&pool)).await.unwrap();
        assert_eq!(one, 1);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = proxy.seen();
    assert_eq!(seen.statements, 20, "{seen:?}");
    assert!(seen.checks <= 1, "nothing but the statement's preparation on its one connection: {seen:?}");
    assert_eq!(pool.connections(), (1, 1), "one connection, open and idle: reused each time");

    // The proxy does see the round trip sqlx's own pool spends on each connection it takes back.
    let sqlx_pool = PgPoolOptions::new().max_connections(2).connect(&proxy.url(&url)).await.unwrap();
    for _ in 0..20 {
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&sqlx_pool).await.unwrap();
    }
    sqlx_pool.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let spent = proxy.seen() - seen;
    assert_eq!(spent.statements, 20, "{spent:?}");
    assert!(spent.checks >= 20, "sqlx checks each connection it takes back: {spent:?}");
}

#[tokio::test]
async fn a_statement_cancelled_on_its_way_is_settled_before_reuse_or_closed_when_it_takes_too_long() {
    let url = jeex_e2e::services::database_url();
    let patient = pool(&url, Limits { settle_timeout: Duration::from_secs(5), ..limits(1) });
    let first = pid(&patient).await;
    assert_eq!(pid(&patient).await, first, "a finished statement's connection is reused");

    // Cancelled after 100 ms of a 600 ms statement: the connection keeps the pool's one place
    // while the rest of the answer is read, and is then reused.
    let mut conn = Conn::acquire(&patient).await.unwrap();
    let slow = sqlx::query("SELECT pg_sleep(0.6)").execute(&mut conn);
    assert!(tokio::time::timeout(Duration::from_millis(100), slow).await.is_err(), "cancelled on its way");
    let cancelled = std::time::Instant::now();
    drop(conn);
    assert_eq!(pid(&patient).await, first, "settled, then reused");
    assert!(cancelled.elapsed() >= Duration::from_millis(400), "the next statement waited for the settling: {:?}", cancelled.elapsed());

    // One that does not settle in time is closed, and its place given to a new connection.
    let impatient = pool(&url, Limits { settle_timeout: Duration::from_millis(200), ..limits(1) });
    let first = pid(&impatient).await;
    let mut conn = Conn::acquire(&impatient).await.unwrap();
    let slow = sqlx::query("SELECT pg_sleep(3)").execute(&mut conn);
    assert!(tokio::time::timeout(Duration::from_millis(100), slow).await.is_err());
    drop(conn);
    assert_ne!(pid(&impatient).await, first, "the next statement runs on a new connection");
    assert_eq!(impatient.connections(), (1, 1), "the unsettled one is closed");
}

#[tokio::test]
async fn a_dropped_transaction_rolls_back_before_its_connection_is_reused() {
    let pool = pool(&jeex_e2e::services::database_url(), limits(1));
    let mut tx = Tx::begin(&pool).await.unwrap();
    let (first, _): (i32, String) =
        sqlx::query_as("SELECT pg_backend_pid(), set_config('jeex.project_id', 'left behind', true)").fetch_one(&mut tx).await.unwrap();
    drop(tx);
    // The one connection settles (ROLLBACK) before the next lease gets it.
    let (next, setting): (i32, String) = sqlx::query_as("SELECT pg_backend_pid(), coalesce(current_setting('jeex.project_id', true), '')")
        .fetch_one(Pooled::new(&pool))
        .await
        .unwrap();
    assert_eq!(next, first, "the same connection, kept");
    assert_eq!(setting, "", "the transaction's setting is gone");
    // Inside a transaction block, a savepoint would be taken.
    let outside = sqlx::query("SAVEPOINT probe").execute(Pooled::new(&pool)).await.unwrap_err();
    let code = outside.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("25P01"), "no transaction block is open: {outside}");
    assert_eq!(pid(&pool).await, first, "a statement's error leaves its connection fit to reuse");
}

#[tokio::test]
async fn a_full_pool_times_out_and_idle_connections_close_on_a_quiet_pool() {
    let url = jeex_e2e::services::database_url();
    let short = Limits { acquire_timeout: Duration::from_millis(200), idle_timeout: Duration::from_millis(500), ..limits(1) };
    let pool = pool(&url, short);
    let held = Conn::acquire(&pool).await.unwrap();
    assert!(matches!(Conn::acquire(&pool).await, Err(sqlx::Error::PoolTimedOut)), "the one connection is taken");
    drop(held);
    assert_eq!(pool.connections(), (1, 1));
    // The sweep runs every second at the most often.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    assert_eq!(pool.connections(), (0, 0), "closed after its idle time with nothing asking");
    pool.close().await;
    assert!(matches!(Conn::acquire(&pool).await, Err(sqlx::Error::PoolClosed)));
}

#[tokio::test]
async fn a_session_postgresql_ended_is_not_reused() {
    let pool = pool(&jeex_e2e::services::database_url(), limits(1));
    let first = pid(&pool).await;
    let mut conn = Conn::acquire(&pool).await.unwrap();
    sqlx::query("SET idle_session_timeout = 100").execute(&mut conn).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let ended = sqlx::query("SELECT 1").execute(&mut conn).await.unwrap_err();
    drop(conn);
    assert_eq!(pool.connections(), (0, 0), "closed, not put back: {ended}");
    assert_ne!(pid(&pool).await, first);
}
