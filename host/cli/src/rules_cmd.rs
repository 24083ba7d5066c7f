//! `weir rules check`, `weir rules eval` and `weir rules test`: try rules
//! before they go live.

use anyhow::Result;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use weir_runtime::rules::{self, testing, RuleProblem, PLUGINS_FILE};
use weir_sql::{topic_matches, Message, Payload, Statement};

/// `println!` that does not panic when stdout is closed (`weir rules test | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that does not panic when stderr is closed.
macro_rules! warn {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Check a rules directory (or one rule file): every problem, as
    /// file:line:col with the line and a caret. Exit status 1 on any problem.
    Check { path: PathBuf },
    /// Evaluate one statement against one message and print the output.
    /// Exit status: 0 output printed, 1 no match (the FROM filter or the
    /// WHERE), 2 invalid statement or payload, or evaluation error.
    Eval(EvalArgs),
    /// Run the rule tests in <dir>/tests/*.toml against the rules in <dir>.
    /// Exit status: 0 all passed, 1 a case failed, 2 the rules or a test
    /// file are invalid (or there are no tests).
    Test { dir: PathBuf },
}

/// One message to evaluate a statement against.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[arg(long)]
    sql: String,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value = "weir-cli")]
    client_id: String,
    #[arg(long)]
    payload: String,
    /// Receive time in ms (default: now).
    #[arg(long)]
    timestamp: Option<i64>,
    /// What principal() returns (a device certificate's id).
    #[arg(long)]
    principal: Option<String>,
    /// What sourceip() returns.
    #[arg(long)]
    source_ip: Option<String>,
}

pub fn run(command: RulesCommand) -> Result<ExitCode> {
    match command {
        RulesCommand::Check { path } => Ok(check(&path)),
        RulesCommand::Eval(args) => eval(&args),
        RulesCommand::Test { dir } => Ok(test(&dir)),
    }
}

fn print_problems(problems: &[RuleProblem]) {
    for p in problems {
        warn!("{}\n", p.report);
    }
}

fn is_plugins_file(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n == PLUGINS_FILE)
}

/// The files to check: a directory's rule files, or one file plus the
/// `plugins.toml` beside it (a rule is checked against those plugins); and
/// the problems reading them.
fn files_to_check(path: &Path) -> (Vec<(PathBuf, String)>, Vec<RuleProblem>) {
    let cannot_read = |p: &Path, e: std::io::Error| RuleProblem {
        file: p.to_path_buf(),
        report: format!("{}: cannot read: {e}", p.display()),
    };
    if path.is_dir() {
        let (files, mut problems) = rules::read_dir_files(path);
        if problems.is_empty() && files.iter().all(|(p, _)| is_plugins_file(p)) {
            problems.push(RuleProblem {
                file: path.to_path_buf(),
                report: format!(
                    "{}: no rule files (*.toml) in this directory",
                    path.display()
                ),
            });
        }
        return (files, problems);
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return (Vec::new(), vec![cannot_read(path, e)]),
    };
    let mut files = vec![(path.to_path_buf(), text)];
    let mut problems = Vec::new();
    if !is_plugins_file(path) {
        let beside = path
            .parent()
            .map(|d| d.join(PLUGINS_FILE))
            .filter(|p| p.is_file());
        if let Some(decls) = beside {
            match std::fs::read_to_string(&decls) {
                Ok(text) => files.push((decls, text)),
                Err(e) => problems.push(cannot_read(&decls, e)),
            }
        }
    }
    (files, problems)
}

fn check(path: &Path) -> ExitCode {
    let (files, mut problems) = files_to_check(path);
    let result = if files.is_empty() {
        None
    } else {
        Some(rules::compile_files(&files))
    };
    if let Some(Err(p)) = &result {
        problems.extend(p.iter().cloned());
    }
    for (p, text) in files.iter().filter(|(p, _)| is_plugins_file(p)) {
        let base = p.parent().unwrap_or(Path::new("."));
        problems.extend(rules::check_plugin_components(p, text, base));
    }
    match result {
        Some(Ok(set)) if problems.is_empty() => {
            let rule_files = files.iter().filter(|(p, _)| !is_plugins_file(p)).count();
            say!(
                "ok: {rule_files} rule file(s), {} enabled; {} plugin(s) declared",
                set.rules.len(),
                set.plugins.decls.len()
            );
            ExitCode::SUCCESS
        }
        _ => {
            print_problems(&problems);
            warn!("{} problem(s)", problems.len());
            ExitCode::from(1)
        }
    }
}

fn eval(args: &EvalArgs) -> Result<ExitCode> {
    let (sql, topic, payload) = (
        args.sql.as_str(),
        args.topic.as_str(),
        args.payload.as_str(),
    );
    let diagnostics = Statement::diagnostics(sql);
    if !diagnostics.is_empty() {
        for e in &diagnostics {
            warn!("{}\n", e.render("<sql>", sql));
        }
        warn!("{} problem(s)", diagnostics.len());
        return Ok(ExitCode::from(2));
    }
    let statement = match Statement::parse(sql) {
        Ok(s) => s,
        Err(e) => {
            warn!("{}", e.render("<sql>", sql));
            return Ok(ExitCode::from(2));
        }
    };
    if topic.is_empty() || topic.contains(['+', '#']) {
        warn!("error: --topic must be a topic a message is published on (not empty, no + or #)");
        return Ok(ExitCode::from(2));
    }
    // The engine never evaluates a rule for a topic its FROM does not match,
    // except by Basic Ingest, where the rule sees the topic after the prefix.
    let topic = match weir_runtime::listener::basic_ingest::split(topic) {
        Some((_, rest)) => rest,
        None => {
            if !statement.topic_filter().is_empty()
                && !topic_matches(statement.topic_filter(), topic)
            {
                return Ok(ExitCode::from(1));
            }
            topic
        }
    };
    let json: Result<serde_json::Value, _> = serde_json::from_str(payload);
    // A `SELECT *` of a payload that is not JSON outputs the bytes as they came.
    let raw = json.is_err() && statement.outputs_raw();
    let text = payload;
    let payload = match &json {
        Ok(v) => Payload::Json(v),
        Err(e) if statement.needs_json() => {
            warn!("error: the payload is not valid JSON and the statement reads it: {e}");
            return Ok(ExitCode::from(2));
        }
        Err(_) => Payload::Binary(payload.as_bytes()),
    };
    let message = Message {
        topic,
        client_id: &args.client_id,
        payload,
        timestamp_ms: args.timestamp.unwrap_or_else(weir_runtime::clock::now_ms),
        principal: args.principal.as_deref(),
        source_ip: args.source_ip.as_deref(),
        mqtt: None,
        trace_id: None,
        lookup: None,
    };
    if raw {
        if !statement.where_matches(&message) {
            return Ok(ExitCode::from(1));
        }
        say!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    match statement.eval(&message) {
        Ok(Some(v)) => {
            say!("{}", serde_json::to_string(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Ok(None) => Ok(ExitCode::from(1)),
        Err(e) => {
            warn!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn test(dir: &Path) -> ExitCode {
    if !dir.is_dir() {
        warn!("error: {} is not a directory", dir.display());
        return ExitCode::from(2);
    }
    // Exactly what `weir run` loads.
    let set = match rules::load_dir(dir) {
        Ok(set) => set,
        Err(problems) => {
            print_problems(&problems);
            warn!(
                "the rules in {} do not load: {} problem(s)",
                dir.display(),
                problems.len()
            );
            return ExitCode::from(2);
        }
    };
    let paths = match testing::test_files(dir) {
        Ok(p) => p,
        Err(p) => {
            print_problems(&[p]);
            return ExitCode::from(2);
        }
    };
    if paths.is_empty() {
        warn!(
            "no rule tests: put test files in {}",
            dir.join(testing::TESTS_DIR).join("*.toml").display()
        );
        return ExitCode::from(2);
    }
    let now = weir_runtime::clock::now_ms();
    let (mut passed, mut failed, mut invalid) = (0usize, 0usize, 0usize);
    for path in &paths {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                warn!("{}: cannot read: {e}\n", path.display());
                invalid += 1;
                continue;
            }
        };
        let cases = match testing::parse_file(path, &text, &set) {
            Ok(c) => c,
            Err(problems) => {
                print_problems(&problems);
                invalid += problems.len();
                continue;
            }
        };
        for case in &cases {
            let outcome = testing::evaluate(&set, case, now);
            let result = testing::judge(case, &outcome);
            let place = format!("{}:{}", case.file.display(), case.line);
            if result.passed() {
                passed += 1;
                say!("ok      {place}: {} [{}]", case.name, case.rule);
            } else {
                failed += 1;
                say!("FAILED  {place}: {} [{}]", case.name, case.rule);
                for m in &result.mismatches {
                    say!("    {}: expected (-) vs got (+)", m.what);
                    for line in diff_lines(&m.expected, &m.got) {
                        say!("      {line}");
                    }
                }
            }
        }
    }
    let mut summary = format!("{passed} passed, {failed} failed");
    if invalid > 0 {
        summary.push_str(&format!(", {invalid} problem(s) in test files"));
    }
    say!("{summary}");
    if invalid > 0 {
        ExitCode::from(2)
    } else if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A line diff of two texts: common lines with two spaces, lines only in
/// `expected` with `- `, lines only in `got` with `+ ` (longest common
/// subsequence; the texts are small).
fn diff_lines(expected: &str, got: &str) -> Vec<String> {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::diff_lines;

    #[test]
    fn diff_marks_changed_lines() {
        let d = diff_lines(
            "{\n  \"a\": 1,\n  \"b\": 2\n}",
            "{\n  \"a\": 1,\n  \"b\": 3\n}",
        );
        assert_eq!(
            d,
            vec![
                "  {",
                "    \"a\": 1,",
                "-   \"b\": 2",
                "+   \"b\": 3",
                "  }"
            ]
        );
    }
}
