//! Integration tests of every writer against real local servers:
//! moto (all services), kinesalite, dynalite, s3rver, and in-test HTTP
//! servers (InfluxDB stub, Timestream stub, Kinesis throttling proxy).

#[path = "../support/kinesis_proxy.rs"]
mod kinesis_proxy;
#[path = "../support/servers.rs"]
mod servers;

mod common;
mod dynamodb;
mod influx;
mod kinesis;
mod s3;
mod sns;
mod timestream;
