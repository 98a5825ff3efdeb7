//! The HTML reports in a REAL browser (Debian's headless `chromium`, installed by
//! `scripts/install-test-deps.sh`), loaded from a file as a person would open them:
//!
//! - the DOM holds every plot: an `<svg>` with the plot's `<title>` that draws something
//!   (polylines, circles, rectangles);
//! - the screenshot is not blank, and shows the stylesheet applied (the verdict banner's
//!   colour fills its box: the policy's hash of the stylesheet is right);
//! - the page makes no request: the browser's proxy is a recorder (the browser's own calls to
//!   Google's update and sign-in hosts told apart, and the page shown to name none of them);
//!   the recorder is shown to catch a page that does fetch, and a fetch injected into a
//!   report is blocked by its policy.
//!
//! `REPORT_SCREENSHOT_DIR=dir` keeps the pages and screenshots there for a person to look at.

use std::path::{Path, PathBuf};

use perf_gate::decide::PerfDecision;
use perf_gate::fixtures::report::{LOAD, Load, decision, history, sampled_results};
use perf_gate::fixtures::{ADAPTER, GOOD};
use perf_gate::report::{
    DECISION_REPORT_FILE, DecisionReport, HistoryPoint, LOAD_TEST_REPORT_FILE, render_decision,
    render_load_test,
};
use perf_gate::results::{BaselineArm, LoadTestResults};
use test_support::chromium::{self, RequestRecorder};

/// The candidate and its baseline (another run), the decision on them and a history.
fn documents() -> (
    LoadTestResults,
    LoadTestResults,
    PerfDecision,
    Vec<HistoryPoint>,
) {
    let candidate = sampled_results(ADAPTER, GOOD, LOAD);
    let baseline = sampled_results(
        "aws-rag-qa-v2",
        GOOD,
        Load {
            seed: 2,
            e2e_s: 2.7,
            ..LOAD
        },
    );
    let d = decision(&candidate, &baseline);
    (candidate, baseline, d, history())
}

/// Where the pages go: `$REPORT_SCREENSHOT_DIR`, else a temp dir kept for the test's life.
fn out_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("REPORT_SCREENSHOT_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            std::fs::create_dir_all(&d).expect("create REPORT_SCREENSHOT_DIR");
            (None, d)
        }
        None => {
            let t = tempfile::tempdir().expect("temp dir");
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    }
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Each `<svg>` of the DOM with an `aria-label`: `(label, its markup)`.
fn plots(dom: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find("<svg ") {
        let svg = &rest[at..];
        let end = svg.find("</svg>").expect("a closed svg") + "</svg>".len();
        let tag = &svg[..svg.find('>').expect("svg tag end")];
        if let Some(l) = tag.find("aria-label=\"") {
            let label = &tag[l + 12..];
            out.push((
                label[..label.find('"').expect("label end")].to_string(),
                svg[..end].to_string(),
            ));
        }
        rest = &svg[end..];
    }
    out
}

/// Asserts the DOM has each titled plot, drawing something.
fn assert_plots(dom: &str, titles: &[&str]) {
    let found = plots(dom);
    let labels: Vec<&str> = found.iter().map(|(l, _)| l.as_str()).collect();
    for title in titles {
        let (_, svg) = found
            .iter()
            .find(|(l, _)| l == title)
            .unwrap_or_else(|| panic!("no plot {title:?} in the DOM; plots: {labels:?}"));
        assert!(
            svg.contains(&format!("<title>{title}</title>")),
            "{title}: no <title>"
        );
        let drawn: usize = [
            "<polyline",
            "<circle",
            "<rect",
            "<line",
            "<path",
            "<polygon",
        ]
        .iter()
        .map(|e| svg.matches(e).count())
        .sum();
        assert!(drawn >= 5, "{title}: only {drawn} drawn elements");
        assert!(svg.contains("<text"), "{title}: no axis text");
    }
}

/// Pixel counts of a PNG screenshot: `(width, height, distinct colours, non-white pixels,
/// pixels of exactly `colour`)`.
fn inspect_png(path: &Path, colour: [u8; 3]) -> (u32, u32, usize, usize, usize) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("no screenshot {path:?}: {e}"));
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a PNG of sane size")];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let mut colours = std::collections::BTreeSet::new();
    let (mut ink, mut exact) = (0, 0);
    for px in buf[..info.buffer_size()].chunks_exact(channels) {
        let rgb = [px[0], px[1], px[2]];
        colours.insert(rgb);
        if rgb != [255, 255, 255] {
            ink += 1;
        }
        if rgb == colour {
            exact += 1;
        }
    }
    (info.width, info.height, colours.len(), ink, exact)
}

/// Loads `page` in the browser twice (DOM, screenshot) behind a recording proxy; returns the
/// DOM, the screenshot's path and the browser's log.
fn open(page: &Path, recorder: &RequestRecorder) -> (String, PathBuf, String) {
    let url = file_url(page);
    let dom = chromium::run(&url, &["--dump-dom"], recorder.port());
    let png = page.with_extension("png");
    let shot = chromium::run(
        &url,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,3000",
            "--hide-scrollbars",
        ],
        recorder.port(),
    );
    (dom.stdout, png, format!("{}\n{}", dom.stderr, shot.stderr))
}

/// Asserts the page made no request: nothing reached the recorder but the browser's own calls,
/// and the page names none of the hosts those go to.
fn assert_fetched_nothing(html: &str, recorder: &RequestRecorder) {
    assert_eq!(
        recorder.page_requests(),
        Vec::<String>::new(),
        "the page fetched"
    );
    for host in chromium::BROWSER_HOSTS {
        assert!(!html.contains(host), "the page names {host}");
    }
}

fn assert_no_policy_violation(log: &str) {
    for line in log.lines() {
        assert!(
            !line.contains("Content Security Policy") && !line.contains("Refused to"),
            "the page broke its own policy: {line}"
        );
    }
}

#[test]
fn the_decision_report_renders_its_plots_and_fetches_nothing() {
    let (candidate, baseline, d, h) = documents();
    let html = render_decision(&DecisionReport {
        decision: &d,
        candidate: Some(&candidate),
        baseline: Some(&baseline),
        history: &h,
    });
    let (_keep, dir) = out_dir();
    let page = dir.join(DECISION_REPORT_FILE);
    std::fs::write(&page, &html).expect("write the report");
    let recorder = RequestRecorder::start();
    let (dom, png, log) = open(&page, &recorder);

    assert!(dom.contains("perf-decision: inconclusive"), "DOM:\n{dom}");
    assert_plots(
        &dom,
        &[
            "Checks",
            "Statistical verdict",
            "TTFT distribution",
            "E2E latency distribution",
            "TTFT over time",
            "E2E latency over time",
            "Throughput over time",
            "Requests in flight over time",
            "Drift history",
        ],
    );
    let (w, h, colours, ink, amber) = inspect_png(&png, [249, 168, 37]);
    assert_eq!((w, h), (1280, 3000));
    assert!(colours > 100, "only {colours} colours: a blank page?");
    assert!(
        ink > (w * h / 20) as usize,
        "only {ink} non-white pixels of {}",
        w * h
    );
    // the inconclusive banner's background: the stylesheet applied
    assert!(
        amber > 20_000,
        "only {amber} pixels of the amber banner: was the stylesheet refused?"
    );
    assert_no_policy_violation(&log);
    assert_fetched_nothing(&html, &recorder);
}

#[test]
fn the_load_test_report_renders_both_arms_and_fetches_nothing() {
    let (mut r, baseline, _, _) = documents();
    r.config.baseline_adapter = Some(baseline.config.adapter_name.clone());
    r.baseline_arm = Some(BaselineArm {
        adapter: baseline.adapter.clone().expect("fixture adapter"),
        client: baseline.client.clone().expect("fixture client"),
    });
    let (_keep, dir) = out_dir();
    let page = dir.join(LOAD_TEST_REPORT_FILE);
    let html = render_load_test(&r);
    std::fs::write(&page, &html).expect("write the report");
    let recorder = RequestRecorder::start();
    let (dom, png, log) = open(&page, &recorder);

    assert_plots(
        &dom,
        &[
            "TTFT distribution",
            "E2E latency distribution",
            "TTFT over time",
            "E2E latency over time",
            "Throughput over time",
            "Requests in flight over time",
        ],
    );
    assert!(dom.contains("baseline in flight") && dom.contains("candidate in flight"));
    // completed and valid: the green banner
    let (_, _, colours, _, green) = inspect_png(&png, [46, 125, 50]);
    assert!(colours > 100, "only {colours} colours");
    assert!(green > 20_000, "only {green} pixels of the green banner");
    assert_no_policy_violation(&log);
    assert_fetched_nothing(&html, &recorder);
}

#[test]
fn the_recorder_catches_a_fetch_and_the_policy_blocks_an_injected_one() {
    let (_keep, dir) = out_dir();
    let recorder = RequestRecorder::start();

    // a page without the policy that loads an image: the recorder must see it
    let leaky = dir.join("leaky.html");
    std::fs::write(
        &leaky,
        "<!DOCTYPE html><html><body><img src=\"http://example.invalid/leak.png\"></body></html>",
    )
    .expect("write");
    chromium::run(&file_url(&leaky), &["--dump-dom"], recorder.port());
    let seen = recorder.page_requests();
    assert!(
        seen.iter().any(|l| l.contains("example.invalid/leak.png")),
        "the recorder missed a fetch: {seen:?}"
    );

    // the same fetch slipped into a report (as an escaping bug would): the policy stops it
    let recorder = RequestRecorder::start();
    let (candidate, _, _, _) = documents();
    let html = render_load_test(&candidate).replacen(
        "<body>",
        "<body><img src=\"http://example.invalid/injected.png\">",
        1,
    );
    let injected = dir.join("injected.html");
    std::fs::write(&injected, &html).expect("write");
    let out = chromium::run(&file_url(&injected), &["--dump-dom"], recorder.port());
    assert!(
        out.stdout.contains("example.invalid/injected.png"),
        "the img is in the DOM"
    );
    assert_eq!(
        recorder.page_requests(),
        Vec::<String>::new(),
        "the policy let a fetch through"
    );
    assert!(
        out.stderr
            .contains("'http://example.invalid/injected.png' violates the following Content Security Policy directive"),
        "the browser did not say it refused the image:\n{}",
        out.stderr
    );
}
