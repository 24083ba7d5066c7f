//! Timestream for LiveAnalytics writer: readings as MULTI measure records.
//!
//! Each [`TsRecord`] becomes one record: measure name `reading`, dimensions
//! `device_id` and `device_type`, one DOUBLE measure value per metric, time in
//! MILLISECONDS. `WriteRecords` takes at most 100 records, so the input is sent
//! in chunks of [`MAX_RECORDS_PER_CALL`].
//!
//! Rejections: Timestream answers `RejectedRecordsException` listing the
//! indices (within the call) it refused — those are permanent per record; the
//! other records of the call are ingested. A whole-call error is classified
//! (throttling/5xx/timeouts retryable, validation/not found permanent) and
//! applies to every record of that chunk.
//!
//! Endpoint discovery. AWS Timestream is cellular: clients must call
//! `DescribeEndpoints` and send to the returned address for its
//! `CachePeriodInMinutes`. `aws-sdk-timestreamwrite` (1.121) does NOT do this
//! by itself: its docs say a client must be made with
//! `Client::with_endpoint_discovery_enabled().await`, which returns the client
//! plus a reload task the caller must spawn, always uses `https://` and panics
//! (`unwrap`) when the answer lists no endpoint. This writer does its own
//! discovery instead, when switched on: it calls `DescribeEndpoints`, caches a
//! client bound to the returned address until the cache period runs out (or the
//! service says `InvalidEndpointException`), and uses the configured endpoint's
//! scheme (so a local `http://` stub works). When off, the configured endpoint
//! is used as is (moto and other local servers).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_timestreamwrite::types::{Dimension, MeasureValue, MeasureValueType, Record, TimeUnit};
use tokio::sync::Mutex;

use crate::clients::AwsClients;
use crate::error::{classify, AwsError};

/// Records per `WriteRecords` call (the service limit).
pub const MAX_RECORDS_PER_CALL: usize = 100;
/// Measure name of every record.
pub const MEASURE_NAME: &str = "reading";

/// One reading of one device: several metrics at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct TsRecord {
    pub device: String,
    pub device_type: String,
    pub time_ms: i64,
    pub measures: Vec<(String, f64)>,
}

/// Outcome of [`TimestreamWriter::write`]; indices are into the input slice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteReport {
    /// Records accepted.
    pub written: usize,
    /// Refused for good (rejected by the service, or invalid before sending).
    pub rejected: Vec<(usize, String)>,
    /// Failed in a way worth retrying (throttled, 5xx, timeout, network).
    pub retryable: Vec<(usize, String)>,
}

#[derive(Debug)]
struct Discovered {
    client: aws_sdk_timestreamwrite::Client,
    address: String,
    expires: Instant,
}

/// Writes [`TsRecord`]s into one Timestream table.
#[derive(Debug, Clone)]
pub struct TimestreamWriter {
    client: aws_sdk_timestreamwrite::Client,
    database: Arc<str>,
    table: Arc<str>,
    discovery: bool,
    scheme: &'static str,
    discovered: Arc<Mutex<Option<Discovered>>>,
}

impl TimestreamWriter {
    /// A writer with endpoint discovery ON (what AWS needs); turn it off with
    /// [`endpoint_discovery`](Self::endpoint_discovery) for local servers.
    pub fn new(
        client: aws_sdk_timestreamwrite::Client,
        database: impl Into<String>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            database: Arc::from(database.into()),
            table: Arc::from(table.into()),
            discovery: true,
            scheme: "https",
            discovered: Arc::new(Mutex::new(None)),
        }
    }

    /// A writer from the shared clients, discovery and scheme as the settings say.
    pub fn from_clients(clients: &AwsClients, database: &str, table: &str) -> Self {
        let s = clients.settings();
        let http = s
            .endpoints
            .timestream
            .as_deref()
            .is_some_and(|u| u.starts_with("http://"));
        Self::new(clients.timestream_write(), database, table)
            .endpoint_discovery(s.timestream_discovery_enabled())
            .discovery_scheme(if http { "http" } else { "https" })
    }

    /// Switch `DescribeEndpoints` discovery on or off.
    pub fn endpoint_discovery(mut self, on: bool) -> Self {
        self.discovery = on;
        self
    }

    /// Scheme put in front of a discovered address (`https` by default).
    pub fn discovery_scheme(mut self, scheme: &'static str) -> Self {
        self.scheme = scheme;
        self
    }

    /// The address discovery currently uses, if any.
    pub async fn discovered_address(&self) -> Option<String> {
        self.discovered
            .lock()
            .await
            .as_ref()
            .map(|d| d.address.clone())
    }

    /// The client to send with: the configured one, or one bound to the
    /// discovered endpoint (refreshed when its cache period is over).
    async fn client(&self) -> Result<aws_sdk_timestreamwrite::Client, AwsError> {
        if !self.discovery {
            return Ok(self.client.clone());
        }
        let mut cached = self.discovered.lock().await;
        if let Some(d) = cached.as_ref() {
            if Instant::now() < d.expires {
                return Ok(d.client.clone());
            }
        }
        let out = self
            .client
            .describe_endpoints()
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let ep = out
            .endpoints()
            .first()
            .ok_or_else(|| AwsError::Retryable("DescribeEndpoints returned no endpoint".into()))?;
        let address = ep.address().to_string();
        let url = if address.contains("://") {
            address.clone()
        } else {
            format!("{}://{address}", self.scheme)
        };
        let minutes = u64::try_from(ep.cache_period_in_minutes().max(1)).unwrap_or(1);
        let conf = self.client.config().to_builder().endpoint_url(url).build();
        let client = aws_sdk_timestreamwrite::Client::from_conf(conf);
        tracing::debug!(%address, minutes, "timestream endpoint discovered");
        *cached = Some(Discovered {
            client: client.clone(),
            address,
            expires: Instant::now() + Duration::from_secs(minutes * 60),
        });
        Ok(client)
    }

    async fn forget_endpoint(&self) {
        *self.discovered.lock().await = None;
    }

    /// Create the database and table if missing (first run, tests).
    pub async fn ensure_database_and_table(&self) -> Result<(), AwsError> {
        let client = self.client().await?;
        match client
            .create_database()
            .database_name(&*self.database)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) => {}
            Err(e) => return Err(classify(&e)),
        }
        match client
            .create_table()
            .database_name(&*self.database)
            .table_name(&*self.table)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(classify(&e)),
        }
    }

    /// Write the records, [`MAX_RECORDS_PER_CALL`] per call.
    pub async fn write(&self, records: &[TsRecord]) -> WriteReport {
        let mut report = WriteReport::default();
        // Validate locally: Timestream refuses a MULTI record without measures
        // and non-finite doubles; don't let one spoil a whole call.
        let mut sendable: Vec<(usize, Record)> = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            match to_record(r) {
                Ok(rec) => sendable.push((i, rec)),
                Err(why) => report.rejected.push((i, why)),
            }
        }
        for chunk in sendable.chunks(MAX_RECORDS_PER_CALL) {
            self.write_chunk(chunk, &mut report).await;
        }
        report.rejected.sort_by_key(|(i, _)| *i);
        report.retryable.sort_by_key(|(i, _)| *i);
        report
    }

    async fn write_chunk(&self, chunk: &[(usize, Record)], report: &mut WriteReport) {
        let client = match self.client().await {
            Ok(c) => c,
            Err(e) => return fail_all(chunk, &e, report),
        };
        let result = client
            .write_records()
            .database_name(&*self.database)
            .table_name(&*self.table)
            .set_records(Some(chunk.iter().map(|(_, r)| r.clone()).collect()))
            .send()
            .await;
        match result {
            Ok(_) => report.written += chunk.len(),
            Err(e) => {
                let svc = e.as_service_error();
                if let Some(rej) = svc.and_then(|s| match s {
                    aws_sdk_timestreamwrite::operation::write_records::WriteRecordsError::RejectedRecordsException(r) => Some(r),
                    _ => None,
                }) {
                    let mut refused = vec![false; chunk.len()];
                    for r in rej.rejected_records() {
                        let Ok(idx) = usize::try_from(r.record_index()) else { continue };
                        if let Some(slot) = refused.get_mut(idx) {
                            *slot = true;
                            report.rejected.push((
                                chunk[idx].0,
                                r.reason().unwrap_or("rejected").to_string(),
                            ));
                        }
                    }
                    report.written += refused.iter().filter(|r| !**r).count();
                    return;
                }
                if svc.is_some_and(|s| s.is_invalid_endpoint_exception()) {
                    self.forget_endpoint().await;
                    let err = AwsError::Retryable(classify(&e).message().to_string());
                    return fail_all(chunk, &err, report);
                }
                fail_all(chunk, &classify(&e), report);
            }
        }
    }
}

fn fail_all(chunk: &[(usize, Record)], err: &AwsError, report: &mut WriteReport) {
    let list = if err.is_retryable() {
        &mut report.retryable
    } else {
        &mut report.rejected
    };
    list.extend(chunk.iter().map(|(i, _)| (*i, err.message().to_string())));
}

fn to_record(r: &TsRecord) -> Result<Record, String> {
    if r.measures.is_empty() {
        return Err("no measures".into());
    }
    let mut values = Vec::with_capacity(r.measures.len());
    for (name, v) in &r.measures {
        if !v.is_finite() {
            return Err(format!("measure {name}: {v} is not finite"));
        }
        values.push(
            MeasureValue::builder()
                .name(name)
                .value(v.to_string())
                .r#type(MeasureValueType::Double)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    let dim = |name: &str, value: &str| {
        Dimension::builder()
            .name(name)
            .value(value)
            .build()
            .map_err(|e| e.to_string())
    };
    Ok(Record::builder()
        .dimensions(dim("device_id", &r.device)?)
        .dimensions(dim("device_type", &r.device_type)?)
        .measure_name(MEASURE_NAME)
        .measure_value_type(MeasureValueType::Multi)
        .set_measure_values(Some(values))
        .time(r.time_ms.to_string())
        .time_unit(TimeUnit::Milliseconds)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_shape() {
        let r = to_record(&TsRecord {
            device: "d1".into(),
            device_type: "thermostat".into(),
            time_ms: 1_764_300_000_123,
            measures: vec![("temperature".into(), 21.5), ("humidity".into(), 40.0)],
        })
        .unwrap();
        assert_eq!(r.measure_name(), Some("reading"));
        assert_eq!(r.measure_value_type(), Some(&MeasureValueType::Multi));
        assert_eq!(r.time(), Some("1764300000123"));
        assert_eq!(r.time_unit(), Some(&TimeUnit::Milliseconds));
        let dims: Vec<(&str, &str)> = r
            .dimensions()
            .iter()
            .map(|d| (d.name(), d.value()))
            .collect();
        assert_eq!(
            dims,
            vec![("device_id", "d1"), ("device_type", "thermostat")]
        );
        let vals: Vec<(&str, &str)> = r
            .measure_values()
            .iter()
            .map(|m| (m.name(), m.value()))
            .collect();
        assert_eq!(vals, vec![("temperature", "21.5"), ("humidity", "40")]);
    }

    #[test]
    fn invalid_records_refused_locally() {
        let base = TsRecord {
            device: "d".into(),
            device_type: "t".into(),
            time_ms: 1,
            measures: vec![],
        };
        assert_eq!(to_record(&base).unwrap_err(), "no measures");
        let nan = TsRecord {
            measures: vec![("x".into(), f64::NAN)],
            ..base
        };
        assert_eq!(to_record(&nan).unwrap_err(), "measure x: NaN is not finite");
    }
}
