//! Servers for the fault matrix that neither `vllm-sim` nor wiremock can play: a vLLM whose
//! completions answer sends its headers (and maybe some chunks) and then holds the connection
//! open without another byte ([`HangingVllm`]). wiremock delays a whole response, headers
//! included, so it cannot show "headers then silence"; the simulator always finishes its streams.
//!
//! The server is plain blocking I/O on its own threads (no runtime), so sync and async tests use
//! it alike. `GET /health`, `GET /v1/models` (serving `candidate`) and `GET /metrics` (one
//! counter) are answered at once with `Connection: close`; `POST /v1/completions` and
//! `POST /v1/chat/completions` get a chunked `text/event-stream` answer made of the scripted
//! chunks, and the connection is then held, silent, until the server is dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// `/v1/models` as vLLM lists a base model and one adapter, `candidate`.
pub const MODELS: &str = r#"{"object":"list","data":[{"id":"tiny-base","object":"model","root":"/m/base","parent":null},{"id":"candidate","object":"model","root":"/m/lora","parent":"tiny-base"}]}"#;

/// A `/metrics` body with one vLLM counter (enough for the before/after deltas).
pub const METRICS: &str = "# TYPE vllm:request_success_total counter\nvllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"tiny-base\"} 0.0\n";

/// How often a held connection checks whether the server is being dropped.
const POLL: Duration = Duration::from_millis(20);

/// One SSE event carrying a completions chunk with `text`, and `finish` as its finish reason.
pub fn completion_chunk(text: &str, finish: Option<&str>) -> String {
    let finish = finish.map_or("null".to_string(), |f| format!("\"{f}\""));
    format!(
        "data: {{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"model\":\"candidate\",\"choices\":[{{\"index\":0,\"text\":\"{text}\",\"finish_reason\":{finish}}}]}}\n\n"
    )
}

/// The usage event vLLM sends last with `stream_options.include_usage`.
pub const USAGE_CHUNK: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n";

/// A vLLM that streams `chunks` (each sent as one HTTP chunk, in order) and then says nothing
/// more, keeping the connection open; stopped when dropped.
pub struct HangingVllm {
    url: String,
    stop: Arc<AtomicBool>,
    generations: Arc<AtomicUsize>,
}

impl HangingVllm {
    /// Starts on a free 127.0.0.1 port. `chunks` empty: the headers only, then silence.
    pub fn start(chunks: Vec<String>) -> HangingVllm {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("invariant: can bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("invariant: a listener can be made non-blocking");
        let port = listener
            .local_addr()
            .expect("invariant: a bound listener has an address")
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let generations = Arc::new(AtomicUsize::new(0));
        let chunks = Arc::new(chunks);
        let (s, g) = (stop.clone(), generations.clone());
        std::thread::spawn(move || accept_loop(&listener, &s, &g, &chunks));
        HangingVllm {
            url: format!("http://127.0.0.1:{port}"),
            stop,
            generations,
        }
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Generation requests received so far.
    pub fn generations(&self) -> usize {
        self.generations.load(Ordering::SeqCst)
    }
}

impl Drop for HangingVllm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: &TcpListener,
    stop: &Arc<AtomicBool>,
    generations: &Arc<AtomicUsize>,
    chunks: &Arc<Vec<String>>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                let (s, g, c) = (stop.clone(), generations.clone(), chunks.clone());
                std::thread::spawn(move || {
                    // a client that went away is no failure of the server
                    let _ = serve(conn, &s, &g, &c);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Answers the one request of a connection (`Connection: close`); a generation request is
/// held until the server stops.
fn serve(
    conn: TcpStream,
    stop: &AtomicBool,
    generations: &AtomicUsize,
    chunks: &[String],
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let path = path.split('?').next().unwrap_or_default();
        match (method.as_str(), path) {
            ("GET", "/health") => answer(&mut out, "200 OK", "text/plain", "")?,
            ("GET", "/v1/models") => answer(&mut out, "200 OK", "application/json", MODELS)?,
            ("GET", "/metrics") => answer(&mut out, "200 OK", "text/plain", METRICS)?,
            ("POST", "/v1/completions" | "/v1/chat/completions") => {
                generations.fetch_add(1, Ordering::SeqCst);
                out.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n",
                )?;
                for c in chunks {
                    write!(out, "{:x}\r\n{c}\r\n", c.len())?;
                }
                out.flush()?;
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(POLL);
                }
                return out.shutdown(Shutdown::Both);
            }
            _ => answer(&mut out, "404 Not Found", "text/plain", "not found")?,
        }
    }
    Ok(())
}

fn answer(
    out: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}
