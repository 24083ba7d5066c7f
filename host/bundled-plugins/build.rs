//! Builds the `plugins/` workspace for `wasm32-wasip2` and records where the
//! components are, so `src/lib.rs` can embed them with `include_bytes!`.
//!
//! The nested cargo gets its own target directory (beside ours) so it never
//! waits on the lock of the build that runs this script, and a clean
//! environment so our build's settings (target, rustflags, profile) do not
//! leak into it.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Plugin crates that ship inside the `weir` binary, with the wasm file name
/// cargo gives each.
const SHIPPED: &[(&str, &str)] = &[
    ("zscore", "zscore.wasm"),
    ("shadow", "shadow.wasm"),
    ("alerts", "alerts.wasm"),
    ("echo", "echo.wasm"),
    ("bad-loop", "bad_loop.wasm"),
    ("bad-panic", "bad_panic.wasm"),
    ("bad-memory", "bad_memory.wasm"),
    ("bad-import", "bad_import.wasm"),
    ("ticker", "ticker.wasm"),
    ("window-trend", "window_trend.wasm"),
    ("timeseries", "timeseries.wasm"),
    ("archive", "archive.wasm"),
    ("kinesis", "kinesis.wasm"),
    ("notify", "notify.wasm"),
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let repo = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("repo root exists");
    let plugins = repo.join("plugins");
    let wit = repo.join("wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    for dir in [
        "sdk",
        "json-scan",
        "zscore",
        "shadow",
        "alerts",
        "testing",
        "window-trend",
        "timeseries",
        "archive",
        "kinesis",
        "notify",
    ] {
        println!("cargo:rerun-if-changed={}", plugins.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.lock").display()
    );

    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=WEIR_SKIP_PLUGIN_BUILD");
    if env::var_os("WEIR_SKIP_PLUGIN_BUILD").is_some() {
        // For iterating on host code only: a binary built this way ships no plugins.
        println!("cargo:warning=WEIR_SKIP_PLUGIN_BUILD is set: this build embeds no plugins");
        std::fs::write(
            out_dir.join("shipped.rs"),
            "pub const SHIPPED: &[(&str, &[u8])] = &[];\n",
        )
        .expect("write shipped.rs");
        return;
    }
    // OUT_DIR is <target>/<profile>/build/<pkg>/out; put the wasm build at <target>/wasm-plugins.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|p| p.join("wasm-plugins"))
        .unwrap_or_else(|| out_dir.join("wasm-plugins"));

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (key, _) in env::vars() {
        let inherited_build_setting =
            (key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE")
                || key.starts_with("RUSTC")
                || key == "RUSTFLAGS"
                || key == "RUSTDOCFLAGS"
                || key == "TARGET"
                || key == "HOST"
                || key == "OUT_DIR"
                || key == "PROFILE"
                || key == "OPT_LEVEL"
                || key == "DEBUG";
        if inherited_build_setting {
            cmd.env_remove(&key);
        }
    }
    let status = cmd
        .status()
        .expect("could not start cargo to build the plugins");
    if !status.success() {
        panic!("building the plugins for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)");
    }

    let release = target_dir.join("wasm32-wasip2/release");
    let mut generated = String::from("/// Every shipped plugin: (name, component bytes).\npub const SHIPPED: &[(&str, &[u8])] = &[\n");
    for (name, file) in SHIPPED {
        let path = release.join(file);
        assert!(
            path.exists(),
            "plugin {name} was not built at {}",
            path.display()
        );
        generated.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    generated.push_str("];\n");
    std::fs::write(out_dir.join("shipped.rs"), generated).expect("write shipped.rs");
}
