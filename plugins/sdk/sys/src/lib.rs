//! Raw `wit-bindgen` bindings for `weir:plugin@0.1.3`; use the `weir-plugin`
//! SDK instead.
//!
//! Why a crate of its own: with `pub_export_macro`, wit-bindgen emits one
//! `#[macro_export]` macro per exported interface, named after the interface.
//! The `batch-processor` interface is exported by two worlds
//! (`batch-processor-plugin` and `batch-aggregator-plugin`), so generating
//! both worlds in one crate defines that macro twice. This crate generates
//! the `batch-aggregator-plugin` world,
//! which also brings every import and the shared types; `weir-plugin`
//! generates the other two worlds and points their imports and types here
//! (`with`), so there is one `Message` type whichever world a plugin targets.

#![allow(clippy::all)]

/// The `batch-aggregator-plugin` world (all imports, the flat batch types,
/// `batch-processor` and `aggregator` exports).
pub mod aggregator {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "weir:plugin/batch-aggregator-plugin@0.1.3",
        generate_all,
        pub_export_macro: true,
        default_bindings_module: "::weir_plugin::__private::aggregator",
        export_macro_name: "export_aggregator_world",
    });
}

pub use wit_bindgen;

use aggregator::weir::plugin::archive::Row;
use aggregator::weir::plugin::notify::Notification;
use aggregator::weir::plugin::streams::Entry;
use aggregator::weir::plugin::timeseries::Reading;
use aggregator::weir::plugin::types::{Message, Metric, Outbound};
use std::fmt;

impl Outbound {
    /// A message to publish on `topic`.
    pub fn new(topic: impl Into<String>, payload: impl Into<String>) -> Self {
        Outbound {
            topic: topic.into(),
            payload: payload.into(),
        }
    }
}

impl Message {
    /// The value of the numeric field `name`, if the rule output has one.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// The best timestamp of the reading: the device's own when the host
    /// found a sane one, else the server receive time (ms since the epoch).
    pub fn event_time(&self) -> i64 {
        self.device_time.unwrap_or(self.received_at)
    }
}

impl Default for Message {
    fn default() -> Self {
        Message {
            rule: String::new(),
            topic: String::new(),
            client_id: String::new(),
            device: String::new(),
            device_type: String::new(),
            received_at: 0,
            device_time: None,
            metrics: Vec::new(),
            payload: String::new(),
        }
    }
}

impl Metric {
    /// A named value.
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        Metric {
            name: name.into(),
            value,
        }
    }
}

impl PartialEq for Outbound {
    fn eq(&self, other: &Self) -> bool {
        self.topic == other.topic && self.payload == other.payload
    }
}

impl fmt::Display for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.topic, self.payload)
    }
}

impl Reading {
    /// A reading of `device` at `time` (ms since the epoch).
    pub fn new(
        device: impl Into<String>,
        device_type: impl Into<String>,
        time: i64,
        measures: Vec<Metric>,
    ) -> Self {
        Reading {
            device: device.into(),
            device_type: device_type.into(),
            time,
            measures,
        }
    }
}

impl Row {
    /// The row that archives `message` as it is.
    pub fn from_message(message: &Message) -> Self {
        Row {
            device: message.device.clone(),
            device_type: message.device_type.clone(),
            topic: message.topic.clone(),
            received_at: message.received_at,
            device_time: message.device_time,
            metrics: message.metrics.clone(),
            payload: message.payload.clone(),
        }
    }
}

impl Notification {
    /// A notification with a body and no subject or attributes.
    pub fn new(body: impl Into<String>) -> Self {
        Notification {
            subject: None,
            body: body.into(),
            attributes: Vec::new(),
        }
    }

    /// Set the subject line.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Add a string attribute (for subscription filter policies).
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }
}

impl Entry {
    /// An entry for the shard chosen by `partition_key`.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Entry {
            partition_key: partition_key.into(),
            data: data.into(),
        }
    }
}
