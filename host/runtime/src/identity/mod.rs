//! Device identity in the running host: the fleet CA and registry (from
//! `weir-identity`), who a TLS client is ([`IdentityService::authorize`]),
//! the rustls server configuration of the mTLS listener, the operator's
//! registry operations ([`Op`], reached through the admin socket or
//! offline), and fleet provisioning by claim ([`provisioning`]).

pub mod config;
pub mod provisioning;

pub use config::IdentityConfig;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir_identity::policy::{Identity, ResolvedPolicy};
use weir_identity::registry::{CertKind, CertRecord, CertStatus, Registry, Thing};
use weir_identity::FleetCa;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Identity(String),
    #[error("TLS configuration: {0}")]
    Tls(String),
}

fn err(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Identity(e.to_string())
}

/// Who a TLS client is, once its certificate and client id are accepted.
#[derive(Debug, Clone)]
pub struct Principal {
    pub certificate_id: String,
    pub thing: Option<Thing>,
    /// `Some` for a claim certificate: the templates it may provision with.
    pub claim_templates: Option<Vec<String>>,
    pub policy: ResolvedPolicy,
}

/// Why a TLS client was refused: `kind` names the counter
/// (`refused.<kind>`), `reason` is for the log.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: &'static str,
    pub reason: String,
}

fn refusal(kind: &'static str, reason: String) -> Refusal {
    Refusal { kind, reason }
}

/// The fleet CA, the registry and the identity settings of one instance.
pub struct IdentityService {
    pub ca: FleetCa,
    pub registry: Registry,
    pub config: IdentityConfig,
    pub dir: PathBuf,
}

/// An operator's registry operation (`weir things …`, `weir certs …`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Create a thing and issue it a certificate (for a new key, or for a CSR).
    CreateThing {
        name: String,
        thing_type: Option<String>,
        #[serde(default)]
        attributes: BTreeMap<String, String>,
        csr_pem: Option<String>,
    },
    Things,
    Thing {
        name: String,
    },
    Certs,
    /// Set a certificate's status (`REVOKED` is final).
    SetStatus {
        certificate_id: String,
        status: CertStatus,
    },
    /// Issue a claim certificate for fleet provisioning.
    CreateClaim {
        templates: Vec<String>,
    },
}

impl IdentityService {
    /// Open the fleet CA and the registry in `dir` (the CA must exist).
    pub fn open(dir: &Path, config: IdentityConfig) -> Result<IdentityService, IdentityError> {
        let ca = FleetCa::load(dir).map_err(err)?;
        let registry = Registry::open(&dir.join("registry.redb")).map_err(err)?;
        Ok(IdentityService {
            ca,
            registry,
            config,
            dir: dir.to_path_buf(),
        })
    }

    /// Whether `dir` holds a fleet CA.
    pub fn exists(dir: &Path) -> bool {
        dir.join("ca.pem").is_file()
    }

    /// The id and registry record of `cert_der`, refused when it is not
    /// registered.
    fn registered(&self, cert_der: &[u8]) -> Result<(String, CertRecord), Refusal> {
        let id = weir_identity::certificate_id(cert_der);
        let record = self
            .registry
            .cert(&id)
            .map_err(|e| refusal("registry", format!("registry: {e}")))?
            .ok_or_else(|| {
                refusal(
                    "unregistered",
                    format!("certificate {} is not registered", &id[..12.min(id.len())]),
                )
            })?;
        Ok((id, record))
    }

    /// Decide whether the holder of `cert_der` (already verified to chain
    /// to the fleet CA by the TLS handshake) may connect as `client_id`.
    /// The error is the reason, for the log and the refusal count.
    pub fn authorize(&self, cert_der: &[u8], client_id: &str) -> Result<Principal, Refusal> {
        let (id, record) = self.registered(cert_der)?;
        let short = &id[..12.min(id.len())];
        match record.status {
            CertStatus::Active => {}
            CertStatus::Revoked => {
                return Err(refusal(
                    "revoked",
                    format!("certificate {short} is REVOKED"),
                ))
            }
            ref other => {
                return Err(refusal(
                    "inactive",
                    format!("certificate {short} is {other}"),
                ))
            }
        }
        match &record.kind {
            CertKind::Claim { templates } => {
                let identity = Identity {
                    client_id: client_id.to_string(),
                    thing_name: None,
                    thing_type: None,
                    attributes: BTreeMap::new(),
                };
                Ok(Principal {
                    certificate_id: id,
                    thing: None,
                    claim_templates: Some(templates.clone()),
                    policy: self.config.claim_policy().resolve(&identity),
                })
            }
            CertKind::Device => {
                let thing_name = record.thing.as_deref().ok_or_else(|| {
                    refusal(
                        "no_thing",
                        format!("certificate {short} is not attached to a thing"),
                    )
                })?;
                if thing_name != client_id {
                    return Err(refusal(
                        "client_id_mismatch",
                        format!("client id {client_id:?} is not the thing name {thing_name:?} of certificate {short}"),
                    ));
                }
                let thing = self
                    .registry
                    .thing(thing_name)
                    .map_err(|e| refusal("registry", format!("registry: {e}")))?
                    .ok_or_else(|| {
                        refusal(
                            "no_thing",
                            format!("thing {thing_name:?} of certificate {short} does not exist"),
                        )
                    })?;
                let identity = Identity {
                    client_id: client_id.to_string(),
                    thing_name: Some(thing.name.clone()),
                    thing_type: thing.thing_type.clone(),
                    attributes: thing.attributes.clone(),
                };
                let policy = self
                    .config
                    .policy_for(thing.thing_type.as_deref())
                    .resolve(&identity);
                Ok(Principal {
                    certificate_id: id,
                    thing: Some(thing),
                    claim_templates: None,
                    policy,
                })
            }
        }
    }

    /// As [`IdentityService::authorize`] for a request with no client id
    /// (the HTTPS API): the holder of a device certificate, as the thing
    /// it is attached to. Claim certificates only provision, over MQTT.
    pub fn authorize_device(&self, cert_der: &[u8]) -> Result<Principal, Refusal> {
        let (id, record) = self.registered(cert_der)?;
        let short = &id[..12.min(id.len())];
        if matches!(record.kind, CertKind::Claim { .. }) {
            return Err(refusal(
                "claim",
                format!(
                    "certificate {short} is a claim certificate: it may only provision, over MQTT"
                ),
            ));
        }
        let thing = record.thing.as_deref().ok_or_else(|| {
            refusal(
                "no_thing",
                format!("certificate {short} is not attached to a thing"),
            )
        })?;
        self.authorize(cert_der, thing)
    }

    /// The mTLS server configuration: the broker's certificate (issued by
    /// the fleet CA at `weir ca init`), client certificates required and
    /// verified against the fleet CA (chain, validity, clientAuth usage).
    pub fn tls_config(&self) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let tls = |e: &dyn std::fmt::Display| IdentityError::Tls(e.to_string());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca.cert_der()))
            .map_err(|e| tls(&e))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| tls(&e))?;
        let (chain_pem, key_pem) = FleetCa::server_identity(&self.dir).map_err(|e| tls(&e))?;
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls(&e))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| tls(&e))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| tls(&e))?;
        Ok(Arc::new(config))
    }

    /// Carry out an operator's registry operation.
    pub fn apply(&self, op: &Op) -> Result<Value, String> {
        let now = crate::clock::now_ms();
        match op {
            Op::CreateThing {
                name,
                thing_type,
                attributes,
                csr_pem,
            } => {
                let thing = Thing {
                    name: name.clone(),
                    thing_type: thing_type.clone(),
                    attributes: attributes.clone(),
                    groups: Vec::new(),
                    created_at_ms: now,
                    version: 1,
                };
                if !weir_identity::registry::is_valid_thing_name(name) {
                    return Err(format!(
                        "thing name {name:?} must be 1–128 characters of letters, digits, ':', '_' and '-'"
                    ));
                }
                if self
                    .registry
                    .thing(name)
                    .map_err(|e| e.to_string())?
                    .is_some()
                {
                    return Err(format!("thing {name:?} already exists"));
                }
                let days = self.config.certificate_validity_days;
                let issued = match csr_pem {
                    Some(csr) => self.ca.sign_csr(csr, Some(name), days),
                    None => self.ca.issue(name, days),
                }
                .map_err(|e| e.to_string())?;
                self.registry
                    .create_thing(&thing)
                    .map_err(|e| e.to_string())?;
                self.registry
                    .add_cert(&CertRecord {
                        certificate_id: issued.certificate_id.clone(),
                        pem: issued.cert_pem.clone(),
                        status: CertStatus::Active,
                        kind: CertKind::Device,
                        thing: Some(name.clone()),
                        created_at_ms: now,
                        not_after_ms: issued.not_after_ms,
                    })
                    .map_err(|e| e.to_string())?;
                Ok(json!({
                    "thing": thing,
                    "certificateId": issued.certificate_id,
                    "certificatePem": issued.cert_pem,
                    "privateKey": issued.key_pem,
                    "caPem": self.ca.cert_pem(),
                }))
            }
            Op::Things => Ok(json!(self.registry.things().map_err(|e| e.to_string())?)),
            Op::Thing { name } => {
                let thing = self
                    .registry
                    .thing(name)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no thing {name:?}"))?;
                let certs: Vec<Value> = self
                    .registry
                    .certs_of(name)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .map(cert_summary)
                    .collect();
                Ok(json!({"thing": thing, "certificates": certs}))
            }
            Op::Certs => Ok(json!(self
                .registry
                .certs()
                .map_err(|e| e.to_string())?
                .iter()
                .map(cert_summary)
                .collect::<Vec<_>>())),
            Op::SetStatus {
                certificate_id,
                status,
            } => {
                let record = self
                    .registry
                    .set_status(certificate_id, status.clone())
                    .map_err(|e| e.to_string())?;
                Ok(cert_summary(&record))
            }
            Op::CreateClaim { templates } => {
                if templates.is_empty() {
                    return Err("a claim certificate needs at least one template".into());
                }
                let issued = self
                    .ca
                    .issue("weir-claim", self.config.certificate_validity_days)
                    .map_err(|e| e.to_string())?;
                self.registry
                    .add_cert(&CertRecord {
                        certificate_id: issued.certificate_id.clone(),
                        pem: issued.cert_pem.clone(),
                        status: CertStatus::Active,
                        kind: CertKind::Claim {
                            templates: templates.clone(),
                        },
                        thing: None,
                        created_at_ms: now,
                        not_after_ms: issued.not_after_ms,
                    })
                    .map_err(|e| e.to_string())?;
                Ok(json!({
                    "certificateId": issued.certificate_id,
                    "certificatePem": issued.cert_pem,
                    "privateKey": issued.key_pem,
                    "caPem": self.ca.cert_pem(),
                    "templates": templates,
                }))
            }
        }
    }
}

/// A certificate as `weir certs list` shows it (no PEM).
fn cert_summary(c: &CertRecord) -> Value {
    json!({
        "certificateId": c.certificate_id,
        "status": c.status,
        "kind": c.kind,
        "thing": c.thing,
        "createdAt": c.created_at_ms,
        "notAfter": c.not_after_ms,
    })
}
