//! Which prompt, `max_tokens` and temperature each request of the load gets, decided before
//! the load from `--seed`: the same seed gives the same prompts, sizes and order.
//!
//! Draws come from ChaCha8 streams of the seed, one per purpose (prompt sizes or tasks,
//! `max_tokens`, each synthetic prompt's words: [`super::synthetic::words`]), so changing one
//! spec does not move the others' draws; the arrival process draws from stream 0.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use bytes::Bytes;
use rand::SeedableRng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::distribution::SizeDist;
use super::mix::TaskMix;
use super::{Endpoint, EndpointChoice, PreparedRequest, Prompt, hex, request_body};
use crate::api::Api;

/// Requests of a generated source (`--prompt-text`, `--input-size`, `--task-mix`) when
/// `--num-requests` is not given.
pub const DEFAULT_GENERATED_REQUESTS: u64 = 100;

const SIZE_STREAM: u64 = u64::MAX - 2;
const MAX_TOKENS_STREAM: u64 = u64::MAX - 3;

/// Where the prompts come from (exactly one per run).
#[derive(Debug, Clone, PartialEq)]
pub enum InputSource {
    /// `--eval-data-path` with `--prompt-field` (the seed's; the config's `eval_data_path`).
    EvalFile,
    /// `--prompt-file`: plain lines or JSON rows ([`super::prompt_file`]).
    PromptFile(PathBuf),
    /// `--prompt-text`: one prompt for every request.
    PromptText(String),
    /// `--input-size`: synthetic prompts whose token lengths follow this distribution.
    Synthetic(SizeDist),
    /// `--task-mix`: weighted tasks ([`super::mix`]).
    TaskMix(TaskMix),
}

impl InputSource {
    /// The name written in the results (`config.input_source`).
    pub fn name(&self) -> &'static str {
        match self {
            InputSource::EvalFile => "eval-file",
            InputSource::PromptFile(_) => "prompt-file",
            InputSource::PromptText(_) => "prompt-text",
            InputSource::Synthetic(_) => "synthetic",
            InputSource::TaskMix(_) => "task-mix",
        }
    }
}

/// One request of the load: which prompt, and its sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// Index into the prompt list.
    pub prompt: u32,
    /// `max_tokens`.
    pub max_tokens: u32,
    /// `temperature`.
    pub temperature: f64,
}

/// The requests of a load, before any text is generated.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The slots of the requests in dispatch order, cycled: request `i` is
    /// `slots[i % slots.len()]`. One per request, or (given prompts, fixed `max_tokens`) one
    /// pass over the prompts, so a run of a million requests plans a few slots, not a million.
    pub slots: Vec<Slot>,
    /// How many generation requests the plan has (at least `slots.len()`).
    pub requests: u64,
    /// Target token length of each synthetic prompt (slot `i` uses prompt `i`); empty for a
    /// source whose prompts are given.
    pub targets: Vec<u32>,
    /// Requests per task (`--task-mix` only).
    pub tasks: BTreeMap<String, u64>,
    /// The GET tasks of a `--task-mix` and their positions in the load's list (ascending):
    /// `slots` holds the generation requests only, in order, around them.
    pub probes: Vec<(usize, super::Probe)>,
}

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn max_tokens(d: &SizeDist, n: u64, seed: u64) -> impl Iterator<Item = u32> {
    let mut rng = stream(seed, MAX_TOKENS_STREAM);
    let d = *d;
    (0..n).map(move |_| d.sample(&mut rng))
}

/// `requests` requests over `prompts` given prompts, cycled in order. With a fixed
/// `max_tokens` the plan holds one pass over the prompts (the rest repeat it).
pub fn given(prompts: usize, requests: u64, max: &SizeDist, temperature: f64, seed: u64) -> Plan {
    let n = prompts.max(1) as u64;
    let planned = if max.is_fixed() {
        requests.min(n)
    } else {
        requests
    };
    Plan {
        slots: max_tokens(max, planned, seed)
            .enumerate()
            .map(|(i, max_tokens)| Slot {
                prompt: u32::try_from(i as u64 % n).unwrap_or(u32::MAX),
                max_tokens,
                temperature,
            })
            .collect(),
        requests,
        targets: Vec::new(),
        tasks: BTreeMap::new(),
        probes: Vec::new(),
    }
}

/// `requests` synthetic prompts, one per request, of lengths drawn from `size`.
pub fn synthetic(
    size: &SizeDist,
    requests: u64,
    max: &SizeDist,
    temperature: f64,
    seed: u64,
) -> Plan {
    let mut rng = stream(seed, SIZE_STREAM);
    let targets = (0..requests).map(|_| size.sample(&mut rng)).collect();
    Plan {
        slots: one_prompt_each(max_tokens(max, requests, seed), |_| temperature),
        requests,
        targets,
        tasks: BTreeMap::new(),
        probes: Vec::new(),
    }
}

/// `requests` requests whose tasks are drawn by weight from the mix: the generation tasks
/// become slots (their sizes and temperature), the GET tasks [`Plan::probes`] at their places.
pub fn task_mix(mix: &TaskMix, requests: u64, max: &SizeDist, temperature: f64, seed: u64) -> Plan {
    let tasks = &mix.weights;
    let pick = WeightedIndex::new(tasks.iter().map(|(_, w)| *w))
        .expect("invariant: the parser refuses a mix without a positive weight");
    let mut rng = stream(seed, SIZE_STREAM);
    let drawn: Vec<_> = (0..requests)
        .map(|_| tasks[pick.sample(&mut rng)].0)
        .collect();
    let mut counts = BTreeMap::new();
    for t in &drawn {
        *counts.entry(t.as_str().to_string()).or_insert(0) += 1;
    }
    let probes: Vec<_> = drawn
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.probe().map(|p| (i, p)))
        .collect();
    let generation: Vec<_> = drawn.into_iter().filter(|t| t.probe().is_none()).collect();
    Plan {
        requests: generation.len() as u64,
        slots: one_prompt_each(max_tokens(max, generation.len() as u64, seed), |i| {
            generation[i].temperature().unwrap_or(temperature)
        }),
        targets: generation
            .iter()
            .map(|t| {
                t.prompt_tokens()
                    .expect("invariant: only generation tasks have slots")
            })
            .collect(),
        tasks: counts,
        probes,
    }
}

/// `requests` (the generation requests, in order) with the probes put at their places.
pub fn with_probes(
    requests: Vec<PreparedRequest>,
    probes: &[(usize, super::Probe)],
) -> Vec<PreparedRequest> {
    if probes.is_empty() {
        return requests;
    }
    let mut out = Vec::with_capacity(requests.len() + probes.len());
    let mut generation = requests.into_iter();
    let mut next = probes.iter().peekable();
    while out.len() < out.capacity() {
        match next.peek() {
            Some((at, p)) if *at == out.len() => {
                out.push(p.request());
                next.next();
            }
            _ => match generation.next() {
                Some(r) => out.push(r),
                None => break,
            },
        }
    }
    out
}

fn one_prompt_each(
    max: impl Iterator<Item = u32>,
    temperature: impl Fn(usize) -> f64,
) -> Vec<Slot> {
    max.enumerate()
        .map(|(i, max_tokens)| Slot {
            prompt: u32::try_from(i).unwrap_or(u32::MAX),
            max_tokens,
            temperature: temperature(i),
        })
        .collect()
}

/// The request of each slot for `model`: bodies are serialized once per distinct
/// (prompt, `max_tokens`, temperature) and shared (the hot path clones a reference).
pub fn prepare_slots(
    api: Api,
    prompts: &[Prompt],
    slots: &[Slot],
    model: &str,
    choice: EndpointChoice,
    ignore_eos: bool,
) -> Vec<PreparedRequest> {
    let mut made: HashMap<(u32, u32, u64), (Endpoint, Bytes)> = HashMap::new();
    slots
        .iter()
        .map(|s| {
            let (endpoint, body) = made
                .entry((s.prompt, s.max_tokens, s.temperature.to_bits()))
                .or_insert_with(|| {
                    request_body(
                        api,
                        &prompts[s.prompt as usize],
                        model,
                        choice,
                        s.max_tokens,
                        s.temperature,
                        ignore_eos,
                    )
                })
                .clone();
            PreparedRequest {
                probe: None,
                prompt_index: s.prompt,
                arm: None,
                endpoint,
                body,
            }
        })
        .collect()
}

/// sha256 (hex) of the prompts in order: the identity of generated prompts.
pub fn prompts_sha256(prompts: &[Prompt]) -> String {
    let mut h = Sha256::new();
    for p in prompts {
        match p {
            Prompt::Text(t) => h.update(serde_json::to_vec(t).unwrap_or_default()),
            Prompt::Messages(m) => h.update(serde_json::to_vec(m).unwrap_or_default()),
        }
        h.update(b"\n");
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn dist(s: &str) -> SizeDist {
        s.parse().unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        let size = dist("lognormal:5:0.6:16:512");
        let max = dist("uniform:8:64");
        let a = synthetic(&size, 200, &max, 0.0, 9);
        assert_eq!(a, synthetic(&size, 200, &max, 0.0, 9));
        assert_ne!(a.targets, synthetic(&size, 200, &max, 0.0, 10).targets);
        // the max_tokens draws do not move when the size spec changes
        let b = synthetic(&dist("64"), 200, &max, 0.0, 9);
        assert_eq!(
            a.slots.iter().map(|s| s.max_tokens).collect::<Vec<_>>(),
            b.slots.iter().map(|s| s.max_tokens).collect::<Vec<_>>()
        );
        let mix: TaskMix = "short=10,medium=5,long=2,creative=1,health=1"
            .parse()
            .unwrap();
        assert_eq!(
            task_mix(&mix, 100, &max, 0.0, 3),
            task_mix(&mix, 100, &max, 0.0, 3)
        );
    }

    #[test]
    fn given_prompts_cycle_in_order_with_fixed_max_tokens() {
        let p = given(3, 7, &dist("32"), 0.5, 1);
        // one pass over the prompts, cycled to the 7 requests: memory is the prompts', not
        // the run's
        assert_eq!(p.requests, 7);
        let idx: Vec<u32> = (0..p.requests)
            .map(|i| p.slots[i as usize % p.slots.len()].prompt)
            .collect();
        assert_eq!(idx, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(p.slots.len(), 3);
        let fewer = given(3, 2, &dist("32"), 0.5, 1);
        assert_eq!((fewer.slots.len(), fewer.requests), (2, 2));
        // drawn sizes are one per request
        let drawn = given(3, 7, &dist("uniform:1:1000"), 0.5, 1);
        assert_eq!((drawn.slots.len(), drawn.requests), (7, 7));
        assert!(
            p.slots
                .iter()
                .all(|s| s.max_tokens == 32 && s.temperature == 0.5)
        );
    }

    #[test]
    fn the_mix_draws_tasks_by_weight_with_their_sizes_and_temperature() {
        let mix: TaskMix = "short=10,medium=5,long=2,creative=1,health=1,models=1"
            .parse()
            .unwrap();
        let n = 20_000;
        let p = task_mix(&mix, n, &dist("16"), 0.0, 5);
        let share = |t: &str| p.tasks[t] as f64 / n as f64;
        for (t, w) in [
            ("short", 10.0),
            ("medium", 5.0),
            ("long", 2.0),
            ("creative", 1.0),
        ] {
            assert!((share(t) - w / 20.0).abs() < 0.01, "{t}: {}", share(t));
        }
        // the GET tasks are drawn too, in their places, and have no slot
        assert!((share("health") - 1.0 / 20.0).abs() < 0.01);
        assert!((share("models") - 1.0 / 20.0).abs() < 0.01);
        assert_eq!(p.slots.len() + p.probes.len(), n as usize);
        assert!(p.probes.windows(2).all(|w| w[0].0 < w[1].0));
        let generated: Vec<PreparedRequest> = p
            .slots
            .iter()
            .map(|s| PreparedRequest {
                prompt_index: s.prompt,
                arm: None,
                endpoint: Endpoint::Completions,
                body: Bytes::new(),
                probe: None,
            })
            .collect();
        let all = with_probes(generated, &p.probes);
        assert_eq!(all.len(), n as usize);
        for (at, probe) in &p.probes {
            assert_eq!(all[*at].probe, Some(*probe));
        }
        assert_eq!(
            all.iter().filter(|r| r.probe.is_none()).count(),
            p.slots.len()
        );
        for (s, t) in p.slots.iter().zip(&p.targets) {
            assert!([64, 128, 256].contains(t));
            if s.temperature != 0.0 {
                assert_eq!((s.temperature, *t), (1.2, 128));
            }
        }
    }

    #[test]
    fn bodies_carry_each_slot_s_sizes_and_ignore_eos() {
        let prompts = vec![Prompt::Text("a".into()), Prompt::Text("b".into())];
        let plan = given(2, 4, &dist("uniform:1:1000"), 0.0, 2);
        let reqs = prepare_slots(
            Api::Openai,
            &prompts,
            &plan.slots,
            "m",
            EndpointChoice::Auto,
            true,
        );
        for (r, s) in reqs.iter().zip(&plan.slots) {
            let b: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(b["max_tokens"], s.max_tokens);
            assert_eq!(b["ignore_eos"], true);
            assert_eq!(b["prompt"], ["a", "b"][s.prompt as usize]);
        }
        let plain = prepare_slots(
            Api::Openai,
            &prompts,
            &plan.slots,
            "m",
            EndpointChoice::Auto,
            false,
        );
        let b: Value = serde_json::from_slice(&plain[0].body).unwrap();
        assert!(b.get("ignore_eos").is_none());
        assert_ne!(prompts_sha256(&prompts), prompts_sha256(&prompts[..1]));
    }
}
