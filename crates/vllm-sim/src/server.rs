//! The HTTP server: routes, [`spawn`] and the [`SimHandle`] that stops it.
//!
//! Routes: `GET /health` (200, empty body), `GET /version`, `GET /v1/models`,
//! `POST /v1/completions`, `POST /v1/chat/completions`, `GET /metrics`, `POST /tokenize`
//! (unless [`SimConfig::tokenize`] is off). Anything else is
//! FastAPI's `404 {"detail":"Not Found"}`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::completions::{self, unix_secs};
use crate::config::SimConfig;
use crate::engine::{Shared, SimStats};
use crate::metrics::Handler;

/// Version reported by `GET /version`.
pub const VERSION: &str = "0.32.0-sim";

/// A running simulator. Dropping it stops accepting connections (requests in flight are
/// left to finish); [`SimHandle::shutdown`] does the same and waits for them.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl SimHandle {
    /// The bound address (the real port when the config asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration the simulator runs with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// What the simulator has done so far.
    pub fn stats(&self) -> SimStats {
        self.shared.counters.snapshot()
    }

    /// The W3C `traceparent` header of each generation request received (the most recent
    /// [`crate::TRACE_LOG_CAP`]), in arrival order.
    pub fn traceparents(&self) -> Vec<String> {
        self.shared.traces.snapshot()
    }

    /// Stops accepting connections and waits until requests in flight are done.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.cancel.cancel();
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Binds `config.addr` and serves the simulator on the current tokio runtime.
///
/// Fails with [`io::ErrorKind::InvalidInput`] when [`SimConfig::validate`] rejects the
/// configuration, or with the bind error.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let sim = vllm_sim::spawn(vllm_sim::SimConfig::default()).await?;
/// let url = format!("{}/v1/models", sim.base_url());
/// # let _ = url;
/// sim.shutdown().await
/// # }
/// ```
pub async fn spawn(config: SimConfig) -> io::Result<SimHandle> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(config, unix_secs()));
    let cancel = CancellationToken::new();
    let app = match shared.config.api {
        crate::config::SimApi::Openai => router(Arc::clone(&shared)),
        crate::config::SimApi::Llamacpp => crate::llamacpp::router(Arc::clone(&shared)),
    };
    let task = tokio::spawn(serve(listener, app, Arc::clone(&shared), cancel.clone()));
    tracing::info!(%addr, "vllm-sim serving");
    Ok(SimHandle {
        addr,
        shared,
        cancel,
        task: Some(task),
    })
}

/// Accepts connections until `cancel`, each served as HTTP/1.1 (uvicorn, vLLM's server, speaks
/// nothing else) and closed after [`SimConfig::keep_alive_timeout`] idle; then waits for the
/// requests in flight while idle connections close.
async fn serve(
    listener: TcpListener,
    app: Router,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's header read timeout runs from the end of an answer (or the accept) until the
    // next request's head is read: uvicorn's `timeout_keep_alive`, which vLLM sets
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(shared.config.keep_alive_timeout);
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // a connection gone before it was accepted: the next one
            Err(e) if is_connection_error(&e) => continue,
            // out of descriptors, say: as axum::serve, a pause that lets some free up
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; accepting again in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        shared
            .counters
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Each SSE chunk is a small write that must leave at once: with Nagle's algorithm a
        // chunk waits for the ACK of the previous segment, which a client on a reused
        // keep-alive connection delays by ~40 ms, so the tokens of every request after the
        // first arrived bunched and late.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            // a client gone, or idle past the keep-alive timeout: the connection just ends
            let _ = conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// An accept error of the one connection (it was reset or aborted before it was accepted),
/// not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn router(shared: Arc<Shared>) -> Router {
    let auth_state = Arc::clone(&shared);
    Router::new()
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/version", get(version))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/chat/completions", post(completions::chat))
        .route("/metrics", get(metrics))
        .route("/tokenize", post(crate::tokenize::tokenize))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            auth_state,
            require_api_key,
        ))
        .with_state(shared)
}

/// vLLM's `--api-key` middleware: only paths under `/v1` are guarded.
async fn require_api_key(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(key) = &shared.config.api_key
        && request.uri().path().starts_with("/v1")
    {
        let expected = format!("Bearer {key}");
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            return json(StatusCode::UNAUTHORIZED, "{\"error\":\"Unauthorized\"}");
        }
    }
    next.run(request).await
}

fn json(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.into(),
    )
        .into_response()
}

async fn version() -> Response {
    json(StatusCode::OK, format!("{{\"version\":\"{VERSION}\"}}"))
}

async fn models(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.http(Handler::Models, 200);
    json(StatusCode::OK, shared.models.list_body())
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    json(StatusCode::NOT_FOUND, "{\"detail\":\"Not Found\"}")
}
