//! Weir's AWS tier: every AWS client Weir uses, built in one place
//! ([`clients::AwsClients`], with a per-service endpoint override), and the
//! writers for each AWS storage tier:
//!
//! | module | service | what |
//! | --- | --- | --- |
//! | [`dynamodb_shadow`] | DynamoDB | device shadow, one item per device, never goes back a version |
//! | [`timestream`] | Timestream for LiveAnalytics | readings as MULTI measure records |
//! | [`influx`] | Timestream for InfluxDB / InfluxDB v2 | readings as line protocol |
//! | [`s3_upload`] | S3 | finished history files, multipart above a threshold |
//! | [`sns`] | SNS | notifications, `PublishBatch` |
//! | [`kinesis`] | Kinesis Data Streams | records routed and paced per shard, failed ones resent |
//!
//! Errors are [`AwsError`]: `Retryable` or `Permanent`; retrying is the
//! delivery layer's job (SDK clients make a single attempt), except in the
//! Kinesis writer which resends exactly the records that failed until its
//! deadline.

pub mod clients;
pub mod config;
pub mod dynamodb_shadow;
pub mod error;
pub mod influx;
pub mod kinesis;
pub mod s3_upload;
pub mod sns;
pub mod timestream;

pub use clients::AwsClients;
pub use config::{AwsSettings, Endpoints};
pub use dynamodb_shadow::{coalesce, PutOutcome, ShadowItem, ShadowTable};
pub use error::AwsError;
pub use influx::{line_protocol, InfluxWriter};
pub use kinesis::{KinesisStream, PutReport, ShardBudget, StreamRecord};
pub use s3_upload::S3Uploader;
pub use sns::{Notification, SnsPublisher};
pub use timestream::{TimestreamWriter, TsRecord, WriteReport};
