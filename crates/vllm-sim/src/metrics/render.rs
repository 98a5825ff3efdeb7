//! Text exposition, laid out like prometheus_client's (the real vLLM's) output: same family
//! order, labels sorted by name, values printed as Python floats (`1.0`, `+Inf`,
//! `1.7954457512161503e+09`).

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::{FinishReason, Handler, Histogram, Metrics, STATUS_CLASSES};

const ENGINE: &str = "engine=\"0\"";

pub(super) fn render(m: &Metrics) -> String {
    let mut out = String::with_capacity(24 * 1024);
    let base = format!("{ENGINE},{}", m.model_label);
    let running = m.running.load(Relaxed).max(0);
    let waiting = m.waiting.load(Relaxed).max(0);
    let kv = m.kv_tokens.load(Relaxed).max(0) as f64 / m.kv_capacity as f64;

    // the process collector's start time, unlabelled, as prometheus_client writes it: a
    // restart (or another replica) shows as another value
    gauge_head(
        &mut out,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
    );
    let _ = writeln!(
        out,
        "process_start_time_seconds {}",
        go_float(m.started_unix)
    );
    gauge_head(
        &mut out,
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
    );
    sample(&mut out, "vllm:num_requests_running", &base, running as f64);
    gauge_head(
        &mut out,
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
    );
    sample(&mut out, "vllm:num_requests_waiting", &base, waiting as f64);
    gauge_head(
        &mut out,
        "vllm:num_requests_waiting_by_reason",
        "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all reasons equals vllm:num_requests_waiting.",
    );
    for (reason, v) in [("capacity", waiting), ("deferred", 0)] {
        let labels = format!("{base},reason=\"{reason}\"");
        sample(
            &mut out,
            "vllm:num_requests_waiting_by_reason",
            &labels,
            v as f64,
        );
    }
    gauge_head(
        &mut out,
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
    );
    sample(&mut out, "vllm:kv_cache_usage_perc", &base, kv.min(1.0));

    counter(
        &mut out,
        "vllm:num_preemptions_total",
        "Cumulative number of preemption from the engine.",
        &base,
        0,
    );
    counter(
        &mut out,
        "vllm:prompt_tokens_total",
        "Number of prefill tokens processed.",
        &base,
        m.prompt_tokens.load(Relaxed),
    );
    counter(
        &mut out,
        "vllm:generation_tokens_total",
        "Number of generation tokens processed.",
        &base,
        m.generation_tokens.load(Relaxed),
    );

    let name = "vllm:request_success_total";
    head(
        &mut out,
        name,
        "Count of successfully processed requests.",
        "counter",
    );
    for reason in FinishReason::ALL {
        let labels = format!(
            "{ENGINE},finished_reason=\"{}\",{}",
            reason.as_str(),
            m.model_label
        );
        sample(&mut out, name, &labels, m.success(reason) as f64);
    }

    let h = &m.hist;
    let families: [(&str, &str, &Histogram); 13] = [
        (
            "vllm:request_prompt_tokens",
            "Number of prefill tokens processed.",
            &h.prompt_tokens,
        ),
        (
            "vllm:request_generation_tokens",
            "Number of generation tokens processed.",
            &h.generation_tokens,
        ),
        (
            "vllm:request_max_num_generation_tokens",
            "Histogram of maximum number of requested generation tokens.",
            &h.max_num_generation_tokens,
        ),
        (
            "vllm:request_params_n",
            "Histogram of the n request parameter.",
            &h.params_n,
        ),
        (
            "vllm:request_params_max_tokens",
            "Histogram of the max_tokens request parameter.",
            &h.params_max_tokens,
        ),
        (
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &h.ttft,
        ),
        (
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &h.itl,
        ),
        (
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            &h.tpot,
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            &h.e2e,
        ),
        (
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            &h.queue,
        ),
        (
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            &h.inference,
        ),
        (
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            &h.prefill,
        ),
        (
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            &h.decode,
        ),
    ];
    for (name, help, hist) in families {
        histogram(&mut out, name, help, hist, &m.model_label);
    }

    let series = m.lora.series();
    if !series.is_empty() {
        let name = "vllm:lora_requests_info";
        gauge_head(&mut out, name, "Running stats on lora requests.");
        for s in series {
            let labels = format!(
                "max_lora=\"{}\",running_lora_adapters=\"{}\",waiting_lora_adapters=\"{}\"",
                m.max_loras,
                escape_label(&s.running),
                escape_label(&s.waiting)
            );
            sample(&mut out, name, &labels, s.timestamp);
        }
    }

    let name = "http_requests_total";
    head(
        &mut out,
        name,
        "Total number of requests by method, status and handler.",
        "counter",
    );
    for handler in Handler::ALL {
        for (i, class) in STATUS_CLASSES.iter().enumerate() {
            let v = m.http[handler as usize][i].load(Relaxed);
            if v > 0 {
                let labels = format!(
                    "handler=\"{}\",method=\"{}\",status=\"{class}\"",
                    handler.path(),
                    handler.method()
                );
                sample(&mut out, name, &labels, v as f64);
            }
        }
    }

    if m.gpu_util {
        let util = gpu_util(running, m.max_num_seqs);
        let name = "DCGM_FI_DEV_GPU_UTIL";
        gauge_head(&mut out, name, "GPU utilization (in %).");
        let _ = writeln!(
            out,
            "{name}{{gpu=\"0\",UUID=\"GPU-sim\",device=\"nvidia0\",modelName=\"vllm-sim\",Hostname=\"vllm-sim\"}} {util}"
        );
    }
    out
}

/// Fake GPU utilisation in percent: 0 when idle, 30 % with one sequence, 100 % when all
/// `max_num_seqs` slots run.
pub(super) fn gpu_util(running: i64, max_num_seqs: usize) -> u32 {
    if running <= 0 {
        return 0;
    }
    let frac = (running as f64 / max_num_seqs.max(1) as f64).min(1.0);
    (30.0 + 70.0 * frac).round() as u32
}

fn head(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge_head(out: &mut String, name: &str, help: &str) {
    head(out, name, help, "gauge");
}

fn counter(out: &mut String, name: &str, help: &str, labels: &str, v: u64) {
    head(out, name, help, "counter");
    sample(out, name, labels, v as f64);
}

fn sample(out: &mut String, name: &str, labels: &str, v: f64) {
    let _ = writeln!(out, "{name}{{{labels}}} {}", go_float(v));
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram, model_label: &str) {
    head(out, name, help, "histogram");
    let cumulative = h.cumulative();
    let bounds = h
        .bounds()
        .iter()
        .map(|b| go_float(*b))
        .chain(["+Inf".to_owned()]);
    for (le, count) in bounds.zip(&cumulative) {
        let _ = writeln!(
            out,
            "{name}_bucket{{{ENGINE},le=\"{le}\",{model_label}}} {}",
            go_float(*count as f64)
        );
    }
    let total = cumulative.last().copied().unwrap_or(0);
    let labels = format!("{ENGINE},{model_label}");
    sample(out, &format!("{name}_count"), &labels, total as f64);
    sample(out, &format!("{name}_sum"), &labels, h.sum());
}

/// Escapes a label value (backslash, double quote, newline).
pub(super) fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// prometheus_client's `floatToGoString`: Python's `repr`, with an exponent for positive
/// values of 7 or more integer digits.
pub(super) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v == f64::INFINITY {
        return "+Inf".to_owned();
    }
    if v == f64::NEG_INFINITY {
        return "-Inf".to_owned();
    }
    let s = python_repr(v);
    match s.find('.') {
        Some(dot) if v > 0.0 && dot > 6 => {
            let digits = format!("{}{}", &s[1..dot], &s[dot + 1..]);
            let mantissa = format!("{}.{digits}", &s[..1]);
            let mantissa = mantissa.trim_end_matches(['0', '.']);
            format!("{mantissa}e+0{}", dot - 1)
        }
        _ => s,
    }
}

/// Python's `repr(float)`: shortest round-trip digits, `.0` on integral values, exponents as
/// `e+16` / `e-05`.
fn python_repr(v: f64) -> String {
    let s = format!("{v:?}");
    let Some(e) = s.find('e') else {
        return s;
    };
    let (mantissa, exp) = (&s[..e], &s[e + 1..]);
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    let mantissa = mantissa.strip_suffix(".0").unwrap_or(mantissa);
    format!("{mantissa}e{sign}{digits:0>2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_prometheus_client() {
        assert_eq!(go_float(0.3), "0.3");
        assert_eq!(go_float(1.0), "1.0");
        assert_eq!(go_float(7680.0), "7680.0");
        assert_eq!(go_float(168.0), "168.0");
        assert_eq!(go_float(252.4401035308838), "252.4401035308838");
        assert_eq!(go_float(1795445751.2161503), "1.7954457512161503e+09");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
        assert_eq!(go_float(1e-7), "1e-07");
        assert_eq!(go_float(0.0), "0.0");
    }

    #[test]
    fn gpu_util_rises_with_load() {
        assert_eq!(gpu_util(0, 8), 0);
        assert!(gpu_util(1, 8) < gpu_util(4, 8));
        assert_eq!(gpu_util(8, 8), 100);
        assert_eq!(gpu_util(20, 8), 100);
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
