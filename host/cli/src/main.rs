//! `weir`: the command-line edge of Weir. Parses arguments, sets up
//! logging, and calls into `weir-runtime` (serve, admin queries) and
//! `weir-sql` (rule checks); also ships the device simulator and the
//! benchmark.

mod admin_cmd;
mod archive_cmd;
mod bench;
mod connect_bench;
mod eval;
mod fleet_bench;
mod identity_cmd;
mod jobs_cmd;
mod plugin_cmd;
mod replay;
mod rng;
mod rules_cmd;
mod simulate;
mod thread_cpu;
mod ts_cmd;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use weir_runtime::Config;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Rules engine for IoT telemetry: MQTT in, SQL rules, WebAssembly plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DataDirArg {
    /// Data directory of the instance to ask (default: the config's, or ./weir-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Config file, to find its data directory.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl DataDirArg {
    fn resolve(&self) -> Result<PathBuf> {
        if let Some(d) = &self.data_dir {
            return Ok(d.clone());
        }
        Ok(load_config(self.config.as_deref())?.data_dir)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve: MQTT listener, rules engine and plugins (embedded defaults without --config).
    Run {
        /// Config file (TOML). Unknown keys are errors.
        #[arg(long)]
        config: Option<PathBuf>,
        /// MQTT listen address (overrides the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Rules directory (overrides the config).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// mTLS listen address (overrides `identity.tls_listen`; needs `weir ca init`).
        #[arg(long)]
        tls_listen: Option<SocketAddr>,
        /// MQTT over WebSockets listen address (`ws://<addr>/mqtt`; overrides `ws_listen`).
        #[arg(long)]
        ws_listen: Option<SocketAddr>,
        /// Data-plane HTTP API listen address (AWS `iot-data`: shadows and
        /// publish over HTTP; overrides `http.listen`).
        #[arg(long)]
        http_listen: Option<SocketAddr>,
        /// HTTPS API for devices with their certificates (mTLS; overrides
        /// `http.tls_listen`; needs `weir ca init`).
        #[arg(long)]
        http_tls_listen: Option<SocketAddr>,
    },
    /// Counters and state of the running instance.
    Status {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Device shadows.
    Shadow {
        #[command(subcommand)]
        command: ShadowCommand,
    },
    /// Plugin state in the key-value store (baselines, windows …).
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Reload the rules directory now (it is also watched for changes).
    Reload {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Inspect, list and extract plugin components.
    Plugin {
        #[command(subcommand)]
        command: plugin_cmd::PluginCommand,
    },
    /// Check, evaluate and test rules.
    Rules {
        #[command(subcommand)]
        command: rules_cmd::RulesCommand,
    },
    /// Simulate a fleet of devices publishing telemetry over MQTT.
    Simulate(simulate::SimulateArgs),
    /// Measure throughput and publish→alert latency of the shipped pipeline.
    Bench(bench::BenchArgs),
    /// mTLS connections/s (a reconnect storm) and memory per idle connection.
    BenchConnect(connect_bench::ConnectBenchArgs),
    /// Publish a CSV series over MQTT with its own timestamps as the device clock.
    Replay(replay::ReplayArgs),
    /// Detection quality of the shipped pipeline (NAB series, synthetic fleet).
    Eval {
        #[command(subcommand)]
        command: eval::EvalCommand,
    },
    /// Query the embedded time-series store.
    Ts {
        #[command(subcommand)]
        command: ts_cmd::TsCommand,
    },
    /// The fleet CA (`weir ca init`).
    Ca {
        #[command(subcommand)]
        command: identity_cmd::CaCommand,
    },
    /// The registry of things (devices) and their certificates.
    Things {
        #[command(subcommand)]
        command: identity_cmd::ThingsCommand,
    },
    /// Device certificates: list, revoke, deactivate, claim certificates.
    Certs {
        #[command(subcommand)]
        command: identity_cmd::CertsCommand,
    },
    /// AWS IoT Jobs: send remote operations to things and track them.
    Jobs {
        #[command(subcommand)]
        command: jobs_cmd::JobsCommand,
    },
    /// The Parquet archive (Athena DDL).
    Archive {
        #[command(subcommand)]
        command: archive_cmd::ArchiveCommand,
    },
}

#[derive(Subcommand)]
enum ShadowCommand {
    /// Print a device's shadow document (desired and reported state).
    Get {
        /// Device (thing) id, or `<thing>/<shadow>` for a named shadow.
        device: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
enum StateCommand {
    /// Print one value (`weir state get zscore dev-1`).
    Get {
        bucket: String,
        key: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// List the keys of a bucket.
    Keys {
        bucket: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Delete one value (a plugin starts that key afresh).
    Reset {
        bucket: String,
        key: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config> {
    match path {
        Some(p) => Config::from_file(p).map_err(anyhow::Error::from),
        None => {
            let default = PathBuf::from("weir.toml");
            if default.exists() {
                Config::from_file(&default).map_err(anyhow::Error::from)
            } else {
                Ok(Config::default())
            }
        }
    }
}

fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=warn"));
    // Colours only for a terminal: a log redirected to a file stays text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .finish()
        .with(tracing_subscriber::filter::filter_fn(|m| {
            !is_router_disconnect_noise(m) && !is_router_span(m)
        }))
        .init();
}

/// rumqttd 0.20's router is told once per packet a connection sends and
/// drains them all at the first telling; when the last packet was the
/// DISCONNECT, every later telling finds the connection gone and logs
/// `ERROR no-connection id N is already gone` (three sites in
/// `router/routing.rs`). Nothing is lost: the messages were routed. A
/// device that publishes and disconnects at once (mosquitto_pub, every
/// one-shot client) would print one for nearly every run, so those sites
/// are not logged.
fn is_router_disconnect_noise(m: &tracing::Metadata<'_>) -> bool {
    *m.level() == tracing::Level::ERROR
        && m.target() == "rumqttd::router::routing"
        && matches!(m.line(), Some(416 | 436 | 539))
}

/// rumqttd 0.20's router opens ERROR-level spans (`[>] incoming`,
/// `incoming_payload`, `publish` with the topic formatted into it) for
/// every message a device publishes, so no level filter leaves them out;
/// recorded, they cost the router thread allocations and `Debug` formats
/// per message. They only give context to the router's own rare errors
/// (the connection's own log names the client), so they are not recorded.
fn is_router_span(m: &tracing::Metadata<'_>) -> bool {
    m.is_span() && m.target() == "rumqttd::router::routing"
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run {
            config,
            listen,
            data_dir,
            rules,
            tls_listen,
            ws_listen,
            http_listen,
            http_tls_listen,
        } => {
            let mut config = load_config(config.as_deref())?;
            if http_listen.is_some() {
                config.http.listen = http_listen;
            }
            if http_tls_listen.is_some() {
                config.http.tls_listen = http_tls_listen;
            }
            if let Some(l) = listen {
                config.listen = l;
            }
            if ws_listen.is_some() {
                config.ws_listen = ws_listen;
            }
            if let Some(d) = data_dir {
                config.data_dir = d;
            }
            if let Some(r) = rules {
                // Without `--rules`, a missing ./rules means the shipped
                // rules; a directory named on the command line must exist.
                if !r.is_dir() {
                    anyhow::bail!("--rules {}: no such directory", r.display());
                }
                config.rules_dir = r;
            }
            if let Some(t) = tls_listen {
                config.identity.tls_listen = t;
                let dir = config.identity.dir(&config.data_dir);
                if !weir_runtime::identity::IdentityService::exists(&dir) {
                    anyhow::bail!(
                        "--tls-listen needs the fleet CA, and there is none in {}: run `weir ca init` first",
                        dir.display()
                    );
                }
            }
            config.validate()?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            weir_runtime::run(config, listener, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { dir } => {
            admin_cmd::print(&dir.resolve()?, weir_runtime::admin::Request::Status).await
        }
        Command::Shadow {
            command: ShadowCommand::Get { device, dir },
        } => {
            admin_cmd::print(
                &dir.resolve()?,
                weir_runtime::admin::Request::Shadow { device },
            )
            .await
        }
        Command::State { command } => match command {
            StateCommand::Get { bucket, key, dir } => {
                admin_cmd::print(
                    &dir.resolve()?,
                    weir_runtime::admin::Request::State { bucket, key },
                )
                .await
            }
            StateCommand::Keys { bucket, dir } => {
                admin_cmd::print(
                    &dir.resolve()?,
                    weir_runtime::admin::Request::StateKeys { bucket },
                )
                .await
            }
            StateCommand::Reset { bucket, key, dir } => {
                admin_cmd::print(
                    &dir.resolve()?,
                    weir_runtime::admin::Request::StateDelete { bucket, key },
                )
                .await
            }
        },
        Command::Rules { command } => rules_cmd::run(command),
        Command::Reload { dir } => {
            admin_cmd::print(&dir.resolve()?, weir_runtime::admin::Request::Reload).await
        }
        Command::Plugin { command } => plugin_cmd::run(command),
        Command::Simulate(args) => simulate::run(args).await.map(|_| ExitCode::SUCCESS),
        Command::Bench(args) => bench::run(args).await.map(|_| ExitCode::SUCCESS),
        Command::BenchConnect(args) => connect_bench::run(args).await.map(|_| ExitCode::SUCCESS),
        Command::Replay(args) => replay::run(args).await.map(|_| ExitCode::SUCCESS),
        Command::Eval { command } => eval::run(command).await.map(|_| ExitCode::SUCCESS),
        Command::Ts { command } => ts_cmd::run(command).await,
        Command::Archive { command } => archive_cmd::run(command),
        Command::Ca { command } => identity_cmd::ca(command),
        Command::Things { command } => identity_cmd::things(command).await,
        Command::Jobs { command } => jobs_cmd::jobs(command).await,
        Command::Certs { command } => identity_cmd::certs(command).await,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
