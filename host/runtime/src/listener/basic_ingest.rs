//! AWS IoT Basic Ingest: a device publishing to `$aws/rules/<rule>/<topic>`
//! invokes the rule named `<rule>` directly, without the broker. The rule
//! sees `<topic>` as the message's topic (what `topic()` returns) and is
//! invoked whatever its FROM filter says; nothing is delivered to
//! subscribers.

/// The prefix of Basic Ingest topics.
pub const PREFIX: &str = "$aws/rules/";

/// `(rule, topic)` of a Basic Ingest topic, `None` for any other topic (or
/// one without a rule name).
pub fn split(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix(PREFIX)?;
    let (rule, topic) = rest.split_once('/').unwrap_or((rest, ""));
    (!rule.is_empty()).then_some((rule, topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_rule_from_the_topic() {
        // AWS's example.
        assert_eq!(
            split("$aws/rules/BuildingManager/Buildings/Building5/Floor2/Room201/Lights"),
            Some((
                "BuildingManager",
                "Buildings/Building5/Floor2/Room201/Lights"
            ))
        );
        assert_eq!(split("$aws/rules/r"), Some(("r", "")));
        assert_eq!(split("$aws/rules/r/"), Some(("r", "")));
        assert_eq!(split("$aws/rules/"), None);
        assert_eq!(split("$aws/rules//x"), None);
        assert_eq!(split("$aws/things/t/shadow/update"), None);
        assert_eq!(split("dt/x/rules/r"), None);
    }
}
