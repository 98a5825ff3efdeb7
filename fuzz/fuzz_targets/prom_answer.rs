//! The PromQL instant-answer reader on arbitrary text: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_gate::prom::InstantAnswer;

fuzz_target!(|body: &str| {
    if let Ok(answer) = InstantAnswer::parse(body) {
        assert!(answer.value.is_none() || answer.series > 0);
    }
});
