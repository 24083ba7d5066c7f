//! `bad-loop`: a processor whose `process` never returns (a busy loop), for
//! the host's epoch-deadline tests. `checkpoint` returns at once.

use std::hint::black_box;
use weir_plugin::{export_processor, Message, Outbound, Processor};

pub struct BadLoop;

impl Processor for BadLoop {
    fn new() -> Result<Self, String> {
        Ok(BadLoop)
    }

    fn process(&mut self, batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
        let mut n = black_box(batch.len() as u64);
        loop {
            n = black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export_processor!(BadLoop);
