//! The data-plane HTTP API under load: an instance with the shipped rules
//! serving `[http] listen` on loopback, and C keep-alive connections
//! (default 32) sending N requests (default 20,000) of each kind: Publish
//! of a telemetry reading at QoS 1 (into the shipped pipeline), then
//! UpdateThingShadow (a round trip through the shadow service), then
//! GetThingShadow, over 1,000 devices. Prints requests/s and latency
//! percentiles; client and server share the machine.
//!
//! `cargo run --release -p weir-runtime --example http_bench -- [N] [C]`

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
        })
    }

    /// Send one request; its status.
    async fn call(&mut self, method: &str, target: &str, body: &str) -> Result<u16> {
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("no status line")?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(status)
    }
}

/// The request of kind `kind` for message number `i`.
fn request(kind: &str, i: usize) -> (&'static str, String, String) {
    let device = format!("dev-{:04}", i % 1000);
    match kind {
        "publish" => (
            "POST",
            format!("/topics/dt/bench/{device}/telemetry?qos=1"),
            format!(
                "{{\"ts\":{},\"temperature\":{:.2},\"humidity\":{:.1}}}",
                1_764_300_000_000u64 + i as u64,
                21.0 + (i % 7) as f64 * 0.1,
                40.0 + (i % 5) as f64
            ),
        ),
        "update" => (
            "POST",
            format!("/things/{device}/shadow"),
            format!("{{\"state\":{{\"desired\":{{\"setpoint\":{}}}}}}}", i % 30),
        ),
        _ => ("GET", format!("/things/{device}/shadow"), String::new()),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let c: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(32);
    let dir = std::env::temp_dir().join(format!("weir-http-bench-{}", std::process::id()));
    let mut config = weir_runtime::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.clone(),
        rules_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules"),
        ..Default::default()
    };
    config.http.listen = Some("127.0.0.1:0".parse()?);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let running = weir_runtime::server::start(config, listener).await?;
    let addr = running.http_addr.ok_or("the HTTP API is not serving")?;
    println!("{n} requests of each kind over {c} keep-alive connections, 1,000 devices");

    for (kind, what) in [
        (
            "publish",
            "Publish (telemetry at QoS 1, into the shipped pipeline)",
        ),
        ("update", "UpdateThingShadow (through the shadow service)"),
        ("get", "GetThingShadow (through the shadow service)"),
    ] {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..c {
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::open(addr).await?;
                let mut latencies = Vec::new();
                let mut failed = 0usize;
                for i in (t..n).step_by(c) {
                    let (method, target, body) = request(kind, i);
                    let sent = Instant::now();
                    if conn.call(method, &target, &body).await? != 200 {
                        failed += 1;
                    }
                    latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                }
                Ok::<_, Box<dyn Error + Send + Sync>>((latencies, failed))
            }));
        }
        let mut latencies = Vec::with_capacity(n);
        let mut failed = 0;
        for task in tasks {
            let (l, f) = task.await??;
            latencies.extend(l);
            failed += f;
        }
        let elapsed = start.elapsed();
        latencies.sort_by(f64::total_cmp);
        println!(
            "{what}: {:.0} requests/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {failed} not 200",
            n as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0.0),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
