//! The run's inputs in two halves: [`plan`] reads and checks everything local before the
//! network (a bad file or spec fails fast) and decides each request's prompt and sizes from
//! the seed; [`build`] runs after the pre-flight (vLLM is up), calibrates synthetic prompts
//! with the server's `/tokenize` when it has one, and serializes every body before the load.

use crate::client::VllmClient;
use crate::results::{EvalDataInfo, InputsInfo, LoadTestResults, SizeSummary};
use crate::workload::distribution::SizeDist;
use crate::workload::plan::{
    self, DEFAULT_GENERATED_REQUESTS, InputSource, Plan, prepare_slots, prompts_sha256,
};
use crate::workload::prompt_file::load_prompt_file;
use crate::workload::{
    EndpointChoice, PreparedRequest, Prompt, WorkloadError, interleave_ab, load_eval_file,
    synthetic,
};

use super::{LoadTestConfig, LoadTestError};

/// What [`plan`] decided: the prompts (empty until [`build`] for synthetic ones) and each
/// request's slot.
pub(super) struct Inputs {
    prompts: Vec<Prompt>,
    tokenizer: Option<synthetic::LocalTokenizer>,
    plan: Plan,
    info: InputsInfo,
}

/// Reads the local inputs, records their identity, and plans the requests (no network).
pub(super) fn plan(
    cfg: &LoadTestConfig,
    results: &mut LoadTestResults,
) -> Result<Inputs, LoadTestError> {
    let max = cfg
        .max_tokens_dist
        .unwrap_or(SizeDist::Fixed(cfg.max_tokens));
    let generated = cfg.num_requests.unwrap_or(DEFAULT_GENERATED_REQUESTS);
    let given = |prompts: &[Prompt]| {
        let n = cfg.num_requests.unwrap_or(prompts.len() as u64);
        plan::given(prompts.len(), n, &max, cfg.temperature, cfg.seed)
    };
    let identity = |path: String, sha256: String, rows: usize| EvalDataInfo {
        path,
        digest: sha256[..8].to_string(),
        sha256,
        rows: rows as u64,
    };
    let (prompts, plan) = match &cfg.input {
        InputSource::EvalFile => {
            let eval = load_eval_file(&cfg.eval_data_path, cfg.prompt_field.as_deref())?;
            results.eval_data = Some(identity(
                cfg.eval_data_path.display().to_string(),
                eval.sha256.clone(),
                eval.prompts.len(),
            ));
            let plan = given(&eval.prompts);
            (eval.prompts, plan)
        }
        InputSource::PromptFile(path) => {
            let data = load_prompt_file(path).map_err(WorkloadError::from)?;
            results.eval_data = Some(identity(
                path.display().to_string(),
                data.sha256.clone(),
                data.prompts.len(),
            ));
            let plan = given(&data.prompts);
            (data.prompts, plan)
        }
        InputSource::PromptText(text) => {
            let prompts = vec![Prompt::Text(text.clone())];
            results.eval_data = Some(identity("prompt-text".into(), prompts_sha256(&prompts), 1));
            let plan = plan::given(1, generated, &max, cfg.temperature, cfg.seed);
            (prompts, plan)
        }
        InputSource::Synthetic(size) => (
            Vec::new(),
            plan::synthetic(size, generated, &max, cfg.temperature, cfg.seed),
        ),
        InputSource::TaskMix(mix) => (
            Vec::new(),
            plan::task_mix(mix, generated, &max, cfg.temperature, cfg.seed),
        ),
    };
    crate::workload::check_prompts_for(cfg.api, &prompts)?;
    let info = InputsInfo {
        source: cfg.input.name().to_string(),
        prompts: prompts.len() as u64,
        requests: plan.requests,
        calibration: None,
        calibration_note: None,
        tokens_per_word: None,
        prompt_tokens_target: SizeSummary::of(&plan.targets),
        prompt_tokens_measured: None,
        prompt_tokens_mean_abs_error: None,
        max_tokens: if max.is_fixed() {
            None
        } else {
            let drawn: Vec<u32> = plan.slots.iter().map(|s| s.max_tokens).collect();
            SizeSummary::of(&drawn)
        },
        tasks: plan.tasks.clone(),
    };
    let tokenizer = cfg
        .tokenizer_file
        .as_deref()
        .map(synthetic::LocalTokenizer::load)
        .transpose()
        .map_err(WorkloadError::from)?;
    results.inputs = Some(info.clone());
    Ok(Inputs {
        prompts,
        tokenizer,
        plan,
        info,
    })
}

/// The load's requests: `count` of them, request `i` being `list[i % list.len()]`.
pub(super) struct Requests {
    /// One cycle of the requests (or all of them).
    pub list: Vec<PreparedRequest>,
    /// How many requests the load sends (at least `list.len()`).
    pub count: u64,
}

impl Requests {
    /// Every request in its own entry: for the modes that split or rearrange the list
    /// (shards, mixes, sweeps).
    pub fn expanded(self) -> Vec<PreparedRequest> {
        let Requests { list, count } = self;
        if count as usize == list.len() {
            return list;
        }
        list.iter().cycle().take(count as usize).cloned().collect()
    }
}

/// Generates the synthetic prompts (calibrated on `client` when it offers `/tokenize`) and
/// serializes every request body; in an A/B run, the baseline's twins interleaved.
pub(super) async fn build(
    cfg: &LoadTestConfig,
    inputs: Inputs,
    client: &VllmClient,
    results: &mut LoadTestResults,
) -> Requests {
    let Inputs {
        mut prompts,
        tokenizer,
        plan,
        mut info,
    } = inputs;
    if prompts.is_empty() && !plan.targets.is_empty() {
        let built = synthetic::build(
            &plan.targets,
            cfg.seed,
            // llama-server's /tokenize is not vLLM's: sized by --tokenizer-file or in words
            (cfg.api == crate::api::Api::Openai).then_some(synthetic::Server {
                client,
                model: &cfg.adapter_name,
                chat: cfg.endpoint == EndpointChoice::Chat,
            }),
            tokenizer.as_ref(),
        )
        .await;
        info.calibration = Some(built.calibration.as_str().to_string());
        info.tokens_per_word = built.tokens_per_word;
        if let Some(measured) = &built.measured {
            info.prompt_tokens_measured = SizeSummary::of(measured);
            let err: f64 = measured
                .iter()
                .zip(&plan.targets)
                .map(|(m, t)| (f64::from(*m) - f64::from(*t)).abs())
                .sum();
            info.prompt_tokens_mean_abs_error = Some(err / measured.len().max(1) as f64);
        }
        if built.calibration == synthetic::Calibration::TokenizerFile {
            info.calibration_note = built.fallback_reason.clone();
        }
        if built.calibration == synthetic::Calibration::Words {
            let why = built
                .fallback_reason
                .clone()
                .unwrap_or_else(|| "no tokenizer".into());
            results.warnings.push(format!(
                "synthetic prompt lengths are counted in words, one per target token, not measured in tokens ({why}): the server's prompt token counts differ"
            ));
            info.calibration_note = Some(why);
        }
        prompts = built.texts.into_iter().map(Prompt::Text).collect();
        info.prompts = prompts.len() as u64;
        let spec = match &cfg.input {
            InputSource::Synthetic(d) => format!("synthetic:{d}"),
            InputSource::TaskMix(m) => format!("task-mix:{m}"),
            other => other.name().to_string(),
        };
        let sha256 = prompts_sha256(&prompts);
        results.eval_data = Some(EvalDataInfo {
            path: spec,
            digest: sha256[..8].to_string(),
            sha256,
            rows: prompts.len() as u64,
        });
    }
    results.inputs = Some(info);
    let requests_to = |model: &str| {
        prepare_slots(
            cfg.api,
            &prompts,
            &plan.slots,
            model,
            cfg.endpoint,
            cfg.ignore_eos,
        )
    };
    let candidate = requests_to(&cfg.adapter_name);
    let count = plan.requests;
    if cfg.baseline_adapter.is_none() && plan.probes.is_empty() {
        return Requests {
            list: candidate,
            count,
        };
    }
    let full = |list| Requests { list, count }.expanded();
    let candidate = full(candidate);
    let list = match &cfg.baseline_adapter {
        // --num-requests counts the candidate's requests; the baseline gets as many twins
        Some(b) => {
            if !plan.probes.is_empty() {
                results.warnings.push(format!(
                    "--task-mix with --baseline-adapter: the {} GET task(s) (health, models) are not sent: an A/B run pairs generation requests",
                    plan.probes.len()
                ));
            }
            interleave_ab(candidate, full(requests_to(b)))
        }
        None => plan::with_probes(candidate, &plan.probes),
    };
    Requests {
        count: list.len() as u64,
        list,
    }
}
