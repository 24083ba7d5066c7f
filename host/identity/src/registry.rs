//! The registry of things, certificates and certificate-ownership tokens.
//!
//! One redb file holds three tables, each value a JSON document:
//!
//! - `things`: [`Thing`] by name (AWS thing name rules: 1–128 characters of
//!   `[a-zA-Z0-9:_-]`);
//! - `certs`: [`CertRecord`] by certificate id (lowercase hex SHA-256 of the
//!   DER), with its AWS status, whether it is a device or a claim certificate,
//!   and the thing it is attached to;
//! - `tokens`: certificate-ownership tokens (as returned by AWS
//!   `CreateKeysAndCertificate`), stored as the SHA-256 of the token so a copy
//!   of the file does not reveal live tokens.
//!
//! Every method is one redb transaction. [`Registry`] is `Send + Sync`; share
//! it behind an `Arc`. Certificates may be looked up by a unique prefix of at
//! least 8 hex characters, like git object ids.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use redb::{Database, ReadableTable, TableDefinition};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const THINGS: TableDefinition<&str, &str> = TableDefinition::new("things");
const CERTS: TableDefinition<&str, &str> = TableDefinition::new("certs");
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");

/// Shortest certificate id prefix accepted by [`Registry::cert`].
pub const MIN_ID_PREFIX: usize = 8;

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry file is open in another `Registry` (this or another process).
    #[error("{}: the registry is already open (locked by another process or handle)", .0.display())]
    Locked(PathBuf),
    /// Creating the registry's directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// redb failed (I/O, corruption, a transaction error).
    #[error("registry database: {0}")]
    Db(#[from] Box<redb::Error>),
    /// A stored value is not valid JSON for its type.
    #[error("registry entry {key:?} is corrupt: {source}")]
    Corrupt {
        /// The key of the entry.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// `create_thing` on a name that exists.
    #[error("thing {0:?} already exists")]
    AlreadyExists(String),
    /// `add_cert` on a certificate id that exists.
    #[error("certificate {0} is already registered")]
    CertAlreadyExists(String),
    /// A thing or certificate that does not exist.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// `"thing"` or `"certificate"`.
        kind: &'static str,
        /// The name or id asked for.
        id: String,
    },
    /// A certificate id prefix that matches several certificates.
    #[error("certificate id prefix {0:?} is ambiguous: it matches several certificates")]
    Ambiguous(String),
    /// A status change of a revoked certificate (REVOKED is final).
    #[error("certificate {0} is REVOKED; a revoked certificate's status cannot change")]
    Revoked(String),
    /// `attach` of a certificate already attached to another thing.
    #[error("certificate {cert} is already attached to thing {thing:?}; detach it first")]
    AttachedElsewhere {
        /// The certificate id.
        cert: String,
        /// The thing it is attached to.
        thing: String,
    },
    /// A thing name outside AWS's rules.
    #[error("invalid thing name {0:?}: must be 1-128 characters of [a-zA-Z0-9:_-]")]
    InvalidThingName(String),
    /// A certificate record whose id or PEM is wrong.
    #[error("invalid certificate record: {0}")]
    InvalidCert(String),
    /// A token time-to-live that is not positive.
    #[error("token ttl must be positive, got {0} ms")]
    InvalidTtl(i64),
    /// An unknown or already redeemed certificate-ownership token.
    #[error("invalid certificate ownership token (unknown or already used)")]
    InvalidToken,
    /// A certificate-ownership token past its expiry.
    #[error("certificate ownership token expired")]
    ExpiredToken,
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for RegistryError {
            fn from(e: $t) -> Self {
                RegistryError::Db(Box::new(redb::Error::from(e)))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Status of a certificate, as in AWS (`ACTIVE`, `INACTIVE`, `REVOKED`,
/// `PENDING_ACTIVATION`). Only `ACTIVE` certificates may connect.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertStatus {
    /// May connect.
    Active,
    /// Disabled, may be re-activated.
    Inactive,
    /// Disabled for good.
    Revoked,
    /// Issued, waiting to be activated.
    PendingActivation,
}

impl CertStatus {
    /// The AWS spelling: `ACTIVE`, `INACTIVE`, `REVOKED`, `PENDING_ACTIVATION`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CertStatus::Active => "ACTIVE",
            CertStatus::Inactive => "INACTIVE",
            CertStatus::Revoked => "REVOKED",
            CertStatus::PendingActivation => "PENDING_ACTIVATION",
        }
    }
}

impl fmt::Display for CertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`CertStatus::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown certificate status {0:?} (expected ACTIVE, INACTIVE, REVOKED or PENDING_ACTIVATION)"
)]
pub struct UnknownStatus(pub String);

impl FromStr for CertStatus {
    type Err = UnknownStatus;

    /// Case-insensitive; `-` and `_` are interchangeable (`pending-activation`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
            "ACTIVE" => Ok(CertStatus::Active),
            "INACTIVE" => Ok(CertStatus::Inactive),
            "REVOKED" => Ok(CertStatus::Revoked),
            "PENDING_ACTIVATION" => Ok(CertStatus::PendingActivation),
            _ => Err(UnknownStatus(s.to_owned())),
        }
    }
}

/// What a certificate is for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CertKind {
    /// A device's own certificate.
    Device,
    /// A provisioning-claim certificate: it may only call the named
    /// provisioning templates (and create keys/certificates for them).
    Claim {
        /// Names of the templates it may call.
        templates: Vec<String>,
    },
}

/// A thing (device) in the registry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Thing {
    /// 1–128 characters of `[a-zA-Z0-9:_-]`.
    pub name: String,
    /// Its thing type, if any.
    #[serde(default)]
    pub thing_type: Option<String>,
    /// Its attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The thing groups it belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// 1 on creation, +1 on every replacement.
    pub version: u64,
}

/// A registered certificate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CertRecord {
    /// Lowercase hex SHA-256 of the DER; must match `pem`.
    pub certificate_id: String,
    /// The certificate, PEM.
    pub pem: String,
    /// Its status.
    pub status: CertStatus,
    /// Device or claim certificate.
    pub kind: CertKind,
    /// The thing it is attached to.
    pub thing: Option<String>,
    /// Registration time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// notAfter, ms since the Unix epoch.
    pub not_after_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct TokenRecord {
    certificate_id: String,
    expires_at_ms: i64,
}

/// Whether `name` follows AWS's thing name rule: 1–128 characters of
/// `[a-zA-Z0-9:_-]`. (Thing types and thing groups follow the same rule.)
pub fn is_valid_thing_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

fn is_full_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|source| RegistryError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|source| RegistryError::Corrupt {
        key: key.to_owned(),
        source,
    })
}

fn not_found(kind: &'static str, id: &str) -> RegistryError {
    RegistryError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

fn token_key(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Finds a certificate by full id or by a unique prefix of at least
/// [`MIN_ID_PREFIX`] hex characters.
fn find_cert<T>(table: &T, id: &str) -> Result<Option<CertRecord>>
where
    T: ReadableTable<&'static str, &'static str>,
{
    let id = id.trim().to_ascii_lowercase();
    if let Some(v) = table.get(id.as_str())? {
        return decode(&id, v.value()).map(Some);
    }
    if id.len() < MIN_ID_PREFIX || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let mut found: Option<CertRecord> = None;
    for entry in table.range(id.as_str()..)? {
        let (k, v) = entry?;
        if !k.value().starts_with(id.as_str()) {
            break;
        }
        if found.is_some() {
            return Err(RegistryError::Ambiguous(id));
        }
        found = Some(decode(k.value(), v.value())?);
    }
    Ok(found)
}

/// The registry: things, certificates and ownership tokens in one redb file.
pub struct Registry {
    db: Database,
    path: PathBuf,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens (creating if needed, with its parent directories) the registry
    /// file. A file already open elsewhere is [`RegistryError::Locked`].
    pub fn open(path: &Path) -> Result<Registry> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| RegistryError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => RegistryError::Locked(path.to_path_buf()),
            other => RegistryError::Db(Box::new(other.into())),
        })?;
        let txn = db.begin_write()?;
        {
            txn.open_table(THINGS)?;
            txn.open_table(CERTS)?;
            txn.open_table(TOKENS)?;
        }
        txn.commit()?;
        Ok(Registry {
            db,
            path: path.to_path_buf(),
        })
    }

    /// The file this registry lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates or replaces a thing. Replacing keeps the stored
    /// `created_at_ms` and sets `version` to the stored version + 1; creating
    /// stores version 1 (or the given version if higher).
    pub fn put_thing(&self, thing: &Thing) -> Result<()> {
        self.write_thing(thing, false)
    }

    /// Creates a thing; [`RegistryError::AlreadyExists`] if the name is taken.
    pub fn create_thing(&self, thing: &Thing) -> Result<()> {
        self.write_thing(thing, true)
    }

    fn write_thing(&self, thing: &Thing, create_only: bool) -> Result<()> {
        if !is_valid_thing_name(&thing.name) {
            return Err(RegistryError::InvalidThingName(thing.name.clone()));
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(THINGS)?;
            let old: Option<Thing> = match table.get(thing.name.as_str())? {
                Some(v) => Some(decode(&thing.name, v.value())?),
                None => None,
            };
            let mut new = thing.clone();
            match old {
                Some(_) if create_only => {
                    return Err(RegistryError::AlreadyExists(thing.name.clone()));
                }
                Some(old) => {
                    new.created_at_ms = old.created_at_ms;
                    new.version = old.version + 1;
                }
                None => new.version = new.version.max(1),
            }
            let json = encode(&new.name, &new)?;
            table.insert(new.name.as_str(), json.as_str())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The thing named `name`.
    pub fn thing(&self, name: &str) -> Result<Option<Thing>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(THINGS)?;
        let v = table.get(name)?;
        v.map(|v| decode(name, v.value())).transpose()
    }

    /// All things, by name.
    pub fn things(&self) -> Result<Vec<Thing>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(THINGS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Registers a certificate. Its id must be the lowercase hex SHA-256 of
    /// the DER in `pem`; the thing it names, if any, must exist; an id already
    /// registered is [`RegistryError::CertAlreadyExists`].
    pub fn add_cert(&self, rec: &CertRecord) -> Result<()> {
        if !is_full_id(&rec.certificate_id) {
            return Err(RegistryError::InvalidCert(format!(
                "id {:?} is not 64 lowercase hex characters",
                rec.certificate_id
            )));
        }
        let der = crate::ca::pem_to_der(&rec.pem)
            .map_err(|e| RegistryError::InvalidCert(e.to_string()))?;
        let actual = crate::ca::certificate_id(&der);
        if actual != rec.certificate_id {
            return Err(RegistryError::InvalidCert(format!(
                "id {} does not match its PEM, whose id is {actual}",
                rec.certificate_id
            )));
        }
        let txn = self.db.begin_write()?;
        {
            if let Some(thing) = &rec.thing {
                if txn.open_table(THINGS)?.get(thing.as_str())?.is_none() {
                    return Err(not_found("thing", thing));
                }
            }
            let mut certs = txn.open_table(CERTS)?;
            if certs.get(rec.certificate_id.as_str())?.is_some() {
                return Err(RegistryError::CertAlreadyExists(rec.certificate_id.clone()));
            }
            let json = encode(&rec.certificate_id, rec)?;
            certs.insert(rec.certificate_id.as_str(), json.as_str())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The certificate with id `id`, or with a unique id prefix of at least 8
    /// hex characters; [`RegistryError::Ambiguous`] if several match.
    pub fn cert(&self, id: &str) -> Result<Option<CertRecord>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CERTS)?;
        find_cert(&table, id)
    }

    /// All certificates, by id.
    pub fn certs(&self) -> Result<Vec<CertRecord>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CERTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Sets a certificate's status (id or unique prefix) and returns the
    /// updated record. REVOKED is final: any change away from it is
    /// [`RegistryError::Revoked`].
    pub fn set_status(&self, id: &str, status: CertStatus) -> Result<CertRecord> {
        self.update_cert(id, |rec| {
            if rec.status == CertStatus::Revoked && status != CertStatus::Revoked {
                return Err(RegistryError::Revoked(rec.certificate_id.clone()));
            }
            rec.status = status;
            Ok(())
        })
    }

    /// Attaches a certificate (id or unique prefix) to a thing; both must
    /// exist. Attaching to the thing it is attached to already is a no-op; a
    /// certificate attached to another thing is
    /// [`RegistryError::AttachedElsewhere`].
    pub fn attach(&self, cert_id: &str, thing: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            if txn.open_table(THINGS)?.get(thing)?.is_none() {
                return Err(not_found("thing", thing));
            }
            let mut certs = txn.open_table(CERTS)?;
            let mut rec =
                find_cert(&certs, cert_id)?.ok_or_else(|| not_found("certificate", cert_id))?;
            match &rec.thing {
                Some(current) if current == thing => return Ok(()),
                Some(current) => {
                    return Err(RegistryError::AttachedElsewhere {
                        cert: rec.certificate_id.clone(),
                        thing: current.clone(),
                    })
                }
                None => rec.thing = Some(thing.to_owned()),
            }
            let json = encode(&rec.certificate_id, &rec)?;
            certs.insert(rec.certificate_id.as_str(), json.as_str())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Detaches a certificate (id or unique prefix) from its thing, if any;
    /// returns the updated record.
    pub fn detach(&self, cert_id: &str) -> Result<CertRecord> {
        self.update_cert(cert_id, |rec| {
            rec.thing = None;
            Ok(())
        })
    }

    fn update_cert(
        &self,
        id: &str,
        change: impl FnOnce(&mut CertRecord) -> Result<()>,
    ) -> Result<CertRecord> {
        let txn = self.db.begin_write()?;
        let rec = {
            let mut certs = txn.open_table(CERTS)?;
            let mut rec = find_cert(&certs, id)?.ok_or_else(|| not_found("certificate", id))?;
            change(&mut rec)?;
            let json = encode(&rec.certificate_id, &rec)?;
            certs.insert(rec.certificate_id.as_str(), json.as_str())?;
            rec
        };
        txn.commit()?;
        Ok(rec)
    }

    /// The certificates attached to `thing`, by id.
    pub fn certs_of(&self, thing: &str) -> Result<Vec<CertRecord>> {
        Ok(self
            .certs()?
            .into_iter()
            .filter(|c| c.thing.as_deref() == Some(thing))
            .collect())
    }

    /// Issues a certificate-ownership token for a certificate (id or unique
    /// prefix), valid for `ttl_ms` from `now_ms`: 32 random bytes, base64url.
    /// Only its SHA-256 is stored. Expired tokens are purged on the way.
    pub fn issue_token(&self, cert_id: &str, ttl_ms: i64, now_ms: i64) -> Result<String> {
        if ttl_ms <= 0 {
            return Err(RegistryError::InvalidTtl(ttl_ms));
        }
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| RegistryError::Random)?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let txn = self.db.begin_write()?;
        {
            let certs = txn.open_table(CERTS)?;
            let rec =
                find_cert(&certs, cert_id)?.ok_or_else(|| not_found("certificate", cert_id))?;
            let mut tokens = txn.open_table(TOKENS)?;
            tokens.retain(|_, v| {
                serde_json::from_str::<TokenRecord>(v).is_ok_and(|t| t.expires_at_ms > now_ms)
            })?;
            let record = TokenRecord {
                certificate_id: rec.certificate_id,
                expires_at_ms: now_ms.saturating_add(ttl_ms),
            };
            let key = token_key(&token);
            let json = encode(&key, &record)?;
            tokens.insert(key.as_str(), json.as_str())?;
        }
        txn.commit()?;
        Ok(token)
    }

    /// Redeems a certificate-ownership token once, returning its certificate
    /// id. Unknown or already redeemed: [`RegistryError::InvalidToken`]; past
    /// its expiry: [`RegistryError::ExpiredToken`] (and it is removed).
    pub fn redeem_token(&self, token: &str, now_ms: i64) -> Result<String> {
        let key = token_key(token);
        let txn = self.db.begin_write()?;
        let record: Option<TokenRecord> = {
            let mut tokens = txn.open_table(TOKENS)?;
            let removed = tokens.remove(key.as_str())?;
            removed.map(|v| decode(&key, v.value())).transpose()?
        };
        txn.commit()?;
        match record {
            None => Err(RegistryError::InvalidToken),
            Some(t) if now_ms >= t.expires_at_ms => Err(RegistryError::ExpiredToken),
            Some(t) => Ok(t.certificate_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{certificate_id, pem_to_der};

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("a/b/registry.redb")).unwrap();
        (dir, reg)
    }

    fn thing(name: &str) -> Thing {
        Thing {
            name: name.into(),
            thing_type: Some("thermostat".into()),
            attributes: BTreeMap::from([("color".to_string(), "red".to_string())]),
            groups: vec!["g1".into()],
            created_at_ms: 1_000,
            version: 0,
        }
    }

    fn cert_record(thing: Option<&str>) -> CertRecord {
        let cert = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
        let pem = cert.cert.pem();
        CertRecord {
            certificate_id: certificate_id(&pem_to_der(&pem).unwrap()),
            pem,
            status: CertStatus::Active,
            kind: CertKind::Device,
            thing: thing.map(str::to_owned),
            created_at_ms: 5,
            not_after_ms: 10,
        }
    }

    #[test]
    fn registry_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Registry>();
    }

    #[test]
    fn status_strings() {
        for (s, st) in [
            ("ACTIVE", CertStatus::Active),
            ("INACTIVE", CertStatus::Inactive),
            ("REVOKED", CertStatus::Revoked),
            ("PENDING_ACTIVATION", CertStatus::PendingActivation),
        ] {
            assert_eq!(st.to_string(), s);
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{s}\""));
            assert_eq!(s.parse::<CertStatus>().unwrap(), st);
            assert_eq!(s.to_lowercase().parse::<CertStatus>().unwrap(), st);
        }
        assert_eq!(
            "Pending-Activation".parse::<CertStatus>().unwrap(),
            CertStatus::PendingActivation
        );
        assert!("enabled".parse::<CertStatus>().is_err());
    }

    #[test]
    fn cert_kind_json() {
        let claim = CertKind::Claim {
            templates: vec!["t1".into()],
        };
        assert_eq!(
            serde_json::to_string(&claim).unwrap(),
            r#"{"kind":"claim","templates":["t1"]}"#
        );
        assert_eq!(
            serde_json::to_string(&CertKind::Device).unwrap(),
            r#"{"kind":"device"}"#
        );
    }

    #[test]
    fn things_create_put_and_versions() {
        let (_dir, reg) = registry();
        assert_eq!(reg.thing("t1").unwrap(), None);
        reg.create_thing(&thing("t1")).unwrap();
        let t = reg.thing("t1").unwrap().unwrap();
        assert_eq!(t.version, 1);
        assert_eq!(t.thing_type.as_deref(), Some("thermostat"));

        let err = reg.create_thing(&thing("t1")).unwrap_err();
        assert!(
            matches!(err, RegistryError::AlreadyExists(ref n) if n == "t1"),
            "{err}"
        );

        let mut changed = thing("t1");
        changed.attributes.insert("size".into(), "xl".into());
        changed.created_at_ms = 99;
        reg.put_thing(&changed).unwrap();
        let t = reg.thing("t1").unwrap().unwrap();
        assert_eq!(t.version, 2);
        assert_eq!(t.created_at_ms, 1_000, "creation time is kept");
        assert_eq!(t.attributes.len(), 2);
        reg.put_thing(&changed).unwrap();
        assert_eq!(reg.thing("t1").unwrap().unwrap().version, 3);

        reg.put_thing(&thing("a0")).unwrap();
        let names: Vec<_> = reg.things().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["a0", "t1"]);

        for bad in ["", "has space", "slash/y", &"x".repeat(129)] {
            let err = reg.put_thing(&thing(bad)).unwrap_err();
            assert!(matches!(err, RegistryError::InvalidThingName(_)), "{bad:?}");
        }
        reg.put_thing(&thing(&"x".repeat(128))).unwrap();
        reg.put_thing(&thing("a:b_c-D9")).unwrap();
    }

    #[test]
    fn certs_add_lookup_prefix_and_status() {
        let (_dir, reg) = registry();
        let rec = cert_record(None);
        reg.add_cert(&rec).unwrap();
        let err = reg.add_cert(&rec).unwrap_err();
        assert!(matches!(err, RegistryError::CertAlreadyExists(_)), "{err}");

        assert_eq!(reg.cert(&rec.certificate_id).unwrap(), Some(rec.clone()));
        assert_eq!(
            reg.cert(&rec.certificate_id.to_uppercase()).unwrap(),
            Some(rec.clone())
        );
        assert_eq!(
            reg.cert(&rec.certificate_id[..8]).unwrap(),
            Some(rec.clone())
        );
        assert_eq!(
            reg.cert(&rec.certificate_id[..7]).unwrap(),
            None,
            "too short"
        );
        assert_eq!(reg.cert("zzzzzzzzzz").unwrap(), None);
        assert_eq!(reg.cert(&"0".repeat(64)).unwrap(), None);

        let second = cert_record(None);
        reg.add_cert(&second).unwrap();
        assert_eq!(
            reg.cert(&second.certificate_id[..8]).unwrap(),
            Some(second.clone())
        );

        let updated = reg
            .set_status(&rec.certificate_id[..10], CertStatus::Inactive)
            .unwrap();
        assert_eq!(updated.status, CertStatus::Inactive);
        assert_eq!(
            reg.cert(&rec.certificate_id).unwrap().unwrap().status,
            CertStatus::Inactive
        );
        reg.set_status(&rec.certificate_id, CertStatus::Revoked)
            .unwrap();
        // Revoked -> revoked is no change.
        reg.set_status(&rec.certificate_id, CertStatus::Revoked)
            .unwrap();
        let err = reg
            .set_status(&rec.certificate_id, CertStatus::Active)
            .unwrap_err();
        assert!(matches!(err, RegistryError::Revoked(_)), "{err}");
        assert_eq!(
            reg.cert(&rec.certificate_id).unwrap().unwrap().status,
            CertStatus::Revoked
        );

        let err = reg
            .set_status(&"f".repeat(64), CertStatus::Active)
            .unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::NotFound {
                    kind: "certificate",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(reg.certs().unwrap().len(), 2);
    }

    #[test]
    fn ambiguous_prefix() {
        let (_dir, reg) = registry();
        // Insert raw records sharing an 8-char prefix directly, since real
        // ids sharing 8 hex chars would take ~2^32 tries.
        let a = "abcdef01".to_string() + &"0".repeat(56);
        let b = "abcdef01".to_string() + &"1".repeat(56);
        let txn = reg.db.begin_write().unwrap();
        {
            let mut t = txn.open_table(CERTS).unwrap();
            for id in [&a, &b] {
                let mut rec = cert_record(None);
                rec.certificate_id = id.clone();
                t.insert(id.as_str(), serde_json::to_string(&rec).unwrap().as_str())
                    .unwrap();
            }
        }
        txn.commit().unwrap();
        let err = reg.cert("abcdef01").unwrap_err();
        assert!(matches!(err, RegistryError::Ambiguous(_)), "{err}");
        assert_eq!(reg.cert("abcdef010").unwrap().unwrap().certificate_id, a);
        assert_eq!(reg.cert("ABCDEF011").unwrap().unwrap().certificate_id, b);
        let err = reg
            .set_status("abcdef01", CertStatus::Inactive)
            .unwrap_err();
        assert!(matches!(err, RegistryError::Ambiguous(_)), "{err}");
    }

    #[test]
    fn add_cert_validates() {
        let (_dir, reg) = registry();
        let mut rec = cert_record(None);
        rec.certificate_id = "f".repeat(64);
        let err = reg.add_cert(&rec).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        rec.certificate_id = "abc".into();
        assert!(matches!(
            reg.add_cert(&rec),
            Err(RegistryError::InvalidCert(_))
        ));
        let rec = cert_record(Some("ghost"));
        let err = reg.add_cert(&rec).unwrap_err();
        assert!(
            matches!(err, RegistryError::NotFound { kind: "thing", .. }),
            "{err}"
        );
        reg.put_thing(&thing("ghost")).unwrap();
        reg.add_cert(&rec).unwrap();
        assert_eq!(reg.certs_of("ghost").unwrap(), vec![rec]);
    }

    #[test]
    fn attach_and_certs_of() {
        let (_dir, reg) = registry();
        let c1 = cert_record(None);
        let c2 = cert_record(None);
        reg.add_cert(&c1).unwrap();
        reg.add_cert(&c2).unwrap();
        let err = reg.attach(&c1.certificate_id, "t1").unwrap_err();
        assert!(
            matches!(err, RegistryError::NotFound { kind: "thing", .. }),
            "{err}"
        );
        reg.put_thing(&thing("t1")).unwrap();
        reg.put_thing(&thing("t2")).unwrap();
        let err = reg.attach(&"0".repeat(64), "t1").unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::NotFound {
                    kind: "certificate",
                    ..
                }
            ),
            "{err}"
        );

        reg.attach(&c1.certificate_id, "t1").unwrap();
        reg.attach(&c1.certificate_id, "t1").unwrap();
        reg.attach(&c2.certificate_id[..12], "t1").unwrap();
        let mut ids: Vec<_> = reg
            .certs_of("t1")
            .unwrap()
            .into_iter()
            .map(|c| c.certificate_id)
            .collect();
        ids.sort();
        let mut want = vec![c1.certificate_id.clone(), c2.certificate_id.clone()];
        want.sort();
        assert_eq!(ids, want);
        assert!(reg.certs_of("t2").unwrap().is_empty());

        let err = reg.attach(&c1.certificate_id, "t2").unwrap_err();
        assert!(
            matches!(err, RegistryError::AttachedElsewhere { .. }),
            "{err}"
        );
        let rec = reg.detach(&c1.certificate_id).unwrap();
        assert_eq!(rec.thing, None);
        reg.attach(&c1.certificate_id, "t2").unwrap();
        assert_eq!(reg.certs_of("t2").unwrap().len(), 1);
    }

    #[test]
    fn tokens_are_single_use_and_expire() {
        let (_dir, reg) = registry();
        let rec = cert_record(None);
        reg.add_cert(&rec).unwrap();

        let token = reg.issue_token(&rec.certificate_id, 60_000, 1_000).unwrap();
        assert!(token.len() >= 40);
        assert!(!token.contains(&rec.certificate_id[..8]));
        let other = reg.issue_token(&rec.certificate_id, 60_000, 1_000).unwrap();
        assert_ne!(token, other);

        assert_eq!(reg.redeem_token(&token, 2_000).unwrap(), rec.certificate_id);
        assert!(matches!(
            reg.redeem_token(&token, 2_000),
            Err(RegistryError::InvalidToken)
        ));
        assert!(matches!(
            reg.redeem_token("garbage", 2_000),
            Err(RegistryError::InvalidToken)
        ));
        assert!(matches!(
            reg.redeem_token(&other, 61_000),
            Err(RegistryError::ExpiredToken)
        ));
        // An expired token is gone afterwards.
        assert!(matches!(
            reg.redeem_token(&other, 2_000),
            Err(RegistryError::InvalidToken)
        ));

        assert!(matches!(
            reg.issue_token(&"0".repeat(64), 1, 0),
            Err(RegistryError::NotFound { .. })
        ));
        assert!(matches!(
            reg.issue_token(&rec.certificate_id, 0, 0),
            Err(RegistryError::InvalidTtl(0))
        ));

        // Issuing purges expired tokens.
        reg.issue_token(&rec.certificate_id, 10, 0).unwrap();
        reg.issue_token(&rec.certificate_id, 10, 100).unwrap();
        let txn = reg.db.begin_read().unwrap();
        let n = txn.open_table(TOKENS).unwrap().iter().unwrap().count();
        assert_eq!(n, 1);
    }

    #[test]
    fn persists_and_locks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reg.redb");
        let reg = Registry::open(&path).unwrap();
        reg.put_thing(&thing("t1")).unwrap();
        let err = Registry::open(&path).unwrap_err();
        assert!(
            matches!(err, RegistryError::Locked(ref p) if p == &path),
            "{err}"
        );
        drop(reg);
        let reg = Registry::open(&path).unwrap();
        assert_eq!(reg.thing("t1").unwrap().unwrap().version, 1);
    }
}
