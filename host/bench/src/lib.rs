//! Benchmarks of the plugin boundary (`benches/boundary.rs`): the cost per
//! reading of running zscore as a WebAssembly component at batch sizes 1,
//! 16 and 256 against the same logic compiled natively, and the startup
//! time of ten plugins from the compile cache. Run with
//! `cargo bench -p weir-bench`.
