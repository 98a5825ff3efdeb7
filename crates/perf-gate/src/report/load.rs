//! The load's part of both reports: client figures per arm, the latency distributions, and
//! latency, throughput and requests in flight over time, drawn from the per-request samples of
//! each arm (candidate and baseline). What a file lacks is said in words, never guessed.

use plotters::style::RGBColor;

use super::html::{Cell, figure, missing, num, opt_num, table};
use super::plots::{self, BASELINE, CANDIDATE, Draw, FAIL, HLine, Series, Xy};
use super::series::{self, Bins, Latency};
use crate::results::Latency as Lat;
use crate::results::{AdjustedPercentiles, ClientMetrics, Distribution, LoadTestResults};
use crate::stats::{RequestSample, SampleStore};

/// One arm of a load, as the report shows it.
#[derive(Debug, Clone)]
pub(crate) struct ArmView<'a> {
    /// `candidate` or `baseline`.
    pub(crate) role: &'static str,
    /// The adapter measured (a mix's label: [`LoadTestResults::measured`]).
    pub(crate) adapter: std::borrow::Cow<'a, str>,
    /// Its client figures (absent: the load never started).
    pub(crate) client: Option<&'a ClientMetrics>,
    /// The load's duration, seconds.
    pub(crate) duration_s: Option<f64>,
}

impl<'a> ArmView<'a> {
    /// The candidate arm of a results file.
    pub(crate) fn candidate(r: &'a LoadTestResults) -> Self {
        ArmView {
            role: "candidate",
            adapter: r.measured(),
            client: r.client.as_ref(),
            duration_s: r.timing.as_ref().map(|t| t.load_duration_s),
        }
    }

    /// The baseline arm measured in the same run (`--baseline-adapter`), if any.
    pub(crate) fn same_run_baseline(r: &'a LoadTestResults) -> Option<Self> {
        r.baseline_arm.as_ref().map(|b| ArmView {
            role: "baseline",
            adapter: b.adapter.name.as_str().into(),
            client: Some(&b.client),
            duration_s: r.timing.as_ref().map(|t| t.load_duration_s),
        })
    }

    /// The candidate arm of another run, shown as the baseline.
    pub(crate) fn baseline_run(r: &'a LoadTestResults) -> Self {
        ArmView {
            role: "baseline",
            ..ArmView::candidate(r)
        }
    }

    fn color(&self) -> RGBColor {
        if self.role == "baseline" {
            BASELINE
        } else {
            CANDIDATE
        }
    }
}

/// An arm with its requests unpacked (or why there are none).
struct Arm<'a> {
    view: ArmView<'a>,
    requests: Result<SampleStore, String>,
}

fn unpack(view: ArmView<'_>) -> Arm<'_> {
    let requests = match view.client {
        None => Err(format!(
            "the {} load never started: no client figures",
            view.role
        )),
        Some(c) => match &c.samples {
            None => Err(format!(
                "the {}'s results carry no per-request samples (written before schema version 3): its distributions and over-time plots cannot be drawn",
                view.role
            )),
            Some(packed) => SampleStore::unpack(packed).map_err(|e| {
                format!(
                    "the {}'s per-request samples cannot be read: {e}",
                    view.role
                )
            }),
        },
    };
    Arm { view, requests }
}

/// The client tables and every plot drawn from the samples, for these arms.
pub(crate) fn sections(arms: &[ArmView<'_>], concurrency: Option<u32>) -> String {
    let arms: Vec<Arm> = arms.iter().cloned().map(unpack).collect();
    let mut out = String::from("<section id=\"client\">\n<h2>Client figures</h2>\n");
    out.push_str(&client_table(&arms));
    out.push_str("</section>\n<section id=\"distributions\">\n<h2>Latency distributions</h2>\n");
    let gaps: String = arms
        .iter()
        .filter_map(|a| a.requests.as_ref().err())
        .map(|why| missing(why))
        .collect();
    out.push_str(&gaps);
    let drawn: Vec<(&Arm, &[RequestSample])> = arms
        .iter()
        .filter_map(|a| Some((a, a.requests.as_ref().ok()?.requests())))
        .collect();
    if drawn.is_empty() {
        out.push_str(&missing(
            "no arm has per-request samples: the distributions and over-time plots are not drawn (the tables above come from the results' summaries)",
        ));
        out.push_str("</section>\n");
        return out;
    }
    for (which, id, title) in [
        (Latency::Ttft, "plot-ttft-distribution", "TTFT distribution"),
        (
            Latency::E2e,
            "plot-e2e-distribution",
            "E2E latency distribution",
        ),
    ] {
        out.push_str(&distribution(&drawn, which, id, title));
    }
    out.push_str("</section>\n<section id=\"over-time\">\n<h2>Over time</h2>\n");
    let extent = drawn
        .iter()
        .map(|(a, r)| series::extent(r, a.view.duration_s))
        .fold(0.0, f64::max);
    let Some(bins) = Bins::covering(extent) else {
        out.push_str(&missing(
            "the load lasted no measurable time: nothing to plot over time",
        ));
        out.push_str("</section>\n");
        return out;
    };
    for (which, id, title) in [
        (Latency::Ttft, "plot-ttft-over-time", "TTFT over time"),
        (Latency::E2e, "plot-e2e-over-time", "E2E latency over time"),
    ] {
        out.push_str(&over_time(&drawn, which, bins, id, title));
    }
    out.push_str(&throughput(&drawn, bins));
    out.push_str(&in_flight(&drawn, bins, concurrency));
    out.push_str("</section>\n");
    out
}

fn dist_cells(d: &Distribution) -> [String; 4] {
    [
        opt_num(d.p50),
        opt_num(d.p95),
        opt_num(d.p99),
        opt_num(d.max),
    ]
}

fn adjusted(a: &AdjustedPercentiles) -> String {
    match a.p95 {
        Some(Lat::Finite(v)) => num(v),
        Some(Lat::Inf) => "+Inf (failures)".into(),
        None => "missing".into(),
    }
}

fn client_table(arms: &[Arm]) -> String {
    let mut headers = vec!["figure"];
    let names: Vec<String> = arms
        .iter()
        .map(|a| format!("{} ({})", a.view.role, a.view.adapter))
        .collect();
    headers.extend(names.iter().map(String::as_str));
    type Pick = fn(&ClientMetrics) -> String;
    let figures: [(&str, Pick); 14] = [
        ("requests sent", |c| c.total_requests.to_string()),
        ("successful", |c| c.successful_requests.to_string()),
        ("success rate", |c| opt_num(c.success_rate)),
        ("requests/s", |c| opt_num(c.requests_per_s)),
        ("output tokens/s", |c| opt_num(c.output_tokens_per_s)),
        ("TTFT P50 s", |c| dist_cells(&c.ttft_s)[0].clone()),
        ("TTFT P95 s", |c| dist_cells(&c.ttft_s)[1].clone()),
        ("TTFT P99 s", |c| dist_cells(&c.ttft_s)[2].clone()),
        ("E2E P50 s", |c| dist_cells(&c.e2e_s)[0].clone()),
        ("E2E P95 s", |c| dist_cells(&c.e2e_s)[1].clone()),
        ("E2E P99 s", |c| dist_cells(&c.e2e_s)[2].clone()),
        ("E2E max s", |c| dist_cells(&c.e2e_s)[3].clone()),
        ("E2E P95 s, failures as +Inf", |c| {
            adjusted(&c.e2e_adjusted_s)
        }),
        ("failures by kind", |c| {
            let kinds: Vec<String> = c
                .errors_by_kind
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            if kinds.is_empty() {
                "none".into()
            } else {
                kinds.join(", ")
            }
        }),
    ];
    let rows: Vec<Vec<Cell>> = figures
        .iter()
        .map(|(name, pick)| {
            let mut row = vec![Cell::Text((*name).into())];
            row.extend(arms.iter().map(|a| match a.view.client {
                Some(c) => Cell::Num(pick(c)),
                None => Cell::Text("no load".into()),
            }));
            row
        })
        .collect();
    table(&headers, &rows)
}

fn distribution(
    drawn: &[(&Arm, &[RequestSample])],
    which: Latency,
    id: &str,
    title: &str,
) -> String {
    let mut series = Vec::new();
    let mut notes = Vec::new();
    for (arm, requests) in drawn {
        let spread = series::spread(requests, which);
        let color = arm.view.color();
        let p95 = spread.p95;
        notes.push(format!(
            "{}: {} successes, P50 {} s, P95 {} s",
            arm.view.role,
            spread.count,
            opt_num(spread.p50),
            opt_num(p95)
        ));
        series.push(Series {
            label: format!("{} ({})", arm.view.role, arm.view.adapter),
            color,
            draw: Draw::Line(2),
            points: spread.ecdf,
        });
        if let Some(p) = p95 {
            series.push(Series {
                label: String::new(),
                color,
                draw: Draw::Points(6, 1.0),
                points: vec![(p, 0.95)],
            });
        }
    }
    let note = format!(
        "Share of successful requests at or below each latency (failures left out); the dot marks the P95. {}.",
        notes.join("; ")
    );
    let plot = plots::xy(&Xy {
        title,
        x_desc: "seconds",
        y_desc: "fraction of successes",
        series,
        hlines: vec![],
        legend_lower_right: true,
    });
    figure(id, title, &note, plot)
}

fn over_time(
    drawn: &[(&Arm, &[RequestSample])],
    which: Latency,
    bins: Bins,
    id: &str,
    title: &str,
) -> String {
    let mut series = Vec::new();
    let mut strides = Vec::new();
    for (arm, requests) in drawn {
        let color = arm.view.color();
        let (points, stride) = series::scatter(requests, which);
        if stride > 1 {
            strides.push(format!("{}: every {stride}th request", arm.view.role));
        }
        series.push(Series {
            label: String::new(),
            color,
            draw: Draw::Points(2, 0.35),
            points,
        });
        let p95 = series::binned_percentiles(requests, which, bins);
        series.push(Series {
            label: format!("{} P95 per {} s", arm.view.role, num(bins.width)),
            color,
            draw: Draw::Line(2),
            points: p95.iter().map(|b| (b.0, b.2)).collect(),
        });
    }
    let mut note = format!(
        "Each dot is a successful request at its finish time; the line is the P95 of the requests that finished in each {} s bin (over all of them).",
        num(bins.width)
    );
    if !strides.is_empty() {
        note.push_str(&format!(" Dots shown: {}.", strides.join(", ")));
    }
    let plot = plots::xy(&Xy {
        title,
        x_desc: "seconds since the load started",
        y_desc: "seconds",
        series,
        hlines: vec![],
        legend_lower_right: false,
    });
    figure(id, title, &note, plot)
}

fn throughput(drawn: &[(&Arm, &[RequestSample])], bins: Bins) -> String {
    let mut series = Vec::new();
    for (arm, requests) in drawn {
        let per_bin = series::throughput(requests, bins);
        series.push(Series {
            label: format!("{} completions/s", arm.view.role),
            color: arm.view.color(),
            draw: Draw::Line(2),
            points: per_bin.iter().map(|b| (b.0, b.1)).collect(),
        });
        if per_bin.iter().any(|b| b.2 > 0.0) {
            series.push(Series {
                label: format!("{} failures/s", arm.view.role),
                color: FAIL,
                draw: Draw::Line(1),
                points: per_bin.iter().map(|b| (b.0, b.2)).collect(),
            });
        }
    }
    let title = "Throughput over time";
    let note = format!(
        "Requests finished per second in each {} s bin (the last bin may be cut short by the load's end).",
        num(bins.width)
    );
    let plot = plots::xy(&Xy {
        title,
        x_desc: "seconds since the load started",
        y_desc: "requests per second",
        series,
        hlines: vec![],
        legend_lower_right: false,
    });
    figure("plot-throughput-over-time", title, &note, plot)
}

fn in_flight(drawn: &[(&Arm, &[RequestSample])], bins: Bins, concurrency: Option<u32>) -> String {
    let mut series = Vec::new();
    let mut failures = Vec::new();
    for (arm, requests) in drawn {
        let steps = series::in_flight(requests, bins);
        series.push(Series {
            label: format!("{} in flight", arm.view.role),
            color: arm.view.color(),
            draw: Draw::Line(2),
            points: steps
                .iter()
                .flat_map(|&(a, b, n)| [(a, n), (b, n)])
                .collect(),
        });
        let failed = requests.iter().filter(|r| r.e2e_s.is_nan()).count();
        if failed > 0 {
            failures.push(format!("{} {}", failed, arm.view.role));
        }
    }
    let title = "Requests in flight over time";
    let mut note = format!(
        "Mean number of successful requests in flight over each {} s bin; a request's start is its finish minus its E2E latency.",
        num(bins.width)
    );
    note.push_str(&if failures.is_empty() {
        " No request failed.".to_string()
    } else {
        format!(
            " Failed requests are not counted ({}): their start is not recorded.",
            failures.join(", ")
        )
    });
    let hlines = concurrency
        .map(|c| HLine {
            y: f64::from(c),
            label: format!("concurrency {c}"),
        })
        .into_iter()
        .collect();
    let plot = plots::xy(&Xy {
        title,
        x_desc: "seconds since the load started",
        y_desc: "requests",
        series,
        hlines,
        legend_lower_right: false,
    });
    figure("plot-in-flight", title, &note, plot)
}
