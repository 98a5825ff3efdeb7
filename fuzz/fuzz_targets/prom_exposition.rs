//! The Prometheus text-format parser on arbitrary text: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_gate::prom::parse_exposition;

fuzz_target!(|text: &str| {
    if let Ok(families) = parse_exposition(text) {
        for f in &families {
            for s in &f.samples {
                let _ = s.label("le");
            }
        }
    }
});
