//! The plugins' own unit tests, as part of `cargo test --workspace`.
//!
//! The plugin crates live in their own workspace (`plugins/`), built for
//! wasm32-wasip2 by `weir-bundled-plugins`, so the host workspace's test
//! command does not reach their tests (the SDK's batch views and key
//! compares, zscore's baselines, shadow's scanner and document, the sinks'
//! encodings). This runs them natively with the same cargo, in a target
//! directory beside this test's own so repeat runs are incremental.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A target directory named `name` beside this test's own (`<target>/debug/
/// deps/<this test>` → `<target>/<name>`), so repeat runs are incremental.
fn target_beside(name: &str, fallback: &Path) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join(name)))
        .unwrap_or_else(|| fallback.join("target"))
}

/// Run cargo with `args` in `dir`; its stdout, or a failure with both outputs.
fn cargo(dir: &Path, target: &Path, args: &[&str]) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cargo {args:?} in {} failed:\n{stdout}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Tests counted in cargo test's `test result: ok. N passed` lines.
fn passed(stdout: &str) -> usize {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum()
}

#[test]
fn the_plugin_crates_unit_tests_pass() {
    let plugins = support::repo_root().join("plugins");
    let target = target_beside("plugin-tests", &plugins);
    let stdout = cargo(&plugins, &target, &["test", "--workspace", "--quiet"]);
    // Natively built, so the tests ran (a wasm build would only compile).
    assert!(passed(&stdout) > 0, "no plugin tests ran:\n{stdout}");
}

/// The template a team copies to start a plugin (`examples/plugin-template`,
/// a crate of its own): its unit tests pass natively, it builds as a
/// wasm32-wasip2 component as its manifest says, and this host accepts the
/// component (`weir plugin inspect`). So a change to the SDK that breaks
/// the template fails here, not in a team's first build.
#[test]
fn the_plugin_template_builds_and_this_host_accepts_it() {
    let template = support::repo_root().join("examples/plugin-template");
    let target = target_beside("template-tests", &template);
    let stdout = cargo(&template, &target, &["test", "--quiet"]);
    assert!(passed(&stdout) > 0, "no template tests ran:\n{stdout}");

    cargo(
        &template,
        &target,
        &["build", "--quiet", "--target", "wasm32-wasip2"],
    );
    let component = target.join("wasm32-wasip2/debug/my_plugin.wasm");
    assert!(
        component.exists(),
        "no component at {}",
        component.display()
    );
    let out = Command::new(support::weir_bin())
        .args(["plugin", "inspect"])
        .arg(&component)
        .output()
        .expect("run weir plugin inspect");
    assert!(
        out.status.success(),
        "inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
    assert_eq!(report["accepted"], true, "{report:#}");
    assert_eq!(report["world"], "batch-processor-plugin", "{report:#}");
}
