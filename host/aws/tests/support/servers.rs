//! AWS-compatible servers for tests, started on 127.0.0.1 and killed on drop.
//!
//! Self-contained (std only) so other crates can `#[path]`-include it:
//!
//! ```ignore
//! #[path = "../host/aws/tests/support/servers.rs"]
//! mod servers;
//! let moto = servers::LocalServer::moto();
//! ```
//!
//! | constructor | server | install |
//! | --- | --- | --- |
//! | [`LocalServer::moto`] | moto (every service, in memory) | `pip install 'moto[server]'` |
//! | [`LocalServer::kinesalite`] | Kinesis (LevelDB at `path`, else memory) | `npm ci --prefix tests/servers` |
//! | [`LocalServer::dynalite`] | DynamoDB (LevelDB at `path`, else memory) | `npm ci --prefix tests/servers` |
//! | [`LocalServer::s3rver`] | S3, path-style, keys `S3RVER`/`S3RVER` | `npm ci --prefix tests/servers` |
//!
//! Each picks a free port, waits (bounded) until the server answers HTTP, and
//! can be [`stop`](LocalServer::stop)ped and [`restart`](LocalServer::restart)ed
//! on the same port with the same data path (outage tests). Each server runs
//! in its own process group; stopping kills that group only.
//! Set `WEIR_TEST_SERVERS_DIR` to the folder holding `node_modules/` to
//! override where the npm servers are looked up.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer after being spawned.
pub const STARTUP_LIMIT: Duration = Duration::from_secs(90);

const MOTO_INSTALL: &str = "pip install 'moto[server]'";
const NPM_INSTALL: &str = "npm ci --prefix tests/servers";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Moto,
    Kinesalite,
    Dynalite,
    S3rver,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            ServerKind::Moto => "moto_server",
            ServerKind::Kinesalite => "kinesalite",
            ServerKind::Dynalite => "dynalite",
            ServerKind::S3rver => "s3rver",
        }
    }
}

/// A running (or stopped) local server.
#[derive(Debug)]
pub struct LocalServer {
    kind: ServerKind,
    port: u16,
    data: Option<PathBuf>,
    log: PathBuf,
    child: Option<Child>,
}

impl LocalServer {
    /// moto in server mode: all services on one port, state in memory (lost
    /// on restart).
    pub fn moto() -> Self {
        Self::start_new(ServerKind::Moto, None)
    }

    /// kinesalite; `path` keeps the streams in LevelDB across restarts.
    pub fn kinesalite(path: Option<&Path>) -> Self {
        Self::start_new(ServerKind::Kinesalite, path)
    }

    /// dynalite; `path` keeps the tables in LevelDB across restarts.
    pub fn dynalite(path: Option<&Path>) -> Self {
        Self::start_new(ServerKind::Dynalite, path)
    }

    /// s3rver storing objects under `dir` (path-style; credentials
    /// `S3RVER`/`S3RVER`).
    pub fn s3rver(dir: &Path) -> Self {
        Self::start_new(ServerKind::S3rver, Some(dir))
    }

    fn start_new(kind: ServerKind, data: Option<&Path>) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "weir-{}-{}-{port}.log",
            kind.name(),
            std::process::id()
        ));
        let mut server = Self {
            kind,
            port,
            data: data.map(Path::to_path_buf),
            log,
            child: None,
        };
        server.start();
        server
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kill the server (its whole process group) and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id();
            // Only the group this server was started in.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
            // The port is free once nothing accepts on it any more.
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stop, then start again on the same port with the same data path.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// Start a stopped server (same port, same data path).
    pub fn start(&mut self) {
        if self.child.is_some() {
            return;
        }
        let port = self.port.to_string();
        let mut cmd = match self.kind {
            ServerKind::Moto => {
                let bin = find_on_path("moto_server").unwrap_or_else(|| {
                    panic!("moto_server not found on PATH; install it with: {MOTO_INSTALL}")
                });
                let mut c = Command::new(bin);
                c.args(["-H", "127.0.0.1", "-p", &port]);
                c
            }
            ServerKind::Kinesalite => {
                let mut c = node_command("kinesalite");
                c.args([
                    "--port",
                    &port,
                    "--createStreamMs",
                    "20",
                    "--deleteStreamMs",
                    "20",
                    "--updateStreamMs",
                    "20",
                ]);
                if let Some(p) = &self.data {
                    c.arg("--path").arg(p);
                }
                c
            }
            ServerKind::Dynalite => {
                let mut c = node_command("dynalite");
                c.args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port,
                    "--createTableMs",
                    "20",
                    "--deleteTableMs",
                    "20",
                    "--updateTableMs",
                    "20",
                ]);
                if let Some(p) = &self.data {
                    c.arg("--path").arg(p);
                }
                c
            }
            ServerKind::S3rver => {
                let mut c = node_command("s3rver");
                let dir = self.data.as_ref().expect("s3rver needs a directory");
                std::fs::create_dir_all(dir).expect("create s3rver directory");
                c.args([
                    "--address",
                    "127.0.0.1",
                    "--port",
                    &port,
                    "--silent",
                    "--directory",
                ]);
                c.arg(dir);
                c
            }
        };
        let log = std::fs::File::create(&self.log).expect("create server log");
        let log2 = log.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.kind.name()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let end = Instant::now() + STARTUP_LIMIT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "{} exited during startup ({status}); log {}:\n{}",
                        self.kind.name(),
                        self.log.display(),
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            }
            if answers_http(self.port) {
                return;
            }
            if Instant::now() >= end {
                self.stop();
                panic!(
                    "{} did not answer on port {} within {STARTUP_LIMIT:?}; log {}:\n{}",
                    self.kind.name(),
                    self.port,
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn answers_http(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n >= 5 && &buf[..5] == b"HTTP/")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The folder holding `node_modules/.bin` of the test servers.
pub fn servers_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("WEIR_TEST_SERVERS_DIR") {
        return Some(PathBuf::from(d));
    }
    // From the package being tested, as cargo names it at run time, else
    // from where it was compiled: a test binary reused from a build in
    // another checkout still finds this checkout's servers.
    let runtime = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let starts = runtime
        .iter()
        .map(PathBuf::as_path)
        .chain([Path::new(env!("CARGO_MANIFEST_DIR"))]);
    for start in starts {
        let found = start
            .ancestors()
            .map(|d| d.join("tests").join("servers"))
            .find(|candidate| candidate.join("package.json").is_file());
        if found.is_some() {
            return found;
        }
    }
    None
}

fn node_command(name: &str) -> Command {
    let bin = servers_dir()
        .map(|d| d.join("node_modules").join(".bin").join(name))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("{name} not found in tests/servers/node_modules/.bin; install it from the repo root with: {NPM_INSTALL}")
        });
    if find_on_path("node").is_none() {
        panic!("node not found on PATH (needed by {name}); install Node.js, then: {NPM_INSTALL}");
    }
    Command::new(bin)
}

/// A fresh empty temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("weir-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
