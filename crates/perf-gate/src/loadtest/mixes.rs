//! A run over a mix ([`crate::mix`]): every member checked before the load, the prompts'
//! bodies made once per member, each adapter's first request timed alone (its cold load), and
//! the figures split per member after the load.
//!
//! - A target mix (`--target`, seed 002's mixed warfare): each target has its own client
//!   (URL, the run's API key and TLS settings) and must serve its model. Server-side figures
//!   are not collected: Prometheus and `/metrics` describe one server, and the point of the
//!   mix is each target's client-side latency and errors under the shared load.
//! - A LoRA mix (`--lora-mix`): every adapter must be served by `--vllm-url`; the base-model
//!   control stream (`--base-model-weight`) names the adapters' `parent` from `/v1/models`.
//!   The server-side figures are vLLM's, which it labels by base model: they pool every
//!   adapter's requests, and say so.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{LoadTestConfig, LoadTestError};
use crate::client::{ClientOptions, Timing, VllmClient};
use crate::mix::{Mix, MixKind, Role};
use crate::results::{ColdLoad, LoadTestResults, MixMemberResult, MixResults};
use crate::runner::aggregate::Tally;
use crate::runner::{DispatchMix, RunOutput};
use crate::urls::redact_url;
use crate::workload::PreparedRequest;

/// What the preflight found for each member: its client (a target's own) and its model.
pub(super) struct MixSetup {
    /// Each member's own client; `None`: the run's.
    pub clients: Vec<Option<Arc<VllmClient>>>,
    /// The model each member's requests name.
    pub models: Vec<String>,
    /// Each member's serving API (a target's `api=`, else the run's `--api`).
    pub apis: Vec<crate::api::Api>,
}

/// The flag a member of `kind` comes from.
fn flag(kind: MixKind, role: Role) -> &'static str {
    match (kind, role) {
        (MixKind::Targets, _) => "--target",
        (_, Role::Base) => "--base-model-weight",
        _ => "--lora-mix",
    }
}

/// Checks every member before the load: a target's server is healthy and serves its model;
/// an adapter is served by `client`; the base-model stream's model is the adapters' parent.
pub(super) async fn check(
    cfg: &LoadTestConfig,
    mix: &Mix,
    client: &Arc<VllmClient>,
) -> Result<MixSetup, LoadTestError> {
    let mut clients = Vec::with_capacity(mix.members.len());
    let apis: Vec<crate::api::Api> = mix
        .members
        .iter()
        .map(|m| m.api.unwrap_or(cfg.api))
        .collect();
    let mut models = Vec::with_capacity(mix.members.len());
    let mut parent = None;
    for (i, m) in mix.members.iter().enumerate() {
        let err = |source| LoadTestError::MixMember {
            member: m.name.clone(),
            flag: flag(mix.kind, m.role),
            source,
        };
        match (m.role, m.url.as_deref(), m.model.as_deref()) {
            (Role::Target, Some(url), Some(model)) => {
                let own = Arc::new(
                    VllmClient::new(
                        url,
                        cfg.api_key.as_deref(),
                        ClientOptions {
                            pool_size: cfg.member_slots(i) as usize,
                            tls: cfg.vllm_tls.clone(),
                            traceparent: cfg.traceparent,
                            http_client: cfg.http_client,
                            api: apis[i],
                            ..ClientOptions::default()
                        },
                    )
                    .map_err(err)?,
                );
                ready(cfg, &own, model).await.map_err(err)?;
                tracing::info!(target = %m.name, url = %redact_url(url), model, "target is served");
                clients.push(Some(own));
                models.push(model.to_string());
            }
            (Role::Adapter, _, Some(model)) => {
                let info = client.find_adapter(model).await.map_err(err)?;
                tracing::info!(adapter = %info.name, parent = ?info.parent, "mix adapter is served");
                parent = parent.or(info.parent);
                clients.push(None);
                models.push(model.to_string());
            }
            _ => {
                // the base-model stream: the adapters' parent (members are checked in order,
                // and the base member comes last)
                let Some(base) = parent.clone() else {
                    return Err(err(crate::client::ClientError::Models {
                        url: client.display_url().to_string(),
                        message: "no adapter of --lora-mix lists a parent (its base model), so the base-model control stream has no model to name".into(),
                    }));
                };
                tracing::info!(model = %base, "base-model control stream");
                clients.push(None);
                models.push(base);
            }
        }
    }
    Ok(MixSetup {
        clients,
        models,
        apis,
    })
}

/// A target's server healthy (waiting up to `--wait-ready`) and serving `model`.
async fn ready(
    cfg: &LoadTestConfig,
    client: &VllmClient,
    model: &str,
) -> Result<(), crate::client::ClientError> {
    match cfg.wait_ready {
        Some(t) if !t.is_zero() => client.wait_for_adapter(model, t).await.map(drop),
        _ => {
            client.health().await?;
            client.find_adapter(model).await.map(drop)
        }
    }
}

/// The request list of a mix: each request once per member, in member order (request `p`'s
/// body for member `m` at `p * members + m`, the layout [`DispatchMix`] reads), the body's
/// `model` set to the member's, and its shape to the member's API when that is not the run's
/// (`run_api`, which the bodies were built for). A GET task is the same for every member. An
/// error names the member whose API cannot send a request (chat messages to llama.cpp).
pub(super) fn expand(
    requests: &[PreparedRequest],
    mix: &Mix,
    setup: &MixSetup,
    run_api: crate::api::Api,
) -> Result<Vec<PreparedRequest>, LoadTestError> {
    let mut out = Vec::with_capacity(requests.len() * setup.models.len());
    for r in requests {
        for (i, model) in setup.models.iter().enumerate() {
            let mut copy = r.clone();
            if r.probe.is_none() {
                let api = setup.apis.get(i).copied().unwrap_or(run_api);
                let (endpoint, body) = for_member(&r.body, model, run_api, api).map_err(|why| {
                    LoadTestError::Mix(format!(
                        "{} {:?} (api {api}): {why}",
                        flag(mix.kind, mix.members[i].role),
                        mix.members[i].name
                    ))
                })?;
                copy.body = body;
                copy.endpoint = endpoint.unwrap_or(r.endpoint);
            }
            out.push(copy);
        }
    }
    Ok(out)
}

/// A body built for `from` made for a member: its `model`, and its shape for `to` (OpenAI's
/// completion fields and llama.cpp's `/completion` ones: `max_tokens` and `n_predict`); the
/// endpoint when it changes.
fn for_member(
    body: &[u8],
    model: &str,
    from: crate::api::Api,
    to: crate::api::Api,
) -> Result<(Option<crate::workload::Endpoint>, bytes::Bytes), String> {
    use crate::api::Api;
    use serde_json::{Value, json};
    let Ok(Value::Object(mut o)) = serde_json::from_slice::<Value>(body) else {
        unreachable!("invariant: request bodies are built by this crate as JSON objects")
    };
    o.insert("model".into(), Value::String(model.into()));
    let endpoint = match (from, to) {
        (a, b) if a == b => None,
        (Api::Openai, Api::Llamacpp) => {
            let Some(prompt) = o.remove("prompt") else {
                return Err("chat messages cannot be sent to llama.cpp's /completion (give text prompts, or --endpoint completions)".into());
            };
            let mut l = serde_json::Map::new();
            l.insert("prompt".into(), prompt);
            l.insert("model".into(), Value::String(model.into()));
            if let Some(n) = o.remove("max_tokens") {
                l.insert("n_predict".into(), n);
            }
            for k in ["temperature", "ignore_eos"] {
                if let Some(v) = o.remove(k) {
                    l.insert(k.into(), v);
                }
            }
            l.insert("stream".into(), json!(true));
            o = l;
            None
        }
        (Api::Llamacpp, Api::Openai) => {
            if let Some(n) = o.remove("n_predict") {
                o.insert("max_tokens".into(), n);
            }
            o.insert("stream_options".into(), json!({"include_usage": true}));
            Some(crate::workload::Endpoint::Completions)
        }
        _ => None,
    };
    let bytes = serde_json::to_vec(&o).expect("invariant: a JSON value serializes");
    Ok((endpoint, bytes::Bytes::from(bytes)))
}

/// How the runner dispatches the mix.
pub(super) fn dispatch(cfg: &LoadTestConfig, mix: &Mix, setup: &MixSetup) -> Arc<DispatchMix> {
    // a shard's part of each member's own requests in flight
    let caps = cfg.member_caps();
    Arc::new(DispatchMix {
        names: mix
            .members
            .iter()
            .map(|m| Arc::from(m.name.as_str()))
            .collect(),
        // own caps: the round robin offers each member in proportion to its slots
        weights: caps.as_ref().map_or_else(
            || mix.weights(),
            |c| c.iter().map(|n| f64::from(*n)).collect(),
        ),
        clients: setup.clients.clone(),
        caps,
    })
}

/// An adapter mix's cold loads: each adapter's first request (its first prompt), sent alone
/// and in order before the load and any warm-up, timed like any request. Targets and the
/// base-model stream get `None`.
pub(super) async fn cold_loads(
    cfg: &LoadTestConfig,
    mix: &Mix,
    client: &Arc<VllmClient>,
    expanded: &[PreparedRequest],
    cancel: &CancellationToken,
) -> Result<Vec<Option<crate::client::RequestRecord>>, LoadTestError> {
    let members = mix.members.len();
    let mut out = Vec::with_capacity(members);
    for (i, m) in mix.members.iter().enumerate() {
        if m.role != Role::Adapter {
            out.push(None);
            continue;
        }
        // the first generation of this member's bodies
        let Some(req) = expanded
            .iter()
            .skip(i)
            .step_by(members)
            .find(|r| r.probe.is_none())
        else {
            out.push(None);
            continue;
        };
        let now = Instant::now();
        let timing = Timing {
            seq: 0,
            scheduled: now,
            load_start: now,
            timeout: cfg.request_timeout,
        };
        let rec = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(LoadTestError::Aborted { phase: "while timing the adapters' first requests" }),
            r = client.stream(req, timing) => r,
        };
        tracing::info!(adapter = %m.name, ok = rec.ok, ttft_s = ?rec.ttft_s, e2e_s = ?rec.e2e_s, "first request to the adapter (cold load)");
        out.push(Some(rec));
    }
    Ok(out)
}

/// The per-member results of the load `out` (rates over `rate_span` seconds, as the pooled
/// figures').
pub(super) fn results(
    mix: &Mix,
    setup: &MixSetup,
    out: &RunOutput,
    cold: &[Option<crate::client::RequestRecord>],
    rate_span: f64,
) -> MixResults {
    let sent_total: u64 = out.members.iter().map(|t| t.total()).sum();
    let shares = mix.shares();
    let members = mix
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (client, share_sent, error_rate) =
                member_figures(out.members.get(i), sent_total, rate_span);
            MixMemberResult {
                name: m.name.clone(),
                role: m.role,
                api: setup.apis.get(i).copied().unwrap_or_default(),
                url: m.url.as_deref().map(redact_url),
                model: setup.models.get(i).cloned().unwrap_or_default(),
                weight: m.weight,
                concurrency: m.concurrency,
                share_requested: shares[i],
                share_sent,
                error_rate,
                cold_load: cold.get(i).and_then(Option::as_ref).map(|r| ColdLoad {
                    ok: r.ok,
                    ttft_s: r.ttft_s,
                    e2e_s: r.e2e_s,
                    extra_ttft_over_p50_s: over_p50(r.ok, r.ttft_s, &client),
                    error: r.error.clone(),
                }),
                client,
                thresholds: Vec::new(),
            }
        })
        .collect();
    MixResults {
        kind: mix.kind,
        split: "smooth weighted round robin over the dispatched requests (deterministic: within two requests of each member's share at every point of the run); each member walks the prompts in order".into(),
        server_note: match mix.kind {
            MixKind::Targets => "a target mix has no server-side figures: Prometheus and /metrics describe one server; each target's figures here are the client's".into(),
            MixKind::Adapters => "vLLM labels its metrics by base model, not by adapter: the server-side figures pool every member's requests; the per-adapter figures here are the client's".into(),
        },
        members,
    }
}

/// The mix of a load run in shards (`load-test merge`): `first`, the first shard's, with each
/// member's figures from its merged `tallies`, and its cold load the one of the shards' that
/// paid for loading the adapter (the slowest; a failed one first). The members' thresholds
/// are left out, as the merged run's are.
pub(super) fn merged(
    first: &MixResults,
    shards: &[&MixResults],
    tallies: &[Tally],
    rate_span: f64,
) -> MixResults {
    let sent_total: u64 = tallies.iter().map(Tally::total).sum();
    let members = first
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (client, share_sent, error_rate) =
                member_figures(tallies.get(i), sent_total, rate_span);
            let cold_load = shards
                .iter()
                .filter_map(|s| s.members.get(i)?.cold_load.as_ref())
                .max_by(|a, b| {
                    (!a.ok, a.ttft_s.unwrap_or(0.0))
                        .partial_cmp(&(!b.ok, b.ttft_s.unwrap_or(0.0)))
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
                .map(|c| ColdLoad {
                    extra_ttft_over_p50_s: over_p50(c.ok, c.ttft_s, &client),
                    ..c.clone()
                });
            MixMemberResult {
                share_sent,
                error_rate,
                cold_load,
                client,
                thresholds: Vec::new(),
                ..m.clone()
            }
        })
        .collect();
    MixResults {
        members,
        ..first.clone()
    }
}

/// A member's client figures (without samples: the pooled `client.samples` hold every
/// request already), its share of the `sent_total` measured requests, and its error rate.
fn member_figures(
    tally: Option<&Tally>,
    sent_total: u64,
    rate_span: f64,
) -> (crate::results::ClientMetrics, Option<f64>, Option<f64>) {
    let client = tally.map_or_else(
        || Tally::default().metrics(rate_span),
        |t| t.metrics(rate_span),
    );
    let sent = client.total_requests;
    let share = (sent_total > 0).then(|| sent as f64 / sent_total as f64);
    let error_rate = (sent > 0).then(|| client.failed_requests as f64 / sent as f64);
    (
        crate::results::ClientMetrics {
            samples: None,
            ..client
        },
        share,
        error_rate,
    )
}

/// A cold load's TTFT above the member's TTFT p50 under load, when it succeeded.
fn over_p50(ok: bool, ttft: Option<f64>, member: &crate::results::ClientMetrics) -> Option<f64> {
    match (ttft, member.ttft_s.p50) {
        (Some(first), Some(p50)) if ok => Some(first - p50),
        _ => None,
    }
}

/// Records the mix in `results`: the per-member figures, and why the run is no gate
/// measurement.
pub(super) fn record(results: &mut LoadTestResults, mix: MixResults) {
    for m in &mix.members {
        if let Some(c) = &m.cold_load
            && !c.ok
        {
            results.warnings.push(format!(
                "the first request to adapter {:?} (its cold load) failed: {}",
                m.name,
                c.error.as_deref().unwrap_or("no detail")
            ));
        }
    }
    let reason = match mix.kind {
        MixKind::Targets => {
            "a target mix: each target's client figures are in `mix`; the gate compares one adapter on one server with its baseline"
        }
        MixKind::Adapters => {
            "a LoRA mix: each adapter's client figures are in `mix` and the server's figures pool them; the gate compares one adapter with its baseline"
        }
    };
    let validity = results
        .validity
        .get_or_insert_with(|| crate::results::Validity {
            valid: false,
            reasons: Vec::new(),
        });
    validity.valid = false;
    validity.reasons.push(reason.into());
    results.mix = Some(mix);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Api;
    use crate::workload::{Endpoint, Probe};

    #[test]
    fn each_request_is_listed_once_per_member_with_its_model() {
        let req = |body: &str| PreparedRequest {
            prompt_index: 0,
            arm: None,
            endpoint: Endpoint::Completions,
            body: bytes::Bytes::from(body.to_string()),
            probe: None,
        };
        let list = [
            req(r#"{"model":"a","prompt":"x","max_tokens":4}"#),
            Probe::Health.request(),
            req(r#"{"model":"a","prompt":"y","max_tokens":4}"#),
        ];
        let mix = Mix::adapters("a,b", None).unwrap();
        let setup = MixSetup {
            clients: vec![None, None],
            models: vec!["a".into(), "b".into()],
            apis: vec![Api::Openai, Api::Openai],
        };
        let out = expand(&list, &mix, &setup, Api::Openai).unwrap();
        assert_eq!(out.len(), 6);
        let model = |r: &PreparedRequest| {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["model"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(model(&out[0]), "a");
        assert_eq!(model(&out[1]), "b");
        assert_eq!(out[2].probe, Some(Probe::Health));
        assert_eq!(out[3].probe, Some(Probe::Health));
        assert_eq!(model(&out[5]), "b");
        // the rest of the body is unchanged
        let v: serde_json::Value = serde_json::from_slice(&out[5].body).unwrap();
        assert_eq!(
            (v["prompt"].as_str(), v["max_tokens"].as_u64()),
            (Some("y"), Some(4))
        );
    }

    #[test]
    fn a_target_of_another_api_gets_its_own_body_shape() {
        let openai = PreparedRequest {
            prompt_index: 0,
            arm: None,
            endpoint: Endpoint::Completions,
            body: bytes::Bytes::from_static(
                br#"{"model":"m","prompt":"x","max_tokens":4,"temperature":0.5,"stream":true,"stream_options":{"include_usage":true}}"#,
            ),
            probe: None,
        };
        let mix = Mix::targets(vec![
            "name=v,url=http://a:1,model=m".parse().unwrap(),
            "name=l,url=http://b:1,model=tiny,api=llamacpp"
                .parse()
                .unwrap(),
        ])
        .unwrap();
        let setup = MixSetup {
            clients: vec![None, None],
            models: vec!["m".into(), "tiny".into()],
            apis: vec![Api::Openai, Api::Llamacpp],
        };
        let out = expand(std::slice::from_ref(&openai), &mix, &setup, Api::Openai).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out[1].body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"prompt": "x", "model": "tiny", "n_predict": 4, "temperature": 0.5, "stream": true})
        );
        // and back: a llama.cpp body for an OpenAI target
        let back = for_member(&out[1].body, "m", Api::Llamacpp, Api::Openai).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&back.1).unwrap();
        assert_eq!(
            (
                v["max_tokens"].as_u64(),
                v["stream_options"]["include_usage"].as_bool()
            ),
            (Some(4), Some(true))
        );
        assert_eq!(back.0, Some(Endpoint::Completions));
        // chat messages cannot go to llama.cpp: the error names the target
        let chat = PreparedRequest {
            endpoint: Endpoint::Chat,
            body: bytes::Bytes::from_static(
                br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
            ),
            ..openai
        };
        let e = expand(&[chat], &mix, &setup, Api::Openai)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--target \"l\" (api llamacpp): chat messages"),
            "{e}"
        );
    }
}
