//! AWS fleet-provisioning templates, in the JSON format AWS uses.
//!
//! A template has `Parameters` (each `{"Type": "String"|"Number", "Default": …}`),
//! `Resources` and an optional `DeviceConfiguration`, and may have `Mappings`
//! (for `Fn::FindInMap`). Resources:
//!
//! - exactly one `AWS::IoT::Thing`: `ThingName` (required), `ThingTypeName`,
//!   `AttributePayload`, `ThingGroups`, and `OverrideSettings` saying what to
//!   do when the thing exists already (`REPLACE`, `MERGE`, `FAIL`,
//!   `DO_NOTHING`; Weir's default when a property has no setting is
//!   `DO_NOTHING`). `BillingGroup` and `PackageVersions` are accepted and
//!   ignored.
//! - at most one `AWS::IoT::Certificate`: `CertificateId` (must resolve to the
//!   certificate being provisioned, normally `{"Ref": "AWS::IoT::Certificate::Id"}`)
//!   and `Status` (default `ACTIVE`).
//! - any number of `AWS::IoT::Policy`: accepted and **ignored** — Weir's topic
//!   policies come from its configuration, per thing type, not from templates.
//!
//! Values may use the intrinsic functions `Ref` (a parameter or
//! `AWS::IoT::Certificate::Id`), `Fn::Join`, `Fn::Sub` (`${Name}`
//! placeholders, `${!Literal}` escapes, optional variable map), `Fn::Select`,
//! `Fn::Split` and `Fn::FindInMap`. `Conditions` (and `Fn::If` & co.) are not
//! supported and are refused when the template is loaded.
//!
//! [`ProvisioningTemplate::from_json`] checks the whole structure up front
//! (unknown resource types, unknown `Ref`s, malformed intrinsics);
//! [`ProvisioningTemplate::provision`] evaluates it for one request and
//! checks the results against AWS's naming rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::registry::{is_valid_thing_name, CertStatus, Thing};

/// The pseudo-parameter holding the id of the certificate being provisioned.
pub const CERTIFICATE_ID_PARAM: &str = "AWS::IoT::Certificate::Id";

const THING: &str = "AWS::IoT::Thing";
const CERTIFICATE: &str = "AWS::IoT::Certificate";
const POLICY: &str = "AWS::IoT::Policy";

/// Errors of provisioning templates.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Reading the template directory or a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An error in one template file of [`ProvisioningTemplate::load_dir`].
    #[error("{}: {source}", path.display())]
    File {
        /// The template file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: Box<TemplateError>,
    },
    /// The template is not JSON.
    #[error("template {template:?}: invalid JSON: {source}")]
    Json {
        /// Template name.
        template: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A template name outside AWS's rule (1–36 characters of `[0-9A-Za-z_-]`).
    #[error("invalid template name {0:?}: must be 1-36 characters of [0-9A-Za-z_-]")]
    InvalidName(String),
    /// A resource whose `Type` is not a thing, certificate or policy.
    #[error("template {template:?}: resource {resource:?} has unsupported Type {type_name:?} (supported: AWS::IoT::Thing, AWS::IoT::Certificate, AWS::IoT::Policy)")]
    UnknownResourceType {
        /// Template name.
        template: String,
        /// The resource's logical name.
        resource: String,
        /// Its `Type`.
        type_name: String,
    },
    /// Any other structural problem found by `from_json`.
    #[error("template {template:?}: {reason}")]
    Invalid {
        /// Template name.
        template: String,
        /// What is wrong, and where.
        reason: String,
    },
    /// A parameter without `Default` that the request does not supply.
    #[error("missing parameter {0:?}")]
    MissingParameter(String),
    /// A parameter value of the wrong type.
    #[error("parameter {name:?}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The resolved thing name breaks AWS's rule.
    #[error("invalid thing name {0:?}: must be 1-128 characters of [a-zA-Z0-9:_-]")]
    InvalidThingName(String),
    /// A resolved value that cannot be used (wrong type, bad name, index out
    /// of range…).
    #[error("{what}: {reason}")]
    InvalidValue {
        /// Where (e.g. `ThingGroups`, `Fn::Select`).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The certificate resource names another certificate than the one being
    /// provisioned.
    #[error("the template's CertificateId {got:?} is not the certificate being provisioned ({expected})")]
    CertificateMismatch {
        /// The certificate being provisioned.
        expected: String,
        /// What the template resolved.
        got: String,
    },
    /// The thing exists and the template's `OverrideSettings` say `FAIL` for a
    /// property it would change.
    #[error(
        "thing {thing:?} already exists with a different {property} and OverrideSettings say FAIL"
    )]
    ThingConflict {
        /// The thing.
        thing: String,
        /// `AttributePayload`, `ThingTypeName` or `ThingGroups`.
        property: &'static str,
    },
}

type Result<T, E = TemplateError> = std::result::Result<T, E>;

/// What to do with a property of a thing that exists already.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverrideAction {
    /// Replace the stored value with the template's.
    Replace,
    /// Merge (attributes: template wins per key; groups: union).
    Merge,
    /// Fail the provisioning if the value would change.
    Fail,
    /// Keep the stored value.
    #[default]
    DoNothing,
}

impl OverrideAction {
    fn parse(s: &str) -> Option<OverrideAction> {
        match s {
            "REPLACE" => Some(OverrideAction::Replace),
            "MERGE" => Some(OverrideAction::Merge),
            "FAIL" => Some(OverrideAction::Fail),
            "DO_NOTHING" => Some(OverrideAction::DoNothing),
            _ => None,
        }
    }
}

/// The thing resource's `OverrideSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverrideSettings {
    /// For `AttributePayload`.
    pub attributes: OverrideAction,
    /// For `ThingTypeName` (never `Merge`).
    pub thing_type: OverrideAction,
    /// For `ThingGroups`.
    pub groups: OverrideAction,
}

/// The result of provisioning: what to register for the device.
#[derive(Clone, Debug, PartialEq)]
pub struct Provisioned {
    /// The thing's name.
    pub thing_name: String,
    /// Its thing type, if the template sets one.
    pub thing_type: Option<String>,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
    /// Its thing groups.
    pub groups: Vec<String>,
    /// The status to give the certificate.
    pub certificate_status: CertStatus,
    /// The template's `DeviceConfiguration`, evaluated, for the response.
    pub device_configuration: Map<String, Value>,
    /// What to do where the thing exists already; a property the template
    /// does not set is always `DoNothing`.
    pub overrides: OverrideSettings,
}

impl Provisioned {
    /// The thing to store: a new thing (version 1, created `now_ms`) if
    /// `existing` is `None`, otherwise `existing` updated according to
    /// [`Provisioned::overrides`] (its version and creation time kept; the
    /// registry bumps the version when storing it).
    pub fn apply(&self, existing: Option<&Thing>, now_ms: i64) -> Result<Thing> {
        let Some(old) = existing else {
            return Ok(Thing {
                name: self.thing_name.clone(),
                thing_type: self.thing_type.clone(),
                attributes: self.attributes.clone(),
                groups: self.groups.clone(),
                created_at_ms: now_ms,
                version: 1,
            });
        };
        let conflict = |property| TemplateError::ThingConflict {
            thing: old.name.clone(),
            property,
        };
        let mut thing = old.clone();
        match self.overrides.attributes {
            OverrideAction::Replace => thing.attributes = self.attributes.clone(),
            OverrideAction::Merge => thing.attributes.extend(self.attributes.clone()),
            OverrideAction::Fail if old.attributes != self.attributes => {
                return Err(conflict("AttributePayload"))
            }
            OverrideAction::Fail | OverrideAction::DoNothing => {}
        }
        match self.overrides.thing_type {
            OverrideAction::Replace | OverrideAction::Merge => {
                thing.thing_type = self.thing_type.clone()
            }
            OverrideAction::Fail if old.thing_type != self.thing_type => {
                return Err(conflict("ThingTypeName"))
            }
            OverrideAction::Fail | OverrideAction::DoNothing => {}
        }
        match self.overrides.groups {
            OverrideAction::Replace => thing.groups = self.groups.clone(),
            OverrideAction::Merge => {
                for g in &self.groups {
                    if !thing.groups.contains(g) {
                        thing.groups.push(g.clone());
                    }
                }
            }
            OverrideAction::Fail if old.groups != self.groups => {
                return Err(conflict("ThingGroups"))
            }
            OverrideAction::Fail | OverrideAction::DoNothing => {}
        }
        Ok(thing)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParamType {
    String,
    Number,
}

#[derive(Clone, Debug)]
struct Parameter {
    ty: ParamType,
    default: Option<Value>,
}

#[derive(Clone, Debug)]
struct ThingResource {
    name: Value,
    thing_type: Option<Value>,
    attributes: Option<Value>,
    groups: Option<Value>,
    overrides: OverrideSettings,
}

#[derive(Clone, Debug, Default)]
struct CertificateResource {
    certificate_id: Option<Value>,
    status: Option<Value>,
}

/// A validated fleet-provisioning template.
#[derive(Clone, Debug)]
pub struct ProvisioningTemplate {
    /// The template name (1–36 characters of `[0-9A-Za-z_-]`).
    pub name: String,
    parameters: BTreeMap<String, Parameter>,
    mappings: Map<String, Value>,
    thing: ThingResource,
    certificate: Option<CertificateResource>,
    device_configuration: Map<String, Value>,
}

/// Whether `name` is a valid template name (AWS: 1–36 of `[0-9A-Za-z_-]`).
pub fn is_valid_template_name(name: &str) -> bool {
    (1..=36).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

fn is_valid_attribute_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'.' | b',' | b'@' | b'/' | b':' | b'#' | b'=' | b'[' | b']' | b'-'
                )
        })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The intrinsic function an object is, if it is one: `{"Ref": …}` or
/// `{"Fn::…": …}` with exactly one key.
fn intrinsic(v: &Value) -> Option<(&str, &Value)> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (k, arg) = obj.iter().next()?;
    (k == "Ref" || k.starts_with("Fn::")).then_some((k.as_str(), arg))
}

/// Splits a `Fn::Sub` string into literal text and `${Name}` placeholders.
/// `${!Text}` is the literal `${Text}`.
fn sub_parts(s: &str) -> std::result::Result<Vec<(bool, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push((false, rest[..start].to_owned()));
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in {s:?}"))?;
        let name = &after[..end];
        match name.strip_prefix('!') {
            Some(lit) => out.push((false, format!("${{{lit}}}"))),
            None if name.is_empty() => return Err(format!("empty `${{}}` in {s:?}")),
            None => out.push((true, name.to_owned())),
        }
        rest = &after[end + 1..];
    }
    out.push((false, rest.to_owned()));
    Ok(out)
}

/// A value made a string: strings as they are, numbers and booleans printed.
fn as_string(what: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(TemplateError::InvalidValue {
            what: what.to_owned(),
            reason: format!("expected a string, got {}", type_name(other)),
        }),
    }
}

fn as_list(what: &str, v: &Value) -> Result<Vec<String>> {
    match v {
        Value::Array(items) => items.iter().map(|i| as_string(what, i)).collect(),
        other => Err(TemplateError::InvalidValue {
            what: what.to_owned(),
            reason: format!("expected a list, got {}", type_name(other)),
        }),
    }
}

struct Checker<'a> {
    template: &'a str,
    parameters: &'a BTreeMap<String, Parameter>,
    mappings: &'a Map<String, Value>,
}

impl Checker<'_> {
    fn invalid(&self, reason: String) -> TemplateError {
        TemplateError::Invalid {
            template: self.template.to_owned(),
            reason,
        }
    }

    fn known_ref(&self, name: &str) -> bool {
        name == CERTIFICATE_ID_PARAM || self.parameters.contains_key(name)
    }

    /// Checks every intrinsic inside `v` (at `at`, for messages).
    fn check(&self, at: &str, v: &Value) -> Result<()> {
        if let Some((func, arg)) = intrinsic(v) {
            return self.check_intrinsic(at, func, arg);
        }
        match v {
            Value::Object(m) => m
                .iter()
                .try_for_each(|(k, v)| self.check(&format!("{at}.{k}"), v)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| self.check(&format!("{at}[{i}]"), v)),
            _ => Ok(()),
        }
    }

    fn args<'v>(&self, at: &str, func: &str, arg: &'v Value, n: usize) -> Result<&'v [Value]> {
        match arg.as_array() {
            Some(items) if items.len() == n => Ok(items),
            _ => Err(self.invalid(format!("{at}: {func} takes a list of {n} arguments"))),
        }
    }

    fn check_intrinsic(&self, at: &str, func: &str, arg: &Value) -> Result<()> {
        let at = format!("{at} ({func})");
        match func {
            "Ref" => match arg.as_str() {
                Some(name) if self.known_ref(name) => Ok(()),
                Some(name) => Err(self.invalid(format!(
                    "{at}: Ref to {name:?}, which is not a declared parameter"
                ))),
                None => Err(self.invalid(format!("{at}: Ref takes a parameter name"))),
            },
            "Fn::Join" => {
                let a = self.args(&at, func, arg, 2)?;
                if !a[0].is_string() {
                    return Err(self.invalid(format!("{at}: the delimiter must be a string")));
                }
                if !(a[1].is_array() || intrinsic(&a[1]).is_some()) {
                    return Err(self.invalid(format!("{at}: the second argument must be a list")));
                }
                self.check(&at, &a[1])
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (s.as_str(), None),
                    Value::Array(a) if a.len() == 2 => match (&a[0], a[1].as_object()) {
                        (Value::String(s), Some(vars)) => (s.as_str(), Some(vars)),
                        _ => {
                            return Err(self.invalid(format!(
                                "{at}: Fn::Sub takes a string or [string, {{variables}}]"
                            )))
                        }
                    },
                    _ => {
                        return Err(self.invalid(format!(
                            "{at}: Fn::Sub takes a string or [string, {{variables}}]"
                        )))
                    }
                };
                if let Some(vars) = vars {
                    for (k, v) in vars {
                        self.check(&format!("{at}.{k}"), v)?;
                    }
                }
                for (is_var, name) in sub_parts(text).map_err(|e| self.invalid(format!("{at}: {e}")))? {
                    let declared = vars.is_some_and(|v| v.contains_key(&name));
                    if is_var && !declared && !self.known_ref(&name) {
                        return Err(self.invalid(format!(
                            "{at}: ${{{name}}} is not a declared parameter"
                        )));
                    }
                }
                Ok(())
            }
            "Fn::Select" => {
                let a = self.args(&at, func, arg, 2)?;
                match &a[0] {
                    Value::Number(n) if n.as_u64().is_some() => {}
                    Value::String(s) if s.parse::<usize>().is_ok() => {}
                    v if intrinsic(v).is_some() => self.check(&at, v)?,
                    _ => {
                        return Err(self.invalid(format!(
                            "{at}: the index must be a non-negative integer"
                        )))
                    }
                }
                if !(a[1].is_array() || intrinsic(&a[1]).is_some()) {
                    return Err(self.invalid(format!("{at}: the second argument must be a list")));
                }
                self.check(&at, &a[1])
            }
            "Fn::Split" => {
                let a = self.args(&at, func, arg, 2)?;
                match a[0].as_str() {
                    Some(d) if !d.is_empty() => {}
                    _ => {
                        return Err(self.invalid(format!(
                            "{at}: the delimiter must be a non-empty string"
                        )))
                    }
                }
                self.check(&at, &a[1])
            }
            "Fn::FindInMap" => {
                let a = self.args(&at, func, arg, 3)?;
                if let Some(map) = a[0].as_str() {
                    if !self.mappings.contains_key(map) {
                        return Err(self.invalid(format!(
                            "{at}: no mapping named {map:?} in Mappings"
                        )));
                    }
                }
                a.iter().try_for_each(|v| self.check(&at, v))
            }
            "Fn::If" | "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" => Err(self.invalid(
                format!("{at}: conditions are not supported by Weir"),
            )),
            other => Err(self.invalid(format!(
                "{at}: unknown intrinsic function {other:?} (supported: Ref, Fn::Join, Fn::Sub, Fn::Select, Fn::Split, Fn::FindInMap)"
            ))),
        }
    }
}

fn obj<'v>(template: &str, at: &str, v: &'v Value) -> Result<&'v Map<String, Value>> {
    v.as_object().ok_or_else(|| TemplateError::Invalid {
        template: template.to_owned(),
        reason: format!("{at} must be an object, not {}", type_name(v)),
    })
}

fn parse_parameters(template: &str, v: Option<&Value>) -> Result<BTreeMap<String, Parameter>> {
    let invalid = |reason: String| TemplateError::Invalid {
        template: template.to_owned(),
        reason,
    };
    let mut out = BTreeMap::new();
    let Some(v) = v else { return Ok(out) };
    for (name, spec) in obj(template, "Parameters", v)? {
        let spec = obj(template, &format!("Parameters.{name}"), spec)?;
        if let Some(key) = spec
            .keys()
            .find(|k| !matches!(k.as_str(), "Type" | "Default" | "Description"))
        {
            return Err(invalid(format!("Parameters.{name}: unknown key {key:?}")));
        }
        let ty = match spec.get("Type").and_then(Value::as_str) {
            Some("String") => ParamType::String,
            Some("Number") => ParamType::Number,
            Some(other) => {
                return Err(invalid(format!(
                    "Parameters.{name}: Type {other:?} is not String or Number"
                )))
            }
            None => return Err(invalid(format!("Parameters.{name}: Type is required"))),
        };
        let default = spec.get("Default").cloned();
        if let Some(d) = &default {
            coerce_param(name, ty, d)
                .map_err(|e| invalid(format!("Parameters.{name}: Default: {e}")))?;
        }
        out.insert(name.clone(), Parameter { ty, default });
    }
    Ok(out)
}

/// Checks a parameter value against its type; Number parameters accept a
/// JSON number or a string holding one (AWS passes parameters as strings).
fn coerce_param(name: &str, ty: ParamType, v: &Value) -> Result<Value> {
    let bad = |reason: String| TemplateError::InvalidParameter {
        name: name.to_owned(),
        reason,
    };
    match (ty, v) {
        (ParamType::String, Value::String(_)) => Ok(v.clone()),
        (ParamType::String, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (ParamType::String, Value::Bool(b)) => Ok(Value::String(b.to_string())),
        (ParamType::Number, Value::Number(_)) => Ok(v.clone()),
        (ParamType::Number, Value::String(s))
            if s.trim().parse::<f64>().is_ok_and(f64::is_finite) =>
        {
            Ok(Value::String(s.trim().to_owned()))
        }
        (ParamType::Number, other) => Err(bad(format!(
            "expected a Number, got {}",
            match other {
                Value::String(s) => format!("{s:?}"),
                other => type_name(other).to_owned(),
            }
        ))),
        (ParamType::String, other) => {
            Err(bad(format!("expected a String, got {}", type_name(other))))
        }
    }
}

fn parse_overrides(template: &str, resource: &str, v: Option<&Value>) -> Result<OverrideSettings> {
    let mut out = OverrideSettings::default();
    let Some(v) = v else { return Ok(out) };
    let at = format!("Resources.{resource}.OverrideSettings");
    for (key, action) in obj(template, &at, v)? {
        let parsed = action.as_str().and_then(OverrideAction::parse);
        let invalid = |reason: String| TemplateError::Invalid {
            template: template.to_owned(),
            reason: format!("{at}.{key}: {reason}"),
        };
        let Some(parsed) = parsed else {
            return Err(invalid(format!(
                "{action} is not REPLACE, MERGE, FAIL or DO_NOTHING"
            )));
        };
        match key.as_str() {
            "AttributePayload" => out.attributes = parsed,
            "ThingGroups" => out.groups = parsed,
            "ThingTypeName" if parsed == OverrideAction::Merge => {
                return Err(invalid("MERGE does not apply to a thing type".into()))
            }
            "ThingTypeName" => out.thing_type = parsed,
            other => return Err(invalid(format!("unknown property {other:?}"))),
        }
    }
    Ok(out)
}

impl ProvisioningTemplate {
    /// Parses and validates a template. `name` must follow AWS's rule
    /// (1–36 characters of `[0-9A-Za-z_-]`).
    pub fn from_json(name: &str, json: &str) -> Result<Self, TemplateError> {
        if !is_valid_template_name(name) {
            return Err(TemplateError::InvalidName(name.to_owned()));
        }
        let invalid = |reason: String| TemplateError::Invalid {
            template: name.to_owned(),
            reason,
        };
        let root: Value = serde_json::from_str(json).map_err(|source| TemplateError::Json {
            template: name.to_owned(),
            source,
        })?;
        let root = obj(name, "the template", &root)?;
        for key in root.keys() {
            match key.as_str() {
                "Parameters" | "Resources" | "DeviceConfiguration" | "Mappings" => {}
                "Conditions" => return Err(invalid("Conditions are not supported by Weir".into())),
                other => return Err(invalid(format!("unknown top-level key {other:?}"))),
            }
        }
        let parameters = parse_parameters(name, root.get("Parameters"))?;
        let mappings = match root.get("Mappings") {
            Some(m) => obj(name, "Mappings", m)?.clone(),
            None => Map::new(),
        };
        let device_configuration = match root.get("DeviceConfiguration") {
            Some(d) => obj(name, "DeviceConfiguration", d)?.clone(),
            None => Map::new(),
        };
        let checker = Checker {
            template: name,
            parameters: &parameters,
            mappings: &mappings,
        };
        checker.check(
            "DeviceConfiguration",
            &Value::Object(device_configuration.clone()),
        )?;

        let resources = root
            .get("Resources")
            .ok_or_else(|| invalid("Resources is required".into()))?;
        let mut thing = None;
        let mut certificate = None;
        for (logical, res) in obj(name, "Resources", resources)? {
            let at = format!("Resources.{logical}");
            let res = obj(name, &at, res)?;
            if let Some(key) = res
                .keys()
                .find(|k| !matches!(k.as_str(), "Type" | "Properties" | "OverrideSettings"))
            {
                let reason = if key == "Condition" {
                    format!("{at}: Condition is not supported by Weir")
                } else {
                    format!("{at}: unknown key {key:?}")
                };
                return Err(invalid(reason));
            }
            let ty = res
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{at}: Type is required")))?;
            let empty = Value::Object(Map::new());
            let props_value = res.get("Properties").unwrap_or(&empty);
            let props = obj(name, &format!("{at}.Properties"), props_value)?;
            match ty {
                THING => {
                    if thing.is_some() {
                        return Err(invalid(format!(
                            "{at}: only one AWS::IoT::Thing resource is allowed"
                        )));
                    }
                    for key in props.keys() {
                        if !matches!(
                            key.as_str(),
                            "ThingName"
                                | "ThingTypeName"
                                | "AttributePayload"
                                | "ThingGroups"
                                | "BillingGroup"
                                | "PackageVersions"
                        ) {
                            return Err(invalid(format!(
                                "{at}.Properties: unknown property {key:?}"
                            )));
                        }
                    }
                    let thing_name = props
                        .get("ThingName")
                        .cloned()
                        .ok_or_else(|| invalid(format!("{at}.Properties.ThingName is required")))?;
                    let mut attributes = props.get("AttributePayload").cloned();
                    // CloudFormation's shape {"Attributes": {...}} is accepted too.
                    if let Some(Value::Object(m)) = &attributes {
                        if m.len() == 1 {
                            if let Some(inner @ Value::Object(_)) = m.get("Attributes") {
                                attributes = Some(inner.clone());
                            }
                        }
                    }
                    if let Some(a) = &attributes {
                        if !a.is_object() && intrinsic(a).is_none() {
                            return Err(invalid(format!(
                                "{at}.Properties.AttributePayload must be an object of name/value pairs"
                            )));
                        }
                    }
                    let groups = props.get("ThingGroups").cloned();
                    if let Some(g) = &groups {
                        if !g.is_array() && intrinsic(g).is_none() {
                            return Err(invalid(format!(
                                "{at}.Properties.ThingGroups must be a list"
                            )));
                        }
                    }
                    let resource = ThingResource {
                        name: thing_name,
                        thing_type: props.get("ThingTypeName").cloned(),
                        attributes,
                        groups,
                        overrides: parse_overrides(name, logical, res.get("OverrideSettings"))?,
                    };
                    checker.check(&format!("{at}.Properties"), props_value)?;
                    thing = Some(resource);
                }
                CERTIFICATE => {
                    if certificate.is_some() {
                        return Err(invalid(format!(
                            "{at}: only one AWS::IoT::Certificate resource is allowed"
                        )));
                    }
                    for key in props.keys() {
                        if !matches!(key.as_str(), "CertificateId" | "Status") {
                            return Err(invalid(format!(
                                "{at}.Properties: unsupported property {key:?} (fleet provisioning binds the certificate by CertificateId)"
                            )));
                        }
                    }
                    if let Some(s) = props.get("Status").and_then(Value::as_str) {
                        s.parse::<CertStatus>()
                            .map_err(|e| invalid(format!("{at}.Properties.Status: {e}")))?;
                    }
                    checker.check(&format!("{at}.Properties"), props_value)?;
                    certificate = Some(CertificateResource {
                        certificate_id: props.get("CertificateId").cloned(),
                        status: props.get("Status").cloned(),
                    });
                }
                // Accepted and ignored: Weir's policies come from its config.
                POLICY => {}
                other => {
                    return Err(TemplateError::UnknownResourceType {
                        template: name.to_owned(),
                        resource: logical.clone(),
                        type_name: other.to_owned(),
                    })
                }
            }
        }
        let thing =
            thing.ok_or_else(|| invalid("Resources needs one AWS::IoT::Thing resource".into()))?;
        Ok(ProvisioningTemplate {
            name: name.to_owned(),
            parameters,
            mappings,
            thing,
            certificate,
            device_configuration,
        })
    }

    /// Loads every `<name>.json` file of `dir` as template `<name>`. Errors
    /// name the file.
    pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, ProvisioningTemplate>, TemplateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TemplateError::Io { path, source }
        };
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") || !path.is_file() {
                continue;
            }
            let in_file = |source: TemplateError| TemplateError::File {
                path: path.clone(),
                source: Box::new(source),
            };
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let json = std::fs::read_to_string(&path).map_err(io(&path))?;
            let template = Self::from_json(stem, &json).map_err(in_file)?;
            out.insert(template.name.clone(), template);
        }
        Ok(out)
    }

    /// Names of the declared parameters.
    pub fn parameter_names(&self) -> impl Iterator<Item = &str> {
        self.parameters.keys().map(String::as_str)
    }

    /// Evaluates the template for one request: `parameters` as sent by the
    /// device, `certificate_id` the certificate being provisioned (the value
    /// of `AWS::IoT::Certificate::Id`, whatever the request says).
    pub fn provision(
        &self,
        parameters: &Map<String, Value>,
        certificate_id: &str,
    ) -> Result<Provisioned, TemplateError> {
        let mut params: BTreeMap<&str, Value> = BTreeMap::new();
        for (name, spec) in &self.parameters {
            if name == CERTIFICATE_ID_PARAM {
                continue;
            }
            let value = parameters
                .get(name)
                .filter(|v| !v.is_null())
                .or(spec.default.as_ref())
                .ok_or_else(|| TemplateError::MissingParameter(name.clone()))?;
            params.insert(name, coerce_param(name, spec.ty, value)?);
        }
        params.insert(
            CERTIFICATE_ID_PARAM,
            Value::String(certificate_id.to_owned()),
        );
        let eval = Eval {
            params: &params,
            mappings: &self.mappings,
        };

        let thing_name = as_string("ThingName", &eval.eval(&self.thing.name)?)?;
        if !is_valid_thing_name(&thing_name) {
            return Err(TemplateError::InvalidThingName(thing_name));
        }
        let thing_type = match &self.thing.thing_type {
            Some(t) => {
                let t = as_string("ThingTypeName", &eval.eval(t)?)?;
                if !is_valid_thing_name(&t) {
                    return Err(TemplateError::InvalidValue {
                        what: "ThingTypeName".into(),
                        reason: format!("{t:?} must be 1-128 characters of [a-zA-Z0-9:_-]"),
                    });
                }
                Some(t)
            }
            None => None,
        };
        let mut attributes = BTreeMap::new();
        if let Some(a) = &self.thing.attributes {
            let evaluated = eval.eval(a)?;
            let Value::Object(map) = evaluated else {
                return Err(TemplateError::InvalidValue {
                    what: "AttributePayload".into(),
                    reason: format!("expected an object, got {}", type_name(&evaluated)),
                });
            };
            for (k, v) in map {
                let what = format!("AttributePayload.{k}");
                if !is_valid_attribute_name(&k) {
                    return Err(TemplateError::InvalidValue {
                        what,
                        reason: "attribute names are 1-128 characters of [a-zA-Z0-9_.,@/:#=[]-]"
                            .into(),
                    });
                }
                let v = as_string(&what, &v)?;
                if v.len() > 800 {
                    return Err(TemplateError::InvalidValue {
                        what,
                        reason: "attribute values are at most 800 characters".into(),
                    });
                }
                attributes.insert(k, v);
            }
        }
        let mut groups: Vec<String> = Vec::new();
        if let Some(g) = &self.thing.groups {
            for group in as_list("ThingGroups", &eval.eval(g)?)? {
                if !is_valid_thing_name(&group) {
                    return Err(TemplateError::InvalidValue {
                        what: "ThingGroups".into(),
                        reason: format!("{group:?} must be 1-128 characters of [a-zA-Z0-9:_-]"),
                    });
                }
                if !groups.contains(&group) {
                    groups.push(group);
                }
            }
        }
        let mut certificate_status = CertStatus::Active;
        if let Some(cert) = &self.certificate {
            if let Some(id) = &cert.certificate_id {
                let got = as_string("CertificateId", &eval.eval(id)?)?;
                if got != certificate_id {
                    return Err(TemplateError::CertificateMismatch {
                        expected: certificate_id.to_owned(),
                        got,
                    });
                }
            }
            if let Some(status) = &cert.status {
                let s = as_string("Status", &eval.eval(status)?)?;
                certificate_status = s.parse().map_err(|e| TemplateError::InvalidValue {
                    what: "Certificate Status".into(),
                    reason: format!("{e}"),
                })?;
            }
        }
        let mut device_configuration = Map::new();
        for (k, v) in &self.device_configuration {
            device_configuration.insert(k.clone(), eval.eval(v)?);
        }
        let mut overrides = self.thing.overrides.clone();
        if self.thing.attributes.is_none() {
            overrides.attributes = OverrideAction::DoNothing;
        }
        if self.thing.thing_type.is_none() {
            overrides.thing_type = OverrideAction::DoNothing;
        }
        if self.thing.groups.is_none() {
            overrides.groups = OverrideAction::DoNothing;
        }
        Ok(Provisioned {
            thing_name,
            thing_type,
            attributes,
            groups,
            certificate_status,
            device_configuration,
            overrides,
        })
    }
}

struct Eval<'a> {
    params: &'a BTreeMap<&'a str, Value>,
    mappings: &'a Map<String, Value>,
}

impl Eval<'_> {
    fn eval(&self, v: &Value) -> Result<Value> {
        if let Some((func, arg)) = intrinsic(v) {
            return self.intrinsic(func, arg);
        }
        Ok(match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), self.eval(v)?)))
                    .collect::<Result<_>>()?,
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.eval(v)).collect::<Result<_>>()?)
            }
            other => other.clone(),
        })
    }

    fn lookup(&self, name: &str) -> Result<Value> {
        self.params
            .get(name)
            .cloned()
            .ok_or_else(|| TemplateError::MissingParameter(name.to_owned()))
    }

    fn intrinsic(&self, func: &str, arg: &Value) -> Result<Value> {
        let bad = |reason: String| TemplateError::InvalidValue {
            what: func.to_owned(),
            reason,
        };
        let two = |arg: &Value| -> Result<(Value, Value)> {
            match arg.as_array().map(Vec::as_slice) {
                Some([a, b]) => Ok((a.clone(), b.clone())),
                _ => Err(bad("expected a list of 2 arguments".into())),
            }
        };
        match func {
            "Ref" => {
                let name = arg.as_str().ok_or_else(|| bad("expected a name".into()))?;
                self.lookup(name)
            }
            "Fn::Join" => {
                let (delim, list) = two(arg)?;
                let delim = as_string(func, &delim)?;
                let items = as_list(func, &self.eval(&list)?)?;
                Ok(Value::String(items.join(&delim)))
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::Array(a) if a.len() == 2 => (
                        a[0].as_str().unwrap_or_default(),
                        a[1].as_object().cloned().unwrap_or_default(),
                    ),
                    other => (other.as_str().unwrap_or_default(), Map::new()),
                };
                let mut out = String::new();
                for (is_var, part) in sub_parts(text).map_err(bad)? {
                    if !is_var {
                        out.push_str(&part);
                        continue;
                    }
                    let value = match vars.get(&part) {
                        Some(v) => self.eval(v)?,
                        None => self.lookup(&part)?,
                    };
                    out.push_str(&as_string(func, &value)?);
                }
                Ok(Value::String(out))
            }
            "Fn::Select" => {
                let (index, list) = two(arg)?;
                let index = match self.eval(&index)? {
                    Value::Number(n) => n.as_u64().and_then(|i| usize::try_from(i).ok()),
                    Value::String(s) => s.trim().parse::<usize>().ok(),
                    _ => None,
                }
                .ok_or_else(|| bad("the index must be a non-negative integer".into()))?;
                match self.eval(&list)? {
                    Value::Array(items) => items.get(index).cloned().ok_or_else(|| {
                        bad(format!(
                            "index {index} is out of range for a list of {}",
                            items.len()
                        ))
                    }),
                    other => Err(bad(format!("expected a list, got {}", type_name(&other)))),
                }
            }
            "Fn::Split" => {
                let (delim, source) = two(arg)?;
                let delim = as_string(func, &delim)?;
                if delim.is_empty() {
                    return Err(bad("the delimiter must not be empty".into()));
                }
                let source = as_string(func, &self.eval(&source)?)?;
                Ok(Value::Array(
                    source
                        .split(delim.as_str())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                ))
            }
            "Fn::FindInMap" => {
                let keys = match arg.as_array() {
                    Some(a) if a.len() == 3 => a
                        .iter()
                        .map(|k| as_string(func, &self.eval(k)?))
                        .collect::<Result<Vec<_>>>()?,
                    _ => return Err(bad("expected a list of 3 arguments".into())),
                };
                self.mappings
                    .get(&keys[0])
                    .and_then(|m| m.get(&keys[1]))
                    .and_then(|m| m.get(&keys[2]))
                    .map(|v| self.eval(v))
                    .transpose()?
                    .ok_or_else(|| {
                        bad(format!(
                            "no entry {:?} / {:?} in mapping {:?}",
                            keys[1], keys[2], keys[0]
                        ))
                    })
            }
            other => Err(bad(format!("unsupported intrinsic function {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CERT: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    const EXAMPLE: &str = r#"{
      "Parameters": {
        "SerialNumber": {"Type": "String"},
        "Location": {"Type": "String", "Default": "WA"},
        "AWS::IoT::Certificate::Id": {"Type": "String"}
      },
      "Resources": {
        "thing": {
          "Type": "AWS::IoT::Thing",
          "Properties": {
            "ThingName": {"Fn::Join": ["", ["sensor_", {"Ref": "SerialNumber"}]]},
            "ThingTypeName": "thermostat",
            "AttributePayload": {"version": "v1", "serialNumber": {"Ref": "SerialNumber"}, "location": {"Ref": "Location"}},
            "ThingGroups": ["v1-lightbulbs", {"Ref": "Location"}]
          },
          "OverrideSettings": {"AttributePayload": "MERGE", "ThingTypeName": "REPLACE", "ThingGroups": "DO_NOTHING"}
        },
        "certificate": {
          "Type": "AWS::IoT::Certificate",
          "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"}
        },
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "x"}}
      },
      "DeviceConfiguration": {"FallbackUrl": "https://www.example.com/test-site", "LocationUrl": {"Ref": "Location"}}
    }"#;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// A template whose thing is named by `name_expr`, with extra parameters.
    fn with_name(
        extra_params: Value,
        name_expr: Value,
    ) -> std::result::Result<ProvisioningTemplate, TemplateError> {
        let t = json!({
            "Parameters": extra_params,
            "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": name_expr}}}
        });
        ProvisioningTemplate::from_json("t", &t.to_string())
    }

    #[test]
    fn aws_example() {
        let t = ProvisioningTemplate::from_json("fleet-v1", EXAMPLE).unwrap();
        assert_eq!(t.name, "fleet-v1");
        let p = t
            .provision(&params(json!({"SerialNumber": "123"})), CERT)
            .unwrap();
        assert_eq!(p.thing_name, "sensor_123");
        assert_eq!(p.thing_type.as_deref(), Some("thermostat"));
        assert_eq!(
            p.attributes,
            BTreeMap::from([
                ("version".to_string(), "v1".to_string()),
                ("serialNumber".to_string(), "123".to_string()),
                ("location".to_string(), "WA".to_string()),
            ])
        );
        assert_eq!(p.groups, ["v1-lightbulbs", "WA"]);
        assert_eq!(p.certificate_status, CertStatus::Active);
        assert_eq!(
            Value::Object(p.device_configuration.clone()),
            json!({"FallbackUrl": "https://www.example.com/test-site", "LocationUrl": "WA"})
        );
        assert_eq!(
            p.overrides,
            OverrideSettings {
                attributes: OverrideAction::Merge,
                thing_type: OverrideAction::Replace,
                groups: OverrideAction::DoNothing,
            }
        );

        // A supplied parameter beats the default; the certificate id always
        // comes from the caller.
        let p = t
            .provision(
                &params(json!({"SerialNumber": "9", "Location": "OR", "AWS::IoT::Certificate::Id": "evil"})),
                CERT,
            )
            .unwrap();
        assert_eq!(p.groups, ["v1-lightbulbs", "OR"]);
        assert_eq!(p.attributes["location"], "OR");
    }

    #[test]
    fn missing_parameter() {
        let t = ProvisioningTemplate::from_json("t", EXAMPLE).unwrap();
        let err = t.provision(&Map::new(), CERT).unwrap_err();
        assert!(
            matches!(err, TemplateError::MissingParameter(ref n) if n == "SerialNumber"),
            "{err}"
        );
        // null counts as missing.
        let err = t
            .provision(&params(json!({"SerialNumber": null})), CERT)
            .unwrap_err();
        assert!(matches!(err, TemplateError::MissingParameter(_)), "{err}");
    }

    #[test]
    fn number_parameter() {
        let t = with_name(
            json!({"Unit": {"Type": "Number"}, "Rev": {"Type": "Number", "Default": 2}}),
            json!({"Fn::Join": ["-", ["unit", {"Ref": "Unit"}, {"Ref": "Rev"}]]}),
        )
        .unwrap();
        let p = t.provision(&params(json!({"Unit": 42})), CERT).unwrap();
        assert_eq!(p.thing_name, "unit-42-2");
        // AWS sends parameters as strings: a numeric string is a Number.
        let p = t.provision(&params(json!({"Unit": " 17 "})), CERT).unwrap();
        assert_eq!(p.thing_name, "unit-17-2");
        for bad in [json!("seven"), json!(true), json!([1])] {
            let err = t
                .provision(&params(json!({"Unit": bad})), CERT)
                .unwrap_err();
            assert!(
                matches!(err, TemplateError::InvalidParameter { ref name, .. } if name == "Unit"),
                "{err}"
            );
            assert!(err.to_string().contains("Number"), "{err}");
        }
        // A bad Default is caught at load.
        let err =
            with_name(json!({"N": {"Type": "Number", "Default": "x"}}), json!("a")).unwrap_err();
        assert!(err.to_string().contains("Default"), "{err}");
        let err = with_name(json!({"N": {"Type": "Integer"}}), json!("a")).unwrap_err();
        assert!(err.to_string().contains("Integer"), "{err}");
    }

    #[test]
    fn fn_sub() {
        let t = with_name(
            json!({"Serial": {"Type": "String"}, "Site": {"Type": "String", "Default": "hq"}}),
            json!({"Fn::Sub": "dev_${Site}_${Serial}"}),
        )
        .unwrap();
        let p = t.provision(&params(json!({"Serial": "A1"})), CERT).unwrap();
        assert_eq!(p.thing_name, "dev_hq_A1");

        // Variable map and the ${!Literal} escape, in the device configuration.
        let tpl = json!({
            "Parameters": {"Serial": {"Type": "String"}},
            "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": {"Fn::Sub": ["${Prefix}-${Serial}", {"Prefix": {"Fn::Select": [1, ["a", "b"]]}}]}
            }}},
            "DeviceConfiguration": {"Text": {"Fn::Sub": "${!NotAVar} ${AWS::IoT::Certificate::Id}"}}
        });
        let t = ProvisioningTemplate::from_json("t", &tpl.to_string()).unwrap();
        let p = t.provision(&params(json!({"Serial": "9"})), CERT).unwrap();
        assert_eq!(p.thing_name, "b-9");
        assert_eq!(
            p.device_configuration["Text"],
            format!("${{NotAVar}} {CERT}")
        );

        // An undeclared placeholder is refused at load.
        let err = with_name(json!({}), json!({"Fn::Sub": "x_${Nope}"})).unwrap_err();
        assert!(err.to_string().contains("Nope"), "{err}");
        let err = with_name(json!({}), json!({"Fn::Sub": "x_${Nope"})).unwrap_err();
        assert!(err.to_string().contains("unterminated"), "{err}");
    }

    #[test]
    fn select_split_and_find_in_map() {
        let tpl = json!({
            "Parameters": {"Csv": {"Type": "String"}, "Region": {"Type": "String"}},
            "Mappings": {"Sites": {"eu": {"Group": "europe"}, "us": {"Group": "america"}}},
            "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
                "ThingName": {"Fn::Select": ["2", {"Fn::Split": [",", {"Ref": "Csv"}]}]},
                "ThingGroups": {"Fn::Split": [",", {"Ref": "Csv"}]},
                "AttributePayload": {"group": {"Fn::FindInMap": ["Sites", {"Ref": "Region"}, "Group"]}}
            }}}
        });
        let t = ProvisioningTemplate::from_json("t", &tpl.to_string()).unwrap();
        let p = t
            .provision(&params(json!({"Csv": "a,b,c,a", "Region": "eu"})), CERT)
            .unwrap();
        assert_eq!(p.thing_name, "c");
        assert_eq!(p.groups, ["a", "b", "c"], "deduplicated, in order");
        assert_eq!(p.attributes["group"], "europe");

        let err = t
            .provision(&params(json!({"Csv": "a,b", "Region": "eu"})), CERT)
            .unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        let err = t
            .provision(&params(json!({"Csv": "a,b,c", "Region": "asia"})), CERT)
            .unwrap_err();
        assert!(err.to_string().contains("asia"), "{err}");
    }

    #[test]
    fn bad_thing_name() {
        let t = with_name(
            json!({"S": {"Type": "String"}}),
            json!({"Fn::Join": ["", ["d_", {"Ref": "S"}]]}),
        )
        .unwrap();
        for bad in ["has space", "a/b", "x#", "ü"] {
            let err = t.provision(&params(json!({"S": bad})), CERT).unwrap_err();
            assert!(
                matches!(err, TemplateError::InvalidThingName(_)),
                "{bad}: {err}"
            );
        }
        let long = "x".repeat(127);
        let err = t.provision(&params(json!({"S": long})), CERT).unwrap_err();
        assert!(matches!(err, TemplateError::InvalidThingName(_)), "{err}");
        let ok = "x".repeat(126);
        assert!(t.provision(&params(json!({"S": ok})), CERT).is_ok());
        let t = with_name(json!({}), json!("")).unwrap();
        assert!(matches!(
            t.provision(&Map::new(), CERT),
            Err(TemplateError::InvalidThingName(_))
        ));
    }

    #[test]
    fn structural_errors() {
        let thing = json!({"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a"}});
        let cases = [
            (
                json!({"Resources": {"x": {"Type": "AWS::S3::Bucket"}, "thing": thing}}),
                "AWS::S3::Bucket",
            ),
            (json!({"Resources": {}}), "AWS::IoT::Thing"),
            (json!({"Parameters": {}}), "Resources is required"),
            (
                json!({"Resources": {"thing": thing}, "Conditions": {}}),
                "Conditions",
            ),
            (
                json!({"Resources": {"thing": thing}, "Outputs": {}}),
                "Outputs",
            ),
            (
                json!({"Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "Nope"}}}}}),
                "Nope",
            ),
            (
                json!({"Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::GetAtt": ["a", "b"]}}}}}),
                "Fn::GetAtt",
            ),
            (
                json!({"Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::If": ["c", "a", "b"]}}}}}),
                "conditions",
            ),
            (
                json!({"Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::Join": ["", "notalist"]}}}}}),
                "list",
            ),
            (
                json!({"Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {}}}}),
                "ThingName is required",
            ),
            (
                json!({"Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a", "Colour": "red"}}}}),
                "Colour",
            ),
            (
                json!({"Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a"}, "OverrideSettings": {"ThingTypeName": "MERGE"}}}}),
                "MERGE",
            ),
            (
                json!({"Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a"}, "OverrideSettings": {"ThingGroups": "SOMETIMES"}}}}),
                "SOMETIMES",
            ),
            (
                json!({"Resources": {"thing": thing, "c": {"Type": "AWS::IoT::Certificate", "Properties": {"Status": "ENABLED"}}}}),
                "ENABLED",
            ),
            (
                json!({"Resources": {"thing": thing, "c": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificatePem": "x"}}}}),
                "CertificatePem",
            ),
            (
                json!({"Resources": {"thing": thing, "thing2": thing}}),
                "only one",
            ),
            (
                json!({"Resources": {"thing": thing}, "Parameters": {"P": {"Type": "String", "Allowed": []}}}),
                "Allowed",
            ),
        ];
        for (tpl, want) in cases {
            let err = ProvisioningTemplate::from_json("t", &tpl.to_string()).unwrap_err();
            assert!(err.to_string().contains(want), "{tpl}: {err}");
        }
        let err = ProvisioningTemplate::from_json("t", "{").unwrap_err();
        assert!(matches!(err, TemplateError::Json { .. }), "{err}");
        let err = ProvisioningTemplate::from_json("bad name", EXAMPLE).unwrap_err();
        assert!(matches!(err, TemplateError::InvalidName(_)), "{err}");
        let err = ProvisioningTemplate::from_json(
            "t",
            &json!({"Resources": {"x": {"Type": "AWS::S3::Bucket"}}}).to_string(),
        )
        .unwrap_err();
        assert!(
            matches!(err, TemplateError::UnknownResourceType { .. }),
            "{err}"
        );
    }

    #[test]
    fn certificate_resource() {
        let tpl = |status: Value, id: Value| {
            json!({
                "Parameters": {"S": {"Type": "String", "Default": "PENDING_ACTIVATION"}},
                "Resources": {
                    "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "a"}},
                    "cert": {"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": id, "Status": status}}
                }
            })
            .to_string()
        };
        let id_ref = json!({"Ref": "AWS::IoT::Certificate::Id"});
        // AWS's own examples write "Active".
        let t =
            ProvisioningTemplate::from_json("t", &tpl(json!("Active"), id_ref.clone())).unwrap();
        assert_eq!(
            t.provision(&Map::new(), CERT).unwrap().certificate_status,
            CertStatus::Active
        );
        let t = ProvisioningTemplate::from_json("t", &tpl(json!({"Ref": "S"}), id_ref.clone()))
            .unwrap();
        assert_eq!(
            t.provision(&Map::new(), CERT).unwrap().certificate_status,
            CertStatus::PendingActivation
        );
        let err = t
            .provision(&params(json!({"S": "BOGUS"})), CERT)
            .unwrap_err();
        assert!(err.to_string().contains("BOGUS"), "{err}");

        let t =
            ProvisioningTemplate::from_json("t", &tpl(json!("ACTIVE"), json!("other"))).unwrap();
        let err = t.provision(&Map::new(), CERT).unwrap_err();
        assert!(
            matches!(err, TemplateError::CertificateMismatch { .. }),
            "{err}"
        );

        // No certificate resource: ACTIVE.
        let t = with_name(json!({}), json!("a")).unwrap();
        assert_eq!(
            t.provision(&Map::new(), CERT).unwrap().certificate_status,
            CertStatus::Active
        );
    }

    #[test]
    fn apply_overrides() {
        let t = ProvisioningTemplate::from_json("t", EXAMPLE).unwrap();
        let p = t
            .provision(&params(json!({"SerialNumber": "1"})), CERT)
            .unwrap();
        let new = p.apply(None, 77).unwrap();
        assert_eq!(new.name, "sensor_1");
        assert_eq!(new.created_at_ms, 77);
        assert_eq!(new.version, 1);
        assert_eq!(new.groups, p.groups);

        let old = Thing {
            name: "sensor_1".into(),
            thing_type: Some("old-type".into()),
            attributes: BTreeMap::from([
                ("keep".to_string(), "1".to_string()),
                ("version".to_string(), "v0".to_string()),
            ]),
            groups: vec!["old-group".into()],
            created_at_ms: 5,
            version: 4,
        };
        // MERGE attributes, REPLACE type, DO_NOTHING groups.
        let updated = p.apply(Some(&old), 77).unwrap();
        assert_eq!(updated.attributes["keep"], "1");
        assert_eq!(updated.attributes["version"], "v1");
        assert_eq!(updated.attributes["location"], "WA");
        assert_eq!(updated.thing_type.as_deref(), Some("thermostat"));
        assert_eq!(updated.groups, ["old-group"]);
        assert_eq!((updated.created_at_ms, updated.version), (5, 4));

        let mut fail = p.clone();
        fail.overrides.groups = OverrideAction::Fail;
        let err = fail.apply(Some(&old), 0).unwrap_err();
        assert!(
            matches!(
                err,
                TemplateError::ThingConflict {
                    property: "ThingGroups",
                    ..
                }
            ),
            "{err}"
        );
        let mut same = old.clone();
        same.groups = p.groups.clone();
        fail.apply(Some(&same), 0).unwrap();

        let mut replace = p.clone();
        replace.overrides = OverrideSettings {
            attributes: OverrideAction::Replace,
            thing_type: OverrideAction::DoNothing,
            groups: OverrideAction::Merge,
        };
        let updated = replace.apply(Some(&old), 0).unwrap();
        assert_eq!(updated.attributes, p.attributes);
        assert_eq!(updated.thing_type.as_deref(), Some("old-type"));
        assert_eq!(updated.groups, ["old-group", "v1-lightbulbs", "WA"]);

        // Properties the template does not set are never touched.
        let t = with_name(json!({}), json!("sensor_1")).unwrap();
        let p = t.provision(&Map::new(), CERT).unwrap();
        assert_eq!(p.overrides, OverrideSettings::default());
        assert_eq!(p.apply(Some(&old), 0).unwrap(), old);
    }

    #[test]
    fn load_dir_names_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fleet.json"), EXAMPLE).unwrap();
        std::fs::write(dir.path().join("README.md"), "not a template").unwrap();
        let loaded = ProvisioningTemplate::load_dir(dir.path()).unwrap();
        assert_eq!(loaded.keys().collect::<Vec<_>>(), ["fleet"]);
        assert_eq!(loaded["fleet"].name, "fleet");
        let mut names: Vec<_> = loaded["fleet"].parameter_names().collect();
        names.sort();
        assert_eq!(
            names,
            ["AWS::IoT::Certificate::Id", "Location", "SerialNumber"]
        );

        std::fs::write(dir.path().join("broken.json"), "{\"Resources\": 3}").unwrap();
        let err = ProvisioningTemplate::load_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("broken.json"), "{err}");
        std::fs::remove_file(dir.path().join("broken.json")).unwrap();

        std::fs::write(dir.path().join("bad name.json"), EXAMPLE).unwrap();
        let err = ProvisioningTemplate::load_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("bad name.json"), "{err}");

        let err = ProvisioningTemplate::load_dir(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, TemplateError::Io { .. }), "{err}");
    }
}
