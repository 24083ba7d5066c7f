//! `weir simulate`: a fleet of devices, one MQTT connection each, publishing
//! drifting readings with injected spikes, with a progress line.

use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct SimulateArgs {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub host: String,
    /// Number of devices (one MQTT connection each).
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// Time between two readings of one device (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Probability that a reading is a spike.
    #[arg(long, default_value_t = 0.001)]
    pub anomaly_rate: f64,
    /// Stop after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Device type: readings go to dt/<type>/<device>/telemetry.
    #[arg(long, default_value = "thermostat")]
    pub device_type: String,
    /// Device id prefix.
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// MQTT QoS (0 or 1).
    #[arg(long, default_value_t = 1)]
    pub qos: u8,
    /// Seed for reproducible fleets.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (use ms, s, m or h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// One simulated sensor: a mean-reverting drift around its own base, noise,
/// and occasional spikes.
pub struct Sensor {
    rng: Rng,
    base_t: f64,
    base_h: f64,
    drift: f64,
}

impl Sensor {
    pub fn new(seed: u64) -> Sensor {
        let mut rng = Rng::new(seed);
        let base_t = 20.0 + 2.0 * rng.normal();
        let base_h = 45.0 + 5.0 * rng.normal();
        Sensor {
            rng,
            base_t,
            base_h,
            drift: 0.0,
        }
    }

    /// The next reading as (temperature, humidity, spiked).
    pub fn next(&mut self, anomaly_rate: f64) -> (f64, f64, bool) {
        self.drift = 0.95 * self.drift + 0.05 * self.rng.normal();
        let mut t = self.base_t + self.drift + 0.2 * self.rng.normal();
        let h = self.base_h + 0.5 * self.rng.normal();
        let spike = self.rng.uniform() < anomaly_rate;
        if spike {
            t += 8.0 + 4.0 * self.rng.uniform();
        }
        (
            (t * 100.0).round() / 100.0,
            (h * 10.0).round() / 10.0,
            spike,
        )
    }

    pub fn uniform(&mut self) -> f64 {
        self.rng.uniform()
    }
}

#[derive(Default)]
pub struct Progress {
    pub connected: AtomicU64,
    pub sent: AtomicU64,
    pub spikes: AtomicU64,
    pub errors: AtomicU64,
}

pub fn split_host(host: &str) -> Result<(String, u16)> {
    let (h, p) = host.rsplit_once(':').context("--host must be HOST:PORT")?;
    Ok((h.to_string(), p.parse().context("bad port in --host")?))
}

pub async fn run(args: SimulateArgs) -> Result<()> {
    if args.devices == 0 {
        bail!("--devices must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.anomaly_rate) {
        bail!("--anomaly-rate must be between 0 and 1");
    }
    let qos = match args.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => bail!("--qos must be 0 or 1"),
    };
    let (host, port) = split_host(&args.host)?;
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.devices {
        let device = format!("{}-{:05}", args.prefix, i);
        let topic = format!("dt/{}/{}/telemetry", args.device_type, device);
        let mut opts = MqttOptions::new(device.clone(), host.clone(), port);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let progress = progress.clone();
        let interval = args.interval;
        let rate = args.anomaly_rate;
        let seed = args.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        tasks.spawn(async move {
            let mut sensor = Sensor::new(seed);
            // Stagger devices across the interval.
            let offset = interval.mul_f64(sensor.uniform());
            let poller_progress = progress.clone();
            let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let poller_closing = closing.clone();
            let poller = tokio::spawn(async move {
                let mut up = false;
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            if !up {
                                poller_progress.connected.fetch_add(1, Relaxed);
                                up = true;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => {
                            if up {
                                poller_progress.connected.fetch_sub(1, Relaxed);
                                up = false;
                            }
                            if poller_closing.load(Relaxed) {
                                return;
                            }
                            poller_progress.errors.fetch_add(1, Relaxed);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            });
            tokio::time::sleep(offset).await;
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let (t, h, spike) = sensor.next(rate);
                let payload = format!(
                    "{{\"ts\":{},\"temperature\":{t},\"humidity\":{h}}}",
                    weir_runtime::clock::now_ms()
                );
                if client.publish(&topic, qos, false, payload).await.is_ok() {
                    progress.sent.fetch_add(1, Relaxed);
                    if spike {
                        progress.spikes.fetch_add(1, Relaxed);
                    }
                }
            }
            closing.store(true, Relaxed);
            let _ = client.disconnect().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            poller.abort();
        });
    }

    let mut last_sent = 0;
    let mut last = Instant::now();
    let mut report = tokio::time::interval(Duration::from_secs(2));
    report.tick().await;
    loop {
        tokio::select! {
            _ = report.tick() => {
                let sent = progress.sent.load(Relaxed);
                let rate = (sent - last_sent) as f64 / last.elapsed().as_secs_f64();
                last_sent = sent;
                last = Instant::now();
                eprintln!(
                    "connected {}/{} · {:.1} msgs/s · sent {} · spikes {} · connection errors {}",
                    progress.connected.load(Relaxed), args.devices, rate, sent,
                    progress.spikes.load(Relaxed), progress.errors.load(Relaxed)
                );
            }
            done = tasks.join_next() => {
                if done.is_none() { break; }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    eprintln!(
        "done: sent {} readings ({} spikes) from {} devices in {:.1}s",
        progress.sent.load(Relaxed),
        progress.spikes.load(Relaxed),
        args.devices,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("3 weeks").is_err());
    }
}
