//! `weir ca`, `weir things`, `weir certs`: the fleet CA and the registry of
//! things and certificates. Registry operations go to the running instance
//! (so a revoked certificate's live connection is closed at once) or, when
//! none runs, straight to the data directory.

use crate::DataDirArg;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use weir_identity::registry::CertStatus;
use weir_runtime::admin::{query, query_offline, AdminError, Request};
use weir_runtime::identity::Op;

#[derive(Subcommand)]
pub enum CaCommand {
    /// Create the fleet CA (or import one) and the broker's TLS certificate.
    Init {
        /// Common name of a new CA.
        #[arg(long, default_value = "Weir Fleet CA")]
        name: String,
        /// Host names and IP addresses devices use to reach the broker (the
        /// server certificate's SANs; localhost and 127.0.0.1 are always in).
        #[arg(long = "server-name")]
        server_names: Vec<String>,
        /// Import this CA certificate (PEM) instead of creating one.
        #[arg(long, requires = "import_key")]
        import_cert: Option<PathBuf>,
        /// The imported CA's private key (PEM).
        #[arg(long, requires = "import_cert")]
        import_key: Option<PathBuf>,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Print the fleet CA certificate (PEM), for devices' trust store.
    Show {
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
pub enum ThingsCommand {
    /// Register a thing and issue its certificate: writes
    /// `<out>/<name>.cert.pem`, `<out>/<name>.key.pem` and `<out>/ca.pem`.
    Create {
        name: String,
        /// Thing type (selects the topic policy, `[identity.policies.<type>]`).
        #[arg(long = "type")]
        thing_type: Option<String>,
        /// Attribute `key=value` (repeatable).
        #[arg(long = "attr")]
        attributes: Vec<String>,
        /// Sign this CSR (PEM) instead of creating a key: the key never leaves the device.
        #[arg(long)]
        csr: Option<PathBuf>,
        /// Where to write the certificate files.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// All things.
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// One thing and its certificates.
    Get {
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

#[derive(Subcommand)]
pub enum CertsCommand {
    /// All certificates (id, status, kind, thing).
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Revoke a certificate for good: its live connection is closed and it
    /// is refused from then on. The id may be a unique prefix (≥ 8 chars).
    Revoke {
        id: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Deactivate a certificate (reversible): its live connection is closed.
    Deactivate {
        id: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Activate an INACTIVE certificate.
    Activate {
        id: String,
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Issue a claim certificate for fleet provisioning: it may only call
    /// the provisioning topics, with the named templates. Writes
    /// `<out>/claim.cert.pem`, `<out>/claim.key.pem` and `<out>/ca.pem`.
    Claim {
        /// Provisioning template it may use (repeatable).
        #[arg(long = "template", required = true)]
        templates: Vec<String>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        dir: DataDirArg,
    },
}

/// The identity directory of the data directory `dir` points at.
fn identity_dir(dir: &DataDirArg) -> Result<PathBuf> {
    if let Some(d) = &dir.data_dir {
        return Ok(d.join("identity"));
    }
    let config = crate::load_config(dir.config.as_deref())?;
    Ok(config.identity.dir(&config.data_dir))
}

pub fn ca(command: CaCommand) -> Result<ExitCode> {
    match command {
        CaCommand::Init {
            name,
            server_names,
            import_cert,
            import_key,
            dir,
        } => {
            let identity = identity_dir(&dir)?;
            let ca = match (import_cert, import_key) {
                (Some(cert), Some(key)) => {
                    let cert = read(&cert)?;
                    let key = read(&key)?;
                    weir_identity::FleetCa::import(&identity, &cert, &key, &server_names)?
                }
                _ => weir_identity::FleetCa::init(&identity, &name, &server_names)?,
            };
            let _ = ca;
            println!("fleet CA ready in {}", identity.display());
            println!("  ca.pem          the CA certificate devices trust (and that signs theirs)");
            println!("  server.pem      the broker's TLS certificate");
            println!("`weir run` now also serves MQTT over mTLS (identity.tls_listen, default 0.0.0.0:8883).");
            Ok(ExitCode::SUCCESS)
        }
        CaCommand::Show { dir } => {
            let identity = identity_dir(&dir)?;
            let ca = weir_identity::FleetCa::load(&identity)?;
            print!("{}", ca.cert_pem());
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn things(command: ThingsCommand) -> Result<ExitCode> {
    match command {
        ThingsCommand::Create {
            name,
            thing_type,
            attributes,
            csr,
            out,
            dir,
        } => {
            let mut attrs = BTreeMap::new();
            for a in attributes {
                let Some((k, v)) = a.split_once('=') else {
                    bail!("--attr {a:?}: expected key=value");
                };
                attrs.insert(k.to_string(), v.to_string());
            }
            let csr_pem = csr.as_deref().map(read).transpose()?;
            let result = ask(
                &dir,
                Op::CreateThing {
                    name: name.clone(),
                    thing_type,
                    attributes: attrs,
                    csr_pem,
                },
            )
            .await?;
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            write(
                &out.join(format!("{name}.cert.pem")),
                &result["certificatePem"],
                false,
            )?;
            if result["privateKey"].is_string() {
                write(
                    &out.join(format!("{name}.key.pem")),
                    &result["privateKey"],
                    true,
                )?;
            }
            write(&out.join("ca.pem"), &result["caPem"], false)?;
            println!(
                "thing {name} created; certificate {} (ACTIVE) in {}",
                result["certificateId"].as_str().unwrap_or_default(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        ThingsCommand::List { dir } => print(ask(&dir, Op::Things).await?),
        ThingsCommand::Get { name, dir } => print(ask(&dir, Op::Thing { name }).await?),
    }
}

pub async fn certs(command: CertsCommand) -> Result<ExitCode> {
    let set = |id: String, status: CertStatus| Op::SetStatus {
        certificate_id: id,
        status,
    };
    match command {
        CertsCommand::List { dir } => print(ask(&dir, Op::Certs).await?),
        CertsCommand::Revoke { id, dir } => print(ask(&dir, set(id, CertStatus::Revoked)).await?),
        CertsCommand::Deactivate { id, dir } => {
            print(ask(&dir, set(id, CertStatus::Inactive)).await?)
        }
        CertsCommand::Activate { id, dir } => print(ask(&dir, set(id, CertStatus::Active)).await?),
        CertsCommand::Claim {
            templates,
            out,
            dir,
        } => {
            let result = ask(&dir, Op::CreateClaim { templates }).await?;
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            write(
                &out.join("claim.cert.pem"),
                &result["certificatePem"],
                false,
            )?;
            write(&out.join("claim.key.pem"), &result["privateKey"], true)?;
            write(&out.join("ca.pem"), &result["caPem"], false)?;
            println!(
                "claim certificate {} written to {}",
                result["certificateId"].as_str().unwrap_or_default(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Ask the running instance, or the data directory when none runs.
async fn ask(dir: &DataDirArg, op: Op) -> Result<Value> {
    let data_dir = dir.resolve()?;
    let request = Request::Identity { op };
    let answer = match query(&data_dir, &request).await {
        Err(AdminError::NotRunning(_)) => query_offline(&data_dir, &request),
        other => other,
    };
    answer.map_err(|e| anyhow::anyhow!("{e}"))
}

fn print(v: Value) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn write(path: &Path, text: &Value, private: bool) -> Result<()> {
    let Some(text) = text.as_str() else {
        bail!("the registry answered without {}", path.display());
    };
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}
