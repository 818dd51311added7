//! Starts the real `jeex-api` binary on an ephemeral port and watches its JSON log.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

/// Path of the `jeex-api` binary of this build, built first if needed. Tests run in the same
/// profile and target directory as the test executable, so the binary matches the sources.
pub fn jeex_api() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // <target>/<profile>/deps/<test-exe>
        let profile_dir = exe.parent().and_then(|p| p.parent()).expect("profile directory").to_path_buf();
        let target_dir = profile_dir.parent().expect("target directory").to_path_buf();
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // The same invocation as `.ci/test`'s build step, so the features (and the artifact) match.
        build.current_dir(&workspace).args(["build", "--quiet", "--workspace", "--bins", "--target-dir"]).arg(&target_dir);
        // The test harness sets cargo's per-package variables (CARGO_MANIFEST_DIR, …); some
        // build scripts track them (ring does), and inheriting them would rebuild half the
        // tree here and again in the next plain `cargo build`.
        for (name, _) in std::env::vars_os() {
            if name
                .to_str()
                .is_some_and(|n| n.starts_with("CARGO_") && !matches!(n, "CARGO_HOME" | "CARGO_TARGET_DIR" | "CARGO_TERM_COLOR"))
            {
                build.env_remove(name);
            }
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build for jeex-api");
        assert!(status.success(), "building jeex-api failed");
        profile_dir.join("jeex-api")
    })
    .clone()
}

/// A running `jeex-api serve`. Killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

/// Variables that would leak from the developer's shell into the server, besides every
/// `JEEX_*` and `OTEL_*` one.
const SCRUBBED: &[&str] = &["DATABASE_URL", "REDIS_URL", "QDRANT_URL", "QDRANT_API_KEY", "RUST_LOG"];

/// Where commands keep development state (the generated JWT key pair) unless a test says
/// otherwise: outside the source tree, shared by the test run.
fn data_dir() -> PathBuf {
    std::env::temp_dir().join("jeex-e2e-data")
}

/// A number unique within this test process.
fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A `jeex-api` command with the shell's configuration removed.
fn command() -> Command {
    let mut cmd = Command::new(jeex_api());
    cmd.env("JEEX_DATA_DIR", data_dir());
    // Tests run the server as a developer does; those about the environment set (or empty) it.
    // Unset with a DATABASE_URL, the server would apply production rules.
    cmd.env("JEEX_ENV", "development");
    // The embedded vector engine allows one process per folder; commands run in parallel.
    cmd.env("JEEX_VECTOR_DIR", std::env::temp_dir().join(format!("jeex-e2e-vectors-{}-{}", std::process::id(), next_id())));
    for (name, _) in std::env::vars_os() {
        let keep = name.to_str().is_some_and(|n| !n.starts_with("JEEX_") && !n.starts_with("OTEL_") && !SCRUBBED.contains(&n));
        if name == "JEEX_DATA_DIR" || name == "JEEX_VECTOR_DIR" {
            continue;
        }
        if !keep {
            cmd.env_remove(&name);
        }
    }
    cmd
}

impl Server {
    /// `jeex-api serve` with `env` (plus an ephemeral port and JSON logs), waiting until it
    /// listens. Panics with the server's output if it does not within 60 s.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let mut cmd = command();
        cmd.arg("serve").env("JEEX_HTTP_ADDR", "127.0.0.1:0").env("JEEX_LOG_FORMAT", "json");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn jeex-api");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(child.stderr.take().unwrap())] {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let addr = logs.lock().unwrap().iter().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["message"] == "listening" && v["target"] == "jeex_api::run").then(|| v["addr"].as_str().map(str::to_owned))?
            });
            if let Some(addr) = addr {
                return Self { child, base: format!("http://{addr}"), logs };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("jeex-api exited ({status}) before listening:\n{}", logs.lock().unwrap().join("\n"));
            }
            assert!(Instant::now() < deadline, "jeex-api did not listen within 60s:\n{}", logs.lock().unwrap().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every line the server printed so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "jeex-api did not exit within {limit:?}:\n{}", self.logs().join("\n"));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    /// Stops the server, then holds its whole log to [`crate::leaks`]: no test's server may
    /// have logged a credential.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking()
            && let Some((kind, line)) = crate::leaks::find(&self.logs())
        {
            panic!("the server logged {kind}: {line}");
        }
    }
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

/// Runs `jeex-api ARGS` to completion with `env`, returning (exit status, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut cmd = command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run jeex-api");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}
