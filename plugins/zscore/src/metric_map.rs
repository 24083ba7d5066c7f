//! A device's metrics by name: the SDK's [`NameMap`] (a short vector looked
//! up with a position hint, stored as a JSON object sorted by name, the
//! shape a `BTreeMap` gives, so saved baselines keep their format).

use crate::detector::MetricState;
use weir_plugin::names::NameMap;

pub type MetricMap = NameMap<MetricState>;
