//! The Weir host: everything between a device's socket and a plugin's
//! output.
//!
//! - [`listener`]: device connections (MQTT 3.1.1 and 5, plain TCP and
//!   mTLS), topic policy, persistent sessions, lifecycle events, arrival
//!   timestamps, back-pressure.
//! - [`identity`]: the fleet CA and registry in the running host: who a
//!   TLS client is, operator registry operations, fleet provisioning.
//! - [`jobs`]: AWS IoT Jobs: jobs made by the operator, the devices' Jobs
//!   MQTT API, notifications, step timers and job events.
//! - [`broker`]: the embedded rumqttd router, reached through in-process links.
//! - [`rules`]: rule files, checked and compiled into a dispatch trie.
//! - [`engine`]: worker threads that evaluate rules and batch messages to plugins.
//! - [`plugin`]: the wasmtime component host, its limits and its capabilities.
//! - [`reload`]: watching the rules directory and swapping generations.
//! - [`store`]: the embedded key-value state and journals.
//! - [`sinks`]: the storage tiers and outlets (time series, Parquet archive,
//!   DynamoDB shadow replica, SNS, Kinesis), each behind an outbox.
//! - [`http_api`]: the AWS IoT data-plane HTTP API (shadows and publish
//!   over HTTP, as boto3's `iot-data` client calls them).
//! - [`admin`]: the socket `weir status` / `weir shadow get` talk to.
//! - [`server`]: `run(config, listener, shutdown)`, which wires it together.

pub mod admin;
pub mod broker;
pub mod clock;
pub mod config;
pub mod engine;
pub mod http_api;
pub mod identity;
pub mod jobs;
pub mod listener;
pub mod metrics;
pub mod plugin;
pub mod reload;
pub mod rules;
pub mod server;
pub mod sinks;
pub mod store;
pub mod text;

pub use config::Config;
pub use server::run;
