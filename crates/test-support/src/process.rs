//! Server processes: each started in its own process group (so the children a server forks,
//! e.g. MLflow's uvicorn worker, stop with it), either owned by a fixture (stopped on drop) or
//! detached for the scripts (`vpg-stack`), with its PID in a file so a later command stops it.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Grace between SIGTERM and SIGKILL when stopping a server.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Spawns `cmd` leading a new process group, stdin from /dev/null, stdout and stderr appended
/// to `log`.
pub fn spawn_group(cmd: &mut Command, log: &Path) -> std::io::Result<Child> {
    let out = File::options().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
}

/// SIGTERM to `child`'s process group, up to [`STOP_GRACE`], then SIGKILL to what is left.
pub fn stop_group(child: &mut Child) {
    let pgid = child.id();
    signal_group("-TERM", pgid);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // a server's forked workers may outlive it: make sure nothing of the group survives
    signal_group("-KILL", pgid);
    let _ = child.wait();
}

/// Stops the detached process group whose leader's PID is in `pidfile` (as [`stop_group`]) and
/// removes the file. `Ok(false)` when there was nothing to stop.
pub fn stop_pidfile(pidfile: &Path) -> std::io::Result<bool> {
    let Some(pid) = read_pid(pidfile) else {
        return Ok(false);
    };
    let running = alive(pid);
    if running {
        signal_group("-TERM", pid);
        let deadline = Instant::now() + STOP_GRACE;
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        signal_group("-KILL", pid);
    }
    std::fs::remove_file(pidfile)?;
    Ok(running)
}

/// The PID recorded in `pidfile`, if the file holds one.
pub fn read_pid(pidfile: &Path) -> Option<u32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // the state follows the parenthesised command name
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn signal_group(signal: &str, pgid: u32) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Polls `ready` every 100 ms until it is true, `child` exits, or `timeout` passes; on failure
/// the reason and the last lines of `log`.
pub fn wait_until(
    child: &mut Child,
    what: &str,
    log: &Path,
    timeout: Duration,
    ready: impl Fn() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited early ({status})\n{}", log_tail(log)));
        }
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{what} not ready after {timeout:?}\n{}",
                log_tail(log)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last 40 lines of a log file, for failure messages.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- last lines of {} ---\n{}",
        log.display(),
        lines[lines.len().saturating_sub(40)..].join("\n")
    )
}
