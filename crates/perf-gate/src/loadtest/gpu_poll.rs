//! `gpu_metrics.csv`: `nvidia-smi` every `--gpu-poll-interval`, one row per GPU per poll.
//!
//! The query is [`QUERY`] with `--format=csv,noheader,nounits`, whose documented output is one
//! line per GPU with the fields in the order asked, separated by `", "`:
//! `2024/05/14 10:21:43.512, 0, NVIDIA A100-SXM4-80GB, 87, 41, 40536, 81920, 61, 312.45`
//! (utilizations in percent, memory in MiB, temperature in °C, power in W; a field the GPU
//! does not report reads `[N/A]` or `[Not Supported]`, written here as an empty cell).
//!
//! When no `nvidia-smi` is on `PATH`, nothing polls and no file is written: one line says so
//! (`gpu polling skipped: nvidia-smi not found on PATH`), in the log and in the results'
//! departures. A poll that fails (non-zero exit, a timeout, output that does not parse) is one
//! row with empty GPU cells and the reason in `error`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::poll::{Clock, CsvOut, GPU_METRICS_FILE, append, error_cell, field, open, poll_timeout};

/// The fields asked of `nvidia-smi --query-gpu`, in column order.
pub const QUERY: &str = "timestamp,index,name,utilization.gpu,utilization.memory,memory.used,memory.total,temperature.gpu,power.draw";
/// `gpu_metrics.csv`'s header: the row's stamp, then [`QUERY`]'s fields with their units.
pub const GPU_HEADER: &str = "timestamp,unix_s,elapsed_s,step,gpu_timestamp,index,name,utilization_gpu_pct,utilization_memory_pct,memory_used_mib,memory_total_mib,temperature_c,power_draw_w,error";
/// The line logged (and recorded) when there is no `nvidia-smi`.
pub const SKIPPED: &str = "gpu polling skipped: nvidia-smi not found on PATH";
/// Fields per `nvidia-smi` line.
const FIELDS: usize = 9;

/// Starts the GPU poll; `Err` is the line to record when it cannot run.
pub(super) fn start(
    dir: &Path,
    every: Duration,
    clock: Clock,
    cancel: CancellationToken,
) -> Result<JoinHandle<Option<String>>, String> {
    let Some(smi) = find_on_path("nvidia-smi") else {
        return Err(SKIPPED.into());
    };
    let out = open(dir, GPU_METRICS_FILE, GPU_HEADER)?;
    tracing::info!(nvidia_smi = %smi.display(), every = ?every, "polling the GPUs");
    Ok(tokio::spawn(poll(smi, every, out, clock, cancel)))
}

/// The first executable file called `name` in a directory of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

async fn poll(
    smi: PathBuf,
    every: Duration,
    mut out: CsvOut,
    clock: Clock,
    cancel: CancellationToken,
) -> Option<String> {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut polls, mut failed) = (0u64, 0u64);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let stamp = clock.stamp(Utc::now());
        let run = tokio::process::Command::new(&smi)
            .arg(format!("--query-gpu={QUERY}"))
            .arg("--format=csv,noheader,nounits")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let read = tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            r = tokio::time::timeout(poll_timeout(every), run) => r,
        };
        polls += 1;
        let rows = match read {
            Ok(Ok(o)) if o.status.success() => parse(&String::from_utf8_lossy(&o.stdout)),
            Ok(Ok(o)) => Err(format!(
                "nvidia-smi exited with {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Ok(Err(e)) => Err(format!("cannot run nvidia-smi: {e}")),
            Err(_) => Err(format!(
                "nvidia-smi timed out after {:?}",
                poll_timeout(every)
            )),
        };
        let lines = match rows {
            Ok(rows) => rows
                .iter()
                .map(|cells| format!("{stamp}{},", cells.join(",")))
                .collect(),
            Err(reason) => {
                failed += 1;
                vec![format!(
                    "{stamp}{}{}",
                    ",".repeat(FIELDS),
                    error_cell(&reason)
                )]
            }
        };
        for line in lines {
            if let Err(line) = append(&mut out, GPU_METRICS_FILE, &line) {
                tracing::warn!("{line}");
                return Some(line);
            }
        }
    }
    (failed > 0).then(|| {
        format!("{failed} of {polls} nvidia-smi polls failed (see the error column of {GPU_METRICS_FILE})")
    })
}

/// `nvidia-smi`'s lines as CSV cells (quoted where needed; `[N/A]`-style values empty).
fn parse(stdout: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        // a name with a comma in it: the name takes the surplus
        if cells.len() < FIELDS {
            return Err(format!("unexpected nvidia-smi line: {line}"));
        }
        let extra = cells.len() - FIELDS;
        let name = cells[2..=2 + extra].join(", ");
        let row: Vec<String> = cells[..2]
            .iter()
            .map(|c| c.to_string())
            .chain(std::iter::once(name))
            .chain(cells[3 + extra..].iter().map(|c| c.to_string()))
            .map(|c| {
                if c.starts_with('[') && c.ends_with(']') {
                    String::new()
                } else {
                    field(&c)
                }
            })
            .collect();
        rows.push(row);
    }
    if rows.is_empty() {
        return Err("nvidia-smi printed no GPU".into());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_output_parses_into_the_columns() {
        let out = "2024/05/14 10:21:43.512, 0, NVIDIA A100-SXM4-80GB, 87, 41, 40536, 81920, 61, 312.45\n\
                   2024/05/14 10:21:43.514, 1, NVIDIA A100-SXM4-80GB, 0, 0, 4, 81920, 34, [N/A]\n";
        let rows = parse(out).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].join(","),
            "2024/05/14 10:21:43.512,0,NVIDIA A100-SXM4-80GB,87,41,40536,81920,61,312.45"
        );
        assert_eq!(rows[1][8], "");
        assert_eq!(GPU_HEADER.split(',').count(), 4 + FIELDS + 1);
        assert_eq!(QUERY.split(',').count(), FIELDS);
    }

    #[test]
    fn a_name_with_a_comma_is_one_quoted_cell_and_junk_is_an_error() {
        let rows = parse("t, 0, Odd, GPU, 1, 2, 3, 4, 5, 6\n").unwrap();
        assert_eq!(rows[0][2], "\"Odd, GPU\"");
        assert_eq!(rows[0].len(), FIELDS);
        assert!(parse("No devices were found\n").is_err());
        assert!(parse("").is_err());
    }
}
