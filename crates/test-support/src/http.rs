//! A minimal blocking HTTP/1.1 client for loopback servers (readiness checks, a few JSON calls):
//! one request per connection, bounded by timeouts, chunked bodies decoded. No runtime needed,
//! so the fixtures work from sync and async tests alike.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Bound of connecting, and of each read and write.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `method path` on 127.0.0.1:`port` with extra `headers` (`Name: value\r\n` lines) and `body`:
/// the status and the body.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes", raw.len()))?;
    let headers = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = headers
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {headers}"))?;
    let payload = raw[split + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        return dechunk(&payload).map(|b| (status, b));
    }
    Ok((status, payload))
}

/// `GET path`: status and body as text.
pub fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    request(port, "GET", path, "", b"")
        .map(|(status, body)| (status, String::from_utf8_lossy(&body).into_owned()))
}

/// `POST path` with a JSON body: status and the body parsed as JSON (`null` when empty).
pub fn post_json(
    port: u16,
    path: &str,
    body: &serde_json::Value,
) -> Result<(u16, serde_json::Value), String> {
    let (status, raw) = request(
        port,
        "POST",
        path,
        "Content-Type: application/json\r\n",
        body.to_string().as_bytes(),
    )?;
    let json = if raw.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&raw).map_err(|e| {
            format!(
                "POST {path}: http {status}, not JSON ({e}): {}",
                String::from_utf8_lossy(&raw)
            )
        })?
    };
    Ok((status, json))
}

/// Percent-encodes everything but unreserved characters (for query strings).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|e| e.to_string())?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_and_query_encoding() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"5\r\nab").is_err());
        assert_eq!(url_encode("up{job=\"x\"}"), "up%7Bjob%3D%22x%22%7D");
    }
}
