//! `weir bench-connect`: how fast the mTLS listener accepts a fleet, and
//! what an idle device connection costs.
//!
//! Issues `--devices` things and certificates into a fresh registry, starts
//! `weir run` as a child process (so its memory is its own), then:
//!
//! 1. connects every device over mTLS (TLS handshake with its own
//!    certificate, CONNECT, CONNACK) with `--concurrency` in flight:
//!    connections/s and handshake→CONNACK latency percentiles;
//! 2. holds them idle and reads the server's resident memory: bytes per
//!    idle connection;
//! 3. drops them all at once and reconnects every device (a reconnect
//!    storm), measured the same way.

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use weir_identity::registry::{CertKind, CertRecord, CertStatus, Registry, Thing};

#[derive(clap::Args, Clone)]
pub struct ConnectBenchArgs {
    /// Devices (each with its own certificate and connection).
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

struct Device {
    name: String,
    connector: TlsConnector,
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// A 3.1.1 CONNECT (clean session, keep-alive 300 s), written by the
/// listener's own codec.
fn connect_packet(client_id: &str) -> Result<Vec<u8>> {
    use rumqttd::protocol::{Connect, Packet};
    let connect = Connect {
        keep_alive: 300,
        client_id: client_id.to_string(),
        clean_session: true,
    };
    let mut out = bytes::BytesMut::new();
    weir_runtime::listener::codec::Codec::V4
        .write(Packet::Connect(connect, None, None, None, None), &mut out)
        .map_err(|e| anyhow::anyhow!("encode CONNECT: {e:?}"))?;
    Ok(out.to_vec())
}

async fn connect_one(
    addr: std::net::SocketAddr,
    device: &Device,
) -> Result<(TlsStream<TcpStream>, Duration)> {
    let start = Instant::now();
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost")?;
    let mut tls = device.connector.connect(name, tcp).await?;
    tls.write_all(&connect_packet(&device.name)?).await?;
    tls.flush().await?;
    let mut ack = [0u8; 4];
    tls.read_exact(&mut ack).await?;
    if ack[0] != 0x20 || ack[3] != 0 {
        bail!("CONNACK refused: {ack:?}");
    }
    Ok((tls, start.elapsed()))
}

/// Connect every device; returns the streams, wall time and latencies.
async fn storm(
    addr: std::net::SocketAddr,
    devices: &Arc<Vec<Device>>,
    concurrency: usize,
) -> Result<(Vec<TlsStream<TcpStream>>, Duration, Histogram<u64>)> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..devices.len() {
        let (devices, sem) = (devices.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let mut last = None;
            for _ in 0..3 {
                match connect_one(addr, &devices[i]).await {
                    Ok(ok) => return Ok(ok),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| anyhow::anyhow!("connect failed")))
        });
    }
    let mut streams = Vec::with_capacity(devices.len());
    let mut hist = Histogram::<u64>::new(3)?;
    let mut failures = 0usize;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined? {
            Ok((s, latency)) => {
                hist.record(latency.as_micros() as u64)?;
                streams.push(s);
            }
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if failures > 0 {
        bail!(
            "{failures} of {} connections failed; first: {}",
            devices.len(),
            first_error.unwrap_or_default()
        );
    }
    Ok((streams, start.elapsed(), hist))
}

fn report(what: &str, n: usize, took: Duration, hist: &Histogram<u64>) {
    println!(
        "{what}: {n} mTLS connections in {:.2} s = {:.0} conn/s; handshake+CONNECT→CONNACK p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
    );
}

pub async fn run(args: ConnectBenchArgs) -> Result<()> {
    let tmp = std::env::temp_dir().join(format!("weir-bench-connect-{}", std::process::id()));
    let data = tmp.join("data");
    let identity = data.join("identity");
    std::fs::create_dir_all(&identity)?;
    let result = bench(&args, &tmp, &data, &identity).await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn bench(args: &ConnectBenchArgs, tmp: &Path, data: &Path, identity: &Path) -> Result<()> {
    // 1. The fleet: a CA, and a thing plus certificate per device.
    let ca = weir_identity::FleetCa::init(identity, "Weir Bench CA", &[])?;
    let started = Instant::now();
    let mut issued = Vec::with_capacity(args.devices);
    {
        let registry = Registry::open(&identity.join("registry.redb"))?;
        for i in 0..args.devices {
            let name = format!("bench-{i}");
            let cert = ca.issue(&name, 30)?;
            registry.create_thing(&Thing {
                name: name.clone(),
                thing_type: Some("thermostat".into()),
                attributes: BTreeMap::new(),
                groups: Vec::new(),
                created_at_ms: 0,
                version: 1,
            })?;
            registry.add_cert(&CertRecord {
                certificate_id: cert.certificate_id.clone(),
                pem: cert.cert_pem.clone(),
                status: CertStatus::Active,
                kind: CertKind::Device,
                thing: Some(name.clone()),
                created_at_ms: 0,
                not_after_ms: cert.not_after_ms,
            })?;
            issued.push((name, cert));
        }
    }
    println!(
        "issued and registered {} device certificates in {:.1} s",
        args.devices,
        started.elapsed().as_secs_f64()
    );

    // 2. The server, as its own process.
    let config = tmp.join("weir.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\n\n[identity]\ntls_listen = \"127.0.0.1:0\"\n"
        ),
    )?;
    let log = std::fs::File::create(tmp.join("weir.log"))?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["run", "--config"])
        .arg(&config)
        .env("WEIR_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("start weir run")?;
    let pid = child.id();
    let outcome = async {
        let addr = wait_for_tls(data, &mut child).await?;
        // Client side: one connector per device (its own certificate).
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.cert_der()))?;
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let devices: Vec<Device> = issued
            .into_iter()
            .map(|(name, cert)| -> Result<Device> {
                let chain = vec![CertificateDer::from(cert.cert_der.clone())];
                let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_deref().unwrap_or_default().as_bytes())?;
                let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots.clone())
                    .with_client_auth_cert(chain, key)?;
                Ok(Device {
                    name,
                    connector: TlsConnector::from(Arc::new(config)),
                })
            })
            .collect::<Result<_>>()?;
        let devices = Arc::new(devices);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_before = rss_kib(pid)?;

        let (streams, took, hist) = storm(addr, &devices, args.concurrency).await?;
        report("connect", devices.len(), took, &hist);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_idle = rss_kib(pid)?;
        println!(
            "server memory: {:.1} MiB before, {:.1} MiB with {} idle mTLS connections = {:.1} KiB per idle connection",
            rss_before as f64 / 1024.0,
            rss_idle as f64 / 1024.0,
            streams.len(),
            (rss_idle.saturating_sub(rss_before)) as f64 / streams.len().max(1) as f64,
        );

        // 3. Everyone drops at once and comes straight back.
        drop(streams);
        let (streams, took, hist) = storm(addr, &devices, args.concurrency).await?;
        report("reconnect storm", devices.len(), took, &hist);
        drop(streams);
        Ok::<(), anyhow::Error>(())
    }
    .await;
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    outcome
}

/// Wait until the child serves mTLS; its address from `weir status`.
async fn wait_for_tls(
    data: &Path,
    child: &mut std::process::Child,
) -> Result<std::net::SocketAddr> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("weir run exited early: {status}");
        }
        if let Ok(v) = weir_runtime::admin::query(data, &weir_runtime::admin::Request::Status).await
        {
            if let Some(addr) = v["tls_listen"].as_str() {
                return Ok(addr.parse()?);
            }
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("weir run did not come up");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
