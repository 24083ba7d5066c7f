//! The plugins' own unit tests, as part of `cargo test --workspace`.
//!
//! The plugin crates live in their own workspace (`plugins/`), built for
//! wasm32-wasip2 by `weir-bundled-plugins`, so the host workspace's test
//! command does not reach their tests (the SDK's batch views and key
//! compares, zscore's baselines, shadow's scanner and document, the sinks'
//! encodings). This runs them natively with the same cargo, in a target
//! directory beside this test's own so repeat runs are incremental.

mod support;

use std::process::Command;

#[test]
fn the_plugin_crates_unit_tests_pass() {
    let plugins = support::repo_root().join("plugins");
    // <target>/debug/deps/<this test> → <target>/plugin-tests
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("plugin-tests")))
        .unwrap_or_else(|| plugins.join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--workspace", "--quiet"])
        .current_dir(&plugins)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo test in plugins/");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "plugin unit tests failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Natively built, so the tests ran (a wasm build would only compile).
    let passed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(passed > 0, "no plugin tests ran:\n{stdout}");
}
