//! Topic policies: which topics a connection may publish to, subscribe to and
//! receive from, written as MQTT topic filters with AWS IoT policy variables.
//!
//! A [`Policy`] lists filters such as `dt/+/${iot:Connection.Thing.ThingName}/#`.
//! Supported variables, as in AWS IoT Core:
//!
//! | variable                                   | value                       |
//! |--------------------------------------------|-----------------------------|
//! | `${iot:Connection.Thing.ThingName}`        | the thing's name            |
//! | `${iot:Connection.Thing.ThingTypeName}`    | the thing's type            |
//! | `${iot:Connection.Thing.Attributes[name]}` | the thing's attribute `name`|
//! | `${iot:ClientId}`                          | the MQTT client id          |
//!
//! [`Policy::resolve`] substitutes them for one connection's [`Identity`].
//! As in AWS, an entry whose variable cannot be resolved (no thing, no thing
//! type, no such attribute) is dropped, so it matches nothing. An entry is
//! also dropped when a substituted value is empty or contains `+`, `#` or
//! `/`, or when substitution would make an entry that did not start with `$`
//! start with one — so a thing name or client id can never widen its own
//! policy or reach reserved `$` topics.
//!
//! The thing variables describe the thing attached to the connection's
//! certificate; the caller (the runtime) decides which thing that is when it
//! builds the [`Identity`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::registry::Thing;
use weir_sql::topic::topic_matches;

const THING_NAME: &str = "iot:Connection.Thing.ThingName";
const THING_TYPE: &str = "iot:Connection.Thing.ThingTypeName";
const ATTRIBUTES: &str = "iot:Connection.Thing.Attributes[";
const CLIENT_ID: &str = "iot:ClientId";

/// A policy entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A `${...}` that is not one of the supported variables.
    #[error("{list} entry {entry:?}: unknown policy variable ${{{variable}}} (supported: ${{iot:Connection.Thing.ThingName}}, ${{iot:Connection.Thing.ThingTypeName}}, ${{iot:Connection.Thing.Attributes[name]}}, ${{iot:ClientId}})")]
    UnknownVariable {
        /// `publish`, `subscribe` or `receive`.
        list: &'static str,
        /// The entry as written.
        entry: String,
        /// The name between `${` and `}`.
        variable: String,
    },
    /// An entry that is not a valid MQTT topic filter.
    #[error("{list} entry {entry:?}: {reason}")]
    MalformedFilter {
        /// `publish`, `subscribe` or `receive`.
        list: &'static str,
        /// The entry as written.
        entry: String,
        /// What is wrong.
        reason: String,
    },
}

/// A topic policy: MQTT topic filters, possibly with policy variables.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Topics the connection may publish to.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Filters the connection may subscribe to (or to narrower ones).
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Topics the connection may receive messages from.
    #[serde(default)]
    pub receive: Vec<String>,
}

/// Who is connected: what the policy variables resolve against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The MQTT client id.
    pub client_id: String,
    /// The thing attached to the connection's certificate, if any.
    pub thing_name: Option<String>,
    /// That thing's type, if any.
    pub thing_type: Option<String>,
    /// That thing's attributes.
    pub attributes: BTreeMap<String, String>,
}

impl Identity {
    /// The identity of `client_id` connected with a certificate attached to
    /// `thing` (or to no thing).
    pub fn new(client_id: &str, thing: Option<&Thing>) -> Identity {
        Identity {
            client_id: client_id.to_owned(),
            thing_name: thing.map(|t| t.name.clone()),
            thing_type: thing.and_then(|t| t.thing_type.clone()),
            attributes: thing.map(|t| t.attributes.clone()).unwrap_or_default(),
        }
    }
}

/// A policy with its variables substituted for one [`Identity`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedPolicy {
    publish: Vec<String>,
    subscribe: Vec<String>,
    receive: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    ThingName,
    ThingType,
    Attribute(String),
    ClientId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Lit(String),
    Var(Var),
}

enum ParseError {
    Unknown(String),
    Malformed(String),
}

fn parse_entry(entry: &str) -> Result<Vec<Segment>, ParseError> {
    let mut out = Vec::new();
    let mut rest = entry;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            out.push(Segment::Lit(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| ParseError::Malformed("unterminated `${` (missing `}`)".into()))?;
        let name = &after[..end];
        let var = match name {
            THING_NAME => Var::ThingName,
            THING_TYPE => Var::ThingType,
            CLIENT_ID => Var::ClientId,
            _ => match name
                .strip_prefix(ATTRIBUTES)
                .and_then(|a| a.strip_suffix(']'))
            {
                Some(attr) if !attr.is_empty() && !attr.contains(['[', ']']) => {
                    Var::Attribute(attr.to_owned())
                }
                _ => return Err(ParseError::Unknown(name.to_owned())),
            },
        };
        out.push(Segment::Var(var));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Segment::Lit(rest.to_owned()));
    }
    Ok(out)
}

/// Checks MQTT topic filter syntax: not empty, `#` only as the whole last
/// level, `+` only as a whole level, no NUL.
fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("empty topic filter".into());
    }
    if filter.contains('\0') {
        return Err("NUL character in topic filter".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') {
            if *level != "#" {
                return Err(format!(
                    "`#` must be a whole level, not mixed into {level:?}"
                ));
            }
            if i + 1 != levels.len() {
                return Err("`#` must be the last level".into());
            }
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "`+` must be a whole level, not mixed into {level:?}"
            ));
        }
    }
    Ok(())
}

fn is_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#', '\0'])
}

fn starts_with_wildcard(filter: &str) -> bool {
    filter.starts_with('+') || filter.starts_with('#')
}

/// Whether every topic matched by `requested` is matched by `policy`.
fn filter_covers(policy: &str, requested: &str) -> bool {
    if requested.starts_with('$') && starts_with_wildcard(policy) {
        return false;
    }
    let mut p = policy.split('/');
    let mut r = requested.split('/');
    loop {
        match (p.next(), r.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(rl)) if rl != "#" => {}
            (Some(pl), Some(rl)) if pl == rl && pl != "+" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl Policy {
    /// The default policy of a device certificate: its own telemetry,
    /// commands, shadow and jobs topics.
    pub fn device_default() -> Policy {
        let own = |f: &str| f.replace("{}", &format!("${{{THING_NAME}}}"));
        let sub = vec![
            own("cmd/+/{}/#"),
            own("$aws/things/{}/shadow/#"),
            own("$aws/things/{}/jobs/#"),
        ];
        Policy {
            publish: vec![own("dt/+/{}/#"), own("$aws/things/{}/#")],
            receive: sub.clone(),
            subscribe: sub,
        }
    }

    /// The default policy of a claim certificate: only the fleet-provisioning
    /// topics.
    pub fn claim_default() -> Policy {
        let topics: Vec<String> = [
            "$aws/certificates/create/#",
            "$aws/certificates/create-from-csr/#",
            "$aws/provisioning-templates/+/provision/#",
        ]
        .map(String::from)
        .to_vec();
        Policy {
            publish: topics.clone(),
            subscribe: topics.clone(),
            receive: topics,
        }
    }

    fn lists(&self) -> [(&'static str, &[String]); 3] {
        [
            ("publish", &self.publish),
            ("subscribe", &self.subscribe),
            ("receive", &self.receive),
        ]
    }

    /// Checks every entry: known variables only, valid MQTT filter syntax.
    /// The error names the list and the entry.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (list, entries) in self.lists() {
            for entry in entries {
                let segments = parse_entry(entry).map_err(|e| match e {
                    ParseError::Unknown(variable) => PolicyError::UnknownVariable {
                        list,
                        entry: entry.clone(),
                        variable,
                    },
                    ParseError::Malformed(reason) => PolicyError::MalformedFilter {
                        list,
                        entry: entry.clone(),
                        reason,
                    },
                })?;
                // Variables stand for one plain value inside a level.
                let shape: String = segments
                    .iter()
                    .map(|s| match s {
                        Segment::Lit(l) => l.as_str(),
                        Segment::Var(_) => "v",
                    })
                    .collect();
                check_filter(&shape).map_err(|reason| PolicyError::MalformedFilter {
                    list,
                    entry: entry.clone(),
                    reason,
                })?;
            }
        }
        Ok(())
    }

    /// Substitutes the variables for `id`, dropping the entries that cannot be
    /// resolved safely (see the module doc). Invalid entries are dropped too;
    /// use [`Policy::validate`] to report them.
    pub fn resolve(&self, id: &Identity) -> ResolvedPolicy {
        let resolve_list = |entries: &[String]| -> Vec<String> {
            entries
                .iter()
                .filter_map(|entry| resolve_entry(entry, id))
                .collect()
        };
        ResolvedPolicy {
            publish: resolve_list(&self.publish),
            subscribe: resolve_list(&self.subscribe),
            receive: resolve_list(&self.receive),
        }
    }
}

fn resolve_entry(entry: &str, id: &Identity) -> Option<String> {
    let segments = parse_entry(entry).ok()?;
    let mut out = String::with_capacity(entry.len());
    for segment in &segments {
        match segment {
            Segment::Lit(l) => out.push_str(l),
            Segment::Var(var) => {
                let value = match var {
                    Var::ThingName => id.thing_name.as_deref(),
                    Var::ThingType => id.thing_type.as_deref(),
                    Var::Attribute(name) => id.attributes.get(name).map(String::as_str),
                    Var::ClientId => Some(id.client_id.as_str()),
                }?;
                if value.is_empty() || value.contains(['+', '#', '/', '\0']) {
                    return None;
                }
                out.push_str(value);
            }
        }
    }
    let literal_dollar = matches!(segments.first(), Some(Segment::Lit(l)) if l.starts_with('$'));
    if out.starts_with('$') && !literal_dollar {
        return None;
    }
    check_filter(&out).ok()?;
    Some(out)
}

impl ResolvedPolicy {
    /// Whether `topic` (a topic name, no wildcards) matches one of the publish
    /// filters. MQTT matching: `+` is one level, `#` the rest including the
    /// parent level; wildcard-first filters never match `$` topics.
    pub fn allows_publish(&self, topic: &str) -> bool {
        is_topic(topic) && self.publish.iter().any(|f| topic_matches(f, topic))
    }

    /// Whether the requested subscription `filter` is covered by (a subset of)
    /// one subscribe filter: policy `a/+/c/#` covers `a/x/c/d` and `a/+/c/#`,
    /// not `a/#`.
    pub fn allows_subscribe(&self, filter: &str) -> bool {
        check_filter(filter).is_ok() && self.subscribe.iter().any(|p| filter_covers(p, filter))
    }

    /// Whether a message on `topic` may be delivered to the connection: it
    /// matches one of the receive filters.
    pub fn allows_receive(&self, topic: &str) -> bool {
        is_topic(topic) && self.receive.iter().any(|f| topic_matches(f, topic))
    }

    /// The resolved publish filters.
    pub fn publish_filters(&self) -> &[String] {
        &self.publish
    }

    /// The resolved subscribe filters.
    pub fn subscribe_filters(&self) -> &[String] {
        &self.subscribe
    }

    /// The resolved receive filters.
    pub fn receive_filters(&self) -> &[String] {
        &self.receive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(client: &str, thing: Option<&str>) -> Identity {
        Identity {
            client_id: client.into(),
            thing_name: thing.map(str::to_owned),
            thing_type: Some("thermostat".into()),
            attributes: BTreeMap::from([
                ("floor".to_string(), "3".to_string()),
                ("bad".to_string(), "a/b".to_string()),
            ]),
        }
    }

    fn policy(publish: &[&str], subscribe: &[&str]) -> Policy {
        Policy {
            publish: publish.iter().map(|s| s.to_string()).collect(),
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
            receive: vec![],
        }
    }

    #[test]
    fn device_default_resolves_to_own_topics() {
        let p = Policy::device_default();
        p.validate().unwrap();
        let r = p.resolve(&id("c1", Some("sensor_1")));
        assert_eq!(
            r.publish_filters(),
            ["dt/+/sensor_1/#", "$aws/things/sensor_1/#"]
        );
        assert!(r.allows_publish("dt/temp/sensor_1"));
        assert!(r.allows_publish("dt/temp/sensor_1/a/b"));
        assert!(!r.allows_publish("dt/temp/sensor_2"));
        assert!(r.allows_publish("$aws/things/sensor_1/shadow/update"));
        assert!(!r.allows_publish("$aws/things/sensor_2/shadow/update"));
        assert!(r.allows_subscribe("cmd/+/sensor_1/#"));
        assert!(r.allows_subscribe("cmd/reboot/sensor_1"));
        assert!(r.allows_subscribe("$aws/things/sensor_1/shadow/update/accepted"));
        assert!(r.allows_subscribe("$aws/things/sensor_1/jobs/#"));
        assert!(!r.allows_subscribe("$aws/things/sensor_1/#"));
        assert!(!r.allows_subscribe("$aws/things/+/shadow/#"));
        assert!(!r.allows_subscribe("#"));
        assert!(r.allows_receive("cmd/x/sensor_1/y"));
        assert!(!r.allows_receive("cmd/x/sensor_2/y"));
        assert_eq!(r.receive_filters(), r.subscribe_filters());

        // Without a thing, every entry is dropped.
        let r = p.resolve(&id("c1", None));
        assert!(r.publish_filters().is_empty() && r.subscribe_filters().is_empty());
        assert!(!r.allows_publish("dt/temp/c1"));
    }

    #[test]
    fn claim_default_is_provisioning_only() {
        let p = Policy::claim_default();
        p.validate().unwrap();
        let r = p.resolve(&id("claim", None));
        assert!(r.allows_publish("$aws/certificates/create/json"));
        assert!(r.allows_publish("$aws/certificates/create-from-csr/json"));
        assert!(r.allows_publish("$aws/provisioning-templates/fleet/provision/json"));
        assert!(r.allows_subscribe("$aws/certificates/create/json/accepted"));
        assert!(r.allows_subscribe("$aws/provisioning-templates/fleet/provision/json/+"));
        assert!(r.allows_receive("$aws/certificates/create/json/rejected"));
        assert!(!r.allows_publish("dt/x/y"));
        assert!(!r.allows_publish("$aws/things/x/shadow/update"));
        assert!(!r.allows_subscribe("$aws/#"));
    }

    #[test]
    fn all_variables() {
        let p = policy(
            &[
                "a/${iot:Connection.Thing.ThingName}",
                "t/${iot:Connection.Thing.ThingTypeName}/x",
                "f/${iot:Connection.Thing.Attributes[floor]}/+",
                "c/${iot:ClientId}",
                "mix/${iot:ClientId}-${iot:Connection.Thing.ThingName}",
            ],
            &[],
        );
        p.validate().unwrap();
        let r = p.resolve(&id("c1", Some("th")));
        assert_eq!(
            r.publish_filters(),
            ["a/th", "t/thermostat/x", "f/3/+", "c/c1", "mix/c1-th"]
        );
        assert!(r.allows_publish("f/3/anything"));
        assert!(r.allows_publish("mix/c1-th"));
    }

    #[test]
    fn unresolvable_entries_are_dropped() {
        let p = policy(
            &[
                "attr/${iot:Connection.Thing.Attributes[missing]}",
                "type/${iot:Connection.Thing.ThingTypeName}",
                "ok/${iot:ClientId}",
            ],
            &[],
        );
        let mut who = id("c1", Some("th"));
        who.thing_type = None;
        let r = p.resolve(&who);
        assert_eq!(r.publish_filters(), ["ok/c1"]);
        assert!(!r.allows_publish("attr/"));
        assert!(!r.allows_publish("type/"));
    }

    #[test]
    fn substituted_values_cannot_widen() {
        let p = policy(
            &["c/${iot:ClientId}/x", "${iot:ClientId}/#"],
            &["c/${iot:ClientId}/#"],
        );
        for client in ["+", "#", "a/b", "a+", "x#", ""] {
            let r = p.resolve(&id(client, None));
            assert!(r.publish_filters().is_empty(), "{client:?}");
            assert!(r.subscribe_filters().is_empty(), "{client:?}");
            assert!(!r.allows_publish("c/a/b/x"));
            assert!(!r.allows_subscribe("c/a/b/#"));
        }
        // A client id starting with `$` cannot reach reserved topics.
        let r = p.resolve(&id("$aws", None));
        assert_eq!(r.publish_filters(), ["c/$aws/x"]);
        assert!(!r.allows_publish("$aws/things/other/shadow/update"));

        // Attribute values too.
        let p = policy(&["f/${iot:Connection.Thing.Attributes[bad]}"], &[]);
        assert!(p.resolve(&id("c", Some("t"))).publish_filters().is_empty());
        // And thing names (which the registry would refuse anyway).
        let p = policy(&["t/${iot:Connection.Thing.ThingName}"], &[]);
        assert!(p
            .resolve(&id("c", Some("x/#")))
            .publish_filters()
            .is_empty());
    }

    #[test]
    fn validate_reports_entry() {
        let cases: &[(&[&str], &str)] = &[
            (&["a/${iot:Thing.Name}"], "unknown policy variable"),
            (
                &["a/${iot:Connection.Thing.Attributes[]}"],
                "unknown policy variable",
            ),
            (&["a/${iot:ClientId"], "unterminated"),
            (&["a/#/b"], "last level"),
            (&["a/b#"], "whole level"),
            (&["a/+b/c"], "whole level"),
            (&["a/${iot:ClientId}+"], "whole level"),
            (&[""], "empty"),
        ];
        for (entries, want) in cases {
            let p = Policy {
                subscribe: entries.iter().map(|s| s.to_string()).collect(),
                ..Policy::default()
            };
            let err = p.validate().unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want), "{entries:?}: {msg}");
            assert!(msg.contains("subscribe"), "{msg}");
            assert!(msg.contains(&format!("{:?}", entries[0])), "{msg}");
        }
        policy(&["#", "+", "a/+/b/#", "$aws/x", "+/+"], &["/a", "a//b"])
            .validate()
            .unwrap();
    }

    #[test]
    fn deserialize_rejects_unknown_fields() {
        let p: Policy = serde_json::from_str(r#"{"publish":["a/#"]}"#).unwrap();
        assert_eq!(p.publish, ["a/#"]);
        assert!(p.subscribe.is_empty() && p.receive.is_empty());
        let err = serde_json::from_str::<Policy>(r#"{"publsh":["a"]}"#).unwrap_err();
        assert!(err.to_string().contains("publsh"), "{err}");
    }

    #[test]
    fn mqtt_matching() {
        let m = topic_matches;
        assert!(m("a/b", "a/b"));
        assert!(!m("a/b", "a/b/c"));
        assert!(!m("a/b/c", "a/b"));
        assert!(m("a/+", "a/b"));
        assert!(m("a/+", "a/"));
        assert!(!m("a/+", "a"));
        assert!(!m("a/+", "a/b/c"));
        assert!(m("a/#", "a"));
        assert!(m("a/#", "a/b/c"));
        assert!(m("#", "x/y"));
        assert!(m("+/+", "/x"));
        assert!(!m("#", "$SYS/x"));
        assert!(!m("+/x", "$SYS/x"));
        assert!(m("$SYS/#", "$SYS/x"));
        assert!(m("$aws/things/+/shadow/#", "$aws/things/t/shadow/update"));

        let r = policy(&["#"], &[]).resolve(&Identity::default());
        assert!(r.allows_publish("any/topic"));
        assert!(!r.allows_publish("$aws/things/x"));
        assert!(!r.allows_publish("a/+"), "wildcards are not topic names");
        assert!(!r.allows_publish(""));
    }

    #[test]
    fn subscribe_coverage() {
        let r = policy(&[], &["a/+/c/#"]).resolve(&Identity::default());
        assert!(r.allows_subscribe("a/x/c/d"));
        assert!(r.allows_subscribe("a/x/c"));
        assert!(r.allows_subscribe("a/+/c/#"));
        assert!(r.allows_subscribe("a/+/c/+/e"));
        assert!(r.allows_subscribe("a/x/c/#"));
        assert!(!r.allows_subscribe("a/#"));
        assert!(!r.allows_subscribe("a/+/#"));
        assert!(!r.allows_subscribe("a/x"));
        assert!(!r.allows_subscribe("#"));
        assert!(!r.allows_subscribe("a/x/c/#/d"), "malformed request");
        assert!(!r.allows_subscribe("a/x+/c"), "malformed request");

        let r = policy(&[], &["a/b"]).resolve(&Identity::default());
        assert!(r.allows_subscribe("a/b"));
        assert!(!r.allows_subscribe("a/+"));
        assert!(!r.allows_subscribe("a/b/#"));

        let r = policy(&[], &["#"]).resolve(&Identity::default());
        assert!(r.allows_subscribe("#"));
        assert!(r.allows_subscribe("x/+/y"));
        assert!(!r.allows_subscribe("$aws/things/x/shadow/#"));
        let r = policy(&[], &["+/b"]).resolve(&Identity::default());
        assert!(r.allows_subscribe("+/b"));
        assert!(!r.allows_subscribe("$SYS/b"));
        let r = policy(&[], &["$aws/things/+/shadow/#"]).resolve(&Identity::default());
        assert!(r.allows_subscribe("$aws/things/t1/shadow/update/#"));
        assert!(!r.allows_subscribe("+/things/t1/shadow/update"));
    }

    #[test]
    fn identity_from_thing() {
        let thing = Thing {
            name: "t1".into(),
            thing_type: Some("lamp".into()),
            attributes: BTreeMap::from([("k".to_string(), "v".to_string())]),
            groups: vec![],
            created_at_ms: 0,
            version: 1,
        };
        let who = Identity::new("c", Some(&thing));
        assert_eq!(who.thing_name.as_deref(), Some("t1"));
        assert_eq!(who.thing_type.as_deref(), Some("lamp"));
        assert_eq!(who.attributes["k"], "v");
        assert_eq!(Identity::new("c", None).thing_name, None);
    }
}
