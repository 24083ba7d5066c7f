//! The fleet certificate authority.
//!
//! A [`FleetCa`] lives in one directory:
//!
//! | file             | what                                              | mode |
//! |------------------|---------------------------------------------------|------|
//! | `ca.pem`         | the CA certificate (ECDSA P-256, 10 years)        | 0644 |
//! | `ca.key.pem`     | its PKCS#8 private key                            | 0600 |
//! | `server.pem`     | the broker's TLS server certificate, CA-signed    | 0644 |
//! | `server.key.pem` | its private key                                   | 0600 |
//!
//! The CA issues device and claim certificates (clientAuth, random serial,
//! backdated five minutes against clock skew) with a fresh key, or signs a
//! device's PKCS#10 CSR as AWS `CreateCertificateFromCsr` does, keeping the
//! device's key on the device. A certificate's id is the lowercase hex SHA-256
//! of its DER, the shape of an AWS certificate id.
//!
//! `ca.pem` is written last, so its presence marks a complete CA; `init` and
//! `import` refuse to overwrite one.

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// File name of the CA certificate inside the CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside the CA directory.
pub const CA_KEY_FILE: &str = "ca.key.pem";
/// File name of the broker's TLS server certificate inside the CA directory.
pub const SERVER_CERT_FILE: &str = "server.pem";
/// File name of the broker's TLS server key inside the CA directory.
pub const SERVER_KEY_FILE: &str = "server.key.pem";

/// Lifetime of a CA created by [`FleetCa::init`].
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// Lifetime of the broker's server certificate: 825 days, the longest that
/// Apple platforms accept for a TLS server certificate, even from a private
/// CA. Renew it with [`FleetCa::write_server_identity`].
pub const SERVER_VALIDITY_DAYS: i64 = 825;
/// Names always present in the server certificate's subjectAltName.
pub const DEFAULT_SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];
/// How far `not_before` is set in the past, against device clock skew.
const BACKDATE: Duration = Duration::minutes(5);

/// Errors of the fleet CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// `init`/`import` found an existing CA file and will not overwrite it.
    #[error("{}: already exists; refusing to overwrite an existing fleet CA", .0.display())]
    AlreadyExists(PathBuf),
    /// A file of the CA directory is missing.
    #[error("{}: not found; run `weir ca init` to create the fleet CA", .0.display())]
    Missing(PathBuf),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not the expected PEM.
    #[error("bad PEM: {0}")]
    BadPem(String),
    /// The bytes are not an X.509 certificate.
    #[error("invalid certificate: {0}")]
    BadCertificate(String),
    /// An imported CA certificate lacks `basicConstraints CA:TRUE`.
    #[error("the certificate is not a CA certificate (it lacks basicConstraints CA:TRUE)")]
    NotACa,
    /// An imported CA certificate's key usage excludes `keyCertSign`.
    #[error("the CA certificate's keyUsage does not allow signing certificates (keyCertSign)")]
    CaCannotSign,
    /// An imported CA certificate is no longer (or not yet) valid.
    #[error("the CA certificate is not valid now (valid from {not_before} to {not_after})")]
    CaNotValidNow {
        /// Its notBefore.
        not_before: String,
        /// Its notAfter.
        not_after: String,
    },
    /// The private key cannot be read.
    #[error("invalid private key: {0}")]
    BadKey(String),
    /// The private key is not the one of the certificate.
    #[error("the private key does not match the CA certificate: its public key differs from the certificate's")]
    KeyMismatch,
    /// The CSR cannot be read or its signature is wrong.
    #[error("invalid certificate signing request: {0}")]
    BadCsr(String),
    /// A validity period that is empty or inverted.
    #[error("invalid validity: {0}")]
    InvalidValidity(String),
    /// A common name or server name that cannot go in a certificate.
    #[error("invalid name {0:?}: {1}")]
    InvalidName(String, String),
    /// A certificate was not issued by this CA, or is outside its validity.
    #[error("certificate rejected: {0}")]
    Rejected(String),
    /// Certificate generation failed inside rcgen.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
}

type Result<T, E = CaError> = std::result::Result<T, E>;

/// A certificate issued by the fleet CA.
#[derive(Clone, Debug)]
pub struct Issued {
    /// Lowercase hex SHA-256 of `cert_der` (see [`certificate_id`]).
    pub certificate_id: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The new private key (PKCS#8 PEM); `None` when a CSR was signed.
    pub key_pem: Option<String>,
    /// notAfter, milliseconds since the Unix epoch.
    pub not_after_ms: i64,
}

/// What [`parse_certificate`] reads out of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Lowercase hex SHA-256 of the DER.
    pub certificate_id: String,
    /// The subject's first CN, if any.
    pub common_name: Option<String>,
    /// notBefore, milliseconds since the Unix epoch.
    pub not_before_ms: i64,
    /// notAfter, milliseconds since the Unix epoch.
    pub not_after_ms: i64,
    /// The issuer DN, e.g. `CN=Weir fleet CA`.
    pub issuer: String,
    /// The subject DN, e.g. `CN=sensor_1`.
    pub subject: String,
    /// Whether basicConstraints says CA:TRUE.
    pub is_ca: bool,
}

/// The id of a certificate: lowercase hex SHA-256 of its DER (64 characters,
/// like an AWS certificate id).
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Decodes the first `CERTIFICATE` block of a PEM text.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|der| der.to_vec())
        .map_err(|e| CaError::BadPem(pem_error("CERTIFICATE", e)))
}

/// Reads a DER certificate's id, common name, validity, issuer and subject.
pub fn parse_certificate(der: &[u8]) -> Result<CertInfo> {
    let cert = parse_x509(der)?;
    Ok(info_of(der, &cert))
}

fn parse_x509(der: &[u8]) -> Result<X509Certificate<'_>> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| CaError::BadCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CaError::BadCertificate(
            "trailing bytes after the certificate".into(),
        ));
    }
    Ok(cert)
}

fn info_of(der: &[u8], cert: &X509Certificate<'_>) -> CertInfo {
    CertInfo {
        certificate_id: certificate_id(der),
        common_name: first_cn(cert.subject()),
        not_before_ms: cert.validity().not_before.timestamp().saturating_mul(1000),
        not_after_ms: cert.validity().not_after.timestamp().saturating_mul(1000),
        issuer: cert.issuer().to_string(),
        subject: cert.subject().to_string(),
        is_ca: cert.is_ca(),
    }
}

fn first_cn(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

fn pem_error(label: &str, e: pem::Error) -> String {
    match e {
        pem::Error::NoItemsFound => format!("no `-----BEGIN {label}-----` block found"),
        other => format!("malformed PEM ({other:?})"),
    }
}

/// Encodes DER as a PEM block with the given label.
fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Random)?;
    // Positive and always 16 bytes long (RFC 5280 allows up to 20).
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn check_cn(cn: &str) -> Result<()> {
    if cn.trim().is_empty() {
        return Err(CaError::InvalidName(cn.into(), "empty common name".into()));
    }
    if cn.chars().any(char::is_control) {
        return Err(CaError::InvalidName(
            cn.into(),
            "control characters are not allowed".into(),
        ));
    }
    Ok(())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CaError::Missing(path.to_path_buf())
        } else {
            io_err(path)(e)
        }
    })
}

/// Writes `contents` to `path` through a temporary file and a rename; a
/// private file is created with mode 0600 before anything is written to it.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = opts.open(&tmp).map_err(io_err(&tmp))?;
    #[cfg(unix)]
    {
        // The mode above only applies when the file is created.
        use std::os::unix::fs::PermissionsExt;
        let mode = if private { 0o600 } else { 0o644 };
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(&tmp))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn parse_key(key_pem: &str) -> Result<KeyPair> {
    if key_pem.contains("ENCRYPTED PRIVATE KEY") {
        return Err(CaError::BadKey(
            "the key is encrypted; decrypt it first (`openssl pkcs8 -topk8 -nocrypt`)".into(),
        ));
    }
    if !key_pem.contains("-----BEGIN PRIVATE KEY-----") {
        return Err(CaError::BadKey(
            "expected an unencrypted PKCS#8 `-----BEGIN PRIVATE KEY-----` block \
             (convert with `openssl pkcs8 -topk8 -nocrypt -in key.pem`)"
                .into(),
        ));
    }
    KeyPair::from_pem(key_pem).map_err(|e| {
        CaError::BadKey(format!(
            "{e} (supported: ECDSA P-256/P-384, Ed25519 and RSA keys in PKCS#8)"
        ))
    })
}

/// Subject alternative names of the server certificate: `names` (trimmed,
/// empty ones skipped) followed by [`DEFAULT_SERVER_NAMES`], without repeats.
fn server_sans(names: &[String]) -> Result<Vec<SanType>> {
    let mut seen: Vec<String> = Vec::new();
    let all = names
        .iter()
        .map(|n| n.trim())
        .chain(DEFAULT_SERVER_NAMES)
        .filter(|n| !n.is_empty());
    let mut sans = Vec::new();
    for name in all {
        let key = name.to_ascii_lowercase();
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                name.try_into()
                    .map_err(|e| CaError::InvalidName(name.into(), format!("{e}")))?,
            ),
        };
        sans.push(san);
    }
    Ok(sans)
}

/// The fleet certificate authority: its certificate and signing key.
pub struct FleetCa {
    dir: PathBuf,
    cert_pem: String,
    cert_der: Vec<u8>,
    info: CertInfo,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for FleetCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("FleetCa")
            .field("dir", &self.dir)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl FleetCa {
    /// Creates a new self-signed ECDSA P-256 CA in `dir` (created if missing)
    /// with subject `CN=<common_name>`, valid for ten years, and issues the
    /// broker's server certificate for `server_names` (plus `localhost` and
    /// `127.0.0.1`). Refuses if `dir/ca.pem` or `dir/ca.key.pem` exists.
    pub fn init(dir: &Path, common_name: &str, server_names: &[String]) -> Result<FleetCa> {
        check_cn(common_name)?;
        let sans = server_sans(server_names)?;
        prepare_dir(dir)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(Some(common_name));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        Self::install(dir, cert.der().to_vec(), key, sans)
    }

    /// Imports an existing CA: `cert_pem` must be a CA certificate valid now
    /// and `key_pem` its unencrypted PKCS#8 private key. Writes the same files
    /// as [`FleetCa::init`], including a fresh server certificate, and refuses
    /// to overwrite an existing CA the same way.
    pub fn import(
        dir: &Path,
        cert_pem: &str,
        key_pem: &str,
        server_names: &[String],
    ) -> Result<FleetCa> {
        let der = pem_to_der(cert_pem)?;
        let key = parse_key(key_pem)?;
        let cert = parse_x509(&der)?;
        check_ca(&cert, &key)?;
        if !cert.validity().is_valid() {
            return Err(CaError::CaNotValidNow {
                not_before: cert.validity().not_before.to_string(),
                not_after: cert.validity().not_after.to_string(),
            });
        }
        drop(cert);
        let sans = server_sans(server_names)?;
        prepare_dir(dir)?;
        Self::install(dir, der, key, sans)
    }

    /// Loads the CA from `dir/ca.pem` and `dir/ca.key.pem`.
    pub fn load(dir: &Path) -> Result<FleetCa> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = read_file(&cert_path)?;
        let key_pem = read_file(&key_path)?;
        let in_file = |path: &Path, e: CaError| match e {
            CaError::BadPem(m) => CaError::BadPem(format!("{}: {m}", path.display())),
            CaError::BadCertificate(m) => {
                CaError::BadCertificate(format!("{}: {m}", path.display()))
            }
            CaError::BadKey(m) => CaError::BadKey(format!("{}: {m}", path.display())),
            other => other,
        };
        let der = pem_to_der(&cert_pem).map_err(|e| in_file(&cert_path, e))?;
        let key = parse_key(&key_pem).map_err(|e| in_file(&key_path, e))?;
        let cert = parse_x509(&der).map_err(|e| in_file(&cert_path, e))?;
        check_ca(&cert, &key)?;
        drop(cert);
        Self::from_parts(dir, der, key)
    }

    /// Reads the broker's TLS identity from `dir`: the certificate chain
    /// (server certificate then CA certificate, PEM) and the server key (PEM).
    pub fn server_identity(dir: &Path) -> Result<(String, String)> {
        let server = read_file(&dir.join(SERVER_CERT_FILE))?;
        let key = read_file(&dir.join(SERVER_KEY_FILE))?;
        let ca = read_file(&dir.join(CA_CERT_FILE))?;
        let mut chain = server.trim_end().to_owned();
        chain.push('\n');
        chain.push_str(ca.trim_end());
        chain.push('\n');
        Ok((chain, key))
    }

    fn install(dir: &Path, der: Vec<u8>, key: KeyPair, sans: Vec<SanType>) -> Result<FleetCa> {
        let key_pem = key.serialize_pem();
        let ca = Self::from_parts(dir, der, key)?;
        write_file(&dir.join(CA_KEY_FILE), &key_pem, true)?;
        ca.write_server_files(sans)?;
        // Last: the presence of ca.pem marks a complete CA directory.
        write_file(&dir.join(CA_CERT_FILE), &ca.cert_pem, false)?;
        Ok(ca)
    }

    fn from_parts(dir: &Path, der: Vec<u8>, key: KeyPair) -> Result<FleetCa> {
        let info = parse_certificate(&der)?;
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), key)?;
        Ok(FleetCa {
            dir: dir.to_path_buf(),
            cert_pem: to_pem("CERTIFICATE", &der),
            cert_der: der,
            info,
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert_der.clone()
    }

    /// What the CA certificate says (id, subject, validity).
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// The directory the CA lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues (or renews) the broker's TLS server certificate into
    /// `server.pem` / `server.key.pem`: a new P-256 key, serverAuth, SANs =
    /// `server_names` (IP addresses where a name parses as one) plus
    /// `localhost` and `127.0.0.1`, valid [`SERVER_VALIDITY_DAYS`] days.
    pub fn write_server_identity(&self, server_names: &[String]) -> Result<()> {
        self.write_server_files(server_sans(server_names)?)
    }

    fn write_server_files(&self, sans: Vec<SanType>) -> Result<()> {
        let cn = match sans.first() {
            Some(SanType::DnsName(name)) => name.as_str().to_owned(),
            Some(SanType::IpAddress(ip)) => ip.to_string(),
            _ => DEFAULT_SERVER_NAMES[0].to_owned(),
        };
        let now = OffsetDateTime::now_utc();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(Some(&cn));
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(SERVER_VALIDITY_DAYS);
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(&key, &self.issuer)?;
        write_file(&self.dir.join(SERVER_KEY_FILE), &key.serialize_pem(), true)?;
        write_file(&self.dir.join(SERVER_CERT_FILE), &cert.pem(), false)
    }

    /// Issues a client certificate with a new P-256 key: subject
    /// `CN=<common_name>`, clientAuth, random serial, valid from five minutes
    /// ago for `validity_days` days (at least 1).
    pub fn issue(&self, common_name: &str, validity_days: u32) -> Result<Issued> {
        let (not_before, not_after) = validity(validity_days)?;
        self.issue_with_validity(common_name, not_before, not_after)
    }

    /// Like [`FleetCa::issue`] with an explicit validity period, which may lie
    /// in the past (to make an expired certificate, in tests).
    pub fn issue_with_validity(
        &self,
        common_name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued> {
        check_cn(common_name)?;
        if not_after <= not_before {
            return Err(CaError::InvalidValidity(format!(
                "not_after ({not_after}) must be later than not_before ({not_before})"
            )));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let params = client_params(Some(common_name), not_before, not_after)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        issued(cert.der().to_vec(), Some(key.serialize_pem()))
    }

    /// Signs a PKCS#10 CSR (PEM), as AWS `CreateCertificateFromCsr` does. The
    /// CSR's signature must verify; only its public key and subject CN are
    /// used (requested extensions are ignored: the certificate is always a
    /// clientAuth end-entity certificate). The subject CN is `common_name`
    /// when given, otherwise the CSR's CN (none if the CSR has none).
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        common_name: Option<&str>,
        validity_days: u32,
    ) -> Result<Issued> {
        let normalized = csr_pem.replace("NEW CERTIFICATE REQUEST", "CERTIFICATE REQUEST");
        let der = CertificateSigningRequestDer::from_pem_slice(normalized.as_bytes())
            .map_err(|e| CaError::BadCsr(pem_error("CERTIFICATE REQUEST", e)))?;
        let (_, csr) = X509CertificationRequest::from_der(der.as_ref())
            .map_err(|e| CaError::BadCsr(format!("not a PKCS#10 certificate request: {e}")))?;
        csr.verify_signature().map_err(|e| {
            CaError::BadCsr(format!(
                "its signature does not verify with its own public key ({e})"
            ))
        })?;
        let info = &csr.certification_request_info;
        let cn = match common_name {
            Some(cn) => Some(cn.to_owned()),
            None => first_cn(&info.subject),
        };
        if let Some(cn) = &cn {
            check_cn(cn)?;
        }
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
            .map_err(|e| CaError::BadCsr(format!("unsupported public key: {e}")))?;
        let (not_before, not_after) = validity(validity_days)?;
        let params = client_params(cn.as_deref(), not_before, not_after)?;
        let cert = params.signed_by(&public_key, &self.issuer)?;
        issued(cert.der().to_vec(), None)
    }

    /// Checks that `der` was signed by this CA and is valid now; returns what
    /// it says.
    pub fn verify(&self, der: &[u8]) -> Result<CertInfo> {
        let ca = parse_x509(&self.cert_der)?;
        let cert = parse_x509(der)?;
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|e| CaError::Rejected(format!("not signed by this CA ({e})")))?;
        if !cert.validity().is_valid() {
            return Err(CaError::Rejected(format!(
                "outside its validity period ({} to {})",
                cert.validity().not_before,
                cert.validity().not_after
            )));
        }
        Ok(info_of(der, &cert))
    }
}

fn prepare_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    for name in [CA_CERT_FILE, CA_KEY_FILE] {
        let path = dir.join(name);
        if path.exists() {
            return Err(CaError::AlreadyExists(path));
        }
    }
    Ok(())
}

/// `cert` is a CA that may sign certificates and `key` is its key.
fn check_ca(cert: &X509Certificate<'_>, key: &KeyPair) -> Result<()> {
    if !cert.is_ca() {
        return Err(CaError::NotACa);
    }
    if let Ok(Some(usage)) = cert.key_usage() {
        if !usage.value.key_cert_sign() {
            return Err(CaError::CaCannotSign);
        }
    }
    if key.der_bytes() != cert.public_key().subject_public_key.as_ref() {
        return Err(CaError::KeyMismatch);
    }
    Ok(())
}

fn validity(days: u32) -> Result<(OffsetDateTime, OffsetDateTime)> {
    if days == 0 {
        return Err(CaError::InvalidValidity(
            "validity_days must be at least 1".into(),
        ));
    }
    let now = OffsetDateTime::now_utc();
    Ok((now - BACKDATE, now + Duration::days(i64::from(days))))
}

fn distinguished_name(cn: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(cn) = cn {
        dn.push(DnType::CommonName, cn);
    }
    dn
}

fn client_params(
    cn: Option<&str>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(cn);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

fn issued(der: Vec<u8>, key_pem: Option<String>) -> Result<Issued> {
    let info = parse_certificate(&der)?;
    Ok(Issued {
        certificate_id: info.certificate_id,
        cert_pem: to_pem("CERTIFICATE", &der),
        cert_der: der,
        key_pem,
        not_after_ms: info.not_after_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn now_ms() -> i64 {
        (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn certificate_id_is_sha256_hex() {
        let id = certificate_id(b"abc");
        assert_eq!(
            id,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn init_issue_parse_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("nested/ca");
        let ca = FleetCa::init(
            &ca_dir,
            "Weir fleet CA",
            &names(&["broker.example", "10.0.0.7"]),
        )
        .unwrap();
        for f in [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE] {
            assert!(ca_dir.join(f).is_file(), "{f} missing");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [CA_KEY_FILE, SERVER_KEY_FILE] {
                let mode = fs::metadata(ca_dir.join(f)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }

        // The CA certificate.
        let ca_x509 = parse_x509(&ca.cert_der).unwrap();
        assert!(ca_x509.is_ca());
        let ku = ca_x509.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert_eq!(ca.info().common_name.as_deref(), Some("Weir fleet CA"));
        let ten_years_ms = CA_VALIDITY_DAYS * 86_400_000;
        assert!((ca.info().not_after_ms - now_ms() - ten_years_ms).abs() < 60_000);
        assert_eq!(pem_to_der(ca.cert_pem()).unwrap(), ca.cert_der());

        // A device certificate.
        let issued = ca.issue("sensor_1", 365).unwrap();
        assert_eq!(issued.certificate_id.len(), 64);
        assert_eq!(issued.certificate_id, certificate_id(&issued.cert_der));
        assert_eq!(pem_to_der(&issued.cert_pem).unwrap(), issued.cert_der);
        assert!(issued.key_pem.as_deref().unwrap().contains("PRIVATE KEY"));
        let info = parse_certificate(&issued.cert_der).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("sensor_1"));
        assert_eq!(info.subject, "CN=sensor_1");
        assert_eq!(info.issuer, "CN=Weir fleet CA");
        assert!(!info.is_ca);
        assert_eq!(info.not_after_ms, issued.not_after_ms);
        let year_ms = 365 * 86_400_000;
        assert!((info.not_after_ms - now_ms() - year_ms).abs() < 60_000);
        // Backdated five minutes.
        let skew = now_ms() - info.not_before_ms;
        assert!((290_000..=310_000).contains(&skew), "skew {skew}");

        // It verifies against the CA's public key (x509-parser + ring).
        let dev = parse_x509(&issued.cert_der).unwrap();
        dev.verify_signature(Some(ca_x509.public_key())).unwrap();
        let eku = dev.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        ca.verify(&issued.cert_der).unwrap();

        // Two issues differ in key, serial and id.
        let again = ca.issue("sensor_1", 365).unwrap();
        assert_ne!(again.certificate_id, issued.certificate_id);
        assert_ne!(
            parse_x509(&again.cert_der).unwrap().raw_serial(),
            dev.raw_serial()
        );

        // The server certificate.
        let (chain, key) = FleetCa::server_identity(&ca_dir).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let blocks: Vec<_> = CertificateDer::pem_slice_iter(chain.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].as_ref(), ca.cert_der().as_slice());
        let server = parse_x509(blocks[0].as_ref()).unwrap();
        server.verify_signature(Some(ca_x509.public_key())).unwrap();
        let eku = server.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth);
        let san = server.subject_alternative_name().unwrap().unwrap().value;
        use x509_parser::extensions::GeneralName;
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for name in &san.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) => ips.push(b.to_vec()),
                other => panic!("unexpected SAN {other:?}"),
            }
        }
        assert_eq!(dns, ["broker.example", "localhost"]);
        assert_eq!(ips, [vec![10, 0, 0, 7], vec![127, 0, 0, 1]]);
        assert_eq!(
            first_cn(server.subject()).as_deref(),
            Some("broker.example")
        );
    }

    #[test]
    fn init_refuses_existing_ca_and_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa::init(dir.path(), "CA", &[]).unwrap();
        let err = FleetCa::init(dir.path(), "CA", &[]).unwrap_err();
        assert!(matches!(err, CaError::AlreadyExists(_)));
        assert!(err.to_string().contains("ca.pem"), "{err}");

        let loaded = FleetCa::load(dir.path()).unwrap();
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        // The loaded CA signs certificates that chain to the original.
        let issued = loaded.issue("dev", 1).unwrap();
        ca.verify(&issued.cert_der).unwrap();
    }

    #[test]
    fn load_names_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = FleetCa::load(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ca.pem") && msg.contains("weir ca init"),
            "{msg}"
        );

        FleetCa::init(dir.path(), "CA", &[]).unwrap();
        fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
        let msg = FleetCa::load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("ca.key.pem") && msg.contains("weir ca init"),
            "{msg}"
        );

        let msg = FleetCa::server_identity(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("server.pem"), "{msg}");
    }

    #[test]
    fn import_validates_ca_and_key() {
        let src = tempfile::tempdir().unwrap();
        let ca = FleetCa::init(src.path(), "Imported CA", &[]).unwrap();
        let key_pem = fs::read_to_string(src.path().join(CA_KEY_FILE)).unwrap();

        let dst = tempfile::tempdir().unwrap();
        let imported =
            FleetCa::import(dst.path(), ca.cert_pem(), &key_pem, &names(&["mqtt.local"])).unwrap();
        assert_eq!(imported.cert_der(), ca.cert_der());
        assert!(dst.path().join(SERVER_CERT_FILE).is_file());
        let issued = imported.issue("d", 1).unwrap();
        ca.verify(&issued.cert_der).unwrap();
        // Refuses to overwrite.
        let err = FleetCa::import(dst.path(), ca.cert_pem(), &key_pem, &[]).unwrap_err();
        assert!(matches!(err, CaError::AlreadyExists(_)), "{err}");

        // A leaf certificate is not a CA.
        let leaf = ca.issue("leaf", 1).unwrap();
        let other = tempfile::tempdir().unwrap();
        let err = FleetCa::import(
            other.path(),
            &leaf.cert_pem,
            leaf.key_pem.as_deref().unwrap(),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, CaError::NotACa), "{err}");
        assert!(err.to_string().contains("not a CA"), "{err}");

        // The key of another certificate does not match.
        let err = FleetCa::import(
            other.path(),
            ca.cert_pem(),
            leaf.key_pem.as_deref().unwrap(),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, CaError::KeyMismatch), "{err}");
        assert!(err.to_string().contains("does not match"), "{err}");

        // Garbage.
        let err = FleetCa::import(other.path(), "hello", &key_pem, &[]).unwrap_err();
        assert!(matches!(err, CaError::BadPem(_)), "{err}");
        let err = FleetCa::import(other.path(), ca.cert_pem(), "nope", &[]).unwrap_err();
        assert!(matches!(err, CaError::BadKey(_)), "{err}");
        // Nothing was written for the failed imports.
        assert!(!other.path().join(CA_CERT_FILE).exists());
    }

    #[test]
    fn sign_csr_keeps_device_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa::init(dir.path(), "CA", &[]).unwrap();

        let device_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(Some("from-csr"));
        // A CSR asking to be a CA does not get it.
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let csr = params
            .serialize_request(&device_key)
            .unwrap()
            .pem()
            .unwrap();

        let issued = ca.sign_csr(&csr, None, 30).unwrap();
        assert!(issued.key_pem.is_none());
        let info = ca.verify(&issued.cert_der).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("from-csr"));
        assert!(!info.is_ca);
        let cert = parse_x509(&issued.cert_der).unwrap();
        assert_eq!(
            cert.public_key().subject_public_key.as_ref(),
            device_key.der_bytes()
        );

        let renamed = ca.sign_csr(&csr, Some("thing-7"), 30).unwrap();
        let info = parse_certificate(&renamed.cert_der).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("thing-7"));

        // The old "NEW CERTIFICATE REQUEST" label is accepted.
        let legacy = csr.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST");
        ca.sign_csr(&legacy, None, 1).unwrap();
    }

    #[test]
    fn sign_csr_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa::init(dir.path(), "CA", &[]).unwrap();
        let err = ca.sign_csr("not a csr", None, 1).unwrap_err();
        assert!(matches!(err, CaError::BadCsr(_)), "{err}");
        assert!(err.to_string().contains("CERTIFICATE REQUEST"), "{err}");

        let bogus = to_pem("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x00");
        let err = ca.sign_csr(&bogus, None, 1).unwrap_err();
        assert!(matches!(err, CaError::BadCsr(_)), "{err}");

        // A tampered CSR fails its signature check.
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(Some("aaaa"));
        let csr = params.serialize_request(&key).unwrap();
        let mut der = csr.der().to_vec();
        let pos = der.windows(4).position(|w| w == b"aaaa").unwrap();
        der[pos] = b'b';
        let err = ca
            .sign_csr(&to_pem("CERTIFICATE REQUEST", &der), None, 1)
            .unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");

        let err = ca.sign_csr(&csr.pem().unwrap(), None, 0).unwrap_err();
        assert!(matches!(err, CaError::InvalidValidity(_)), "{err}");
    }

    #[test]
    fn expired_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = FleetCa::init(dir.path(), "CA", &[]).unwrap();
        let now = OffsetDateTime::now_utc();
        let issued = ca
            .issue_with_validity("old", now - Duration::days(10), now - Duration::days(1))
            .unwrap();
        let info = parse_certificate(&issued.cert_der).unwrap();
        assert!(info.not_after_ms < now_ms());
        assert_eq!(issued.not_after_ms, info.not_after_ms);
        // Signed by the CA, but not valid now.
        let ca_x509 = parse_x509(&ca.cert_der).unwrap();
        parse_x509(&issued.cert_der)
            .unwrap()
            .verify_signature(Some(ca_x509.public_key()))
            .unwrap();
        let err = ca.verify(&issued.cert_der).unwrap_err();
        assert!(err.to_string().contains("validity"), "{err}");

        let err = ca
            .issue_with_validity("x", now, now - Duration::days(1))
            .unwrap_err();
        assert!(matches!(err, CaError::InvalidValidity(_)));
        assert!(matches!(ca.issue("x", 0), Err(CaError::InvalidValidity(_))));
        assert!(matches!(ca.issue(" ", 1), Err(CaError::InvalidName(..))));
    }

    #[test]
    fn foreign_certificate_is_rejected() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let ca_a = FleetCa::init(a.path(), "A", &[]).unwrap();
        let ca_b = FleetCa::init(b.path(), "A", &[]).unwrap();
        let issued = ca_b.issue("dev", 1).unwrap();
        let err = ca_a.verify(&issued.cert_der).unwrap_err();
        assert!(err.to_string().contains("not signed by this CA"), "{err}");
    }

    #[test]
    fn server_names_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let err = FleetCa::init(dir.path(), "CA", &names(&["bröker"])).unwrap_err();
        assert!(matches!(err, CaError::InvalidName(..)), "{err}");
        // Nothing half-written.
        assert!(!dir.path().join(CA_KEY_FILE).exists());
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(matches!(
            parse_certificate(b"junk"),
            Err(CaError::BadCertificate(_))
        ));
        assert!(matches!(pem_to_der(""), Err(CaError::BadPem(_))));
    }
}
