//! Kept connections idle past `keep_alive_timeout` are closed, as vLLM's server (uvicorn)
//! closes them after its `timeout_keep_alive` (5 s by default): a client's pool then holds
//! connections the server has closed, which it must not send on. A request in progress is
//! never cut by the timeout, however long its answer takes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vllm_sim::{SimConfig, spawn};

const IDLE: Duration = Duration::from_millis(300);

async fn sim(keep_alive_timeout: Option<Duration>, ttft: Duration) -> vllm_sim::SimHandle {
    spawn(SimConfig {
        keep_alive_timeout,
        ttft,
        itl: Duration::from_millis(1),
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts")
}

/// Sends `request` and reads its whole answer (a chunked body ends with `0\r\n\r\n`, a
/// health answer has an empty body); fails on a closed connection.
async fn ask(conn: &mut TcpStream, request: &str, ends: &str) -> String {
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).ends_with(ends) {
        let n = conn.read(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "closed mid-answer: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(answer).expect("utf-8")
}

const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: sim\r\n\r\n";

/// Whether the server closes `conn` within `within` (a read returns end of file).
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(within, conn.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => panic!("unexpected bytes: {:?}", &buf[..n]),
        Err(_) => false,
    }
}

#[tokio::test]
async fn an_idle_kept_connection_is_closed_after_the_keep_alive_timeout() {
    let s = sim(Some(IDLE), Duration::from_millis(1)).await;
    let mut conn = TcpStream::connect(s.addr()).await.unwrap();
    // requests closer together than the timeout keep the connection
    for _ in 0..3 {
        let a = ask(&mut conn, HEALTH, "\r\n\r\n").await;
        assert!(a.starts_with("HTTP/1.1 200"), "{a}");
        tokio::time::sleep(IDLE / 2).await;
    }
    assert!(closed_within(&mut conn, IDLE * 10).await);
    assert_eq!(s.stats().connections, 1);
}

#[tokio::test]
async fn without_a_timeout_an_idle_connection_stays_open() {
    let s = sim(None, Duration::from_millis(1)).await;
    let mut conn = TcpStream::connect(s.addr()).await.unwrap();
    ask(&mut conn, HEALTH, "\r\n\r\n").await;
    assert!(!closed_within(&mut conn, IDLE * 4).await);
    let a = ask(&mut conn, HEALTH, "\r\n\r\n").await;
    assert!(a.starts_with("HTTP/1.1 200"), "{a}");
}

/// The timeout counts only while no request is in progress: a first token slower than it
/// (a long prefill, a queue) is not cut.
#[tokio::test]
async fn a_stream_slower_than_the_timeout_is_not_cut() {
    let s = sim(Some(IDLE), IDLE * 3).await;
    let mut conn = TcpStream::connect(s.addr()).await.unwrap();
    let body = r#"{"model":"candidate","prompt":"hi","max_tokens":3,"stream":true}"#;
    let request = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: sim\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let a = ask(&mut conn, &request, "0\r\n\r\n").await;
    assert!(a.contains("data: [DONE]"), "{a}");
}
