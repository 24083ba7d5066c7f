//! Fleet provisioning by claim, on AWS IoT's MQTT topics:
//!
//! - `$aws/certificates/create/json`: a new key and certificate, plus a
//!   certificate ownership token;
//! - `$aws/certificates/create-from-csr/json`: the same for the device's
//!   own CSR (its key never leaves it);
//! - `$aws/provisioning-templates/<template>/provision/json`: redeem the
//!   token with the template's parameters: the template (a file,
//!   `<templates_dir>/<template>.json`) names the thing, its type,
//!   attributes and groups; the certificate is attached and activated.
//!
//! Answers go on `<request topic>/accepted` or `/rejected`, to the
//! requesting connection only (they carry private keys). A provisioned
//! thing is recorded by an AWS-style registry event on
//! `$aws/events/thing/<thing>/created` (or `/updated`).

use super::{IdentityService, Principal};
use serde_json::{json, Map, Value};
use weir_identity::registry::{CertKind, CertRecord, CertStatus};
use weir_identity::template::ProvisioningTemplate;

pub const CREATE: &str = "$aws/certificates/create/json";
pub const CREATE_FROM_CSR: &str = "$aws/certificates/create-from-csr/json";
const TEMPLATES: &str = "$aws/provisioning-templates/";
const PROVISION: &str = "/provision/json";

/// Is `topic` a provisioning request the host answers itself?
pub fn is_request(topic: &str) -> bool {
    topic == CREATE || topic == CREATE_FROM_CSR || template_of(topic).is_some()
}

/// `<name>` of `$aws/provisioning-templates/<name>/provision/json`.
pub fn template_of(topic: &str) -> Option<&str> {
    let name = topic.strip_prefix(TEMPLATES)?.strip_suffix(PROVISION)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// What answering one request produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `(topic, payload)` for the requesting device.
    pub replies: Vec<(String, Vec<u8>)>,
    /// A registry event for the broker and the rules.
    pub event: Option<(String, Value)>,
}

struct Rejection {
    status: u16,
    code: &'static str,
    message: String,
}

fn reject(status: u16, code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        status,
        code,
        message: message.into(),
    }
}

impl IdentityService {
    /// Answer one provisioning request from `principal`.
    pub fn provision(
        &self,
        principal: &Principal,
        client_id: &str,
        topic: &str,
        payload: &[u8],
    ) -> Outcome {
        let result = if topic == CREATE {
            self.create_keys(None).map(|r| (r, None))
        } else if topic == CREATE_FROM_CSR {
            parse(payload).and_then(|req| {
                let csr = req
                    .get("certificateSigningRequest")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        reject(
                            400,
                            "InvalidPayload",
                            "certificateSigningRequest is required",
                        )
                    })?;
                self.create_keys(Some(csr)).map(|r| (r, None))
            })
        } else if let Some(template) = template_of(topic) {
            parse(payload).and_then(|req| self.register_thing(principal, client_id, template, &req))
        } else {
            Err(reject(404, "ResourceNotFound", "not a provisioning topic"))
        };
        let mut outcome = Outcome::default();
        match result {
            Ok((accepted, event)) => {
                outcome.replies.push((
                    format!("{topic}/accepted"),
                    accepted.to_string().into_bytes(),
                ));
                outcome.event = event;
            }
            Err(r) => {
                tracing::warn!(client_id, topic, status = r.status, code = r.code, reason = %r.message, "provisioning request rejected");
                let body =
                    json!({"statusCode": r.status, "errorCode": r.code, "errorMessage": r.message});
                outcome
                    .replies
                    .push((format!("{topic}/rejected"), body.to_string().into_bytes()));
            }
        }
        outcome
    }

    /// CreateKeysAndCertificate / CreateCertificateFromCsr.
    fn create_keys(&self, csr: Option<&str>) -> Result<Value, Rejection> {
        let now = crate::clock::now_ms();
        let days = self.config.certificate_validity_days;
        let issued = match csr {
            Some(csr) => self.ca.sign_csr(csr, None, days),
            None => self.ca.issue("Weir IoT Certificate", days),
        }
        .map_err(|e| reject(400, "InvalidCertificateSigningRequest", e.to_string()))?;
        let internal = |e: &dyn std::fmt::Display| reject(500, "InternalFailure", e.to_string());
        self.registry
            .add_cert(&CertRecord {
                certificate_id: issued.certificate_id.clone(),
                pem: issued.cert_pem.clone(),
                status: CertStatus::PendingActivation,
                kind: CertKind::Device,
                thing: None,
                created_at_ms: now,
                not_after_ms: issued.not_after_ms,
            })
            .map_err(|e| internal(&e))?;
        let ttl_ms = i64::try_from(self.config.ownership_token_ttl_s.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let token = self
            .registry
            .issue_token(&issued.certificate_id, ttl_ms, now)
            .map_err(|e| internal(&e))?;
        let mut body = json!({
            "certificateId": issued.certificate_id,
            "certificatePem": issued.cert_pem,
            "certificateOwnershipToken": token,
        });
        if let (Some(key), Some(obj)) = (issued.key_pem, body.as_object_mut()) {
            obj.insert("privateKey".into(), json!(key));
        }
        Ok(body)
    }

    /// RegisterThing.
    fn register_thing(
        &self,
        principal: &Principal,
        client_id: &str,
        template_name: &str,
        request: &Map<String, Value>,
    ) -> Result<(Value, Option<(String, Value)>), Rejection> {
        if let Some(allowed) = &principal.claim_templates {
            if !allowed.iter().any(|t| t == template_name) {
                return Err(reject(
                    403,
                    "AccessDenied",
                    format!("this claim certificate may not use template {template_name:?}"),
                ));
            }
        }
        let path = self
            .config
            .templates_dir
            .join(format!("{template_name}.json"));
        let text = std::fs::read_to_string(&path).map_err(|_| {
            reject(
                404,
                "ResourceNotFound",
                format!("no provisioning template {template_name:?}"),
            )
        })?;
        let template = ProvisioningTemplate::from_json(template_name, &text)
            .map_err(|e| reject(500, "InvalidTemplate", format!("{}: {e}", path.display())))?;
        let token = request
            .get("certificateOwnershipToken")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                reject(
                    400,
                    "InvalidPayload",
                    "certificateOwnershipToken is required",
                )
            })?;
        let empty = Map::new();
        let parameters = match request.get("parameters") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(p)) => p,
            Some(_) => {
                return Err(reject(
                    400,
                    "InvalidPayload",
                    "parameters must be an object",
                ))
            }
        };
        // Check the parameters before the (single-use) token is spent.
        template
            .provision(parameters, "0")
            .map_err(|e| reject(400, "InvalidParameters", e.to_string()))?;
        let now = crate::clock::now_ms();
        let certificate_id = self
            .registry
            .redeem_token(token, now)
            .map_err(|e| reject(400, "InvalidCertificateOwnershipToken", e.to_string()))?;
        let provisioned = template
            .provision(parameters, &certificate_id)
            .map_err(|e| reject(400, "InvalidParameters", e.to_string()))?;
        let internal = |e: &dyn std::fmt::Display| reject(500, "InternalFailure", e.to_string());
        let existing = self
            .registry
            .thing(&provisioned.thing_name)
            .map_err(|e| internal(&e))?;
        let operation = if existing.is_some() {
            "UPDATED"
        } else {
            "CREATED"
        };
        // AWS's OverrideSettings decide what happens to an existing thing.
        let thing = provisioned
            .apply(existing.as_ref(), now)
            .map_err(|e| reject(409, "ResourceConflict", e.to_string()))?;
        self.registry.put_thing(&thing).map_err(|e| internal(&e))?;
        let thing = self
            .registry
            .thing(&thing.name)
            .map_err(|e| internal(&e))?
            .unwrap_or(thing);
        self.registry
            .attach(&certificate_id, &thing.name)
            .map_err(|e| internal(&e))?;
        self.registry
            .set_status(&certificate_id, provisioned.certificate_status.clone())
            .map_err(|e| internal(&e))?;
        tracing::info!(thing = %thing.name, template = template_name, certificate = %&certificate_id[..12.min(certificate_id.len())], client_id, "thing provisioned");
        let accepted = json!({
            "deviceConfiguration": provisioned.device_configuration,
            "thingName": thing.name,
        });
        let event = json!({
            "eventType": "THING_EVENT",
            "eventId": uuid::Uuid::new_v4().simple().to_string(),
            "timestamp": now,
            "operation": operation,
            "accountId": "weir",
            "thingId": thing.name,
            "thingName": thing.name,
            "versionNumber": thing.version,
            "thingTypeName": thing.thing_type,
            "attributes": thing.attributes,
            "groups": thing.groups,
            "provisioning": {
                "template": template_name,
                "certificateId": certificate_id,
                "claimCertificateId": principal.certificate_id,
                "clientId": client_id,
            },
        });
        let topic = format!(
            "$aws/events/thing/{}/{}",
            thing.name,
            operation.to_ascii_lowercase()
        );
        Ok((accepted, Some((topic, event))))
    }
}

fn parse(payload: &[u8]) -> Result<Map<String, Value>, Rejection> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(reject(
            400,
            "InvalidPayload",
            "the request must be a JSON object",
        )),
        Err(e) => Err(reject(400, "InvalidPayload", format!("not JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert!(is_request(CREATE));
        assert!(is_request(CREATE_FROM_CSR));
        assert_eq!(
            template_of("$aws/provisioning-templates/fleet/provision/json"),
            Some("fleet")
        );
        assert_eq!(
            template_of("$aws/provisioning-templates//provision/json"),
            None
        );
        assert_eq!(
            template_of("$aws/provisioning-templates/a/b/provision/json"),
            None
        );
        assert!(!is_request("$aws/certificates/create/json/accepted"));
    }
}
