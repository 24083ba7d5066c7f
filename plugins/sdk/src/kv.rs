//! Key-value buckets (`wasi:keyvalue/store` and `wasi:keyvalue/batch`): the
//! state capability. A plugin opens the buckets its declaration grants;
//! values are bytes (the shipped plugins store JSON).

use std::fmt;

/// What went wrong in a key-value call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The host has no bucket of that name.
    NoSuchStore,
    /// The bucket is not granted to this plugin.
    AccessDenied,
    /// Anything else (I/O, …), as the host describes it.
    Other(String),
}

/// A key-value error, with the bucket and operation it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub bucket: String,
    pub op: &'static str,
    pub kind: ErrorKind,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key-value bucket `{}`: {}: ", self.bucket, self.op)?;
        match &self.kind {
            ErrorKind::NoSuchStore => f.write_str("no such bucket"),
            ErrorKind::AccessDenied => f.write_str("access denied (not granted)"),
            ErrorKind::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for String {
    fn from(e: Error) -> String {
        e.to_string()
    }
}

#[cfg(target_arch = "wasm32")]
use crate::bindings::host::wasi::keyvalue::{batch, store};

/// An open bucket.
pub struct Bucket {
    name: String,
    #[cfg(target_arch = "wasm32")]
    inner: store::Bucket,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket").field("name", &self.name).finish()
    }
}

impl Bucket {
    /// Open the bucket `name`. Fails when it is not granted to the plugin.
    pub fn open(name: &str) -> Result<Bucket, Error> {
        #[cfg(target_arch = "wasm32")]
        {
            let inner = store::open(name).map_err(|e| convert(name, "open", e))?;
            Ok(Bucket {
                name: name.to_string(),
                inner,
            })
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            Err(off_host(name, "open"))
        }
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn err(&self, op: &'static str, kind: ErrorKind) -> Error {
        Error {
            bucket: self.name.clone(),
            op,
            kind,
        }
    }

    /// The value of `key`, or `None` when it does not exist.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        #[cfg(target_arch = "wasm32")]
        {
            self.inner
                .get(key)
                .map_err(|e| convert(&self.name, "get", e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = key;
            Err(self.err("get", ErrorKind::Other(OFF_HOST.into())))
        }
    }

    /// Set `key` to `value`.
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        {
            self.inner
                .set(key, value)
                .map_err(|e| convert(&self.name, "set", e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = (key, value);
            Err(self.err("set", ErrorKind::Other(OFF_HOST.into())))
        }
    }

    /// Delete `key` (nothing happens when it does not exist).
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        {
            self.inner
                .delete(key)
                .map_err(|e| convert(&self.name, "delete", e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = key;
            Err(self.err("delete", ErrorKind::Other(OFF_HOST.into())))
        }
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        #[cfg(target_arch = "wasm32")]
        {
            self.inner
                .exists(key)
                .map_err(|e| convert(&self.name, "exists", e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = key;
            Err(self.err("exists", ErrorKind::Other(OFF_HOST.into())))
        }
    }

    /// The values of `keys` in one call: the (key, value) pairs that exist,
    /// in no particular order; missing keys are simply absent.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        #[cfg(target_arch = "wasm32")]
        {
            let found = batch::get_many(&self.inner, keys)
                .map_err(|e| convert(&self.name, "get-many", e))?;
            Ok(found.into_iter().flatten().collect())
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            Err(self.err("get-many", ErrorKind::Other(OFF_HOST.into())))
        }
    }

    /// Set several keys in one call. Not atomic: on error some keys may be
    /// set and others not.
    pub fn set_many(&self, entries: &[(String, Vec<u8>)]) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        #[cfg(target_arch = "wasm32")]
        {
            batch::set_many(&self.inner, entries).map_err(|e| convert(&self.name, "set-many", e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            Err(self.err("set-many", ErrorKind::Other(OFF_HOST.into())))
        }
    }

    /// Delete several keys in one call. Not atomic.
    pub fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        #[cfg(target_arch = "wasm32")]
        {
            batch::delete_many(&self.inner, keys).map_err(|e| convert(&self.name, "delete-many", e))
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            Err(self.err("delete-many", ErrorKind::Other(OFF_HOST.into())))
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn convert(bucket: &str, op: &'static str, e: store::Error) -> Error {
    Error {
        bucket: bucket.to_string(),
        op,
        kind: match e {
            store::Error::NoSuchStore => ErrorKind::NoSuchStore,
            store::Error::AccessDenied => ErrorKind::AccessDenied,
            store::Error::Other(s) => ErrorKind::Other(s),
        },
    }
}

#[cfg(not(target_arch = "wasm32"))]
const OFF_HOST: &str = "not running in a Weir host";

#[cfg(not(target_arch = "wasm32"))]
fn off_host(bucket: &str, op: &'static str) -> Error {
    Error {
        bucket: bucket.to_string(),
        op,
        kind: ErrorKind::Other(OFF_HOST.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_bucket_and_operation() {
        let e = Bucket::open("zscore").unwrap_err();
        assert_eq!(e.bucket, "zscore");
        assert_eq!(e.op, "open");
        let denied = Error {
            bucket: "x".into(),
            op: "get",
            kind: ErrorKind::AccessDenied,
        };
        assert_eq!(
            String::from(denied),
            "key-value bucket `x`: get: access denied (not granted)"
        );
    }
}
