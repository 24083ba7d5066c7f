//! `[identity]`: the mTLS listener, topic policies per thing type, the
//! claim policy and fleet-provisioning settings.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use weir_identity::policy::Policy;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// The mTLS listener. It serves when the fleet CA exists (`weir ca
    /// init`); `weir run --tls-listen` overrides the address.
    pub tls_listen: SocketAddr,
    /// Fleet CA, broker certificate and registry (default
    /// `<data_dir>/identity`).
    pub dir: Option<PathBuf>,
    /// Fleet-provisioning templates, one `<name>.json` each (AWS format),
    /// read on every provisioning request so edits apply at once.
    pub templates_dir: PathBuf,
    /// Topic policy per thing type; `default` for things of any other (or
    /// no) type. AWS policy variables (`${iot:Connection.Thing.ThingName}`,
    /// `…ThingTypeName`, `…Attributes[name]`, `${iot:ClientId}`) resolve at
    /// connect time.
    pub policies: BTreeMap<String, Policy>,
    /// What a claim certificate may do (only the provisioning topics, by
    /// default).
    pub claim_policy: Option<Policy>,
    /// Validity of certificates Weir issues, in days.
    pub certificate_validity_days: u32,
    /// How long a certificate ownership token from `$aws/certificates/create`
    /// stays valid, in seconds.
    pub ownership_token_ttl_s: u64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            tls_listen: SocketAddr::from(([0, 0, 0, 0], 8883)),
            dir: None,
            templates_dir: PathBuf::from("provisioning"),
            policies: BTreeMap::new(),
            claim_policy: None,
            certificate_validity_days: 3650,
            ownership_token_ttl_s: 3600,
        }
    }
}

impl IdentityConfig {
    /// The directory the fleet CA and registry live in.
    pub fn dir(&self, data_dir: &std::path::Path) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| data_dir.join("identity"))
    }

    /// The policy for a thing of `thing_type`.
    pub fn policy_for(&self, thing_type: Option<&str>) -> Policy {
        thing_type
            .and_then(|t| self.policies.get(t))
            .or_else(|| self.policies.get("default"))
            .cloned()
            .unwrap_or_else(Policy::device_default)
    }

    pub fn claim_policy(&self) -> Policy {
        self.claim_policy
            .clone()
            .unwrap_or_else(Policy::claim_default)
    }

    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), String> {
        for (name, policy) in &self.policies {
            policy
                .validate()
                .map_err(|e| format!("identity.policies.{name}: {e}"))?;
        }
        if let Some(p) = &self.claim_policy {
            p.validate()
                .map_err(|e| format!("identity.claim_policy: {e}"))?;
        }
        if self.certificate_validity_days == 0 {
            return Err("identity.certificate_validity_days must be at least 1".into());
        }
        if self.ownership_token_ttl_s == 0 {
            return Err("identity.ownership_token_ttl_s must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use weir_identity::policy::Identity;

    fn parse(text: &str) -> Result<crate::Config, crate::config::ConfigError> {
        crate::Config::from_toml(text)
    }

    #[test]
    fn policies_are_chosen_by_thing_type() {
        let config = parse(
            "[identity.policies.gateway]\n\
             publish = [\"site/${iot:Connection.Thing.Attributes[site]}/+/#\"]\n\
             subscribe = [\"cmd/+/${iot:Connection.Thing.ThingName}/#\"]\n",
        )
        .expect("config");
        let identity = |t: Option<&str>| Identity {
            client_id: "gw-1".into(),
            thing_name: Some("gw-1".into()),
            thing_type: t.map(String::from),
            attributes: [("site".to_string(), "lab".to_string())].into(),
        };
        let gateway = config
            .identity
            .policy_for(Some("gateway"))
            .resolve(&identity(Some("gateway")));
        assert!(gateway.allows_publish("site/lab/meter-7/telemetry"));
        assert!(!gateway.allows_publish("dt/meter/gw-1/telemetry"));
        // Any other type gets the built-in device policy.
        let other = config
            .identity
            .policy_for(Some("thermostat"))
            .resolve(&identity(Some("thermostat")));
        assert!(other.allows_publish("dt/thermostat/gw-1/telemetry"));
        assert!(!other.allows_publish("site/lab/meter-7/telemetry"));
        assert!(other.allows_subscribe("$aws/things/gw-1/shadow/update/accepted"));
    }

    #[test]
    fn bad_policies_and_unknown_keys_are_refused_before_anything_starts() {
        let e = parse("[identity.policies.default]\npublish = [\"dt/${iot:Nope}/#\"]\n")
            .expect_err("unknown variable");
        assert!(e.to_string().contains("identity.policies.default"), "{e}");
        let e = parse("[identity]\ntls_port = 8883\n").expect_err("unknown key");
        assert!(e.to_string().contains("tls_port"), "{e}");
        let e = parse("[identity.claim_policy]\npublish = [\"a/#/b\"]\n").expect_err("bad filter");
        assert!(e.to_string().contains("identity.claim_policy"), "{e}");
    }
}
