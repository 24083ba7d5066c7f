//! Rules: loading the rules directory, checking every file, and the compiled
//! rule set the engine dispatches through (a topic trie over compiled
//! statements, so many rules cost little more than one).

pub mod file;

use crate::plugin::manifest::PluginDecls;
use file::{ActionSpec, RuleFile, MAX_ACTIONS};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir_sql::{Statement, Template, TopicTrie};

/// The file in the rules directory that declares plugin instances.
pub const PLUGINS_FILE: &str = "plugins.toml";

/// A problem in one file of the rules directory.
#[derive(Debug, Clone)]
pub struct RuleProblem {
    pub file: PathBuf,
    /// Human-readable report, `file:line:col: message` plus context.
    pub report: String,
}

impl std::fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.report)
    }
}

/// A compiled action.
pub struct Action {
    pub plugin: String,
    pub device: Option<Template>,
    pub device_type: Option<Template>,
    pub device_time: Option<Template>,
}

/// A compiled rule.
pub struct Rule {
    /// File stem, used as the rule's name.
    pub name: String,
    pub description: String,
    pub statement: Statement,
    pub actions: Vec<Action>,
    pub error_action: Option<Action>,
}

/// Every enabled rule, ready to dispatch.
pub struct RuleSet {
    pub rules: Vec<Arc<Rule>>,
    trie: TopicTrie<usize>,
    pub plugins: PluginDecls,
}

impl RuleSet {
    /// Indices of the rules whose topic filter matches `topic`, in rule order.
    pub fn matching(&self, topic: &str, out: &mut Vec<usize>) {
        out.clear();
        self.trie.for_each_match(topic, |i| out.push(*i));
        out.sort_unstable();
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The shipped rules, used when the rules directory does not exist.
pub const SHIPPED: &[(&str, &str)] = &[
    ("plugins.toml", include_str!("../../../../rules/plugins.toml")),
    ("telemetry.toml", include_str!("../../../../rules/telemetry.toml")),
    ("alerts.toml", include_str!("../../../../rules/alerts.toml")),
];

/// Load every `*.toml` under `dir` (or the shipped rules when `dir` is
/// missing). All problems are collected, not just the first.
pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<RuleProblem>> {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    if dir.is_dir() {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            vec![RuleProblem {
                file: dir.to_path_buf(),
                report: format!("{}: cannot read the rules directory: {e}", dir.display()),
            }]
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for p in paths {
            match std::fs::read_to_string(&p) {
                Ok(text) => files.push((p, text)),
                Err(e) => {
                    return Err(vec![RuleProblem {
                        report: format!("{}: cannot read: {e}", p.display()),
                        file: p,
                    }])
                }
            }
        }
    } else {
        for (name, text) in SHIPPED {
            files.push((dir.join(name), text.to_string()));
        }
    }
    compile_files(&files)
}

/// Check and compile a set of (path, text) files that form one rules directory.
pub fn compile_files(files: &[(PathBuf, String)]) -> Result<RuleSet, Vec<RuleProblem>> {
    let mut problems = Vec::new();
    let plugins = match files
        .iter()
        .find(|(p, _)| p.file_name().is_some_and(|n| n == PLUGINS_FILE))
    {
        Some((path, text)) => match PluginDecls::parse(text) {
            Ok(p) => p,
            Err(e) => {
                problems.push(RuleProblem {
                    file: path.clone(),
                    report: format!("{}: {e}", path.display()),
                });
                PluginDecls::default()
            }
        },
        None => PluginDecls::default(),
    };

    let mut rules = Vec::new();
    let mut trie = TopicTrie::new();
    for (path, text) in files {
        if path.file_name().is_some_and(|n| n == PLUGINS_FILE) {
            continue;
        }
        match compile_rule(path, text, &plugins) {
            Ok(Some(rule)) => {
                if let Err(e) = trie.insert(rule.statement.topic_filter(), rules.len()) {
                    problems.push(RuleProblem {
                        file: path.clone(),
                        report: format!("{}: {e}", path.display()),
                    });
                    continue;
                }
                rules.push(Arc::new(rule));
            }
            Ok(None) => {}
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(RuleSet {
            rules,
            trie,
            plugins,
        })
    } else {
        Err(problems)
    }
}

/// Where the `sql` string starts in a TOML file, so SQL errors can point at
/// the file's own line and column.
fn sql_origin(text: &str) -> Option<(usize, usize)> {
    #[derive(serde::Deserialize)]
    struct SqlOnly {
        sql: toml::Spanned<String>,
    }
    let span = toml::from_str::<SqlOnly>(text).ok()?.sql.span();
    let raw = text.get(span.clone())?;
    let quote = ["'''", "\"\"\"", "'", "\""]
        .iter()
        .find(|q| raw.starts_with(**q))?;
    let mut start = span.start + quote.len();
    // A newline right after an opening triple quote is not part of the string.
    if quote.len() == 3 && text[start..].starts_with('\n') {
        start += 1;
    }
    let line = text[..start].matches('\n').count();
    let col = start - text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    Some((line, col))
}

fn compile_rule(
    path: &Path,
    text: &str,
    plugins: &PluginDecls,
) -> Result<Option<Rule>, Vec<RuleProblem>> {
    let problem = |report: String| RuleProblem {
        file: path.to_path_buf(),
        report,
    };
    let file: RuleFile = toml::from_str(text).map_err(|e| {
        vec![problem(format!("{}: {}", path.display(), e.to_string().trim_end()))]
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut problems = Vec::new();
    if file.sql_version != "2016-03-23" {
        problems.push(problem(format!(
            "{}: sql_version {:?} is not supported; Weir speaks AWS IoT SQL 2016-03-23",
            path.display(),
            file.sql_version
        )));
    }
    let statement = match Statement::parse(&file.sql) {
        Ok(s) => Some(s),
        Err(e) => {
            // Re-anchor the SQL error inside the TOML file.
            let report = match sql_origin(text) {
                Some((line0, col0)) if !file.sql.contains('\\') => {
                    let mut shifted = e.clone();
                    shifted.line = e.line + line0;
                    if e.line == 1 {
                        shifted.col = e.col + col0;
                    }
                    shifted.render(&path.display().to_string(), text)
                }
                _ => e.render(&format!("{} (sql)", path.display()), &file.sql),
            };
            problems.push(problem(report));
            None
        }
    };
    if file.actions.len() > MAX_ACTIONS {
        problems.push(problem(format!(
            "{}: {} actions; a rule may have at most {MAX_ACTIONS}",
            path.display(),
            file.actions.len()
        )));
    }
    let mut compile_action = |spec: &ActionSpec, what: &str| -> Option<Action> {
        if !plugins.contains(&spec.plugin) {
            problems.push(problem(format!(
                "{}: {what} uses plugin {:?}, which is not declared in {PLUGINS_FILE} (declared: {})",
                path.display(),
                spec.plugin,
                plugins.names().collect::<Vec<_>>().join(", ")
            )));
            return None;
        }
        let mut template = |field: &str, t: &Option<String>| -> Option<Option<Template>> {
            match t {
                None => Some(None),
                Some(text) => match Template::parse(text) {
                    Ok(t) => Some(Some(t)),
                    Err(e) => {
                        problems.push(problem(format!(
                            "{}: {what} parameter {field}: {e}",
                            path.display()
                        )));
                        None
                    }
                },
            }
        };
        Some(Action {
            plugin: spec.plugin.clone(),
            device: template("device", &spec.device)?,
            device_type: template("device_type", &spec.device_type)?,
            device_time: template("device_time", &spec.device_time)?,
        })
    };
    let actions: Vec<Option<Action>> = file
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| compile_action(a, &format!("action {}", i + 1)))
        .collect();
    let error_action = file
        .error_action
        .as_ref()
        .map(|a| compile_action(a, "error_action"));
    if !problems.is_empty() {
        return Err(problems);
    }
    let (Some(statement), Some(actions)) = (statement, actions.into_iter().collect::<Option<Vec<_>>>()) else {
        return Err(vec![problem(format!("{}: invalid rule", path.display()))]);
    };
    if !file.enabled {
        return Ok(None);
    }
    Ok(Some(Rule {
        name,
        description: file.description,
        statement,
        actions,
        error_action: error_action.flatten(),
    }))
}
