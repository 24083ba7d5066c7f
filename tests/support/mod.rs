//! Test support: start the real `weir` binary on an ephemeral port with its
//! own data directory, talk to it with real MQTT clients, and stop it the
//! way an operator would (SIGTERM).

#![allow(dead_code)]

pub mod fleet;

use rumqttc::{Client, Connection, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn weir_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// The `echo` plugin's declaration for a `plugins.toml`: it republishes
/// each message's payload on `echo/<device>`, for tests that watch what a
/// rule produced.
pub const ECHO_PLUGIN: &str =
    "[echo]\ncomponent = \"builtin:echo\"\ngrants = { publish = [\"echo/+\"] }\n";

/// A rules directory `<dir>/rules` whose `plugins.toml` declares the echo
/// plugin, after the shipped rules and their declarations when `shipped`;
/// a test writes its own rules into it.
pub fn echo_rules(dir: &Path, shipped: bool) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    let mut decls = String::new();
    if shipped {
        for entry in std::fs::read_dir(repo_root().join("rules")).expect("shipped rules") {
            let p = entry.expect("entry").path();
            if p.extension().is_some_and(|x| x == "toml") {
                std::fs::copy(&p, rules.join(p.file_name().expect("name"))).expect("copy rule");
            }
        }
        decls = std::fs::read_to_string(rules.join("plugins.toml")).expect("plugins.toml");
        decls.push('\n');
    }
    decls.push_str(ECHO_PLUGIN);
    std::fs::write(rules.join("plugins.toml"), decls).expect("plugins.toml");
    rules
}

/// The repository: two levels above this package, which cargo names at run
/// time (so a test binary reused from a build in another checkout still
/// reads this checkout's files), else where the test was compiled.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..")
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "weir-test-{tag}-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// A running `weir run`.
pub struct Weir {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub rules_dir: PathBuf,
    pub addr: SocketAddr,
}

impl Weir {
    /// Start with the shipped rules and the given data directory.
    pub fn start(data_dir: &Path) -> Weir {
        Weir::start_with_rules(data_dir, &repo_root().join("rules"), "")
    }

    pub fn start_with_rules(data_dir: &Path, rules_dir: &Path, extra_config: &str) -> Weir {
        Weir::start_with_env(data_dir, rules_dir, extra_config, &[])
    }

    /// As `start_with_rules`, with extra environment variables (AWS
    /// credentials for the local AWS-compatible servers, say).
    pub fn start_with_env(
        data_dir: &Path,
        rules_dir: &Path,
        extra_config: &str,
        env: &[(&str, &str)],
    ) -> Weir {
        let cache = repo_root().join("target/weir-test-cache");
        let config = data_dir.join("weir.toml");
        std::fs::create_dir_all(data_dir).expect("data dir");
        // The compile cache is shared by all tests; it joins the extra
        // config's [plugins] table when there is one.
        let mut cache_line = format!("cache_dir = {cache:?}\n");
        // Tests start many debug-build instances at once, each compiling its
        // plugins on a cold cache: a call budget meant for production would
        // turn that CPU contention into dead letters. Tests about deadlines
        // (tests/sandbox.rs) set their own.
        if !extra_config.contains("call_timeout_ms") {
            cache_line.push_str("call_timeout_ms = 2000\n");
        }
        let extra = if extra_config.contains("[plugins]\n") {
            extra_config.replacen("[plugins]\n", &format!("[plugins]\n{cache_line}"), 1)
        } else {
            format!("{extra_config}\n[plugins]\n{cache_line}")
        };
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nrules_dir = {:?}\n{extra}",
                data_dir.join("data"),
                rules_dir,
            ),
        )
        .expect("write config");
        let log = std::fs::File::create(data_dir.join("weir.log")).expect("log file");
        let child = Command::new(weir_bin())
            .args(["run", "--config"])
            .arg(&config)
            .env("WEIR_LOG", "info,weir_runtime=debug,rumqttd=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start weir");
        let mut weir = Weir {
            child: Some(child),
            data_dir: data_dir.join("data"),
            rules_dir: rules_dir.to_path_buf(),
            addr: "127.0.0.1:0".parse().expect("addr"),
        };
        let start = Instant::now();
        loop {
            if let Some(status) = weir
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("weir exited early ({status}); log:\n{}", weir.log());
            }
            if let Ok(v) = weir.try_status() {
                if let Some(listen) = v["listen"].as_str() {
                    weir.addr = listen.parse().expect("listen address");
                    return weir;
                }
            }
            if start.elapsed() > Duration::from_secs(120) {
                panic!("weir did not come up; log:\n{}", weir.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(
            self.data_dir
                .parent()
                .unwrap_or(&self.data_dir)
                .join("weir.log"),
        )
        .unwrap_or_default()
    }

    /// Run a `weir` subcommand against this instance's data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(weir_bin())
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .output()
            .expect("run weir cli")
    }

    fn try_status(&self) -> Result<Value, String> {
        let out = self.cli(&["status"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    pub fn status(&self) -> Value {
        self.try_status().expect("weir status")
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.status()["counters"][name].as_u64().unwrap_or(0)
    }

    /// Wait until a counter reaches `at_least`.
    pub fn wait_counter(&self, name: &str, at_least: u64) {
        let start = Instant::now();
        while self.counter(name) < at_least {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "counter {name} stayed below {at_least}: {}",
                self.status()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let start = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        assert!(
                            status.success(),
                            "weir exited with {status}; log:\n{}",
                            self.log()
                        );
                        return;
                    }
                    _ if start.elapsed() > Duration::from_secs(30) => {
                        let _ = child.kill();
                        panic!("weir did not stop on SIGTERM; log:\n{}", self.log());
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A real MQTT client (rumqttc) whose incoming publishes arrive on a channel.
pub struct Mqtt {
    pub client: Client,
    pub incoming: mpsc::Receiver<(String, Vec<u8>)>,
    pub connected: mpsc::Receiver<()>,
    /// QoS 1 publishes handed to the client, and PUBACKs received
    /// (`usize::MAX` once the connection has ended).
    published: std::sync::atomic::AtomicUsize,
    acked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Mqtt {
    pub fn connect(addr: SocketAddr, client_id: &str) -> Mqtt {
        let mut opts = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, connection) = Client::new(opts, 100);
        let (tx, rx) = mpsc::channel();
        let (ctx, crx) = mpsc::channel();
        let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let acks = acked.clone();
        std::thread::spawn(move || {
            drive(connection, tx, ctx, &acks);
            // The connection is gone: no more acks will come.
            acks.store(usize::MAX, std::sync::atomic::Ordering::Relaxed);
        });
        let m = Mqtt {
            client,
            incoming: rx,
            connected: crx,
            published: std::sync::atomic::AtomicUsize::new(0),
            acked,
        };
        m.connected
            .recv_timeout(Duration::from_secs(10))
            .expect("MQTT connection came up");
        m
    }

    pub fn subscribe(&self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .expect("subscribe");
        // SUBACK is not surfaced; give the router a moment to add the filter.
        std::thread::sleep(Duration::from_millis(200));
    }

    pub fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .expect("publish");
        self.published
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Everything that arrives within `wait`.
    pub fn collect(&self, wait: Duration) -> Vec<(String, Value)> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.incoming.recv_timeout(left) {
                Ok((topic, payload)) => out.push((
                    topic,
                    serde_json::from_slice(&payload).unwrap_or(Value::Null),
                )),
                Err(_) => break,
            }
        }
        out
    }

    /// Disconnect as a careful device does: once every QoS 1 publish is
    /// acknowledged (bounded wait). Closing with PUBACKs still unread makes
    /// the client's kernel reset the connection, and the broker then loses
    /// what it had not read yet (say, while back-pressure held it): a
    /// client that does that must resend, as MQTT expects.
    pub fn disconnect(self) {
        use std::sync::atomic::Ordering::Relaxed;
        let start = Instant::now();
        while self.acked.load(Relaxed) < self.published.load(Relaxed)
            && start.elapsed() < Duration::from_secs(180)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.client.disconnect();
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn drive(
    mut connection: Connection,
    tx: mpsc::Sender<(String, Vec<u8>)>,
    connected: mpsc::Sender<()>,
    acked: &std::sync::atomic::AtomicUsize,
) {
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = connected.send(());
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// A telemetry reading as a device would send it.
pub fn reading(ts: i64, temperature: f64, humidity: f64) -> String {
    format!("{{\"ts\":{ts},\"temperature\":{temperature},\"humidity\":{humidity}}}")
}

/// Whether the command `cmd` can be run here.
pub fn have(cmd: &str) -> bool {
    Command::new(cmd).arg("--help").output().is_ok()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
