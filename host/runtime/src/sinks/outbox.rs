//! Outboxes for the backends, all configured from `[delivery]` and spooled
//! under `<data_dir>/spool/<backend>/`.

use crate::config::Config;
use std::path::PathBuf;
use std::time::Duration;
use weir_delivery::{Deliver, Outbox, OutboxConfig, RetryPolicy};

pub struct Factory {
    spool_root: PathBuf,
    delivery: crate::config::DeliveryConfig,
}

impl Factory {
    pub fn new(config: &Config) -> Factory {
        Factory {
            spool_root: config.data_dir.join("spool"),
            delivery: config.delivery.clone(),
        }
    }

    /// Start the outbox for `name` (a path-safe backend name such as
    /// `timeseries` or `stream.telemetry`) in front of `backend`, which
    /// takes batches of up to `max_batch` items.
    pub fn spawn<D: Deliver>(
        &self,
        name: &str,
        backend: D,
        max_batch: usize,
    ) -> Result<Outbox<D::Item>, super::SinkError> {
        let d = &self.delivery;
        let config = OutboxConfig {
            name: name.to_string(),
            dir: self.spool_root.join(name),
            memory_capacity: d.memory_capacity,
            spool_limit_bytes: d.spool_limit_mib * 1024 * 1024,
            max_batch: max_batch.max(1),
            linger: Duration::from_millis(d.linger_ms),
            retry: RetryPolicy {
                initial: Duration::from_millis(d.retry_initial_ms),
                max: Duration::from_millis(d.retry_max_ms),
                multiplier: 2.0,
            },
        };
        weir_delivery::spawn(config, backend).map_err(|e| super::SinkError::start(name, e))
    }
}
