//! Device identity for Weir, following AWS IoT Core's device-facing contract.
//!
//! This crate owns everything that decides *who* a connecting device is and
//! *what* it may do:
//!
//! - [`ca`]: the fleet certificate authority — creating or importing it,
//!   issuing device and claim certificates, signing CSRs, and the broker's own
//!   TLS server certificate.
//! - [`registry`]: the persistent registry (one redb file) of things,
//!   certificates (with their AWS status and whether they are device or claim
//!   certificates) and certificate-ownership tokens.
//! - [`policy`]: topic policies written as MQTT filters with AWS policy
//!   variables (`${iot:Connection.Thing.ThingName}` …), resolved per connection.
//! - [`template`]: AWS fleet-provisioning templates (the JSON AWS uses), turned
//!   into the thing, attributes, groups and certificate status to provision.
//!
//! It does no networking: the runtime calls it from its mTLS listener and its
//! fleet-provisioning handler.

pub mod ca;
pub mod policy;
pub mod registry;
pub mod template;

pub use ca::{certificate_id, parse_certificate, pem_to_der, CaError, CertInfo, FleetCa, Issued};
pub use policy::{Identity, Policy, PolicyError, ResolvedPolicy};
pub use registry::{CertKind, CertRecord, CertStatus, Registry, RegistryError, Thing};
pub use template::{OverrideAction, Provisioned, ProvisioningTemplate, TemplateError};

/// `time` is re-exported so callers of [`FleetCa::issue_with_validity`] need
/// not depend on it themselves.
pub use time;

/// Any error of this crate, for callers that want one type.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// See [`CaError`].
    #[error(transparent)]
    Ca(#[from] CaError),
    /// See [`RegistryError`].
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// See [`PolicyError`].
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// See [`TemplateError`].
    #[error(transparent)]
    Template(#[from] TemplateError),
}

#[cfg(test)]
mod tests {
    #[test]
    fn shared_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::FleetCa>();
        check::<super::Registry>();
        check::<super::ResolvedPolicy>();
        check::<super::Policy>();
        check::<super::ProvisioningTemplate>();
        check::<super::IdentityError>();
    }
}
