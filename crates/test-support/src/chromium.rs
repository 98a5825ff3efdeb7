//! Headless Chromium (Debian's `chromium`) for the report tests: load a file, dump its DOM or
//! take a screenshot, with every request the browser makes sent to a [`RequestRecorder`]
//! posing as its HTTP proxy, so a test can assert that a page fetched nothing. Debian's build
//! still calls a few of Google's hosts for itself whatever the flags; those are told apart by
//! host ([`browser_own`]), and a test asserts its page names none of them.
//!
//! The binary is `$CHROMIUM_BIN`, else `chromium` on `PATH`. If it is missing the fixture
//! panics ("chromium not found: run scripts/install-test-deps.sh"): tests never skip silently.
//! Each run has its own throw-away profile and runs in its own process group (the browser's
//! helpers stop with it); a run that does not finish in time is stopped and reported.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one browser run may take.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// The Chromium binary: `$CHROMIUM_BIN`, else `chromium` on `PATH`.
pub fn find_chromium() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("CHROMIUM_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "chromium not found: CHROMIUM_BIN={} is not a file; run scripts/install-test-deps.sh",
                bin.display()
            ))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .ok_or_else(|| "chromium not found: run scripts/install-test-deps.sh".to_string())
}

/// The Chromium binary ([`find_chromium`]); panics if missing.
pub fn chromium_bin() -> PathBuf {
    find_chromium().unwrap_or_else(|e| panic!("{e}"))
}

/// What one browser run printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Standard output (the DOM, for `--dump-dom`).
    pub stdout: String,
    /// Standard error (the browser's log, console messages included).
    pub stderr: String,
}

/// Runs headless Chromium on `url` with `extra` arguments (e.g. `--dump-dom`), every request
/// sent to the proxy at `proxy_port` (loopback included), and waits for it to exit.
pub fn run(url: &str, extra: &[&str], proxy_port: u16) -> Output {
    let dir = tempfile::tempdir().expect("a temp dir for the browser profile");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let profile = dir.path().join("profile");
    let mut cmd = Command::new(chromium_bin());
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        // the browser's own traffic (time, field trials, safe browsing, ...): not the page's,
        // but it would reach the recorder too (updates and sign-in go on: see `browser_own`)
        "--disable-client-side-phishing-detection",
        "--disable-domain-reliability",
        "--disable-breakpad",
        "--disable-field-trial-config",
        "--metrics-recording-only",
        "--no-pings",
        "--no-service-autorun",
        "--password-store=basic",
        "--safebrowsing-disable-auto-update",
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions,DialMediaRouteProvider,SafeBrowsingEnhancedProtection",
        "--enable-logging=stderr",
        // console messages (a policy violation among them) at INFO
        "--log-level=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--proxy-server=http://127.0.0.1:{proxy_port}"))
    // without this, Chromium sends loopback addresses around the proxy
    .arg("--proxy-bypass-list=<-loopback>")
    .args(extra)
    .arg(url)
    .env("HOME", dir.path())
    .stdin(Stdio::null())
    .stdout(File::create(&out_path).expect("browser stdout file"))
    .stderr(File::create(&err_path).expect("browser stderr file"))
    .process_group(0);
    let mut child = cmd.spawn().expect("chromium starts");
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break Some(status);
        }
        if Instant::now() > deadline {
            crate::process::stop_group(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let output = Output {
        stdout: read(&out_path),
        stderr: read(&err_path),
    };
    match status {
        Some(s) if s.success() => output,
        Some(s) => panic!(
            "chromium exited with {s} on {url}; stderr:\n{}",
            output.stderr
        ),
        None => panic!(
            "chromium did not finish {url} within {RUN_TIMEOUT:?}; stderr:\n{}",
            output.stderr
        ),
    }
}

/// A stand-in HTTP proxy that answers every request `404` and records its request line
/// (`GET http://host/path HTTP/1.1`, or `CONNECT host:443 HTTP/1.1` for HTTPS). Its listening
/// thread lives as long as the test process.
#[derive(Debug)]
pub struct RequestRecorder {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl RequestRecorder {
    /// Listens on a free loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the recorder");
        let port = listener.local_addr().expect("recorder address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = Arc::clone(&record);
                std::thread::spawn(move || answer(stream, &record));
            }
        });
        RequestRecorder { port, seen }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request lines received so far (a connection that sent nothing: `(connection)`).
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().expect("recorder lock").clone()
    }

    /// The requests not made by the browser for itself ([`browser_own`]): what a page fetched.
    /// A connection that never sent a request line fetched nothing: a page's fetch names its
    /// target as it connects, before the page's load ends (which `--dump-dom` and
    /// `--screenshot` wait for); the browser opens such connections to its proxy ahead of its
    /// own calls and drops them as it exits (seen once in a loaded test run).
    pub fn page_requests(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|l| l != "(connection)" && !browser_own(l))
            .collect()
    }
}

/// The hosts Debian's Chromium calls for itself whatever the flags (component updates at
/// `update.googleapis.com`, sign-in at `accounts.google.com`): a page that names none of them
/// cannot be what made such a request.
pub const BROWSER_HOSTS: [&str; 4] = ["google.com", "googleapis.com", "gvt1.com", "gstatic.com"];

/// Whether a request line goes to one of [`BROWSER_HOSTS`] (or a subdomain).
pub fn browser_own(line: &str) -> bool {
    let target = line.split_whitespace().nth(1).unwrap_or("");
    let authority = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .unwrap_or(target);
    let host = authority
        .split(['/', '?'])
        .next()
        .unwrap_or("")
        .rsplit_once(':')
        .map_or(authority.split(['/', '?']).next().unwrap_or(""), |(h, _)| h);
    BROWSER_HOSTS
        .iter()
        .any(|b| host == *b || host.ends_with(&format!(".{b}")))
}

fn answer(stream: TcpStream, record: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut first = String::new();
    let _ = reader.read_line(&mut first);
    let line = first.trim_end();
    record
        .lock()
        .expect("recorder lock")
        .push(if line.is_empty() {
            "(connection)".to_string()
        } else {
            line.to_string()
        });
    // read the rest of the head, then refuse
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let _ = (&stream)
        .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::browser_own;

    #[test]
    fn the_browser_s_own_hosts_are_told_from_a_page_s() {
        assert!(browser_own("CONNECT accounts.google.com:443 HTTP/1.1"));
        assert!(browser_own(
            "POST http://update.googleapis.com/service/update2/json?x=1 HTTP/1.1"
        ));
        assert!(!browser_own("GET http://example.invalid/leak.png HTTP/1.1"));
        assert!(!browser_own("GET http://notgoogle.com/x HTTP/1.1"));
        assert!(!browser_own(
            "GET http://google.com.evil.invalid/x HTTP/1.1"
        ));
        assert!(!browser_own("(connection)"));
    }
}
