//! The private PostgreSQL cluster for the first-look command: when `DATABASE_URL` is not set in
//! development, the server runs a cluster of its own under `JEEX_DATA_DIR` (default `.jeex/`)
//! from the installed server binaries, on a free loopback port, never touching a system
//! cluster's data. `initdb` refuses to run as root, so as root the cluster runs as `postgres`.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Output,
    time::Duration,
};

use tokio::process::Command;

/// Why the private cluster could not be started. Displays as one actionable line.
#[derive(Debug, thiserror::Error)]
#[error("private development database: {0}")]
pub struct DevDbError(String);

/// A running private cluster.
pub struct DevDatabase {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    run_as: Option<(u32, u32)>,
    started_here: bool,
    /// URL of the `jeex` database as the server's role (owns nothing, not superuser).
    pub url: String,
    /// URL of the `jeex` database as the owner, for migrations.
    pub owner_url: String,
}

const DATABASE: &str = "jeex";
/// The role the server connects as; `migrate` grants it its privileges.
pub const APP_ROLE: &str = "jeex_app";

impl DevDatabase {
    /// Starts (creating on first use) the cluster under `dir`, or adopts one already running
    /// there, and makes sure the `jeex` database exists.
    pub async fn start(dir: &Path) -> Result<Self, DevDbError> {
        let bin_dir = find_binaries().await?;
        let dir = std::path::absolute(dir).map_err(|e| DevDbError(format!("{}: {e}", dir.display())))?;
        // Everything the cluster writes lives under <dir>/postgres, the one directory handed to
        // the postgres user when running as root.
        let own_dir = dir.join("postgres");
        let data_dir = own_dir.join("data");
        std::fs::create_dir_all(&dir).map_err(|e| DevDbError(format!("cannot create {}: {e}", dir.display())))?;
        let run_as = if running_as_root() { Some(postgres_user()?) } else { None };
        if let Some((uid, gid)) = run_as {
            prepare_for_user(&own_dir, &data_dir, uid, gid).await?;
        }
        let mut db = Self { bin_dir, data_dir, run_as, started_here: false, url: String::new(), owner_url: String::new() };

        if !db.data_dir.join("PG_VERSION").exists() {
            tracing::info!(dir = %db.data_dir.display(), "creating the private development PostgreSQL cluster");
            let data = db.data_dir.display().to_string();
            db.run("initdb", &["-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"]).await?;
        }
        let port = match db.running_port().await {
            Some(port) => port,
            None => {
                let port = free_port()?;
                let log = own_dir.join("server.log").display().to_string();
                let data = db.data_dir.display().to_string();
                let opts = format!("-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''");
                db.run("pg_ctl", &["start", "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &opts]).await?;
                db.started_here = true;
                port
            }
        };
        db.url = format!("postgres://{APP_ROLE}@127.0.0.1:{port}/{DATABASE}");
        db.owner_url = format!("postgres://postgres@127.0.0.1:{port}/{DATABASE}");
        create_database(port).await?;
        Ok(db)
    }

    /// Stops the cluster if this process started it.
    pub async fn stop(&self) {
        if !self.started_here {
            return;
        }
        let data = self.data_dir.display().to_string();
        if let Err(e) = self.run("pg_ctl", &["stop", "-D", &data, "-m", "fast", "-w"]).await {
            tracing::warn!(error = %e, "stopping the private development database failed");
        }
    }

    /// Restarts the cluster on the same port (`pg_ctl restart -m fast`: every connection is
    /// cut, as in a database failover or upgrade), waiting until it accepts connections again.
    pub async fn restart(&self) -> Result<(), DevDbError> {
        let data = self.data_dir.display().to_string();
        // The log as at start: without one the server would hold pg_ctl's output open.
        let log = self.data_dir.with_file_name("server.log").display().to_string();
        self.run("pg_ctl", &["restart", "-D", &data, "-l", &log, "-m", "fast", "-w", "-t", "60"]).await.map(drop)
    }

    /// The port of a cluster already running on this data directory.
    async fn running_port(&self) -> Option<u16> {
        let data = self.data_dir.display().to_string();
        self.run("pg_ctl", &["status", "-D", &data]).await.ok()?;
        // Line 4 of postmaster.pid is the port.
        let pid_file = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    async fn run(&self, tool: &str, args: &[&str]) -> Result<Output, DevDbError> {
        let mut cmd = Command::new(self.bin_dir.join(tool));
        cmd.args(args).env("LC_ALL", "C").kill_on_drop(true);
        if let Some(own_dir) = self.data_dir.parent() {
            cmd.current_dir(own_dir);
        }
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.output().await.map_err(|e| DevDbError(format!("cannot run {tool}: {e}")))?;
        if out.status.success() {
            Ok(out)
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
            Err(DevDbError(format!("{tool} {} failed: {last}", args.first().unwrap_or(&""))))
        }
    }
}

/// `initdb` and `pg_ctl` from `PATH`, else the newest `/usr/lib/postgresql/*/bin`; as root on
/// Debian, installs the `postgresql` package when neither has them.
async fn find_binaries() -> Result<PathBuf, DevDbError> {
    if let Some(dir) = locate_binaries() {
        return Ok(dir);
    }
    if running_as_root() && Path::new("/usr/bin/apt-get").exists() {
        tracing::warn!("PostgreSQL server binaries not found; installing the Debian package `postgresql`");
        let update = Command::new("apt-get").args(["update", "-qq"]).status().await;
        let install =
            Command::new("apt-get").args(["install", "-y", "-qq", "postgresql"]).env("DEBIAN_FRONTEND", "noninteractive").status().await;
        if update.is_ok()
            && install.is_ok_and(|s| s.success())
            && let Some(dir) = locate_binaries()
        {
            return Ok(dir);
        }
    }
    Err(DevDbError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install them (apt-get install -y postgresql) or set DATABASE_URL".into(),
    ))
}

fn locate_binaries() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|d| has_both(d))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    // The owner of /proc/self is the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// uid and gid of the `postgres` system user, from /etc/passwd.
fn postgres_user() -> Result<(u32, u32), DevDbError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| {
            DevDbError("running as root needs a `postgres` system user for initdb (apt-get install -y postgresql creates it)".into())
        })
}

/// Hands the cluster's own directory to `postgres` and checks it can reach it.
async fn prepare_for_user(own_dir: &Path, data_dir: &Path, uid: u32, gid: u32) -> Result<(), DevDbError> {
    std::fs::create_dir_all(data_dir).map_err(|e| DevDbError(format!("cannot create {}: {e}", data_dir.display())))?;
    for path in [own_dir, data_dir] {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| DevDbError(format!("cannot hand {} to postgres: {e}", path.display())))?;
    }
    let reachable = Command::new("test").arg("-w").arg(data_dir).uid(uid).gid(gid).status().await.is_ok_and(|s| s.success());
    if !reachable {
        return Err(DevDbError(format!(
            "the postgres user cannot reach {} (a parent directory is private); set JEEX_DATA_DIR to a directory it can reach, e.g. /var/tmp/jeex",
            data_dir.display()
        )));
    }
    Ok(())
}

fn free_port() -> Result<u16, DevDbError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| DevDbError(format!("no free port: {e}")))
}

async fn create_database(port: u16) -> Result<(), DevDbError> {
    use sqlx::Connection;
    let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let mut conn = tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&admin))
        .await
        .map_err(|_| DevDbError("the cluster did not accept a connection within 10s".into()))?
        .map_err(|e| DevDbError(format!("cannot connect: {}", crate::db::describe(&e))))?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(DATABASE)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| DevDbError(crate::db::describe(&e)))?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE {DATABASE}")).execute(&mut conn).await.map_err(|e| DevDbError(crate::db::describe(&e)))?;
    }
    // The server's role: may log in, nothing more (no superuser, no BYPASSRLS, owns nothing).
    let role_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(APP_ROLE)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| DevDbError(crate::db::describe(&e)))?;
    if !role_exists {
        sqlx::query(&format!("CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"))
            .execute(&mut conn)
            .await
            .map_err(|e| DevDbError(crate::db::describe(&e)))?;
    }
    Ok(())
}
