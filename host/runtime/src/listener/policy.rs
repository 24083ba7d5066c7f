//! What a device may publish. Topics under `$weir/` and AWS's reserved
//! event topics are the host's alone, so a device cannot forge an alert or
//! a lifecycle event, and neither can it forge the host's answers to
//! fleet-provisioning, Device Shadow or Jobs service requests. Per-thing
//! policies (TLS devices) are in `weir_identity::policy`, applied on top of
//! this.

/// What the AWS services on `$aws/things/<thing>/…` send: the service's
/// topic level, its answer topics' endings, and why a device may not.
const SERVICE_ANSWERS: [(&str, &[&str], &str); 2] = [
    (
        "/shadow/",
        &[
            "/accepted",
            "/rejected",
            "/update/delta",
            "/update/documents",
        ],
        "Device Shadow service answers are the service's to send",
    ),
    (
        "/jobs/",
        &[
            "/accepted",
            "/rejected",
            "/jobs/notify",
            "/jobs/notify-next",
        ],
        "Jobs service answers and notifications are the service's to send",
    ),
];

/// Why a publish was refused, or `None` when it is allowed.
pub fn refuse_publish(topic: &str) -> Option<&'static str> {
    if topic.is_empty() {
        return Some("empty topic");
    }
    if topic.contains(['+', '#', '\0']) {
        return Some("wildcards are not allowed in a publish topic");
    }
    if topic.starts_with(crate::broker::ROUTER_DOLLAR) {
        return Some("topics starting with %24 are reserved (the router's name for `$`)");
    }
    if topic.starts_with("$weir/") || topic.starts_with("$aws/events/") {
        return Some("topic is reserved for the host");
    }
    if (topic.starts_with("$aws/certificates/")
        || topic.starts_with("$aws/provisioning-templates/"))
        && (topic.ends_with("/accepted") || topic.ends_with("/rejected"))
    {
        return Some("provisioning answers are the host's to send");
    }
    if topic.starts_with("$aws/things/") {
        for (service, answers, why) in SERVICE_ANSWERS {
            if topic.contains(service) && answers.iter().any(|a| topic.ends_with(a)) {
                return Some(why);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_wildcards() {
        assert!(refuse_publish("dt/t/d/telemetry").is_none());
        assert!(refuse_publish("$weir/alerts/d").is_some());
        assert!(refuse_publish("$aws/events/presence/connected/x").is_some());
        assert!(refuse_publish("a/+/b").is_some());
        assert!(refuse_publish("%24aws/x").is_some());
        assert!(refuse_publish("$aws/things/d/shadow/update").is_none());
        assert!(refuse_publish("$aws/things/d/shadow/name/n/delete").is_none());
        for answer in [
            "$aws/things/d/shadow/update/accepted",
            "$aws/things/d/shadow/get/rejected",
            "$aws/things/d/shadow/update/delta",
            "$aws/things/d/shadow/name/n/update/documents",
        ] {
            assert!(refuse_publish(answer).is_some(), "{answer}");
        }
        assert!(refuse_publish("$aws/things/d/jobs/start-next").is_none());
        assert!(refuse_publish("$aws/things/d/jobs/j1/update").is_none());
        for answer in [
            "$aws/things/d/jobs/get/accepted",
            "$aws/things/d/jobs/j1/update/rejected",
            "$aws/things/d/jobs/notify",
            "$aws/things/d/jobs/notify-next",
        ] {
            assert!(refuse_publish(answer).is_some(), "{answer}");
        }
        assert!(refuse_publish("$aws/certificates/create/json").is_none());
        assert!(refuse_publish("$aws/certificates/create/json/accepted").is_some());
        assert!(refuse_publish("$aws/provisioning-templates/t/provision/json/rejected").is_some());
    }
}
