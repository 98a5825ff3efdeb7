//! `--task-mix` (seed 003's weighted tasks): `short=10,medium=5,long=2,creative=1,health=1,models=1`.
//!
//! | task | request |
//! | --- | --- |
//! | `short` | a synthetic prompt of 64 tokens |
//! | `medium` | a synthetic prompt of 128 tokens |
//! | `long` | a synthetic prompt of 256 tokens |
//! | `creative` | a synthetic prompt of 128 tokens at temperature 1.2 (seed 003's "high temperature generation") |
//! | `health` | `GET /health` |
//! | `models` | `GET /v1/models` |
//!
//! Each request's task is drawn by weight from the seeded generator. The GET tasks take their
//! turn in the load like the rest (a closed loop's slot, an open loop's arrival) and are
//! recorded in `requests.jsonl` with their `probe`, but counted apart (`probes` in the
//! results): they never enter the generation figures, and the server does not count them.

use std::fmt;
use std::str::FromStr;

/// Temperature of the `creative` task.
pub const CREATIVE_TEMPERATURE: f64 = 1.2;

/// One kind of task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Task {
    /// 64-token prompt.
    Short,
    /// 128-token prompt.
    Medium,
    /// 256-token prompt.
    Long,
    /// 128-token prompt at [`CREATIVE_TEMPERATURE`].
    Creative,
    /// `GET /health`.
    Health,
    /// `GET /v1/models`.
    Models,
}

impl Task {
    const ALL: [Task; 6] = [
        Task::Short,
        Task::Medium,
        Task::Long,
        Task::Creative,
        Task::Health,
        Task::Models,
    ];

    /// The name used in the flag and the results.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Short => "short",
            Task::Medium => "medium",
            Task::Long => "long",
            Task::Creative => "creative",
            Task::Health => "health",
            Task::Models => "models",
        }
    }

    /// Prompt length in tokens of a generation task; `None` for the GET tasks.
    pub fn prompt_tokens(self) -> Option<u32> {
        match self {
            Task::Short => Some(64),
            Task::Medium | Task::Creative => Some(128),
            Task::Long => Some(256),
            Task::Health | Task::Models => None,
        }
    }

    /// The GET request of a health or model-list task; `None` for a generation task.
    pub fn probe(self) -> Option<super::Probe> {
        match self {
            Task::Health => Some(super::Probe::Health),
            Task::Models => Some(super::Probe::Models),
            _ => None,
        }
    }

    /// The temperature this task overrides `--temperature` with, if any.
    pub fn temperature(self) -> Option<f64> {
        (self == Task::Creative).then_some(CREATIVE_TEMPERATURE)
    }
}

/// Weighted tasks, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskMix {
    /// `(task, weight)`, each task once, weights at least 1.
    pub weights: Vec<(Task, u32)>,
}

impl TaskMix {
    /// The generation tasks with their weights.
    pub fn generation(&self) -> Vec<(Task, u32)> {
        self.weights
            .iter()
            .copied()
            .filter(|(t, _)| t.prompt_tokens().is_some())
            .collect()
    }
}

/// Why a `--task-mix` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TaskMixError(String);

impl FromStr for TaskMix {
    type Err = TaskMixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights: Vec<(Task, u32)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part.split_once('=').ok_or_else(|| {
                TaskMixError(format!("{part:?} is not TASK=WEIGHT (e.g. short=10)"))
            })?;
            let task = Task::ALL
                .into_iter()
                .find(|t| t.as_str() == name.trim())
                .ok_or_else(|| {
                    TaskMixError(format!(
                        "unknown task {:?}: use short, medium, long, creative, health or models",
                        name.trim()
                    ))
                })?;
            let weight = match w.trim().parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(TaskMixError(format!(
                        "{}: the weight {:?} is not a positive integer",
                        task.as_str(),
                        w.trim()
                    )));
                }
            };
            if weights.iter().any(|(t, _)| *t == task) {
                return Err(TaskMixError(format!("{} is given twice", task.as_str())));
            }
            weights.push((task, weight));
        }
        let mix = TaskMix { weights };
        if mix.generation().is_empty() {
            return Err(TaskMixError(
                "no generation task (short, medium, long or creative): health and models alone measure no generation".into(),
            ));
        }
        Ok(mix)
    }
}

impl fmt::Display for TaskMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .weights
            .iter()
            .map(|(t, w)| format!("{}={w}", t.as_str()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_003_mix_parses_and_prints_back() {
        let spec = "short=10,medium=5,long=2,creative=1,health=1,models=1";
        let m: TaskMix = spec.parse().unwrap();
        assert_eq!(m.to_string(), spec);
        assert_eq!(m.generation().len(), 4);
        assert_eq!(Task::Health.probe(), Some(crate::workload::Probe::Health));
        assert_eq!(Task::Short.probe(), None);
        assert_eq!(Task::Creative.temperature(), Some(1.2));
        assert_eq!(Task::Long.prompt_tokens(), Some(256));
    }

    #[test]
    fn bad_mixes_say_why() {
        for (spec, want) in [
            ("short", "is not TASK=WEIGHT"),
            ("tiny=1", "unknown task \"tiny\""),
            (
                "short=0",
                "short: the weight \"0\" is not a positive integer",
            ),
            ("short=1,short=2", "short is given twice"),
            ("health=1,models=1", "no generation task"),
            ("", "no generation task"),
        ] {
            let e = spec.parse::<TaskMix>().unwrap_err().to_string();
            assert!(e.contains(want), "{spec:?}: {e}");
        }
    }
}
