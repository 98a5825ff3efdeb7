//! The proxy's server side (hyper's HTTP/1.1 server, one connection task per client
//! connection, keep-alive as the client asks) and the forwarding (hyper-util's pooled client).
//!
//! Each request is handled in a task of its own, detached from the client's connection: the
//! connection only waits for the answer. A client that gives up therefore stops nothing: a
//! held or delayed request is still forwarded, and its fate is logged. A deliberate drop is the
//! service returning an error, on which hyper closes the connection without writing a response.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::rules::Action;
use super::{Exchange, Outcome, Shared};

/// What the proxy serves: where to forward, and how long an upstream call may take.
#[derive(Clone)]
pub(crate) struct Upstream {
    /// `http://host:port[/prefix]`, without a trailing slash.
    pub base: String,
    /// Bound of one forwarded call (sending, and the whole answer); past it the client gets a
    /// 502.
    pub timeout: Duration,
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Upstream,
    connection: u64,
}

/// The error by which a connection is closed without an answer.
#[derive(Debug)]
struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by a fault rule")
    }
}

impl StdError for Dropped {}

/// Accepts connections on `listener` until `shutdown` fires (or its sender is dropped).
pub(crate) async fn run(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    upstream: Upstream,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener)
        .expect("invariant: a non-blocking std listener converts inside the runtime");
    let client = Client::builder(TokioExecutor::new()).build_http();
    let mut connection = 0;
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // e.g. out of file descriptors: wait rather than spin
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        connection += 1;
        let ctx = Ctx {
            shared: Arc::clone(&shared),
            client: client.clone(),
            upstream: upstream.clone(),
            connection,
        };
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(ctx.clone(), req));
            // ends with an error when a rule drops the connection or the client goes away
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One request: read it whole, log it, pick its rule, and wait for the answer of the detached
/// task that carries it out (none means close the connection).
async fn handle(ctx: Ctx, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let received = Instant::now();
    let (parts, body) = req.into_parts();
    // a client that breaks off in the middle of its body sent nothing to forward
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let picked = ctx.shared.rules().pick(parts.method.as_str(), &path, &body);
    let (rule, action) = picked.unzip();
    let seq = ctx.shared.push(Exchange {
        seq: 0,
        connection: ctx.connection,
        method: parts.method.to_string(),
        path: path.clone(),
        body: excerpt(&body),
        rule,
        action: action.clone(),
        received,
        forwarded: None,
        landed: None,
        upstream_status: None,
        upstream_error: None,
        answered: None,
        outcome: Outcome::InFlight,
    });
    let request = Forward {
        method: parts.method,
        path,
        headers: parts.headers,
        body,
    };
    let (tx, rx) = oneshot::channel();
    tokio::spawn(carry_out(ctx, seq, request, Plan::of(action.as_ref()), tx));
    rx.await.map_err(|_| Dropped)
}

/// What to send upstream.
struct Forward {
    method: hyper::Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// An action as steps.
#[derive(Debug, PartialEq)]
struct Plan {
    before_forward: Duration,
    /// `None`: forward; else answer this without forwarding.
    canned: Option<(u16, String)>,
    after_response: Duration,
    /// Answer the client (else close its connection once done).
    answer: bool,
}

impl Plan {
    fn of(action: Option<&Action>) -> Plan {
        let pass = Plan {
            before_forward: Duration::ZERO,
            canned: None,
            after_response: Duration::ZERO,
            answer: true,
        };
        match action {
            None => pass,
            Some(Action::Delay {
                before_forward,
                after_response,
            }) => Plan {
                before_forward: *before_forward,
                after_response: *after_response,
                ..pass
            },
            // resolved by the rule set before it gets here; the start if not
            Some(Action::DelayRange(range)) => Plan {
                before_forward: range.start,
                ..pass
            },
            Some(Action::ForwardThenDrop) => Plan {
                answer: false,
                ..pass
            },
            Some(Action::HoldThenForward { hold }) => Plan {
                before_forward: *hold,
                answer: false,
                ..pass
            },
            Some(Action::Respond { status, body }) => Plan {
                canned: Some((*status, body.clone())),
                ..pass
            },
        }
    }
}

/// Carries out `plan` for request `seq`, logging each step, whatever the client does meanwhile.
async fn carry_out(
    ctx: Ctx,
    seq: usize,
    request: Forward,
    plan: Plan,
    tx: oneshot::Sender<Response<Full<Bytes>>>,
) {
    let response = match plan.canned {
        Some((status, body)) => canned(status, body),
        None => {
            tokio::time::sleep(plan.before_forward).await;
            ctx.shared
                .update(seq, |e| e.forwarded = Some(Instant::now()));
            let result = tokio::time::timeout(ctx.upstream.timeout, forward(&ctx, request))
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no answer from upstream within {:?}",
                        ctx.upstream.timeout
                    ))
                });
            let landed = Instant::now();
            match result {
                Ok(response) => {
                    ctx.shared.update(seq, |e| {
                        e.landed = Some(landed);
                        e.upstream_status = Some(response.status().as_u16());
                    });
                    response
                }
                Err(why) => {
                    let response = canned(502, format!("fault proxy: {why}"));
                    ctx.shared.update(seq, |e| e.upstream_error = Some(why));
                    response
                }
            }
        }
    };
    if !plan.answer {
        let gone = tx.is_closed();
        drop(tx);
        let outcome = if gone {
            Outcome::ClientGone
        } else {
            Outcome::Dropped
        };
        ctx.shared.update(seq, |e| e.outcome = outcome);
        return;
    }
    tokio::time::sleep(plan.after_response).await;
    let status = response.status().as_u16();
    let answered = Instant::now();
    let outcome = match tx.send(response) {
        Ok(()) => Outcome::Answered { status },
        Err(_) => Outcome::ClientGone,
    };
    ctx.shared.update(seq, |e| {
        if outcome != Outcome::ClientGone {
            e.answered = Some(answered);
        }
        e.outcome = outcome;
    });
}

/// Sends the request upstream and reads the whole answer.
async fn forward(ctx: &Ctx, request: Forward) -> Result<Response<Full<Bytes>>, String> {
    let mut req = Request::builder()
        .method(request.method)
        .uri(format!("{}{}", ctx.upstream.base, request.path))
        .body(Full::new(request.body))
        .map_err(|e| format!("cannot build the upstream request: {e}"))?;
    // the client sets Host to the upstream's authority, as a reverse proxy does
    *req.headers_mut() = end_to_end(request.headers, &[header::HOST]);
    let answer = ctx.client.request(req).await.map_err(|e| chain(&e))?;
    let (parts, body) = answer.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading the upstream's body: {}", chain(&e)))?
        .to_bytes();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = parts.status;
    *response.headers_mut() = end_to_end(parts.headers, &[]);
    Ok(response)
}

/// A response made up by the proxy.
fn canned(status: u16, body: String) -> Response<Full<Bytes>> {
    let json = serde_json::from_str::<serde_json::Value>(&body).is_ok();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = if json {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), which a proxy does not pass on.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// `headers` without the hop-by-hop ones (and those `Connection` names), `upgrade`, and
/// `also`. The body goes on whole, so `Content-Length` stays right; a chunked one gets its
/// length from hyper.
fn end_to_end(mut headers: HeaderMap, also: &[HeaderName]) -> HeaderMap {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .map(|n| HeaderName::from_static(n))
        .chain([header::UPGRADE])
        .chain(named)
        .chain(also.iter().cloned())
    {
        headers.remove(name);
    }
    headers
}

/// At most [`super::BODY_EXCERPT`] bytes of a body, as text.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(super::BODY_EXCERPT)]).into_owned()
}

/// An error with its causes, `a: b: c`.
fn chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_not_passed_on() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "127.0.0.1:1"),
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-hop", "1"),
            ("content-type", "application/json"),
            ("content-length", "12"),
            ("x-end", "2"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        let out = end_to_end(h, &[header::HOST]);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "content-type", "x-end"]);
    }

    #[test]
    fn actions_become_plans() {
        let s = Duration::from_secs;
        let hold = Plan::of(Some(&Action::HoldThenForward { hold: s(3) }));
        assert_eq!((hold.before_forward, hold.answer), (s(3), false));
        assert!(hold.canned.is_none());
        let drop = Plan::of(Some(&Action::ForwardThenDrop));
        assert_eq!((drop.before_forward, drop.answer), (s(0), false));
        let late = Plan::of(Some(&Action::Delay {
            before_forward: s(1),
            after_response: s(2),
        }));
        assert_eq!((late.before_forward, late.after_response), (s(1), s(2)));
        assert!(late.answer);
        let canned = Plan::of(Some(&Action::Respond {
            status: 503,
            body: "x".into(),
        }));
        assert_eq!(canned.canned, Some((503, "x".into())));
        assert_eq!(Plan::of(None).before_forward, s(0));
    }

    #[test]
    fn canned_answers_say_what_they_carry() {
        let r = canned(503, r#"{"error_code":"TEMPORARILY_UNAVAILABLE"}"#.into());
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = canned(502, "Bad Gateway".into());
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}
