//! S3-compatible object storage (`[objects]`): the bucket where recordings go once sealed
//! (docs/recording-format.md, "In a bucket"). A small client of its own: path-style
//! requests signed with AWS Signature Version 4 (`sigv4`), over one blocking HTTP/1.1
//! exchange each (`http`), plain or TLS (rustls, ring). It puts, reads ranges of, lists and
//! deletes objects, and sets S3 Object Lock retention and legal hold on them, which the
//! general object-store crates do not. It knows nothing of recordings.

mod http;
pub mod sigv4;

use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// `[objects]` as written in the configuration file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ObjectsFile {
    endpoint: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    prefix: Option<String>,
    access_key_id: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    part_size: Option<String>,
    upload_interval: Option<String>,
    retention_mode: Option<String>,
}

/// S3 Object Lock's modes: governance (a user with the bypass permission may still delete)
/// or compliance (no one may, not even the account's root, until the date).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    fn header(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// `[objects]` resolved: where the bucket is and how recordings are uploaded to it.
#[derive(Clone)]
pub struct ObjectsConfig {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Put before every object's name (`recordings/` by default).
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    /// A part is uploaded once this many bytes of sealed chunks wait...
    pub part_size: u64,
    /// ...or once this long has passed since the last part and some wait.
    pub upload_interval: Duration,
    pub retention_mode: LockMode,
}

/// Never prints the secret (only where it is read from).
impl std::fmt::Debug for ObjectsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectsConfig")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field("part_size", &self.part_size)
            .field("upload_interval", &self.upload_interval)
            .field("retention_mode", &self.retention_mode)
            .finish()
    }
}

/// A key of `[objects]` that cannot be taken.
#[derive(Debug, thiserror::Error)]
#[error("objects.{key}: {why}")]
pub struct ObjectsConfigError {
    pub key: &'static str,
    pub why: String,
}

impl ObjectsConfig {
    /// `[objects]` from the file; None when the table is absent (recordings stay local).
    pub fn load(file: Option<ObjectsFile>) -> Result<Option<ObjectsConfig>, ObjectsConfigError> {
        let Some(f) = file else {
            return Ok(None);
        };
        let need = |key: &'static str, v: Option<String>| {
            v.filter(|s| !s.is_empty()).ok_or(ObjectsConfigError {
                key,
                why: "is required when [objects] is present".into(),
            })
        };
        let endpoint = need("endpoint", f.endpoint)?;
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ObjectsConfigError {
                key: "endpoint",
                why: format!("\"{endpoint}\" is not an http:// or https:// address"),
            });
        }
        let bucket = need("bucket", f.bucket)?;
        if !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(ObjectsConfigError {
                key: "bucket",
                why: format!("\"{bucket}\" is not a bucket name (a-z, 0-9, '-', '.')"),
            });
        }
        let secret_access_key_file = f.secret_access_key_file.ok_or(ObjectsConfigError {
            key: "secret_access_key_file",
            why: "is required when [objects] is present (a file holding the secret key)".into(),
        })?;
        let upload_interval =
            sandbox::profile::parse_duration(f.upload_interval.as_deref().unwrap_or("30s"))
                .map(Duration::from_secs)
                .map_err(|e| ObjectsConfigError {
                    key: "upload_interval",
                    why: e.to_string(),
                })?
                .max(Duration::from_secs(1));
        Ok(Some(ObjectsConfig {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            bucket,
            region: f.region.unwrap_or_else(|| "us-east-1".into()),
            prefix: f.prefix.unwrap_or_else(|| "recordings/".into()),
            access_key_id: need("access_key_id", f.access_key_id)?,
            secret_access_key_file,
            ca_file: f.ca_file,
            part_size: sandbox::profile::parse_size(f.part_size.as_deref().unwrap_or("8M"))
                .map_err(|why| ObjectsConfigError {
                    key: "part_size",
                    why,
                })?
                .clamp(1, 64 << 20),
            upload_interval,
            retention_mode: match f.retention_mode.as_deref().unwrap_or("governance") {
                "governance" => LockMode::Governance,
                "compliance" => LockMode::Compliance,
                other => {
                    return Err(ObjectsConfigError {
                        key: "retention_mode",
                        why: format!("\"{other}\" is not a mode (governance, compliance)"),
                    })
                }
            },
        }))
    }
}

/// What went wrong with the bucket.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("the bucket's endpoint {endpoint} cannot be reached ({source}); recordings wait in the local spool and are uploaded when it answers")]
    Unreachable {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the bucket refused to {op} {key}: HTTP {status} {code}: {message}")]
    Refused {
        op: &'static str,
        key: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{path}: the secret key of [objects] cannot be read ({source}); objects.secret_access_key_file names the file that holds it")]
    Secret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bucket refused the configured key (boxed: the error stays small).
    #[error(transparent)]
    Credentials(Box<CredentialsRefused>),
    #[error("objects.ca_file or the system's roots cannot be used: {0}")]
    Tls(String),
    #[error("the bucket's listing cannot be read: {0}")]
    Listing(String),
}

/// The bucket refused the configured key (a wrong secret, an unknown key id, a key not
/// allowed this bucket): names what to fix, never the secret.
#[derive(Debug, thiserror::Error)]
#[error("the bucket {bucket} at {endpoint} refused cordon's credentials (HTTP {status} {code}: {message}): check objects.access_key_id (\"{access_key_id}\") and the secret key in objects.secret_access_key_file ({secret_file}); they must name a key allowed to read and write this bucket")]
pub struct CredentialsRefused {
    pub bucket: String,
    pub endpoint: String,
    pub status: u16,
    pub code: String,
    pub message: String,
    pub access_key_id: String,
    pub secret_file: PathBuf,
}

/// Object Lock for an object put: its mode and the date until which it may not be deleted.
#[derive(Debug, Clone)]
pub struct Lock {
    pub mode: LockMode,
    pub until: SystemTime,
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// The bucket, with its credentials. Cheap to clone.
#[derive(Clone)]
pub struct Bucket {
    cfg: Arc<ObjectsConfig>,
    target: http::Target,
    host_header: String,
    secret: Arc<zeroize::Zeroizing<String>>,
}

impl Bucket {
    /// Reads the secret key and prepares TLS; nothing is sent.
    pub fn open(cfg: &ObjectsConfig) -> Result<Bucket, ObjectError> {
        use std::os::unix::fs::MetadataExt;
        let path = &cfg.secret_access_key_file;
        let meta = std::fs::metadata(path).map_err(|source| ObjectError::Secret {
            path: path.clone(),
            source,
        })?;
        if meta.mode() & 0o077 != 0 {
            return Err(ObjectError::Secret {
                path: path.clone(),
                source: std::io::Error::other(format!(
                    "mode {:o} lets others read it: chmod 600 it",
                    meta.mode() & 0o777
                )),
            });
        }
        let secret = std::fs::read_to_string(&cfg.secret_access_key_file).map_err(|source| {
            ObjectError::Secret {
                path: cfg.secret_access_key_file.clone(),
                source,
            }
        })?;
        let secret = zeroize::Zeroizing::new(secret.trim().to_string());
        let (tls, rest) = match cfg.endpoint.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (false, cfg.endpoint.trim_start_matches("http://")),
        };
        let authority = rest.split('/').next().unwrap_or(rest).to_string();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => {
                (h.to_string(), p.parse::<u16>().unwrap_or(80))
            }
            _ => (authority.clone(), if tls { 443 } else { 80 }),
        };
        let tls = if tls {
            Some(
                crate::tls_roots::client_config(cfg.ca_file.as_deref(), "[objects] ca_file")
                    .map_err(ObjectError::Tls)?,
            )
        } else {
            None
        };
        Ok(Bucket {
            cfg: Arc::new(cfg.clone()),
            target: http::Target {
                host: host.trim_start_matches('[').trim_end_matches(']').into(),
                port,
                tls,
                timeout: Duration::from_secs(30),
            },
            host_header: authority,
            secret: Arc::new(secret),
        })
    }

    pub fn config(&self) -> &ObjectsConfig {
        &self.cfg
    }

    /// One signed listing of the prefix, at start: a key the bucket refuses stops the host
    /// with what to fix, rather than every upload failing later in the background. A bucket
    /// that cannot be reached is no error here: recordings wait in the spool until it is.
    pub fn check_access(&self) -> Result<(), ObjectError> {
        let q = vec![
            ("list-type".to_string(), "2".to_string()),
            ("max-keys".to_string(), "1".to_string()),
            ("prefix".to_string(), self.cfg.prefix.clone()),
        ];
        let r = match self.request("GET", "", &q, &[], b"") {
            Ok(r) => r,
            Err(ObjectError::Unreachable { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        match Self::check(r, "list", &self.cfg.prefix) {
            Ok(_) => Ok(()),
            Err(ObjectError::Refused {
                status: status @ (401 | 403),
                code,
                message,
                ..
            }) => Err(ObjectError::Credentials(Box::new(CredentialsRefused {
                bucket: self.cfg.bucket.clone(),
                endpoint: self.cfg.endpoint.clone(),
                status,
                code,
                message,
                access_key_id: self.cfg.access_key_id.clone(),
                secret_file: self.cfg.secret_access_key_file.clone(),
            }))),
            Err(e) => Err(e),
        }
    }

    /// The full name of an object under the configured prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.cfg.prefix)
    }

    fn request(
        &self,
        method: &str,
        key: &str,
        query: &[(String, String)],
        extra: &[(String, String)],
        body: &[u8],
    ) -> Result<http::Response, ObjectError> {
        let path = if key.is_empty() {
            format!("/{}", self.cfg.bucket)
        } else {
            format!("/{}/{}", self.cfg.bucket, sigv4::uri_encode(key, true))
        };
        let hash = sigv4::payload_hash(body);
        let date = sigv4::amz_date(SystemTime::now());
        let mut headers = vec![
            ("host".to_string(), self.host_header.clone()),
            ("x-amz-content-sha256".to_string(), hash.clone()),
            ("x-amz-date".to_string(), date.clone()),
        ];
        headers.extend_from_slice(extra);
        let auth = sigv4::authorization(
            &sigv4::Request {
                method,
                path: &path,
                query,
                headers: &headers,
                payload_hash: &hash,
            },
            &self.cfg.access_key_id,
            &self.secret,
            &self.cfg.region,
            &date,
        );
        let qs = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    sigv4::uri_encode(k, false)
                } else {
                    format!(
                        "{}={}",
                        sigv4::uri_encode(k, false),
                        sigv4::uri_encode(v, false)
                    )
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        let mut head = format!(
            "{method} {path}{}{qs} HTTP/1.1\r\n",
            if qs.is_empty() { "" } else { "?" }
        );
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "authorization: {auth}\r\ncontent-length: {}\r\nconnection: close\r\nuser-agent: cordon\r\n",
            body.len()
        ));
        http::exchange(&self.target, &head, body).map_err(|source| ObjectError::Unreachable {
            endpoint: self.cfg.endpoint.clone(),
            source,
        })
    }

    fn check(
        r: http::Response,
        op: &'static str,
        key: &str,
    ) -> Result<http::Response, ObjectError> {
        if (200..300).contains(&r.status) {
            return Ok(r);
        }
        let text = String::from_utf8_lossy(&r.body);
        let field = |name: &str| {
            xml_values(&text, name)
                .into_iter()
                .next()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect::<String>()
        };
        Err(ObjectError::Refused {
            op,
            key: key.to_string(),
            status: r.status,
            code: field("Code"),
            message: field("Message"),
        })
    }

    /// Puts an object, locked until `lock.until` when given, under legal hold when `hold`.
    pub fn put(
        &self,
        key: &str,
        body: &[u8],
        lock: Option<&Lock>,
        hold: bool,
    ) -> Result<(), ObjectError> {
        use base64::Engine;
        use sha2::Digest;
        // S3 wants an integrity checksum on puts that carry Object Lock settings.
        let mut extra = vec![
            (
                "x-amz-checksum-sha256".to_string(),
                base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body)),
            ),
            ("x-amz-sdk-checksum-algorithm".to_string(), "SHA256".into()),
        ];
        if let Some(l) = lock {
            extra.push(("x-amz-object-lock-mode".into(), l.mode.header().to_string()));
            extra.push((
                "x-amz-object-lock-retain-until-date".into(),
                crate::audit::rfc3339(l.until),
            ));
        }
        if hold {
            extra.push(("x-amz-object-lock-legal-hold".into(), "ON".into()));
        }
        let r = self.request("PUT", key, &[], &extra, body)?;
        Self::check(r, "put", key).map(drop)
    }

    /// Bytes `start..end` of an object (a ranged GET).
    pub fn get_range(&self, key: &str, start: u64, end: u64) -> Result<Vec<u8>, ObjectError> {
        if end <= start {
            return Ok(Vec::new());
        }
        let range = vec![("range".to_string(), format!("bytes={start}-{}", end - 1))];
        let r = Self::check(self.request("GET", key, &[], &range, b"")?, "read", key)?;
        if r.body.len() as u64 != end - start {
            return Err(ObjectError::Refused {
                op: "read",
                key: key.to_string(),
                status: r.status,
                code: "ShortRange".into(),
                message: format!("{} bytes asked, {} given", end - start, r.body.len()),
            });
        }
        Ok(r.body)
    }

    /// A whole object, or None when there is none by that name.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        let r = self.request("GET", key, &[], &[], b"")?;
        if r.status == 404 {
            return Ok(None);
        }
        Ok(Some(Self::check(r, "read", key)?.body))
    }

    /// The objects whose names begin with `prefix`, in name order.
    pub fn list(&self, prefix: &str) -> Result<Vec<Listed>, ObjectError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec![
                ("list-type".to_string(), "2".to_string()),
                ("prefix".to_string(), prefix.to_string()),
            ];
            if let Some(t) = &token {
                q.push(("continuation-token".into(), t.clone()));
            }
            let r = Self::check(self.request("GET", "", &q, &[], b"")?, "list", prefix)?;
            let text = String::from_utf8_lossy(&r.body).into_owned();
            for block in xml_values(&text, "Contents") {
                let key = xml_values(&block, "Key").into_iter().next();
                let size = xml_values(&block, "Size")
                    .into_iter()
                    .next()
                    .and_then(|s| s.parse().ok());
                match (key, size) {
                    (Some(key), Some(size)) => out.push(Listed {
                        key: xml_unescape(&key),
                        size,
                    }),
                    _ => return Err(ObjectError::Listing("an entry without key or size".into())),
                }
            }
            let truncated =
                xml_values(&text, "IsTruncated").first().map(String::as_str) == Some("true");
            token = xml_values(&text, "NextContinuationToken")
                .into_iter()
                .next();
            if !truncated || token.is_none() || out.len() > 1_000_000 {
                break;
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Every version of every object under `prefix` (a bucket with Object Lock keeps
    /// versions): (name, version id).
    pub fn versions(&self, prefix: &str) -> Result<Vec<(String, String)>, ObjectError> {
        let q = vec![
            ("prefix".to_string(), prefix.to_string()),
            ("versions".to_string(), String::new()),
        ];
        let r = Self::check(self.request("GET", "", &q, &[], b"")?, "list", prefix)?;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let mut out = Vec::new();
        for tag in ["Version", "DeleteMarker"] {
            for block in xml_values(&text, tag) {
                let key = xml_values(&block, "Key").into_iter().next();
                let version = xml_values(&block, "VersionId").into_iter().next();
                if let (Some(k), Some(v)) = (key, version) {
                    out.push((xml_unescape(&k), v));
                }
            }
        }
        Ok(out)
    }

    /// Deletes one version of an object for good (refused by the bucket while it is locked
    /// or held).
    pub fn delete_version(&self, key: &str, version: &str) -> Result<(), ObjectError> {
        let q = vec![("versionId".to_string(), version.to_string())];
        let r = self.request("DELETE", key, &q, &[], b"")?;
        Self::check(r, "delete", key).map(drop)
    }

    /// Sets or clears an object's legal hold.
    pub fn set_legal_hold(&self, key: &str, on: bool) -> Result<(), ObjectError> {
        use base64::Engine;
        use sha2::Digest;
        let body = format!(
            "<LegalHold xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>{}</Status></LegalHold>",
            if on { "ON" } else { "OFF" }
        );
        let extra = vec![
            (
                "x-amz-checksum-sha256".to_string(),
                base64::engine::general_purpose::STANDARD
                    .encode(sha2::Sha256::digest(body.as_bytes())),
            ),
            ("x-amz-sdk-checksum-algorithm".to_string(), "SHA256".into()),
        ];
        let q = vec![("legal-hold".to_string(), String::new())];
        let r = self.request("PUT", key, &q, &extra, body.as_bytes())?;
        Self::check(r, "set the legal hold of", key).map(drop)
    }
}

/// The text inside each `<tag>...</tag>` of `xml`, in order (S3's answers are flat enough
/// for this; no attribute on the tags read).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else {
            break;
        };
        out.push(after[..j].to_string());
        rest = &after[j + close.len()..];
    }
    out
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_are_read_from_s3s_xml() {
        let xml = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>r/a&amp;b</Key><Size>12</Size></Contents><Contents><Key>r/c</Key><Size>3</Size></Contents></ListBucketResult>";
        let keys: Vec<_> = xml_values(xml, "Contents")
            .iter()
            .map(|b| xml_unescape(&xml_values(b, "Key")[0]))
            .collect();
        assert_eq!(keys, ["r/a&b", "r/c"]);
    }

    #[test]
    fn the_configuration_never_shows_the_secret_and_needs_its_file() {
        let f: ObjectsFile = toml::from_str(
            "endpoint = \"http://127.0.0.1:9\"\nbucket = \"b\"\naccess_key_id = \"AK\"",
        )
        .unwrap();
        let e = ObjectsConfig::load(Some(f)).unwrap_err();
        assert_eq!(e.key, "secret_access_key_file");
        let f: ObjectsFile = toml::from_str(
            "endpoint = \"http://127.0.0.1:9\"\nbucket = \"b\"\naccess_key_id = \"AK\"\nsecret_access_key_file = \"/nonexistent\"",
        )
        .unwrap();
        let c = ObjectsConfig::load(Some(f)).unwrap().unwrap();
        assert!(!format!("{c:?}").contains("secret_access_key\""));
        assert!(matches!(Bucket::open(&c), Err(ObjectError::Secret { .. })));
        assert!(ObjectsConfig::load(None).unwrap().is_none());
        // A secret others may read is refused.
        let dir = tempfile::tempdir().unwrap();
        let loose = dir.path().join("secret");
        std::fs::write(&loose, "s3cr3t-value").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = ObjectsConfig {
            secret_access_key_file: loose,
            ..c
        };
        let e = Bucket::open(&c).err().unwrap().to_string();
        assert!(e.contains("chmod 600") && !e.contains("s3cr3t"), "{e}");
    }
}
