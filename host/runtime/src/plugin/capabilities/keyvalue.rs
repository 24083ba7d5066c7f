//! `wasi:keyvalue/store` and `wasi:keyvalue/batch`: the host's state
//! capability, backed by the embedded [`KvStore`](crate::store::KvStore).
//! A plugin may open only the buckets its declaration grants.

use super::PluginState;
use crate::plugin::bindings::host::wasi::keyvalue::batch;
use crate::plugin::bindings::host::wasi::keyvalue::store::{self, Error, KeyResponse};
use wasmtime::component::Resource;

/// A bucket a plugin has opened.
pub struct BucketHandle {
    name: String,
}

/// Page size of `list-keys`.
const PAGE: usize = 1000;

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

impl PluginState {
    fn bucket_name(&mut self, bucket: &Resource<BucketHandle>) -> Result<String, Error> {
        let ctx = wasmtime_wasi::WasiView::ctx(self);
        ctx.table.get(bucket).map(|b| b.name.clone()).map_err(other)
    }
}

impl store::Host for PluginState {
    fn open(&mut self, identifier: String) -> Result<Resource<BucketHandle>, Error> {
        if !self.grants.keyvalue.contains(&identifier) {
            return Err(Error::AccessDenied);
        }
        let ctx = wasmtime_wasi::WasiView::ctx(self);
        ctx.table
            .push(BucketHandle { name: identifier })
            .map_err(other)
    }
}

impl store::HostBucket for PluginState {
    fn get(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        let name = self.bucket_name(&bucket)?;
        self.services.kv.get(&name, &key).map_err(other)
    }

    fn set(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        let name = self.bucket_name(&bucket)?;
        self.services.kv.set(&name, &key, value);
        Ok(())
    }

    fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<(), Error> {
        let name = self.bucket_name(&bucket)?;
        self.services.kv.delete(&name, &key);
        Ok(())
    }

    fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> Result<bool, Error> {
        let name = self.bucket_name(&bucket)?;
        Ok(self.services.kv.get(&name, &key).map_err(other)?.is_some())
    }

    fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> Result<KeyResponse, Error> {
        let name = self.bucket_name(&bucket)?;
        let keys = self.services.kv.keys(&name).map_err(other)?;
        let start = cursor.unwrap_or(0) as usize;
        let end = (start + PAGE).min(keys.len());
        Ok(KeyResponse {
            keys: keys.get(start..end).map(|k| k.to_vec()).unwrap_or_default(),
            cursor: (end < keys.len()).then_some(end as u64),
        })
    }

    fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        let ctx = wasmtime_wasi::WasiView::ctx(self);
        ctx.table.delete(bucket)?;
        Ok(())
    }
}

impl batch::Host for PluginState {
    fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, Error> {
        let name = self.bucket_name(&bucket)?;
        keys.into_iter()
            .map(|k| {
                let v = self.services.kv.get(&name, &k).map_err(other)?;
                Ok(v.map(|v| (k, v)))
            })
            .collect()
    }

    fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), Error> {
        let name = self.bucket_name(&bucket)?;
        for (k, v) in key_values {
            self.services.kv.set(&name, &k, v);
        }
        Ok(())
    }

    fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> Result<(), Error> {
        let name = self.bucket_name(&bucket)?;
        for k in keys {
            self.services.kv.delete(&name, &k);
        }
        Ok(())
    }
}
