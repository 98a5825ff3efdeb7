//! Every flag and env var the deployment manifests (`workflows/`, `deploy/`) pass to the gate's
//! binaries exists in that binary's own command line (`Cli::command()`), and every rendered value
//! parses with the flag's own parser; and the checker itself rejects a manifest that passes an
//! unknown flag or env var.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use test_support::clicheck::{self, Binary};
use test_support::manifest::{self, Scan};

/// Env vars both gate binaries read outside clap.
const COMMON_ENV: &[&str] = &[
    // tracing-subscriber's EnvFilter (perf_gate::logging, vllm-sim main): log levels
    "RUST_LOG",
    // perf_gate::logging: no ANSI colours in text logs
    "NO_COLOR",
    // reqwest's system proxy settings (load-test warns when they are set: a proxy can buffer SSE)
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
];

/// Env vars perf-decision reads outside clap (README "Artifacts in S3"; perf_gate::mlflow).
const PERF_DECISION_ENV: &[&str] = &[
    // the S3 artifact store: object_store's AmazonS3Builder::from_env credential chain and region
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_SERVER_SIDE_ENCRYPTION",
    "AWS_SSE_KMS_KEY_ID",
    // perf_gate::mlflow::artifact_store::S3Settings
    "MLFLOW_S3_ENDPOINT_URL",
    "MLFLOW_S3_IGNORE_TLS",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    // read only to warn that it is ignored (the experiment is PERF_EXPERIMENT_NAME)
    "MLFLOW_EXPERIMENT_NAME",
];

fn binaries() -> Vec<Binary> {
    let with = |extra: &[&'static str]| COMMON_ENV.iter().chain(extra).copied().collect();
    vec![
        Binary {
            name: "load-test",
            command: load_test::cli::Cli::command(),
            extra_env: with(&[]),
        },
        // `load-test merge SHARD_DIR...`: its own command line (load-test's main dispatches it)
        Binary {
            name: "load-test merge",
            command: load_test::merge_cli::MergeCli::command(),
            extra_env: with(&[]),
        },
        Binary {
            name: "perf-decision",
            command: perf_decision::cli::Cli::command(),
            extra_env: with(PERF_DECISION_ENV),
        },
        Binary {
            name: "vllm-sim",
            command: vllm_sim::cli::Cli::command(),
            extra_env: vec!["RUST_LOG"],
        },
    ]
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn problems(scan: &Scan) -> Vec<String> {
    let bins = binaries();
    scan.invocations
        .iter()
        .flat_map(|inv| clicheck::check(inv, &bins))
        .collect()
}

#[test]
fn every_flag_and_env_var_the_manifests_pass_is_declared_by_its_binary() {
    let root = repo_root();
    let scan = manifest::scan(&root).unwrap_or_else(|e| panic!("{e}"));
    let errors = problems(&scan);
    assert!(errors.is_empty(), "{}", errors.join("\n"));

    // The scan found every place the gate is run (a reader that finds nothing checks nothing).
    let origins: Vec<String> = scan
        .invocations
        .iter()
        .map(|i| {
            let rel = i.origin.replace(&format!("{}/", root.display()), "");
            format!(
                "{} {} {}",
                i.program,
                if i.rendered { "rendered" } else { "as written" },
                rel
            )
        })
        .collect();
    // Every container of the gate's image, in the order the scan finds them: the Argo template's
    // as written, the example Workflow's every container its entrypoint can reach (both attempts
    // of the gate), each kustomization's Jobs (the init container included), the Compose services.
    let mut got: Vec<&str> = origins.iter().map(String::as_str).collect();
    got.sort_unstable();
    let wft = "workflows/vllm-perf-gate.yaml: WorkflowTemplate/vllm-perf-gate template";
    let example = format!("workflows/example-workflow.yaml: Workflow/vllm-perf-gate- runs {wft}");
    let job = |program: &str, overlay: &str, file: &str, container: &str| {
        format!(
            "{program} rendered deploy/kustomize/base/{file}.yaml (kustomize deploy/kustomize/{overlay}): Job/vllm-perf-gate-{file_job} container {container}",
            file_job = file.trim_start_matches("job-")
        )
    };
    let mut want: Vec<String> = vec![
        format!("perf-decision as written {wft} resolve-candidate"),
        format!("load-test as written {wft} load-test"),
        format!("perf-decision as written {wft} perf-decision"),
        format!("perf-decision as written {wft} verdict"),
        format!("perf-decision rendered {example} resolve-candidate at resolve-candidate"),
    ];
    for attempt in ["attempt-1", "attempt-2"] {
        want.push(format!(
            "load-test rendered {example} load-test at {attempt}.load-test"
        ));
        want.push(format!(
            "perf-decision rendered {example} perf-decision at {attempt}.perf-decision"
        ));
        want.push(format!(
            "perf-decision rendered {example} verdict at {attempt}.verdict"
        ));
    }
    for overlay in ["base", "overlays/dev", "overlays/prod"] {
        want.push(job(
            "perf-decision",
            overlay,
            "job-load-test",
            "resolve-candidate",
        ));
        want.push(job("load-test", overlay, "job-load-test", "load-test"));
        want.push(job(
            "perf-decision",
            overlay,
            "job-perf-decision",
            "perf-decision",
        ));
    }
    for svc in ["vllm-sim", "load-test", "perf-decision"] {
        want.push(format!(
            "{svc} rendered deploy/compose/docker-compose.yml: service {svc}"
        ));
    }
    // The sharded gate: the Argo template's every container as written (one merge template per
    // allowed shard count), and its kustomization's three Jobs rendered.
    let sharded =
        "workflows/vllm-perf-gate-sharded.yaml: WorkflowTemplate/vllm-perf-gate-sharded template";
    for (program, template) in [
        ("perf-decision", "resolve-candidate"),
        ("load-test", "load-shard"),
        ("load-test", "merge-2"),
        ("load-test", "merge-4"),
        ("load-test", "merge-8"),
        ("perf-decision", "perf-decision"),
    ] {
        want.push(format!("{program} as written {sharded} {template}"));
    }
    let sharded_job = |program: &str, file: &str, job: &str, container: &str| {
        format!(
            "{program} rendered deploy/kustomize/sharded/{file}.yaml (kustomize deploy/kustomize/sharded): Job/vllm-perf-gate-sharded-{job} container {container}"
        )
    };
    want.extend([
        sharded_job(
            "perf-decision",
            "job-load-test-shards",
            "load-test",
            "resolve-candidate",
        ),
        sharded_job(
            "load-test",
            "job-load-test-shards",
            "load-test",
            "load-test",
        ),
        sharded_job("load-test", "job-merge", "merge", "merge"),
        sharded_job(
            "perf-decision",
            "job-perf-decision",
            "perf-decision",
            "perf-decision",
        ),
    ]);
    want.sort_unstable();
    assert_eq!(got, want, "the scan found other invocations than expected");
    // The other containers are other people's images, listed rather than ignored silently.
    let foreign = scan.foreign.join("\n");
    // The sharded template's start-at step runs busybox (the gate's image has no shell).
    assert!(
        foreign.contains("template start-at (image busybox:"),
        "{foreign}"
    );
    for svc in [
        "service prometheus",
        "service mlflow",
        "service mlflow-init",
        "service grafana",
    ] {
        assert!(foreign.contains(svc), "{foreign}");
    }
    // The monitoring stack (deploy/monitoring-stack) is read, in each of its kustomizations, and runs
    // none of the gate's binaries.
    for kustomization in ["base", "overlays/dev", "overlays/vllm-monitoring"] {
        for container in [
            "Deployment/prometheus container prometheus (image prom/prometheus:",
            "Deployment/pushgateway container pushgateway (image prom/pushgateway:",
            "Deployment/grafana container grafana (image grafana/grafana:",
            "DaemonSet/dcgm-exporter container dcgm-exporter (image nvcr.io/nvidia/k8s/dcgm-exporter:",
        ] {
            let line = scan.foreign.iter().find(|f| {
                f.contains(&format!(
                    "(kustomize {}/deploy/monitoring-stack/{kustomization})",
                    root.display()
                )) && f.contains(container)
            });
            assert!(
                line.is_some(),
                "{kustomization}: no {container:?} in:\n{foreign}"
            );
        }
    }
}

/// Copies `workflows/` and `deploy/` into a temp dir, with `edits` (file, from, to) applied.
fn broken_copy(edits: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let root = repo_root();
    let tmp = tempfile::tempdir().unwrap();
    for dir in ["workflows", "deploy"] {
        copy_dir(&root.join(dir), &tmp.path().join(dir));
    }
    for (file, from, to) in edits {
        let p = tmp.path().join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    }
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

#[test]
fn a_manifest_passing_an_unknown_flag_or_env_var_or_a_bad_value_fails_the_check() {
    let tmp = broken_copy(&[
        // a misspelt flag in the Argo template
        (
            "workflows/vllm-perf-gate.yaml",
            "--vllm-url={{",
            "--vllm-ulr={{",
        ),
        // an unknown flag inside the expression's string literals
        (
            "workflows/vllm-perf-gate.yaml",
            "? '--candidate-alias='",
            "? '--candidate-alais='",
        ),
        // an env var perf-decision does not read
        (
            "workflows/vllm-perf-gate.yaml",
            "- name: FAIL_ON_REJECT",
            "- name: FAIL_ON_REJECTED",
        ),
        // the verdict step given an env var: clap refuses --exit-for-status beside it
        (
            "workflows/vllm-perf-gate.yaml",
            "          - \"--exit-for-status={{inputs.parameters.perf-status}}\"\n",
            "          - \"--exit-for-status={{inputs.parameters.perf-status}}\"\n        env:\n          - {name: LOG_FORMAT, value: json}\n",
        ),
        // a misspelt mode switch in the Jobs' init container
        (
            "deploy/kustomize/base/job-load-test.yaml",
            "\"--resolve-candidate\"]",
            "\"--resolve-candidates\"]",
        ),
        // a value the example workflow passes that does not parse
        (
            "workflows/example-workflow.yaml",
            "value: \"10\"",
            "value: \"ten\"",
        ),
        // a misspelt ConfigMap literal in the base (every overlay inherits it)
        (
            "deploy/kustomize/base/kustomization.yaml",
            "- MAX_TOKENS=256",
            "- MAX_TOKEN=256",
        ),
        // a misspelt optional env var in an overlay (the dev overlay's Pushgateway)
        (
            "deploy/kustomize/overlays/dev/kustomization.yaml",
            "- PUSHGATEWAY_URL=",
            "- PUSHGATEWAY=",
        ),
        // an overlay value that does not parse
        (
            "deploy/kustomize/overlays/dev/kustomization.yaml",
            "- CONCURRENCY=4",
            "- CONCURRENCY=0",
        ),
        // compose: an unknown env var and an unknown vllm-sim flag
        (
            "deploy/compose/docker-compose.yml",
            "      ADAPTER_NAME: demo-adapter",
            "      ADAPTER: demo-adapter",
        ),
        (
            "deploy/compose/docker-compose.yml",
            "- --gpu-util",
            "- --gpu-utilisation",
        ),
        // the sharded gate: a misspelt shard flag, a merge flag, a merge without its directories,
        // a load-test setting given to the merge (checked against `load-test merge`, not
        // load-test), and the deploy-time START_AT renamed
        (
            "workflows/vllm-perf-gate-sharded.yaml",
            "--shard-index={{",
            "--shard-idx={{",
        ),
        (
            "workflows/vllm-perf-gate-sharded.yaml",
            "--prometheus-url={{",
            "--prometheus-ulr={{",
        ),
        (
            "deploy/kustomize/sharded/job-merge.yaml",
            "            - merge\n            - /results/shard-0\n            - /results/shard-1\n            - /results/shard-2\n            - /results/shard-3\n",
            "            - merge\n",
        ),
        (
            "deploy/kustomize/sharded/kustomization.yaml",
            "      - OUTPUT_DIR=/results/merged\n",
            "      - OUTPUT_DIR=/results/merged\n      - MAX_TOKENS=64\n",
        ),
        (
            "deploy/kustomize/sharded/job-load-test-shards.yaml",
            "- name: START_AT",
            "- name: START_TIME",
        ),
    ]);
    let scan = manifest::scan(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    let errors = problems(&scan).join("\n");
    let wf = "workflows/vllm-perf-gate.yaml: WorkflowTemplate/vllm-perf-gate template";
    for want in [
        format!("{wf} load-test: load-test: unknown flag --vllm-ulr"),
        format!("{wf} resolve-candidate: perf-decision: unknown flag --candidate-alais (in `{{{{=inputs.parameters['candidate-version'] == ''"),
        format!("{wf} verdict: perf-decision: --exit-for-status takes no other flag or env var, got env LOG_FORMAT"),
        "template verdict at attempt-2.verdict: perf-decision: --exit-for-status takes no other flag or env var, got env LOG_FORMAT".into(),
        "Job/vllm-perf-gate-load-test container resolve-candidate: perf-decision: unknown flag --resolve-candidates".into(),
        format!("{wf} perf-decision: perf-decision: env var FAIL_ON_REJECTED is not read by perf-decision"),
        "example-workflow.yaml: Workflow/vllm-perf-gate- runs".into(),
        "load-test: --concurrency=ten: invalid value 'ten': \"ten\" is not a positive integer".into(),
        "(kustomize ".into(),
        "load-test: env var MAX_TOKEN is not read by load-test".into(),
        "overlays/dev): Job/vllm-perf-gate-load-test container load-test: load-test: env var PUSHGATEWAY is not read by load-test".into(),
        "overlays/dev): Job/vllm-perf-gate-load-test container load-test: load-test: env CONCURRENCY=0: invalid value '0': must be at least 1".into(),
        "deploy/compose/docker-compose.yml: service load-test: load-test: env var ADAPTER is not read by load-test".into(),
        "deploy/compose/docker-compose.yml: service load-test: load-test: the required --adapter-name or env ADAPTER_NAME is not given".into(),
        "deploy/compose/docker-compose.yml: service vllm-sim: vllm-sim: unknown flag --gpu-utilisation".into(),
        "vllm-perf-gate-sharded template load-shard: load-test: unknown flag --shard-idx".into(),
        "vllm-perf-gate-sharded template merge-2: load-test merge: unknown flag --prometheus-ulr".into(),
        "Job/vllm-perf-gate-sharded-merge container merge: load-test merge: the required positional SHARD_DIR is not given".into(),
        "Job/vllm-perf-gate-sharded-merge container merge: load-test merge: env var MAX_TOKENS is not read by load-test merge".into(),
        "Job/vllm-perf-gate-sharded-load-test container load-test: load-test: env var START_TIME is not read by load-test".into(),
    ] {
        assert!(errors.contains(&want), "missing {want:?} in:\n{errors}");
    }
    // MAX_TOKEN and the init container: the base and both overlays
    assert_eq!(
        errors.matches("env var MAX_TOKEN is not read").count(),
        3,
        "{errors}"
    );
    assert_eq!(
        errors.matches("unknown flag --resolve-candidates").count(),
        3,
        "{errors}"
    );
}

#[test]
fn a_manifest_the_renderer_cannot_render_is_an_error_naming_file_and_expression() {
    let tmp = broken_copy(&[(
        "workflows/vllm-perf-gate.yaml",
        "value: \"{{workflow.parameters.log-format}}\"",
        "value: \"{{=sprig.upper(workflow.parameters['log-format'])}}\"",
    )]);
    let e = manifest::scan(tmp.path()).unwrap_err().to_string();
    let file = tmp.path().join("workflows/vllm-perf-gate.yaml");
    assert!(e.starts_with(&file.display().to_string()), "{e}");
    assert!(
        e.contains("template resolve-candidate: env LOG_FORMAT: cannot render `{{=sprig.upper(workflow.parameters['log-format'])}}`"),
        "{e}"
    );

    // a condition outside govaluate's subset the renderer evaluates
    let tmp = broken_copy(&[(
        "workflows/vllm-perf-gate.yaml",
        "when: \"{{steps.attempt-1.outputs.parameters.perf-status}} == invalid\"",
        "when: \"{{steps.attempt-1.outputs.parameters.perf-status}} =~ invalid\"",
    )]);
    let e = manifest::scan(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("template perf-gate: step quiet-wait: when `{{steps.attempt-1.outputs.parameters.perf-status}} =~ invalid`"),
        "{e}"
    );
    assert!(e.contains("`=~ invalid` is not rendered"), "{e}");

    // an Argo field the walk does not run (continueOn on an error, an exit handler)
    for (from, to, field) in [
        (
            "              failed: true",
            "              error: true",
            "error",
        ),
        (
            "  entrypoint: perf-gate\n",
            "  entrypoint: perf-gate\n  onExit: verdict\n",
            "onExit",
        ),
    ] {
        let tmp = broken_copy(&[("workflows/vllm-perf-gate.yaml", from, to)]);
        let e = manifest::scan(tmp.path()).unwrap_err();
        let text = format!(
            "{e}: {}",
            std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default()
        );
        assert!(text.contains(&format!("unknown field `{field}`")), "{text}");
    }

    // a Workflow running the sharded template: the walk does not fan steps out
    let tmp = broken_copy(&[(
        "workflows/example-workflow.yaml",
        "  workflowTemplateRef:\n    name: vllm-perf-gate\n",
        "  workflowTemplateRef:\n    name: vllm-perf-gate-sharded\n",
    )]);
    let e = manifest::scan(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains(
            "template perf-gate: step shard: withSequence (a fan-out) is not run by the walk"
        ),
        "{e}"
    );

    let tmp = broken_copy(&[(
        "deploy/kustomize/overlays/prod/kustomization.yaml",
        "configMapGenerator:",
        "patches:\n  - path: patch.yaml\nconfigMapGenerator:",
    )]);
    let e = manifest::scan(tmp.path()).unwrap_err();
    let text = format!(
        "{e}: {}",
        std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(
        text.contains("overlays/prod/kustomization.yaml: kustomization"),
        "{text}"
    );
    assert!(text.contains("unknown field `patches`"), "{text}");
}
