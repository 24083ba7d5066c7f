//! `weir:plugin/batches`: the payload fields of the batch a plugin's
//! current call received (`payload-fields`), read by the engine's scan of
//! each payload so a plugin need not parse it again.

use super::PluginState;
use crate::plugin::batch::no_fields;
use crate::plugin::bindings::host::weir::plugin::batches::Host;
use crate::plugin::bindings::PayloadFields;

impl Host for PluginState {
    /// The instance sets `payload_fields` for the length of a
    /// `process`/`write` call and takes it away after.
    fn payload_fields(&mut self) -> PayloadFields {
        match &self.payload_fields {
            Some(fields) => PayloadFields::clone(fields),
            None => no_fields(),
        }
    }
}
