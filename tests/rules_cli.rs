//! Golden tests of `weir rules check | eval | test`.
//!
//! Every directory `tests/rules_cli/<case>/` and every `tests/rules_cli/<case>.args`
//! is a case. The command is `weir <args>`, with the arguments one per line in
//! `<case>.args` (default: `rules check <case>`), run in `tests/rules_cli/`
//! so paths in the output are short and stable. Expected:
//!
//! - `<case>.out`: stdout, then a last line `[exit status N]`;
//! - `<case>.err`: stderr (absent when stderr is empty).
//!
//! `BLESS=1 cargo test -p weir --test rules_cli` rewrites the expected files.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    support::repo_root().join("tests/rules_cli")
}

fn weir(dir: &Path, args: &[String]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .env("WEIR_LOG", "error")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run weir");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn cases() -> BTreeSet<String> {
    let mut cases = BTreeSet::new();
    for entry in std::fs::read_dir(root()).expect("tests/rules_cli") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() {
            cases.insert(name.to_string());
        } else if let Some(stem) = name.strip_suffix(".args") {
            cases.insert(stem.to_string());
        }
    }
    cases
}

fn args_of(case: &str) -> Vec<String> {
    match std::fs::read_to_string(root().join(format!("{case}.args"))) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.replace("{case}", case))
            .collect(),
        Err(_) => vec!["rules".into(), "check".into(), case.into()],
    }
}

#[test]
fn golden() {
    let bless = std::env::var_os("BLESS").is_some();
    let dir = root();
    let mut failures = Vec::new();
    let all = cases();
    assert!(
        all.len() >= 20,
        "expected the golden cases in {}",
        dir.display()
    );
    for case in &all {
        let (stdout, stderr, status) = weir(&dir, &args_of(case));
        assert!(
            !stderr.contains("panicked"),
            "{case}: weir panicked:\n{stderr}"
        );
        let out = format!("{stdout}[exit status {status}]\n");
        let out_path = dir.join(format!("{case}.out"));
        let err_path = dir.join(format!("{case}.err"));
        if bless {
            std::fs::write(&out_path, &out).expect("write .out");
            if stderr.is_empty() {
                let _ = std::fs::remove_file(&err_path);
            } else {
                std::fs::write(&err_path, &stderr).expect("write .err");
            }
            continue;
        }
        let want_out = std::fs::read_to_string(&out_path).unwrap_or_default();
        let want_err = std::fs::read_to_string(&err_path).unwrap_or_default();
        if want_out != out {
            failures.push(format!(
                "{case}.out:\n--- expected\n{want_out}--- got\n{out}"
            ));
        }
        if want_err != stderr {
            failures.push(format!(
                "{case}.err:\n--- expected\n{want_err}--- got\n{stderr}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden mismatch(es) (BLESS=1 to accept):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The shipped rules pass their own check and their own tests.
#[test]
fn shipped_rules_check_and_test_clean() {
    let repo = support::repo_root();
    let (stdout, stderr, status) = weir(&repo, &["rules".into(), "check".into(), "rules".into()]);
    assert_eq!(status, 0, "weir rules check rules:\n{stdout}{stderr}");
    assert!(stdout.starts_with("ok: "), "{stdout}");
    let (stdout, stderr, status) = weir(&repo, &["rules".into(), "test".into(), "rules".into()]);
    assert_eq!(status, 0, "weir rules test rules:\n{stdout}{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(
        stdout.contains("rules/tests/telemetry.toml") && stdout.contains("rules/tests/alerts.toml")
    );
}

/// `weir rules eval` exit codes: 0 with the output, 1 silent on no match, 2 on a bad statement.
#[test]
fn eval_exit_codes() {
    let dir = root();
    let eval = |sql: &str, topic: &str, payload: &str| {
        weir(
            &dir,
            &[
                "rules",
                "eval",
                "--sql",
                sql,
                "--topic",
                topic,
                "--payload",
                payload,
            ]
            .map(String::from),
        )
    };
    let (out, err, code) = eval("SELECT t * 2 AS d FROM 'a/+'", "a/b", r#"{"t": 4}"#);
    assert_eq!((out.as_str(), err.as_str(), code), ("{\"d\":8}\n", "", 0));
    let (out, err, code) = eval("SELECT t FROM 'a/+' WHERE t > 5", "a/b", r#"{"t": 4}"#);
    assert_eq!((out.as_str(), err.as_str(), code), ("", "", 1));
    let (out, err, code) = eval("SELECT t FROM 'a/+'", "x/y", r#"{"t": 4}"#);
    assert_eq!((out.as_str(), err.as_str(), code), ("", "", 1));
    let (out, err, code) = eval("SELECT nosuch(t) FROM 'a/+'", "a/b", r#"{"t": 4}"#);
    assert_eq!((out.as_str(), code), ("", 2));
    assert!(err.starts_with("<sql>:1:8: unknown function"), "{err}");
}
