//! The fault proxy against a small axum upstream that records what reaches it (method, path
//! and query, headers, body, when): pass-through byte for byte (keep-alive and chunked bodies
//! too), each action on only the calls its rule picks, and the log's account of it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use test_support::fault_proxy::{Action, BODY_EXCERPT, Exchange, FaultProxy, Outcome, Rule};

/// A request as the upstream saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

/// An upstream that echoes the body back (status from `x-want-status`, 200 by default, with
/// `x-upstream: echo`), and streams `abcdef` in chunks at `/chunked`.
struct Upstream {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    async fn start() -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/chunked", get(chunked))
            .fallback(echo)
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Upstream { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn echo(State(seen): State<Arc<Mutex<Vec<Seen>>>>, req: Request) -> Response {
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap()
        .to_vec();
    let status = parts
        .headers
        .get("x-want-status")
        .map_or(200, |v| v.to_str().unwrap().parse().unwrap());
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body: body.clone(),
        at,
    });
    (
        StatusCode::from_u16(status).unwrap(),
        [("x-upstream", "echo")],
        body,
    )
        .into_response()
}

async fn chunked() -> Response {
    let parts = ["ab", "cd", "ef"].map(|s| Ok::<_, std::io::Error>(s.to_string()));
    Body::from_stream(futures::stream::iter(parts)).into_response()
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// Time enough for any call here on a loaded machine.
const PATIENT: Duration = Duration::from_secs(30);

const ALIAS: &str = "/api/2.0/mlflow/registered-models/alias";
const PASSED: &str = r#"{"name":"m","alias":"perf-passed","version":"3"}"#;
const FAILED: &str = r#"{"name":"m","alias":"perf-failed","version":"3"}"#;

fn claim_rule(action: Action) -> Rule {
    Rule::new(action)
        .method("POST")
        .path(ALIAS)
        .body_contains(r#""alias":"perf-passed""#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_post_and_delete_pass_through_byte_for_byte() {
    let up = Upstream::start().await;
    let proxy = FaultProxy::start(&up.url, vec![]);
    let http = client(PATIENT);

    let path = "/a/b%20c/%E2%82%AC?x=1&y=%2F&y=2&empty=";
    let r = http
        .get(format!("{}{path}", proxy.url()))
        .header("x-custom", "Value With  Spaces")
        .header("authorization", "Bearer t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-upstream"], "echo");
    assert_eq!(r.bytes().await.unwrap(), "");

    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let r = http
        .post(format!("{}/upload?name=m&v=%22q%22", proxy.url()))
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.bytes().await.unwrap(),
        body,
        "the answer's body, byte for byte"
    );

    // MLflow's delete-alias carries a JSON body on a DELETE; a status other than 200 goes back as it is
    let r = http
        .delete(format!("{}{ALIAS}", proxy.url()))
        .header("x-want-status", "418")
        .body(FAILED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 418);
    assert_eq!(r.text().await.unwrap(), FAILED);

    let seen = up.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].uri.as_str()),
        ("GET", path)
    );
    assert_eq!(seen[0].headers["x-custom"], "Value With  Spaces");
    assert_eq!(seen[0].headers["authorization"], "Bearer t0ken");
    let upstream_authority = up.url.trim_start_matches("http://");
    assert_eq!(seen[0].headers["host"], upstream_authority);
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].uri, "/upload?name=m&v=%22q%22");
    assert_eq!(seen[1].body, body, "the request's body, byte for byte");
    assert_eq!(seen[1].headers["content-type"], "application/octet-stream");
    assert_eq!(seen[1].headers["content-length"], "70000");
    assert_eq!(
        (seen[2].method.as_str(), seen[2].uri.as_str()),
        ("DELETE", ALIAS)
    );
    assert_eq!(seen[2].body, FAILED.as_bytes());

    let log = proxy.requests();
    let summary: Vec<_> = log
        .iter()
        .map(|e| (e.method.as_str(), e.action.clone(), e.outcome.clone()))
        .collect();
    let answered = |status| Outcome::Answered { status };
    assert_eq!(
        summary,
        [
            ("GET", None, answered(200)),
            ("POST", None, answered(200)),
            ("DELETE", None, answered(418)),
        ]
    );
    assert_eq!(log[0].path, path);
    assert_eq!(log[2].body, FAILED);
    // the first BODY_EXCERPT bytes, lossily decoded: one character per byte here
    assert_eq!(log[1].body.chars().count(), BODY_EXCERPT, "an excerpt");
    assert!(log[1].body.starts_with("\0\u{1}\u{2}"));
}

/// Raw HTTP/1.1 on one connection: a chunked request body, then a request whose answer comes
/// chunked from the upstream; both answered on the same (kept-alive) connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_and_keep_alive_on_one_connection() {
    let up = Upstream::start().await;
    let proxy = FaultProxy::start(&up.url, vec![]);
    let port: u16 = proxy.url().rsplit(':').next().unwrap().parse().unwrap();
    let answers = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(PATIENT)).unwrap();
        s.write_all(
            b"POST /chunk?x=1 HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let first = read_response(&mut r);
        s.write_all(b"GET /chunked HTTP/1.1\r\nHost: proxy\r\n\r\n")
            .unwrap();
        let second = read_response(&mut r);
        (first, second)
    })
    .await
    .unwrap();
    assert_eq!(answers.0, (200, b"hello world".to_vec()));
    assert_eq!(answers.1, (200, b"abcdef".to_vec()));
    let seen = up.seen();
    assert_eq!(seen[0].body, b"hello world");
    assert_eq!(seen[0].headers["content-length"], "11");
    assert!(!seen[0].headers.contains_key("transfer-encoding"));
    let log = proxy.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].connection, log[1].connection, "kept alive: {log:#?}");
}

/// Status and body of one response with a `Content-Length` (what the proxy sends).
fn read_response(r: &mut impl BufRead) -> (u16, Vec<u8>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut length = None;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        assert!(
            !name.eq_ignore_ascii_case("connection") || !value.contains("close"),
            "the proxy kept the connection open"
        );
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse().unwrap());
        }
    }
    let mut body = vec![0; length.expect("a content-length")];
    r.read_exact(&mut body).unwrap();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_applies_only_to_the_call_its_rule_matches() {
    let delay = Duration::from_millis(800);
    let up = Upstream::start().await;
    let proxy = FaultProxy::start(
        &up.url,
        vec![
            claim_rule(Action::delay_request(delay)),
            Rule::new(Action::delay_response(delay)).path_contains("answer=late"),
        ],
    );
    let http = client(PATIENT);
    let url = |p: &str| format!("{}{p}", proxy.url());
    // another method, another body, another path: not delayed
    http.get(url(ALIAS)).body(PASSED).send().await.unwrap();
    http.post(url(ALIAS)).body(FAILED).send().await.unwrap();
    let longer = format!("{ALIAS}es");
    http.post(url(&longer)).body(PASSED).send().await.unwrap();
    // the claim: late at the upstream (the query does not matter to an exact path)
    let sent = Instant::now();
    let r = http
        .post(url(&format!("{ALIAS}?q=1")))
        .body(PASSED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let claim_seen = up.seen()[3].clone();
    assert_eq!(claim_seen.body, PASSED.as_bytes());
    assert!(claim_seen.at - sent >= delay, "{:?}", claim_seen.at - sent);
    // the late answer: landed at once, answered late
    let sent = Instant::now();
    let r = http.get(url("/x?answer=late")).send().await.unwrap();
    let answered = Instant::now();
    assert_eq!(r.status(), 200);
    assert!(answered - sent >= delay);

    let log = proxy.requests();
    let rules: Vec<_> = log.iter().map(|e| e.rule).collect();
    assert_eq!(rules, [None, None, None, Some(0), Some(1)]);
    let claim = &log[3];
    assert_eq!(claim.action, Some(Action::delay_request(delay)));
    assert!(claim.forwarded.unwrap() - claim.received >= delay);
    let late = &log[4];
    assert!(late.answered.unwrap() - late.landed.unwrap() >= delay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_then_drop_lands_upstream_but_the_client_errors() {
    let up = Upstream::start().await;
    let proxy = FaultProxy::start(&up.url, vec![claim_rule(Action::ForwardThenDrop).first(1)]);
    let http = client(PATIENT);
    let claim = || {
        http.post(format!("{}{ALIAS}", proxy.url()))
            .body(PASSED)
            .send()
    };

    let err = claim().await.expect_err("the connection closes unanswered");
    assert!(!err.is_timeout(), "closed, not timed out: {err:?}");
    assert_eq!(
        up.seen().len(),
        1,
        "the write landed, once (no hidden retry)"
    );
    assert_eq!(up.seen()[0].body, PASSED.as_bytes());
    let dropped = proxy
        .wait_for_async(PATIENT, "the drop is logged", |log| {
            log.first().is_some_and(|e| e.outcome != Outcome::InFlight)
        })
        .await
        .remove(0);
    assert_eq!(dropped.outcome, Outcome::Dropped);
    assert_eq!(dropped.upstream_status, Some(200));
    assert!(dropped.landed.is_some() && dropped.answered.is_none());

    // first(1): the next claim goes through
    let r = claim().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.seen().len(), 2);
    assert_eq!(
        proxy.requests()[1].outcome,
        Outcome::Answered { status: 200 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_then_forward_lands_after_the_client_gave_up() {
    let hold = Duration::from_millis(1500);
    let client_timeout = Duration::from_millis(300);
    let up = Upstream::start().await;
    let proxy = FaultProxy::start(&up.url, vec![claim_rule(Action::HoldThenForward { hold })]);

    let err = client(client_timeout)
        .post(format!("{}{ALIAS}", proxy.url()))
        .body(PASSED)
        .send()
        .await
        .expect_err("the client times out");
    let gave_up = Instant::now();
    assert!(err.is_timeout(), "{err:?}");
    assert!(up.seen().is_empty(), "held: not upstream yet");

    let log = proxy
        .wait_for_async(PATIENT, "the held claim lands", |log| {
            log.first().is_some_and(|e| e.outcome != Outcome::InFlight)
        })
        .await;
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, PASSED.as_bytes());
    assert!(seen[0].at > gave_up, "landed after the client gave up");
    let e = &log[0];
    assert!(e.forwarded.unwrap() - e.received >= hold);
    assert_eq!(e.upstream_status, Some(200));
    assert_eq!(e.outcome, Outcome::ClientGone, "{e:#?}");
    assert!(e.answered.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_n_get_the_fault_then_calls_pass_through() {
    let up = Upstream::start().await;
    let unavailable = r#"{"error_code":"TEMPORARILY_UNAVAILABLE","message":"try later"}"#;
    let proxy = FaultProxy::start(
        &up.url,
        vec![
            Rule::new(Action::Respond {
                status: 503,
                body: unavailable.into(),
            })
            .method("GET")
            .path_contains("registered-models/get")
            .first(2),
        ],
    );
    let http = client(PATIENT);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = http
            .get(format!(
                "{}/api/2.0/mlflow/registered-models/get?name=m",
                proxy.url()
            ))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 503 {
            assert_eq!(r.headers()["content-type"], "application/json");
            assert_eq!(r.text().await.unwrap(), unavailable);
        }
    }
    assert_eq!(statuses, [503, 503, 200, 200]);
    assert_eq!(up.seen().len(), 2, "a canned answer forwards nothing");
    let log = proxy.requests();
    assert!(log[0].forwarded.is_none() && log[1].forwarded.is_none());
    assert_eq!(
        log.iter().map(|e| e.rule).collect::<Vec<_>>(),
        [Some(0), Some(0), None, None]
    );
}

/// The statuses of 24 calls through a proxy that answers 503 with probability 0.5, and the
/// delays drawn for 4 calls with a 20–80 ms random delay.
async fn seeded_run(up: &Upstream, seed: u64) -> (Vec<u16>, Vec<Duration>, usize) {
    let range = Duration::from_millis(20)..Duration::from_millis(80);
    let proxy = FaultProxy::builder(&up.url)
        .seed(seed)
        .rule(
            Rule::new(Action::Respond {
                status: 503,
                body: String::new(),
            })
            .path("/coin")
            .with_probability(0.5),
        )
        .rule(Rule::new(Action::DelayRange(range.clone())).path("/slow"))
        .start();
    let http = client(PATIENT);
    let before = up.seen().len();
    let mut statuses = Vec::new();
    for _ in 0..24 {
        let r = http
            .get(format!("{}/coin", proxy.url()))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    let forwarded = up.seen().len() - before;
    let mut delays = Vec::new();
    for _ in 0..4 {
        http.get(format!("{}/slow", proxy.url()))
            .send()
            .await
            .unwrap();
    }
    for e in proxy.requests().iter().filter(|e| e.path == "/slow") {
        let Some(Action::Delay { before_forward, .. }) = e.action else {
            panic!("a drawn delay: {e:#?}");
        };
        assert!(range.contains(&before_forward), "{before_forward:?}");
        assert!(e.forwarded.unwrap() - e.received >= before_forward);
        delays.push(before_forward);
    }
    (statuses, delays, forwarded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probability_and_random_delays_repeat_with_the_seed() {
    let up = Upstream::start().await;
    let (statuses, delays, forwarded) = seeded_run(&up, 42).await;
    assert!(
        statuses.contains(&503) && statuses.contains(&200),
        "{statuses:?}"
    );
    assert_eq!(forwarded, statuses.iter().filter(|s| **s == 200).count());
    let again = seeded_run(&up, 42).await;
    assert_eq!(
        (&again.0, &again.1),
        (&statuses, &delays),
        "same seed, same run"
    );
    let other = seeded_run(&up, 43).await;
    assert_ne!(other.0, statuses, "another seed, another run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_tells_what_was_done_in_arrival_order() {
    let up = Upstream::start().await;
    let late = Duration::from_millis(200);
    let bad_gateway = Action::Respond {
        status: 502,
        body: "<html>Bad Gateway</html>".into(),
    };
    let proxy = FaultProxy::start(
        &up.url,
        vec![
            Rule::new(bad_gateway.clone()).path("/a").first(1),
            Rule::new(Action::delay_response(late)).path("/b"),
            Rule::new(Action::ForwardThenDrop).path("/c"),
        ],
    );
    let http = client(PATIENT);
    for p in ["/a", "/b", "/c", "/a", "/d"] {
        let _ = http
            .post(format!("{}{p}", proxy.url()))
            .body(p)
            .send()
            .await;
    }
    let log = proxy
        .wait_for_async(PATIENT, "all five ended", |log| {
            log.len() == 5 && log.iter().all(|e| e.outcome != Outcome::InFlight)
        })
        .await;
    let answered = |status| Outcome::Answered { status };
    let told: Vec<_> = log
        .iter()
        .map(|e| {
            (
                e.seq,
                e.path.as_str(),
                e.body.as_str(),
                e.action.clone(),
                e.outcome.clone(),
            )
        })
        .collect();
    assert_eq!(
        told,
        [
            (0, "/a", "/a", Some(bad_gateway), answered(502)),
            (
                1,
                "/b",
                "/b",
                Some(Action::delay_response(late)),
                answered(200)
            ),
            (
                2,
                "/c",
                "/c",
                Some(Action::ForwardThenDrop),
                Outcome::Dropped
            ),
            (3, "/a", "/a", None, answered(200)),
            (4, "/d", "/d", None, answered(200)),
        ]
    );
    for pair in log.windows(2) {
        assert!(pair[0].received < pair[1].received);
    }
    for e in log.iter().filter(|e| e.forwarded.is_some()) {
        let steps = [Some(e.received), e.forwarded, e.landed, e.answered];
        let steps: Vec<Instant> = steps.into_iter().flatten().collect();
        assert!(steps.is_sorted(), "{e:#?}");
    }
    let upstream_paths: Vec<_> = up.seen().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(upstream_paths, ["/b", "/c", "/a", "/d"]);
    assert!(log[1].answered.unwrap() - log[1].landed.unwrap() >= late);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_a_502_and_rules_can_change() {
    let closed = format!("http://127.0.0.1:{}", test_support::free_port());
    let proxy = FaultProxy::start(&closed, vec![]);
    let http = client(PATIENT);
    let r = http.get(format!("{}/x", proxy.url())).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let e = &proxy.requests()[0];
    assert!(
        e.upstream_error.as_deref().unwrap().contains("onnect"),
        "{e:#?}"
    );
    assert_eq!(e.outcome, Outcome::Answered { status: 502 });

    proxy.set_rules(vec![Rule::new(Action::Respond {
        status: 204,
        body: String::new(),
    })]);
    let r = http.get(format!("{}/x", proxy.url())).send().await.unwrap();
    assert_eq!(r.status(), 204);
}

/// A test without a runtime of its own uses it the same way (the blocking client of
/// `test_support::http`), and `wait_for` blocks.
#[test]
fn sync_tests_use_it_too() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(Upstream::start());
    let proxy = FaultProxy::start(
        &up.url,
        vec![Rule::new(Action::ForwardThenDrop).method("POST")],
    );
    let port: u16 = proxy.url().rsplit(':').next().unwrap().parse().unwrap();
    let (status, body) = test_support::http::get(port, "/ping?x=1").unwrap();
    assert_eq!((status, body.as_str()), (200, ""));
    let dropped = test_support::http::post_json(port, ALIAS, &serde_json::json!({"a": 1}));
    assert!(dropped.is_err(), "{dropped:?}");
    let log: Vec<Exchange> = proxy.wait_for(PATIENT, "the drop is logged", |log| {
        log.len() == 2 && log[1].outcome == Outcome::Dropped
    });
    assert_eq!(log[0].path, "/ping?x=1");
    assert_eq!(up.seen()[1].body, br#"{"a":1}"#);
    proxy.stop();
}
