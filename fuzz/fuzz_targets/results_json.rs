//! The results-file reader (`LoadTestResults::from_slice`) on arbitrary bytes: no panic, and a
//! document it accepts serializes and reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perf_gate::results::LoadTestResults;

fuzz_target!(|data: &[u8]| {
    if let Ok(results) = LoadTestResults::from_slice(data, "fuzz.json") {
        let again = serde_json::to_vec(&results).expect("a results document serializes");
        LoadTestResults::from_slice(&again, "again.json").expect("and reads back");
    }
});
