//! A Redis server of a test's own, on a free loopback port, that the test can stop and start
//! again — with its data gone, as a Redis without persistence loses it (the rest of the suite
//! keeps the shared one).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A private `redis-server`; killed when dropped.
pub struct RedisServer {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port (`redis-server` from `PATH`; `.ci/test` installs it).
    pub fn start() -> Self {
        let mut server = Self { port: crate::net::closed_port(), child: None };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no save, no goodbye to clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let mut answer = [0u8; 7];
                if conn.write_all(b"PING\r\n").is_ok() && conn.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer on port {} within 10 s", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
