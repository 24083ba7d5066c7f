//! The Parquet schema of an archive file and the columnar buffer that turns
//! rows into Arrow record batches for it.
//!
//! Fixed columns: `received_at` and `device_time` (timestamp ms, UTC),
//! `device_id`, `device_type`, `topic`, then one nullable float64 per metric
//! in first-seen order, then `payload`. A metric whose name clashes with a
//! fixed column or a partition key (case-insensitively, as Athena compares)
//! is stored as `metric_<name>`.

use crate::FastMap;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::error::ArchiveError;
use super::types::ArchiveRow;

/// Columns every file has, besides its metrics.
pub const FIXED_COLUMNS: [&str; 6] = [
    "received_at",
    "device_time",
    "device_id",
    "device_type",
    "topic",
    "payload",
];

/// Names a metric may not take as-is: the fixed columns and the partition keys.
const RESERVED: [&str; 7] = [
    "received_at",
    "device_time",
    "device_id",
    "device_type",
    "topic",
    "payload",
    "date",
];

/// The column a metric is stored in.
pub fn metric_column(metric: &str) -> String {
    if metric.is_empty() || RESERVED.iter().any(|r| r.eq_ignore_ascii_case(metric)) {
        format!("metric_{metric}")
    } else {
        metric.to_string()
    }
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The Arrow schema of a file holding `metrics` (column names, in order).
pub fn schema(metrics: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new("received_at", timestamp_type(), false),
        Field::new("device_time", timestamp_type(), true),
        Field::new("device_id", DataType::Utf8, false),
        Field::new("device_type", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
    ];
    fields.extend(
        metrics
            .iter()
            .map(|m| Field::new(m, DataType::Float64, true)),
    );
    fields.push(Field::new("payload", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// Rows not yet handed to the Parquet writer, column by column, plus the
/// file's metric columns (which may grow until the schema is fixed).
pub struct ColumnBuffer {
    metrics: Vec<String>,
    index: FastMap<String, usize>,
    received_at: Vec<i64>,
    device_time: Vec<Option<i64>>,
    device_id: StringBuilder,
    device_type: StringBuilder,
    topic: StringBuilder,
    payload: StringBuilder,
    values: Vec<Float64Builder>,
    slots: Vec<Option<f64>>,
}

impl Default for ColumnBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl ColumnBuffer {
    pub fn new() -> Self {
        ColumnBuffer {
            metrics: Vec::new(),
            index: FastMap::default(),
            received_at: Vec::new(),
            device_time: Vec::new(),
            device_id: StringBuilder::new(),
            device_type: StringBuilder::new(),
            topic: StringBuilder::new(),
            payload: StringBuilder::new(),
            values: Vec::new(),
            slots: Vec::new(),
        }
    }

    /// A buffer whose metric columns are `metrics` (column names) up front.
    pub fn with_metrics(metrics: Vec<String>) -> Self {
        let mut b = Self::new();
        for m in metrics {
            if !b.index.contains_key(&m) {
                b.index.insert(m.clone(), b.metrics.len());
                b.metrics.push(m);
                b.values.push(Float64Builder::new());
                b.slots.push(None);
            }
        }
        b
    }

    /// Metric columns so far, in first-seen order.
    pub fn metrics(&self) -> &[String] {
        &self.metrics
    }

    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.received_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.received_at.is_empty()
    }

    /// Whether the row has a metric this buffer has no column for.
    pub fn has_new_metric(&self, row: &ArchiveRow) -> bool {
        row.metrics
            .iter()
            .any(|(m, _)| !self.index.contains_key(&metric_column(m)))
    }

    /// Metric columns the row would add.
    pub fn new_metric_count(&self, row: &ArchiveRow) -> usize {
        let mut seen: Vec<String> = Vec::new();
        for (m, _) in &row.metrics {
            let col = metric_column(m);
            if !self.index.contains_key(&col) && !seen.contains(&col) {
                seen.push(col);
            }
        }
        seen.len()
    }

    /// Buffers one row, adding (null-backfilled) columns for new metrics.
    /// A metric given twice in one row keeps its last value.
    pub fn push(&mut self, row: &ArchiveRow) {
        let rows_before = self.len();
        self.slots.iter_mut().for_each(|s| *s = None);
        for (m, v) in &row.metrics {
            let col = metric_column(m);
            let i = match self.index.get(&col) {
                Some(i) => *i,
                None => {
                    let i = self.metrics.len();
                    let mut b = Float64Builder::new();
                    b.append_nulls(rows_before);
                    self.values.push(b);
                    self.slots.push(None);
                    self.index.insert(col.clone(), i);
                    self.metrics.push(col);
                    i
                }
            };
            self.slots[i] = Some(*v);
        }
        for (b, s) in self.values.iter_mut().zip(&self.slots) {
            b.append_option(*s);
        }
        self.received_at.push(row.received_at_ms);
        self.device_time.push(row.device_time_ms);
        self.device_id.append_value(&row.device);
        self.device_type.append_value(&row.device_type);
        self.topic.append_value(&row.topic);
        self.payload.append_value(&row.payload);
    }

    /// Drains the buffered rows into a batch of `schema(self.metrics())`.
    pub fn take_batch(&mut self) -> Result<RecordBatch, ArchiveError> {
        let received_at = TimestampMillisecondArray::from(std::mem::take(&mut self.received_at))
            .with_timezone("UTC");
        let device_time = TimestampMillisecondArray::from(std::mem::take(&mut self.device_time))
            .with_timezone("UTC");
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(received_at),
            Arc::new(device_time),
            Arc::new(self.device_id.finish()),
            Arc::new(self.device_type.finish()),
            Arc::new(self.topic.finish()),
        ];
        columns.extend(
            self.values
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(self.payload.finish()));
        Ok(RecordBatch::try_new(schema(&self.metrics), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    use arrow_array::Array;

    fn row(metrics: &[(&str, f64)]) -> ArchiveRow {
        ArchiveRow {
            device: "d".into(),
            device_type: "t".into(),
            topic: "x".into(),
            received_at_ms: 1,
            device_time_ms: None,
            metrics: metrics.iter().map(|(m, v)| (m.to_string(), *v)).collect(),
            payload: "{}".into(),
        }
    }

    #[test]
    fn grows_metrics_with_null_backfill() {
        let mut b = ColumnBuffer::new();
        b.push(&row(&[("a", 1.0)]));
        assert!(b.has_new_metric(&row(&[("a", 2.0), ("b", 3.0)])));
        b.push(&row(&[("b", 3.0), ("a", 2.0), ("b", 4.0)]));
        b.push(&row(&[]));
        assert_eq!(b.metrics(), ["a", "b"]);
        let batch = b.take_batch().unwrap();
        assert_eq!(batch.num_rows(), 3);
        assert!(b.is_empty());
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "received_at",
                "device_time",
                "device_id",
                "device_type",
                "topic",
                "a",
                "b",
                "payload"
            ]
        );
        let a = batch.column(5).as_primitive::<Float64Type>();
        let bcol = batch.column(6).as_primitive::<Float64Type>();
        assert_eq!((a.value(0), a.value(1), a.is_null(2)), (1.0, 2.0, true));
        assert_eq!(
            (bcol.is_null(0), bcol.value(1), bcol.is_null(2)),
            (true, 4.0, true)
        );
    }

    #[test]
    fn reserved_metric_names_are_prefixed() {
        assert_eq!(metric_column("temperature"), "temperature");
        assert_eq!(metric_column("payload"), "metric_payload");
        assert_eq!(metric_column("Date"), "metric_Date");
        assert_eq!(metric_column(""), "metric_");
        let b = ColumnBuffer::new();
        assert_eq!(
            b.new_metric_count(&row(&[("x", 1.0), ("x", 2.0), ("y", 0.0)])),
            2
        );
    }
}
