//! A per-model lease, so two `perf-decision` runs for versions of one model (an Argo mutex is
//! per deployment, Kubernetes Jobs and manual runs have none) never interleave their claims.
//!
//! MLflow has no conditional write, but creating a registered model is atomic: the second
//! create of a name answers `RESOURCE_ALREADY_EXISTS`. The lease is the registered model
//! `<model>.perf-gate-lock`, created with the holder's token and an expiry as tags in that one
//! call, and deleted to release it. A run waits (polling, up to `--lock-timeout`) while another
//! holds it.
//!
//! A lease whose holder died expires ([`LEASE_TTL`], far longer than a decision takes). Taking
//! over an expired lease goes through a second atomic create, of `<lock>.takeover.<holder>`: only
//! one waiting run wins it and deletes the expired lease (after checking it still names that
//! holder), so two runs never both take it over. A holder never releases a lease it no longer
//! owns (it re-reads the holder tag first) nor one that has expired (a takeover may be under way).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::error::DecideError;
use crate::mlflow::types::KeyValue;
use crate::mlflow::{MlflowClient, MlflowError};

/// How long a lease is valid: far longer than the claims take (seconds; a minute with every
/// retry and the undo), so only a dead holder's lease ever expires, and shorter than the
/// default `--lock-timeout`, so a run waiting on a dead holder takes the lease over.
pub const LEASE_TTL: Duration = Duration::from_secs(300);
/// How long a lease must still be valid when the claims start.
const CLAIM_MARGIN: Duration = Duration::from_secs(120);
/// How often a waiting run asks again.
const POLL: Duration = Duration::from_millis(750);
/// Registered-model tags of a lease.
const HOLDER: &str = "perf_gate_lock_holder";
const EXPIRES: &str = "perf_gate_lock_expires_ms";
const ABOUT: &str = "perf_gate_lock_about";

/// The registered model that is the lease of `model`.
pub fn lock_name(model: &str) -> String {
    format!("{model}.perf-gate-lock")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A token unique to this process and moment (and host, when `HOSTNAME` says).
fn new_token() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    format!("{nanos:x}-{:x}-{n}-{host}", std::process::id())
}

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    name: String,
    token: String,
    expires_ms: i64,
}

/// What the lock model says when it exists.
enum Held {
    /// By this run (a create that timed out but landed).
    ByUs,
    /// By another run, until `expires_ms`.
    ByOther { holder: String, expires_ms: i64 },
    /// Nobody (it was released meanwhile).
    Free,
}

async fn read(client: &MlflowClient, name: &str, token: &str) -> Result<Held, MlflowError> {
    match client.get_registered_model(name).await {
        Ok(m) => {
            let holder = m.tag(HOLDER).unwrap_or_default().to_string();
            if holder == token {
                return Ok(Held::ByUs);
            }
            // a lock without a readable expiry (made by hand?) counts as already expired
            let expires_ms = m
                .tag(EXPIRES)
                .and_then(|v| v.parse().ok())
                .unwrap_or(i64::MIN);
            Ok(Held::ByOther { holder, expires_ms })
        }
        Err(e) if e.is_not_found() => Ok(Held::Free),
        Err(e) => Err(e),
    }
}

fn lock_error(context: String) -> impl FnOnce(MlflowError) -> DecideError {
    DecideError::mlflow(context)
}

impl Lease {
    /// Takes the lease of `model`, waiting up to `wait` while another run holds it.
    pub(crate) async fn acquire(
        client: &MlflowClient,
        model: &str,
        about: &str,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<Lease, DecideError> {
        let name = lock_name(model);
        let token = new_token();
        let deadline = tokio::time::Instant::now() + wait;
        let mut announced = false;
        loop {
            if cancel.is_cancelled() {
                return Err(DecideError::Aborted);
            }
            let expires_ms = now_ms() + LEASE_TTL.as_millis() as i64;
            let tags = [
                KeyValue::new(HOLDER, &token),
                KeyValue::new(EXPIRES, expires_ms.to_string()),
                KeyValue::new(ABOUT, about),
            ];
            let created = client.create_registered_model_tagged(&name, &tags).await;
            let held = match created {
                Ok(_) => Held::ByUs,
                // taken; or taken and released at once (MLflow reads the model back after a
                // duplicate insert and answers 404 if its holder deleted it meanwhile); or a
                // create whose answer was lost (it may have landed): ask who holds it
                Err(e)
                    if e.is_already_exists()
                        || e.is_not_found()
                        || e.status().is_none()
                        || e.status() >= Some(500) =>
                {
                    read(client, &name, &token)
                        .await
                        .map_err(lock_error(format!("cannot read the lease `{name}`")))?
                }
                // refused (permissions, a proxy): no lease can be had
                Err(e) => {
                    return Err(lock_error(format!(
                        "cannot create the lease `{name}` (a registered model; the MLflow user needs permission to create one)"
                    ))(e));
                }
            };
            match held {
                Held::ByUs => {
                    info!(lease = %name, "lease taken");
                    return Ok(Lease {
                        name,
                        token,
                        expires_ms,
                    });
                }
                Held::Free => continue,
                Held::ByOther { holder, expires_ms } if expires_ms < now_ms() => {
                    take_over(client, &name, &holder).await?;
                    continue;
                }
                Held::ByOther { holder, .. } => {
                    if !announced {
                        info!(lease = %name, %holder, "another decision for this model holds the lease: waiting");
                        announced = true;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(DecideError::Lease {
                            name,
                            holder,
                            waited: wait,
                        });
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = cancel.cancelled() => return Err(DecideError::Aborted),
            }
        }
    }

    /// Fails unless the lease stays valid for [`CLAIM_MARGIN`]: claims are written only while
    /// no other run can take the lease over.
    pub(crate) fn ensure_valid(&self) -> Result<(), DecideError> {
        if self.valid_for(CLAIM_MARGIN) {
            Ok(())
        } else {
            Err(DecideError::LeaseExpiring {
                name: self.name.clone(),
            })
        }
    }

    /// Whether the lease is still valid, with `margin` to spare.
    pub(crate) fn valid_for(&self, margin: Duration) -> bool {
        now_ms() + (margin.as_millis() as i64) < self.expires_ms
    }

    /// Releases the lease if it is still ours and not expired (best effort: an unreleased
    /// lease expires).
    pub(crate) async fn release(self, client: &MlflowClient) {
        if !self.valid_for(Duration::from_secs(30)) {
            warn!(lease = %self.name, "lease (nearly) expired: left to expire, not released");
            return;
        }
        match read(client, &self.name, &self.token).await {
            Ok(Held::ByUs) => match client.delete_registered_model(&self.name).await {
                Ok(()) => info!(lease = %self.name, "lease released"),
                Err(e) => {
                    warn!(lease = %self.name, error = %e, "cannot release the lease: it will expire")
                }
            },
            Ok(_) => warn!(lease = %self.name, "the lease is no longer ours: not released"),
            Err(e) => {
                warn!(lease = %self.name, error = %e, "cannot read the lease: it will expire")
            }
        }
    }
}

/// Takes over the expired lease of `holder`: whoever creates the takeover token deletes it.
async fn take_over(client: &MlflowClient, name: &str, holder: &str) -> Result<(), DecideError> {
    let token_name = format!("{name}.takeover.{holder}");
    let won = client
        .create_registered_model_tagged(&token_name, &[])
        .await
        .is_ok();
    if !won {
        // another run is taking it over; wait for the lease to change hands
        tokio::time::sleep(POLL).await;
        return Ok(());
    }
    if let Ok(Held::ByOther { holder: now, .. }) = read(client, name, "").await
        && now == holder
    {
        warn!(lease = %name, %holder, "taking over an expired lease (its holder died?)");
        match client.delete_registered_model(name).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                let _ = client.delete_registered_model(&token_name).await;
                return Err(lock_error(format!(
                    "cannot delete the expired lease `{name}`"
                ))(e));
            }
        }
    }
    let _ = client.delete_registered_model(&token_name).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_names_say_what_they_lock() {
        assert_ne!(new_token(), new_token());
        assert_eq!(lock_name("m"), "m.perf-gate-lock");
    }
}
