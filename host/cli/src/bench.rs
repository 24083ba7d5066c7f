//! `weir bench`: sustained throughput and publish→alert latency of the
//! shipped pipeline (zscore + shadow + alerts), measured two ways:
//!
//! - `--mode engine`: readings handed straight to the engine's queues
//!   (no sockets), alerts read from an in-process broker link;
//! - `--mode mqtt`: `--devices` real MQTT connections over loopback
//!   publishing to a `weir` in the same process, alerts read by an MQTT
//!   subscriber.
//!
//! Each run has two phases: flat out (sustained msgs/s), then paced at
//! `--rate` msgs/s (latency percentiles of spike → alert).

use crate::rng::Rng;
use crate::simulate::parse_duration;
use crate::thread_cpu::Usage;
use anyhow::{Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_runtime::engine::Ingest;

#[derive(clap::Args, Clone)]
pub struct BenchArgs {
    /// engine (in-process), mqtt (loopback connections), or fleet (the CPU
    /// `weir` uses serving `--devices` simulated devices at `--rate`
    /// readings/s in all, measured over `--paced`).
    #[arg(long, default_value = "engine")]
    pub mode: String,
    /// Devices (MQTT connections in mqtt mode).
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Readings in the flat-out phase.
    #[arg(long, default_value_t = 500_000)]
    pub messages: u64,
    /// Rate of the paced (latency) phase, msgs/s.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Length of the paced phase.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub paced: Duration,
    /// Engine workers (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Plugin checkpoint interval, ms.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_ms: u64,
    /// In the paced phase, every this many readings is a spike (timed to its
    /// alert). 100 gives 1,000 samples in 10 s at 10,000 msgs/s, so p99 is
    /// the 10th-worst spike rather than nearly the maximum.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(2..))]
    pub spike_every: u64,
    /// Rules directory (default: the rules shipped in the binary).
    #[arg(long)]
    pub rules: Option<std::path::PathBuf>,
}

/// Spikes in flight: (device, value) → when it was published.
type Sent = Arc<Mutex<HashMap<(usize, u64), Instant>>>;

struct Fleet {
    rngs: Vec<Rng>,
    /// Each device's publisher, shared by its readings as a connection's
    /// is (engine mode).
    from: Vec<Arc<weir_runtime::engine::Publisher>>,
    seq: u64,
}

impl Fleet {
    fn new(devices: usize) -> Fleet {
        Fleet {
            rngs: (0..devices).map(|i| Rng::new(i as u64 + 7)).collect(),
            from: (0..devices)
                .map(|i| weir_runtime::engine::Publisher::named(&format!("dev-{i:05}")))
                .collect(),
            seq: 0,
        }
    }

    /// The next reading of `device`: ~140 bytes of JSON; a spike (see
    /// `--spike-every`) has a unique value, so its alert can be matched.
    fn reading(&mut self, device: usize, spike: bool) -> (String, Option<u64>) {
        let rng = &mut self.rngs[device];
        self.seq += 1;
        let (temperature, tag) = if spike {
            // Unique, far outside the baseline: 1000 + seq/1000.
            let v = 1000.0 + self.seq as f64 / 1000.0;
            (v, Some(v.to_bits()))
        } else {
            (21.0 + 0.3 * rng.normal(), None)
        };
        let payload = format!(
            "{{\"ts\":{},\"temperature\":{temperature},\"humidity\":{:.1},\"pressure\":{:.1},\"battery\":{:.2},\"rssi\":{},\"fw\":\"1.4.2\",\"status\":\"ok\"}}",
            weir_runtime::clock::now_ms(),
            40.0 + rng.normal(),
            1013.0 + rng.normal(),
            3.7 + 0.01 * rng.normal(),
            -60 - (rng.uniform() * 10.0) as i64,
        );
        (payload, tag)
    }
}

fn topic(device: usize) -> String {
    format!("dt/bench/dev-{device:05}/telemetry")
}

fn device_of(topic_or_device: &str) -> Option<usize> {
    topic_or_device
        .rsplit('/')
        .next()?
        .strip_prefix("dev-")?
        .parse()
        .ok()
}

/// Record an alert's latency if it answers a spike we sent.
fn record_alert(payload: &[u8], sent: &Sent, hist: &Mutex<Histogram<u64>>) {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    if doc["kind"] != "zscore" || doc["metric"] != "temperature" {
        return;
    }
    let (Some(device), Some(value)) = (
        doc["device"].as_str().and_then(device_of),
        doc["value"].as_f64(),
    ) else {
        return;
    };
    let started = sent
        .lock()
        .ok()
        .and_then(|mut m| m.remove(&(device, value.to_bits())));
    if let (Some(t), Ok(mut h)) = (started, hist.lock()) {
        let _ = h.record(t.elapsed().as_micros() as u64);
    }
}

pub async fn run(args: BenchArgs) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("weir-bench-{}", std::process::id()));
    let mut config = weir_runtime::Config {
        data_dir: dir.clone(),
        rules_dir: args
            .rules
            .clone()
            .unwrap_or_else(|| dir.join("no-rules-dir-use-shipped")),
        listen: "127.0.0.1:0".parse()?,
        ..Default::default()
    };
    config.engine.workers = args.workers;
    config.engine.checkpoint_interval_ms = args.checkpoint_ms;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let running = weir_runtime::server::start(config, listener).await?;
    let addr = running.local_addr;
    println!(
        "weir bench: mode={} devices={} workers={} cores={}",
        args.mode,
        args.devices,
        if args.workers == 0 {
            "per-core".to_string()
        } else {
            args.workers.to_string()
        },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    if args.mode == "fleet" {
        let result = crate::fleet_bench::run(&running, args.devices, args.rate, args.paced).await;
        running.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
        return result;
    }

    let sent: Sent = Arc::new(Mutex::new(HashMap::new()));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));

    // Alert listener.
    match args.mode.as_str() {
        "engine" => {
            let (mut tx, mut rx, _) = running.broker.link("weir.internal.bench-alerts", true)?;
            tx.subscribe("weir/alerts/#")?;
            let (sent, hist) = (sent.clone(), hist.clone());
            std::thread::spawn(move || loop {
                match rx.recv() {
                    Ok(Some(rumqttd::Notification::Forward(f))) => {
                        record_alert(&f.publish.payload, &sent, &hist)
                    }
                    Ok(Some(rumqttd::Notification::Unschedule)) => {
                        if rx.ready().is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            });
        }
        "mqtt" => {
            let mut opts = MqttOptions::new("bench-alerts", addr.ip().to_string(), addr.port());
            opts.set_keep_alive(Duration::from_secs(30));
            opts.set_max_packet_size(1 << 20, 1 << 20);
            let (client, mut eventloop) = AsyncClient::new(opts, 100);
            client.subscribe("weir/alerts/#", QoS::AtMostOnce).await?;
            let (sent, hist) = (sent.clone(), hist.clone());
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            record_alert(&p.payload, &sent, &hist)
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        other => anyhow::bail!("unknown --mode {other:?} (engine, mqtt or fleet)"),
    }

    let fleet = Arc::new(Mutex::new(Fleet::new(args.devices)));
    let publisher = Publisher::new(&args, &running, addr).await?;

    // Warm up every device's baseline (zscore needs 20 readings).
    let warm = 25 * args.devices as u64;
    publisher.send_n(&fleet, warm, None, &sent, 0).await?;
    wait_processed(&running, warm, Duration::from_secs(120)).await;

    // Phase 1: flat out.
    let before = running.metrics.messages_processed.load(Relaxed);
    // Timed from the first reading handed over (engine mode makes its readings first).
    let (started, cpu_before) = publisher
        .send_n(&fleet, args.messages, None, &sent, 0)
        .await?;
    wait_processed(&running, before + args.messages, Duration::from_secs(600)).await;
    let elapsed = started.elapsed();
    let throughput = args.messages as f64 / elapsed.as_secs_f64();
    let cpu = Usage::now()?.since(&cpu_before);
    println!(
        "sustained: {} readings in {:.2}s = {:.0} msgs/s",
        args.messages,
        elapsed.as_secs_f64(),
        throughput
    );
    println!("{}", cpu_per_reading(&cpu, args.messages, &args.mode));
    // The engine is done; the storage tiers may still be working through
    // what it handed them (from memory or from their spools). Only when
    // they are through has the pipeline kept up.
    if running.sinks.any() {
        let limit = Duration::from_secs(600);
        while !running.sinks.drained() && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let elapsed = started.elapsed();
        println!(
            "delivered to every storage tier: {} readings in {:.2}s = {:.0} msgs/s",
            args.messages,
            elapsed.as_secs_f64(),
            args.messages as f64 / elapsed.as_secs_f64()
        );
    }

    // Phase 2: paced, with spikes, for latency.
    if let Ok(mut h) = hist.lock() {
        h.reset();
    }
    let total = args.rate * args.paced.as_secs().max(1);
    let before = running.metrics.messages_processed.load(Relaxed);
    publisher
        .send_n(&fleet, total, Some(args.rate), &sent, args.spike_every)
        .await?;
    wait_processed(&running, before + total, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let h = hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| Histogram::new(3).expect("histogram"));
    let missing = sent.lock().map(|m| m.len()).unwrap_or(0);
    println!(
        "latency at {} msgs/s (publish → alert, {} spikes, {} without alert): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.rate,
        h.len(),
        missing,
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
    if missing > 0 {
        // The bench's readings are Gaussian, so a device now and then
        // reads past the threshold on its own. zscore alerts once per
        // excursion (until `cooldown` calm readings end it): a spike that
        // lands inside one raises no second alert.
        println!(
            "  spikes without alert: zscore alerts once per excursion, and a spike landing within `cooldown` readings of a natural outlier on the same device is part of that excursion; with `cooldown = 0` every spike alerts"
        );
    }
    println!(
        "{}",
        serde_json::to_string(&running.metrics.snapshot()["counters"])?
    );
    publisher.close().await;
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The CPU time phase 1 took per reading, in all and by thread role. The
/// role "other" includes this bench's own sending (and, over MQTT, the
/// clients are connection tasks too).
fn cpu_per_reading(cpu: &BTreeMap<&str, f64>, readings: u64, mode: &str) -> String {
    let per = |secs: f64| secs * 1e6 / readings.max(1) as f64;
    let roles: Vec<String> = cpu
        .iter()
        .filter(|(_, secs)| per(**secs) >= 0.01)
        .map(|(role, secs)| format!("{role} {:.2}", per(*secs)))
        .collect();
    let clients = if mode == "mqtt" {
        ", the bench's MQTT clients included"
    } else {
        ""
    };
    format!(
        "CPU per reading: {:.2} µs in all{clients} ({}; µs)",
        per(cpu.values().sum()),
        roles.join(", ")
    )
}

async fn wait_processed(running: &weir_runtime::server::Running, target: u64, limit: Duration) {
    let start = Instant::now();
    while running.metrics.messages_processed.load(Relaxed) < target && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// How readings get in: straight into the engine, or over MQTT connections.
enum Publisher {
    Engine(weir_runtime::engine::EngineHandle),
    Mqtt(Vec<AsyncClient>),
}

impl Publisher {
    async fn new(
        args: &BenchArgs,
        running: &weir_runtime::server::Running,
        addr: std::net::SocketAddr,
    ) -> Result<Publisher> {
        if args.mode == "engine" {
            return Ok(Publisher::Engine(running.engine.clone()));
        }
        let mut clients = Vec::with_capacity(args.devices);
        for i in 0..args.devices {
            let mut opts =
                MqttOptions::new(format!("dev-{i:05}"), addr.ip().to_string(), addr.port());
            opts.set_keep_alive(Duration::from_secs(60));
            opts.set_inflight(200);
            let (client, mut eventloop) = AsyncClient::new(opts, 1000);
            tokio::spawn(async move {
                loop {
                    if eventloop.poll().await.is_err() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            });
            clients.push(client);
        }
        // Let the connections come up.
        let start = Instant::now();
        while (running.metrics.connections.load(Relaxed) as usize) < args.devices
            && start.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "{} MQTT connections up in {:.2}s",
            running.metrics.connections.load(Relaxed),
            start.elapsed().as_secs_f64()
        );
        Ok(Publisher::Mqtt(clients))
    }

    /// Send `n` readings round-robin over the devices, at `rate` msgs/s if
    /// given; every `spike_every`-th reading is a spike (0 = none).
    /// Returns when the first reading was handed over, and the CPU the
    /// process had used by then.
    async fn send_n(
        &self,
        fleet: &Mutex<Fleet>,
        n: u64,
        rate: Option<u64>,
        sent: &Sent,
        spike_every: u64,
    ) -> Result<(Instant, Usage)> {
        let devices = fleet.lock().map(|f| f.rngs.len()).unwrap_or(1);
        if let (Publisher::Engine(engine), None, 0) = (self, rate, spike_every) {
            // Flat out into the engine: make the readings first, so what is
            // measured is the engine, not this generator.
            let mut readings = Vec::with_capacity(n as usize);
            {
                let mut fleet = fleet.lock().map_err(|_| anyhow::anyhow!("fleet lock"))?;
                for i in 0..n {
                    let device = (i as usize) % devices;
                    let (payload, _) = fleet.reading(device, false);
                    readings.push(Ingest {
                        topic: topic(device),
                        payload: Bytes::from(payload),
                        from: fleet.from[device].clone(),
                        properties: None,
                        basic_ingest: None,
                        received_at: weir_runtime::clock::now_ms(),
                        hops: 0,
                    });
                }
            }
            let started = (Instant::now(), Usage::now()?);
            for r in readings {
                if !engine.send(r).await {
                    anyhow::bail!("engine stopped");
                }
            }
            return Ok(started);
        }
        let start = Instant::now();
        let cpu = Usage::now()?;
        for i in 0..n {
            if let Some(rate) = rate {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                let now = Instant::now();
                if due > now {
                    tokio::time::sleep(due - now).await;
                }
            }
            let spike = spike_every > 0 && i % spike_every == spike_every / 2;
            // Spikes rotate over the fleet, so each hits a calm device.
            let device = if spike {
                ((i / spike_every) as usize * 7919) % devices
            } else {
                (i as usize) % devices
            };
            let ((payload, tag), from) = {
                let mut fleet = fleet.lock().map_err(|_| anyhow::anyhow!("fleet lock"))?;
                (fleet.reading(device, spike), fleet.from[device].clone())
            };
            if let (Some(tag), Ok(mut m)) = (tag, sent.lock()) {
                m.insert((device, tag), Instant::now());
            }
            match self {
                Publisher::Engine(engine) => {
                    let ok = engine
                        .send(Ingest {
                            topic: topic(device),
                            payload: Bytes::from(payload),
                            from,
                            properties: None,
                            basic_ingest: None,
                            received_at: weir_runtime::clock::now_ms(),
                            hops: 0,
                        })
                        .await;
                    if !ok {
                        anyhow::bail!("engine stopped");
                    }
                }
                Publisher::Mqtt(clients) => {
                    clients[device]
                        .publish(topic(device), QoS::AtLeastOnce, false, payload)
                        .await
                        .context("publish")?;
                }
            }
        }
        Ok((start, cpu))
    }

    async fn close(&self) {
        if let Publisher::Mqtt(clients) = self {
            for c in clients {
                let _ = c.disconnect().await;
            }
        }
    }
}
