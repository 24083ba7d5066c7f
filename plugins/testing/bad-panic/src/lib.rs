//! `bad-panic`: a processor that panics in `process` (a trap, since wasm32
//! panics abort), for the host's trap-recovery tests. `checkpoint` returns
//! at once.

use weir_plugin::{export_processor, Message, Outbound, Processor};

pub struct BadPanic;

impl Processor for BadPanic {
    fn new() -> Result<Self, String> {
        Ok(BadPanic)
    }

    fn process(&mut self, batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
        panic!("bad-panic: deliberate panic on a batch of {}", batch.len());
    }
}

export_processor!(BadPanic);
