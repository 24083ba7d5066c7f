//! `bad-memory`: a processor that allocates (and touches) memory in 1 MiB
//! chunks until the instance dies, for the host's memory-limit tests. When
//! the host's limit refuses to grow memory, the allocator fails and the
//! guest aborts (a trap).

use std::hint::black_box;
use weir_plugin::{export_processor, Message, Outbound, Processor};

pub struct BadMemory {
    hoard: Vec<Vec<u8>>,
}

impl Processor for BadMemory {
    fn new() -> Result<Self, String> {
        Ok(BadMemory { hoard: Vec::new() })
    }

    fn process(&mut self, _batch: Vec<Message>) -> Result<Vec<Outbound>, String> {
        loop {
            // Non-zero fill so the pages are really written.
            let chunk = vec![0xA5u8; 1 << 20];
            self.hoard.push(black_box(chunk));
        }
    }
}

export_processor!(BadMemory);
