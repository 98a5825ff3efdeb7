//! A TLS front for benchmarks (`scripts/bench/compare.py`): `tls_front HOST:PORT` makes a test
//! CA, puts a [`TlsFront`] before the plain upstream, prints `URL CA_FILE` on one line, and
//! forwards until its standard input closes.

use std::io::{Read as _, Write as _};

use test_support::tls::{TestCa, TlsFront};

fn main() {
    let Some(upstream) = std::env::args().nth(1) else {
        eprintln!("usage: tls_front HOST:PORT");
        std::process::exit(2);
    };
    let ca = TestCa::new();
    let front = TlsFront::start(&upstream, &ca);
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{} {}", front.url(), ca.ca_path().display());
    let _ = out.flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
