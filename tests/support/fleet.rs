//! A fleet with identity: the fleet CA and registry made with the CLI, an
//! instance serving mTLS, device credentials on disk, and the Python
//! clients in `tests/clients` (paho, the AWS IoT Device SDK).

use super::{repo_root, weir_bin, TempDir, Weir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `weir <args> --data-dir <dir>`, which must succeed; stdout.
pub fn weir_ok(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(weir_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run weir");
    assert!(
        out.status.success(),
        "weir {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The id of the first certificate of `thing` (`weir things get`).
pub fn certificate_id(data_dir: &Path, thing: &str) -> String {
    let doc: Value =
        serde_json::from_str(&weir_ok(data_dir, &["things", "get", thing])).expect("json");
    doc["certificates"][0]["certificateId"]
        .as_str()
        .expect("cert id")
        .to_string()
}

/// Run a Python client from tests/clients; its last stdout line as JSON.
pub fn py(script: &str, args: &[String]) -> Value {
    let out = Command::new("python3")
        .arg(repo_root().join("tests/clients").join(script))
        .args(args)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "{script} {args:?}: no JSON result (exit {:?})\nstdout: {stdout}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A device's credentials on disk.
pub struct Creds {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Creds {
    pub fn of(dir: &Path, name: &str) -> Creds {
        Creds {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{name}.cert.pem")),
            key: dir.join(format!("{name}.key.pem")),
        }
    }

    /// `--port <port> --ca … --cert … --key …`, as every client in
    /// `tests/clients` that holds a certificate takes them.
    pub fn args(&self, port: u16) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "--port".into(),
            port.to_string(),
            "--ca".into(),
            path(&self.ca),
            "--cert".into(),
            path(&self.cert),
            "--key".into(),
            path(&self.key),
        ]
    }

    /// The arguments of the Device SDK clients (`sdk_device.add_args`) for
    /// `thing` on the mTLS port, over MQTT 5 when `mqtt5`.
    pub fn sdk_args(&self, port: u16, thing: &str, mqtt5: bool) -> Vec<String> {
        let mut args = self.args(port);
        args.extend(["--thing".into(), thing.into()]);
        if mqtt5 {
            args.push("--mqtt5".into());
        }
        args
    }
}

/// Start weir with a fleet CA and the mTLS listener on an ephemeral port.
pub fn start_with_identity(dir: &TempDir, extra: &str) -> (Weir, u16) {
    let data = dir.0.join("data");
    weir_ok(&data, &["ca", "init"]);
    let templates = dir.0.join("provisioning");
    std::fs::create_dir_all(&templates).expect("templates dir");
    let config = format!(
        "[identity]\ntls_listen = \"127.0.0.1:0\"\ntemplates_dir = {:?}\n{extra}",
        templates
    );
    // The shipped rules, plus one that echoes who published on `…/who`.
    let rules = super::echo_rules(&dir.0, true);
    std::fs::write(
        rules.join("who.toml"),
        "sql = \"SELECT principal() AS principal, sourceip() AS ip, clientid() AS client FROM 'dt/+/+/who'\"\n[[actions]]\nplugin = \"echo\"\ndevice = \"${topic(3)}\"\n",
    )
    .expect("who.toml");
    let weir = Weir::start_with_rules(&dir.0, &rules, &config);
    let tls = weir.status()["tls_listen"]
        .as_str()
        .expect("tls_listen in status")
        .parse::<std::net::SocketAddr>()
        .expect("tls address");
    (weir, tls.port())
}
