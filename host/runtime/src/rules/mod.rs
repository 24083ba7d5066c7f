//! Rules: loading the rules directory, checking every file, and the compiled
//! rule set the engine dispatches through (a topic trie over compiled
//! statements, so many rules cost little more than one).
//!
//! Every problem found while checking is reported as `file:line:col:
//! message` with the source line and a caret under the spot: TOML errors,
//! SQL errors (all of them, mapped from the statement back into the file),
//! unknown plugins, bad `${…}` templates, bad topic filters, too many
//! actions and `plugins.toml` errors.
//!
//! Files under the rules directory's subdirectories are not rules: the
//! loader reads only `*.toml` directly in it, so `tests/` (rule tests, see
//! [`testing`]) and anything else nested is left alone.

mod diag;
pub mod file;
pub mod testing;

use crate::plugin::manifest::{PluginDecl, PluginDecls};
use file::{ActionSpec, RuleFile, MAX_ACTIONS, SQL_VERSION};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;
use weir_sql::{Message, Statement, Template, TopicTrie, Variables};

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

/// Where an action sends the rule's output.
pub enum Target {
    /// A declared plugin instance, in batches.
    Plugin(String),
    /// AWS's republish action: published to the rendered topic, and fed
    /// back into the engine like a plugin's output.
    Republish(Template),
}

/// A compiled action.
pub struct Action {
    pub target: Target,
    pub device: Option<Template>,
    pub device_type: Option<Template>,
    pub device_time: Option<Template>,
    /// The three templates' source text: actions with equal sources render
    /// alike, so a rule's actions share one rendering per message.
    pub sources: [Option<String>; 3],
}

/// An action's parameters rendered for one message, borrowed from the
/// message or the templates where they are pieces of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionParams<'a> {
    /// `device` rendered, or the publisher's client id when not set.
    pub device: Cow<'a, str>,
    /// `device_type` rendered, or empty when not set.
    pub device_type: Cow<'a, str>,
    /// `device_time` rendered, when set (the engine otherwise reads the
    /// output's `ts` or `timestamp`).
    pub device_time: Option<Cow<'a, str>>,
}

impl ActionParams<'_> {
    pub fn into_owned(self) -> ActionParams<'static> {
        ActionParams {
            device: Cow::Owned(self.device.into_owned()),
            device_type: Cow::Owned(self.device_type.into_owned()),
            device_time: self.device_time.map(|t| Cow::Owned(t.into_owned())),
        }
    }
}

impl Action {
    /// The plugin it hands messages to, or `republish`.
    pub fn name(&self) -> &str {
        match &self.target {
            Target::Plugin(p) => p,
            Target::Republish(_) => "republish",
        }
    }

    /// True when `other` renders exactly as this action does.
    pub fn renders_like(&self, other: &Action) -> bool {
        self.sources == other.sources
    }

    /// Whether rendering this action's templates reads the payload.
    pub fn reads_payload(&self) -> bool {
        let topic = match &self.target {
            Target::Republish(t) => Some(t),
            Target::Plugin(_) => None,
        };
        [&self.device, &self.device_type, &self.device_time]
            .into_iter()
            .flatten()
            .chain(topic)
            .any(Template::reads_payload)
    }

    /// Render the action's templates against `msg` and the variables its
    /// rule's statement bound for it, with the engine's defaults (device:
    /// the client id; device type: empty). A `device` template that renders
    /// empty (`${topic(3)}` of `dt/thermostat//telemetry`) is an error: no
    /// plugin should keep state for a device named "".
    pub fn render_params<'a>(
        &'a self,
        msg: &'a Message<'a>,
        vars: &'a Variables<'a>,
    ) -> Result<ActionParams<'a>, String> {
        let render = |t: &'a Option<Template>| {
            t.as_ref()
                .map(|t| t.render_cow_with(msg, vars))
                .transpose()
                .map_err(|e| e.to_string())
        };
        let device = match render(&self.device)? {
            Some(d) if d.is_empty() => {
                return Err(
                    "the action's `device` template renders empty for this message \
                     (an empty topic level?)"
                        .to_string(),
                )
            }
            Some(d) => d,
            None => Cow::Borrowed(msg.client_id),
        };
        Ok(ActionParams {
            device,
            device_type: render(&self.device_type)?.unwrap_or_default(),
            device_time: render(&self.device_time)?,
        })
    }
}

/// A compiled rule.
pub struct Rule {
    /// File stem, used as the rule's name.
    pub name: String,
    pub description: String,
    pub statement: Statement,
    pub actions: Vec<Action>,
    pub error_action: Option<Action>,
    /// A plain `SELECT *` without WHERE whose actions' templates do not
    /// read the payload: the engine forwards each payload as it came and
    /// needs only its numeric fields and timestamp, not a parsed value.
    pub passthrough: bool,
}

impl Rule {
    /// Whether any of its actions (not its error action) is a plugin's:
    /// such a rule needs a JSON output to hand on.
    pub fn has_plugin_actions(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a.target, Target::Plugin(_)))
    }

    /// Why this rule's plugin actions fail on a payload that is not JSON
    /// (`not_json`, the parse error) while its `SELECT *` forwards the
    /// bytes; `None` when it has no plugin action.
    pub fn plugins_refuse(&self, not_json: &str) -> Option<String> {
        self.has_plugin_actions().then(|| {
            format!(
                "{not_json}; a plugin takes JSON readings (to hand one the bytes, \
                 select them: SELECT encode(*, 'base64') AS data …)"
            )
        })
    }
}

/// Every enabled rule, ready to dispatch.
pub struct RuleSet {
    pub rules: Vec<Arc<Rule>>,
    trie: TopicTrie<usize>,
    /// Which topic level is the device, by the rules that say so.
    devices: DeviceRoutes,
    pub plugins: PluginDecls,
}

impl RuleSet {
    /// Indices of the rules whose topic filter matches `topic`, in rule order.
    pub fn matching(&self, topic: &str, out: &mut Vec<usize>) {
        out.clear();
        self.trie.for_each_match(topic, |i| out.push(*i));
        out.sort_unstable();
    }

    /// The enabled rule named `name` (its file stem) and its index.
    pub fn by_name(&self, name: &str) -> Option<(usize, &Arc<Rule>)> {
        self.rules.iter().enumerate().find(|(_, r)| r.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The device a message on `topic` is about, as the first rule it
    /// matches names it, when that rule's plugin actions take the device
    /// from one topic level (`device = "${topic(3)}"` on
    /// `dt/+/+/telemetry`): how the engine keeps one device's readings with
    /// its other messages whoever publishes them. Rules on `$aws/things/…`
    /// and presence events are left out: the engine routes those topics by
    /// their thing and client before asking.
    pub fn device_in<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let level = self.devices.level(topic)?;
        topic
            .split(weir_sql::topic::is_separator)
            .nth(level - 1)
            .filter(|d| !d.is_empty())
    }
}

/// Per rule whose plugin actions all name the device as one topic level
/// (`device = "${topic(N)}"`): its filter and `N`. Consulted for every
/// message a listener hands over, so a few filters are matched level by
/// level without hashing; many go through a trie.
struct DeviceRoutes {
    /// (filter levels, level), in rule order.
    few: Vec<(Vec<FilterLevel>, usize)>,
    /// With more than [`DeviceRoutes::FEW`]: filter → (route index, level).
    many: Option<TopicTrie<(usize, usize)>>,
}

enum FilterLevel {
    Literal(Box<str>),
    Plus,
    Hash,
}

impl DeviceRoutes {
    const FEW: usize = 16;

    /// The routes of the rules that name a device level: (filter, level)
    /// in rule order.
    fn new(routes: Vec<(String, usize)>) -> DeviceRoutes {
        // `$aws/things/<thing>/…` and presence events are routed before the
        // rules are asked.
        let routes: Vec<(String, usize)> = routes
            .into_iter()
            .filter(|(f, _)| {
                !f.starts_with("$aws/things/") && !f.starts_with("$aws/events/presence/")
            })
            .collect();
        if routes.len() > Self::FEW {
            let mut trie = TopicTrie::new();
            for (i, (filter, level)) in routes.iter().enumerate() {
                // Filters were checked when their rules compiled.
                let _ = trie.insert(filter, (i, *level));
            }
            return DeviceRoutes {
                few: Vec::new(),
                many: Some(trie),
            };
        }
        let few = routes
            .iter()
            .map(|(filter, level)| {
                let levels = filter
                    .split('/')
                    .map(|l| match l {
                        "+" => FilterLevel::Plus,
                        "#" => FilterLevel::Hash,
                        l => FilterLevel::Literal(l.into()),
                    })
                    .collect();
                (levels, *level)
            })
            .collect();
        DeviceRoutes { few, many: None }
    }

    /// The device's level for `topic`, by the first rule that says.
    fn level(&self, topic: &str) -> Option<usize> {
        if let Some(trie) = &self.many {
            let mut first: Option<(usize, usize)> = None;
            trie.for_each_match(topic, |&(rule, level)| {
                if first.is_none_or(|(r, _)| rule < r) {
                    first = Some((rule, level));
                }
            });
            return first.map(|(_, level)| level);
        }
        self.few
            .iter()
            .find(|(filter, _)| filter_matches(filter, topic))
            .map(|(_, level)| *level)
    }
}

/// MQTT matching of one compiled filter (a wildcard first level never
/// matches a `$` topic).
fn filter_matches(filter: &[FilterLevel], topic: &str) -> bool {
    let mut levels = topic.split(weir_sql::topic::is_separator);
    for (i, f) in filter.iter().enumerate() {
        match f {
            FilterLevel::Hash => return !(i == 0 && topic.starts_with('$')),
            FilterLevel::Plus => {
                if levels.next().is_none() || (i == 0 && topic.starts_with('$')) {
                    return false;
                }
            }
            FilterLevel::Literal(l) => {
                if levels.next() != Some(&**l) {
                    return false;
                }
            }
        }
    }
    levels.next().is_none()
}

/// `N` when every plugin action of `rule` has `device = "${topic(N)}"`.
fn device_level(rule: &Rule) -> Option<usize> {
    let mut level = None;
    for action in &rule.actions {
        if !matches!(action.target, Target::Plugin(_)) {
            continue;
        }
        let n = topic_level(action.sources[0].as_deref()?)?;
        if level.is_some_and(|l| l != n) {
            return None;
        }
        level = Some(n);
    }
    level
}

/// `N` of a template that is exactly `${topic(N)}`.
fn topic_level(template: &str) -> Option<usize> {
    let inner = template.trim().strip_prefix("${")?.strip_suffix('}')?;
    let arg = inner.trim().strip_prefix("topic")?.trim_start();
    let n = arg.strip_prefix('(')?.strip_suffix(')')?.trim();
    n.parse().ok().filter(|n| *n >= 1)
}

/// The shipped rules, used when the rules directory does not exist.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "plugins.toml",
        include_str!("../../../../rules/plugins.toml"),
    ),
    (
        "telemetry.toml",
        include_str!("../../../../rules/telemetry.toml"),
    ),
    ("alerts.toml", include_str!("../../../../rules/alerts.toml")),
    (
        "shadow-service.toml",
        include_str!("../../../../rules/shadow-service.toml"),
    ),
    (
        "shadow-service-named.toml",
        include_str!("../../../../rules/shadow-service-named.toml"),
    ),
];

/// Load every `*.toml` directly in `dir` (or the shipped rules when `dir` is
/// missing). All problems are collected, not just the first.
pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<RuleProblem>> {
    let (files, mut problems) = if dir.is_dir() {
        read_dir_files(dir)
    } else {
        let shipped = SHIPPED
            .iter()
            .map(|(name, text)| (dir.join(name), text.to_string()))
            .collect();
        (shipped, Vec::new())
    };
    match compile_files(&files) {
        Ok(set) if problems.is_empty() => Ok(set),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            Err(problems)
        }
    }
}

/// The rule files of a rules directory: every `*.toml` file directly in
/// `dir`, sorted by name, with its text; and a problem for each file (or
/// the directory) that could not be read. Subdirectories (such as
/// `tests/`) are not read.
pub fn read_dir_files(dir: &Path) -> (Vec<(PathBuf, String)>, Vec<RuleProblem>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            let problem =
                diag::whole_file(dir, format_args!("cannot read the rules directory: {e}"));
            return (Vec::new(), vec![problem]);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    let mut problems = Vec::new();
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(text) => files.push((p, text)),
            Err(e) => problems.push(diag::whole_file(&p, format_args!("cannot read: {e}"))),
        }
    }
    (files, problems)
}

/// Check and compile a set of (path, text) files that form one rules directory.
pub fn compile_files(files: &[(PathBuf, String)]) -> Result<RuleSet, Vec<RuleProblem>> {
    let mut problems = Vec::new();
    let is_plugins = |p: &Path| p.file_name().is_some_and(|n| n == PLUGINS_FILE);
    // `None`: plugins.toml is broken, so plugin names cannot be checked.
    let plugins = match files.iter().find(|(p, _)| is_plugins(p)) {
        Some((path, text)) => match parse_plugins(path, text) {
            Ok(p) => Some(p),
            Err(p) => {
                problems.push(p);
                None
            }
        },
        None => Some(PluginDecls::default()),
    };
    let have_plugins_file = files.iter().any(|(p, _)| is_plugins(p));

    let mut rules = Vec::new();
    let mut trie = TopicTrie::new();
    let mut device_routes = Vec::new();
    for (path, text) in files {
        if is_plugins(path) {
            continue;
        }
        let known = PluginCheck {
            decls: plugins.as_ref(),
            have_file: have_plugins_file,
        };
        match compile_rule(path, text, &known) {
            Ok(Some(rule)) => {
                if let Err(e) = trie.insert(rule.statement.topic_filter(), rules.len()) {
                    problems.push(diag::whole_file(path, e));
                    continue;
                }
                if let Some(level) = device_level(&rule) {
                    let filter = rule.statement.topic_filter();
                    device_routes.push((filter.to_string(), level));
                }
                rules.push(Arc::new(rule));
            }
            Ok(None) => {}
            Err(mut p) => problems.append(&mut p),
        }
    }
    let devices = DeviceRoutes::new(device_routes);
    match plugins {
        Some(plugins) if problems.is_empty() => Ok(RuleSet {
            rules,
            trie,
            devices,
            plugins,
        }),
        _ => Err(problems),
    }
}

/// What the rules may name as plugins.
struct PluginCheck<'a> {
    /// `None` when plugins.toml did not parse (then names are not checked).
    decls: Option<&'a PluginDecls>,
    have_file: bool,
}

/// The spans of a plugins.toml, to locate a problem the declaration parser
/// reports by plugin name.
#[derive(serde::Deserialize)]
struct DeclSpans {
    component: Option<Spanned<String>>,
    #[serde(default)]
    settings: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    grants: GrantSpans,
}

#[derive(serde::Deserialize, Default)]
struct GrantSpans {
    #[serde(default)]
    publish: Vec<Spanned<String>>,
    #[serde(default)]
    journal: Vec<Spanned<String>>,
}

/// Parse `plugins.toml`; a problem points at its place in the file.
fn parse_plugins(path: &Path, text: &str) -> Result<PluginDecls, RuleProblem> {
    // Shape first, with the TOML parser's span.
    if let Err(e) = toml::from_str::<BTreeMap<String, PluginDecl>>(text) {
        return Err(diag::toml_error(path, text, &e));
    }
    let e = match PluginDecls::parse(text) {
        Ok(p) => return Ok(p),
        Err(e) => e,
    };
    let crate::plugin::manifest::ManifestError::Invalid { name, message } = &e else {
        return Err(diag::whole_file(path, &e));
    };
    let spans: BTreeMap<Spanned<String>, DeclSpans> = match toml::from_str(text) {
        Ok(s) => s,
        Err(_) => return Err(diag::whole_file(path, &e)),
    };
    let Some((key, decl)) = spans.iter().find(|(k, _)| k.get_ref() == name) else {
        return Err(diag::whole_file(path, &e));
    };
    let quoted = |s: &str| format!("{s:?}");
    let span = if message.starts_with("component") {
        decl.component.as_ref().map(|c| c.span())
    } else if message.starts_with("setting ") {
        decl.settings
            .iter()
            .find(|(k, _)| message.starts_with(&format!("setting {}", quoted(k))))
            .map(|(_, v)| v.span())
    } else if message.starts_with("publish grant ") {
        decl.grants
            .publish
            .iter()
            .find(|g| message.starts_with(&format!("publish grant {}", quoted(g.get_ref()))))
            .map(|g| g.span())
    } else if message.starts_with("journal grant ") {
        decl.grants
            .journal
            .iter()
            .find(|g| message.starts_with(&format!("journal grant {}", quoted(g.get_ref()))))
            .map(|g| g.span())
    } else {
        None
    };
    let span = span.unwrap_or_else(|| key.span());
    Err(diag::at(
        path,
        text,
        span,
        format!("plugin {name:?}: {message}"),
    ))
}

fn compile_rule(
    path: &Path,
    text: &str,
    plugins: &PluginCheck<'_>,
) -> Result<Option<Rule>, Vec<RuleProblem>> {
    // Syntax first: nothing else can be checked in a file that does not parse.
    if let Err(e) = toml::from_str::<toml::Table>(text) {
        return Err(vec![diag::toml_error(path, text, &e)]);
    }
    let mut problems: Vec<RuleProblem> = file::unknown_keys(text)
        .into_iter()
        .map(|(span, message)| diag::at(path, text, span, message))
        .collect();
    let file: RuleFile = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            problems.push(diag::toml_error(path, text, &e));
            return Err(problems);
        }
    };
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(v) = &file.sql_version {
        if v.get_ref() != SQL_VERSION {
            problems.push(diag::at(
                path,
                text,
                v.span(),
                format!(
                    "sql_version {:?} is not supported; Weir speaks AWS IoT SQL {SQL_VERSION}",
                    v.get_ref()
                ),
            ));
        }
    }
    let sql = file.sql.get_ref();
    let diagnostics = Statement::diagnostics(sql);
    for e in &diagnostics {
        problems.push(diag::in_string(path, text, file.sql.span(), sql, e, ""));
    }
    let statement = if diagnostics.is_empty() {
        match Statement::parse(sql) {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(diag::in_string(path, text, file.sql.span(), sql, &e, ""));
                None
            }
        }
    } else {
        None
    };
    if let Some(span) = file.actions.get(MAX_ACTIONS).and_then(|extra| {
        extra
            .plugin
            .as_ref()
            .or(extra.republish.as_ref())
            .map(|s| s.span())
    }) {
        problems.push(diag::at(
            path,
            text,
            span,
            format!(
                "action {}: a rule may have at most {MAX_ACTIONS} actions (this one has {})",
                MAX_ACTIONS + 1,
                file.actions.len()
            ),
        ));
    }
    // What `${@name}` in the actions' templates may read.
    let variables: &[String] = statement.as_ref().map_or(&[], |s| s.variables());
    let mut compile_action = |spec: &ActionSpec,
                              what: &str,
                              reads_no_variables: bool|
     -> Option<Action> {
        let mut ok = true;
        match (&spec.plugin, &spec.republish) {
            (Some(_), Some(r)) => {
                problems.push(diag::at(
                    path,
                    text,
                    r.span(),
                    format!("{what}: give `plugin` or `republish`, not both"),
                ));
                ok = false;
            }
            (None, None) => {
                problems.push(diag::whole_file(
                    path,
                    format!("{what}: give `plugin = \"<instance>\"` or `republish = \"<topic>\"`"),
                ));
                ok = false;
            }
            (None, Some(r)) => {
                for (field, t) in [
                    ("device", &spec.device),
                    ("device_type", &spec.device_type),
                    ("device_time", &spec.device_time),
                ] {
                    if let Some(t) = t {
                        problems.push(diag::at(
                            path,
                            text,
                            t.span(),
                            format!("{what}: `{field}` is for plugins; a republish action publishes the rule's output as it is"),
                        ));
                        ok = false;
                    }
                }
                if let Some(why) = crate::listener::policy::refuse_publish(r.get_ref())
                    .filter(|_| !r.get_ref().contains("${"))
                {
                    problems.push(diag::at(
                        path,
                        text,
                        r.span(),
                        format!("{what}: cannot republish to {:?}: {why}", r.get_ref()),
                    ));
                    ok = false;
                }
            }
            (Some(plugin), None) => {
                if let Some(decls) = plugins.decls {
                    if !decls.contains(plugin.get_ref()) {
                        let declared = if !plugins.have_file {
                            format!("there is no {PLUGINS_FILE} beside the rule")
                        } else if decls.decls.is_empty() {
                            format!("{PLUGINS_FILE} declares none")
                        } else {
                            format!("declared: {}", decls.names().collect::<Vec<_>>().join(", "))
                        };
                        problems.push(diag::at(
                            path,
                            text,
                            plugin.span(),
                            format!("{what}: unknown plugin {:?}; it is not declared in {PLUGINS_FILE} ({declared})", plugin.get_ref()),
                        ));
                        ok = false;
                    }
                }
            }
        }
        let mut template = |field: &str, t: &Option<Spanned<String>>| -> Option<Option<Template>> {
            let Some(t) = t else { return Some(None) };
            match Template::parse_with_variables(t.get_ref(), variables) {
                Ok(parsed) if reads_no_variables && parsed.reads_variables() => {
                    problems.push(diag::at(
                        path,
                        text,
                        t.span(),
                        format!("{what} parameter {field}: the error action's templates cannot read SET variables (a message can fail before they are assigned); use payload paths or functions"),
                    ));
                    None
                }
                Ok(parsed) => Some(Some(parsed)),
                Err(e) => {
                    let prefix = format!("{what} parameter {field}: ");
                    problems.push(diag::in_string(
                        path,
                        text,
                        t.span(),
                        t.get_ref(),
                        &e,
                        &prefix,
                    ));
                    None
                }
            }
        };
        let device = template("device", &spec.device);
        let device_type = template("device_type", &spec.device_type);
        let device_time = template("device_time", &spec.device_time);
        let republish = template("republish", &spec.republish);
        if !ok {
            return None;
        }
        let target = match (&spec.plugin, republish?) {
            (Some(plugin), _) => Target::Plugin(plugin.get_ref().clone()),
            (None, Some(topic)) => Target::Republish(topic),
            (None, None) => return None,
        };
        let source = |t: &Option<Spanned<String>>| t.as_ref().map(|t| t.get_ref().clone());
        Some(Action {
            target,
            device: device?,
            device_type: device_type?,
            device_time: device_time?,
            sources: [
                source(&spec.device),
                source(&spec.device_type),
                source(&spec.device_time),
            ],
        })
    };
    let actions: Vec<Option<Action>> = file
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| compile_action(a, &format!("action {}", i + 1), false))
        .collect();
    let error_action = file
        .error_action
        .as_ref()
        .map(|a| compile_action(a, "error_action", true));
    if !problems.is_empty() {
        // In file order (the checks above run by kind).
        let shown = path.display().to_string();
        problems.sort_by_key(|p| diag::position(&p.report, &shown));
        return Err(problems);
    }
    let (Some(statement), Some(actions)) =
        (statement, actions.into_iter().collect::<Option<Vec<_>>>())
    else {
        return Err(vec![diag::whole_file(path, "invalid rule")]);
    };
    if !file.enabled {
        return Ok(None);
    }
    let passthrough = statement.is_passthrough() && !actions.iter().any(Action::reads_payload);
    Ok(Some(Rule {
        name,
        description: file.description,
        statement,
        actions,
        error_action: error_action.flatten(),
        passthrough,
    }))
}

/// Check that every plugin declared in `plugins.toml` (at `path`, with
/// `text`) has a component Weir can find: a shipped plugin's name or a
/// readable file relative to `base_dir`. The component is not compiled
/// (that happens when `weir run` loads it). A `plugins.toml` that does not
/// parse gives no problems here: [`compile_files`] reports those.
pub fn check_plugin_components(path: &Path, text: &str, base_dir: &Path) -> Vec<RuleProblem> {
    let Ok(decls) = PluginDecls::parse(text) else {
        return Vec::new();
    };
    let spans: BTreeMap<String, DeclSpans> = toml::from_str(text).unwrap_or_default();
    let mut problems = Vec::new();
    for (name, decl) in &decls.decls {
        let span = spans
            .get(name)
            .and_then(|s| s.component.as_ref())
            .map(|c| c.span());
        let checked = crate::plugin::loader::component_bytes(name, decl, base_dir)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                // What `weir run` refuses at load: an import not granted.
                crate::plugin::loader::component_imports(&bytes)
                    .and_then(|imports| crate::plugin::loader::check_grants(&imports, &decl.grants))
                    .map_err(|e| format!("plugin {name}: {e}"))
            });
        if let Err(e) = checked {
            problems.push(match span {
                Some(span) => diag::at(path, text, span, e),
                None => diag::whole_file(path, e),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_templates_that_are_one_topic_level() {
        assert_eq!(topic_level("${topic(3)}"), Some(3));
        assert_eq!(topic_level(" ${ topic( 2 ) } "), Some(2));
        assert_eq!(topic_level("${topic(0)}"), None);
        assert_eq!(topic_level("${topic()}"), None);
        assert_eq!(topic_level("${topic(3)}-x"), None);
        assert_eq!(topic_level("${device}"), None);
        assert_eq!(topic_level("${clientid()}"), None);
    }

    #[test]
    fn the_shipped_rules_name_the_device_of_their_topics() {
        // A directory that does not exist: the embedded shipped rules.
        let set = load_dir(Path::new("/nonexistent/weir-rules")).expect("shipped rules");
        assert!(set.by_name("shadow-service").is_some());
        assert_eq!(
            set.device_in("dt/thermostat/dev-1/telemetry"),
            Some("dev-1")
        );
        // Per-thing topics are routed by their thing before the rules are asked.
        assert_eq!(set.device_in("$aws/things/lamp/shadow/update"), None);
        // No rule, or a rule whose device is not a topic level.
        assert_eq!(set.device_in("dt/thermostat/dev-1/status"), None);
        assert_eq!(set.device_in("$weir/alerts/dev-1"), None);
    }

    /// `dt/thermostat//telemetry`: the shipped rule's device is an empty
    /// topic level, which no plugin should keep state for.
    #[test]
    fn a_device_template_that_renders_empty_is_an_error() {
        let set = load_dir(Path::new("/nonexistent/weir-rules")).expect("shipped rules");
        let (_, rule) = set.by_name("telemetry").expect("telemetry rule");
        let payload = serde_json::json!({ "temperature": 21.5 });
        let action = &rule.actions[0];
        let vars = Variables::default();
        let empty = Message::new("dt/thermostat//telemetry", &payload);
        let err = action
            .render_params(&empty, &vars)
            .expect_err("empty device");
        assert!(err.contains("`device`"), "{err}");
        let named = Message::new("dt/thermostat/dev-1/telemetry", &payload);
        let params = action.render_params(&named, &vars).expect("device");
        assert_eq!(params.device, "dev-1");
    }

    #[test]
    fn compiled_filters_match_as_mqtt_does() {
        let filters = [
            "dt/+/+/telemetry",
            "dt/#",
            "#",
            "+/x",
            "a/+",
            "a",
            "$sys/+",
            "+",
            "a/b/#",
        ];
        let topics = [
            "dt/t/d/telemetry",
            "dt/t/d",
            "dt",
            "dt/t/d/telemetry/x",
            "a/x",
            "b/x",
            "a",
            "a/",
            "a/b",
            "a/b/c",
            "$sys/x",
            "$sys",
            "$aws/x",
            "x",
            "",
            "/x",
        ];
        for f in filters {
            let routes = DeviceRoutes::new(vec![(f.to_string(), 1)]);
            for t in topics {
                assert_eq!(
                    routes.level(t).is_some(),
                    weir_sql::topic::topic_matches(f, t),
                    "filter {f:?} topic {t:?}"
                );
            }
        }
    }

    #[test]
    fn many_device_rules_go_through_the_trie_in_rule_order() {
        let mut files = vec![(
            PathBuf::from("r/plugins.toml"),
            "[a]\ncomponent = \"builtin:echo\"\ngrants = { publish = [\"echo/+\"] }\n".to_string(),
        )];
        for i in 0..20 {
            files.push((
                PathBuf::from(format!("r/r{i:02}.toml")),
                format!("sql = \"SELECT * FROM 'site{i}/+/+/#'\"\n[[actions]]\nplugin = \"a\"\ndevice = \"${{topic(3)}}\"\n"),
            ));
        }
        files.push((
            PathBuf::from("r/r99.toml"),
            "sql = \"SELECT * FROM 'site7/#'\"\n[[actions]]\nplugin = \"a\"\ndevice = \"${topic(2)}\"\n".to_string(),
        ));
        let set = compile_files(&files).unwrap_or_else(|p| panic!("{p:?}"));
        assert!(set.devices.many.is_some());
        assert_eq!(set.device_in("site7/gw/child/x"), Some("child"));
        assert_eq!(set.device_in("site19/gw/c9/x/y"), Some("c9"));
        assert_eq!(set.device_in("site7/gw"), Some("gw"));
        assert_eq!(set.device_in("other/gw/c"), None);
    }

    #[test]
    fn rules_that_disagree_or_compute_the_device_route_nothing() {
        let files = vec![
            (PathBuf::from("r/plugins.toml"), "[a]\ncomponent = \"builtin:echo\"\ngrants = { publish = [\"echo/+\"] }\n".to_string()),
            (
                PathBuf::from("r/mixed.toml"),
                "sql = \"SELECT * FROM 'm/+/+'\"\n[[actions]]\nplugin = \"a\"\ndevice = \"${topic(2)}\"\n[[actions]]\nplugin = \"a\"\ndevice = \"${topic(3)}\"\n".to_string(),
            ),
            (
                PathBuf::from("r/payload.toml"),
                "sql = \"SELECT * FROM 'p/+'\"\n[[actions]]\nplugin = \"a\"\ndevice = \"${id}\"\n".to_string(),
            ),
            (
                PathBuf::from("r/site.toml"),
                "sql = \"SELECT * FROM 'site/+/+/x'\"\n[[actions]]\nplugin = \"a\"\ndevice = \"${topic(3)}\"\n".to_string(),
            ),
        ];
        let set = compile_files(&files).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(set.device_in("m/a/b"), None);
        assert_eq!(set.device_in("p/a"), None);
        assert_eq!(set.device_in("site/gw-1/child-7/x"), Some("child-7"));
    }
}
