//! Mixes: several targets in one run (seed 002's "mixed warfare": named servers, each with its
//! URL, model and weight), or several LoRA adapters on one vLLM (`--lora-mix`, with an
//! optional base-model control stream).
//!
//! A mix shares the run's load (`--concurrency`, `--rate`, the stages): each request goes to
//! the next member of a smooth weighted round robin ([`Picker`]), so after any n requests
//! every member has had within two requests of `n x weight / total` of them (within one for
//! most weights), in the same order on every run. Every figure is kept per member as well as
//! pooled.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the members of a mix are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MixKind {
    /// Several servers (`--target`), each with its own URL and model.
    Targets,
    /// Several adapters on the one vLLM of `--vllm-url` (`--lora-mix`).
    Adapters,
}

/// The part a member plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A server of a target mix.
    Target,
    /// A LoRA adapter of a LoRA mix.
    Adapter,
    /// The base model of a LoRA mix's adapters: the control stream (`--base-model-weight`).
    Base,
}

/// One member of a mix.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Its name in the results and in `requests.jsonl` (`target`).
    pub name: String,
    /// Its server's base URL (a target); `None`: `--vllm-url`.
    pub url: Option<String>,
    /// The model requests name; `None` for the base-model control stream until the adapters'
    /// parent is known (from `/v1/models`).
    pub model: Option<String>,
    /// Its relative share of the requests (> 0).
    pub weight: f64,
    /// What it is.
    pub role: Role,
    /// Its serving API (a target's `api=`); `None`: the run's `--api`.
    pub api: Option<crate::api::Api>,
    /// Its own requests in flight (a target's `concurrency=`); `None`: a share of the run's.
    pub concurrency: Option<u32>,
}

/// A mix: its kind and members, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// Targets or adapters.
    pub kind: MixKind,
    /// The members (at least two requests' worth of choice: one member is allowed, but a mix
    /// of one is a plain run with per-member figures).
    pub members: Vec<Member>,
}

/// A mix that cannot be used, with the text of the error line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct MixError(pub String);

/// What a mix's pooled figures are named in titles, labels and the Pushgateway's `adapter`
/// label: `mix:` and its members' names joined by `+` (`mix:sql-lora+chat-lora`). The pooled
/// figures are no one member's, so they never carry the first member's name alone.
pub fn label<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    format!("mix:{}", names.into_iter().collect::<Vec<_>>().join("+"))
}

impl Mix {
    /// The name of its pooled figures ([`label`]).
    pub fn label(&self) -> String {
        label(self.members.iter().map(|m| m.name.as_str()))
    }

    /// A target mix from `--target` specs; names must be distinct.
    pub fn targets(specs: Vec<TargetSpec>) -> Result<Mix, MixError> {
        let members: Vec<Member> = specs
            .into_iter()
            .map(|s| Member {
                name: s.name,
                url: Some(s.url),
                model: Some(s.model),
                weight: s.weight,
                role: Role::Target,
                api: s.api,
                concurrency: s.concurrency,
            })
            .collect();
        distinct(&members)?;
        let own = members.iter().filter(|m| m.concurrency.is_some()).count();
        if own != 0 && own != members.len() {
            return Err(MixError(
                "give concurrency= to every target or to none (each target's own requests in flight, or a share of --concurrency)".into(),
            ));
        }
        Ok(Mix {
            kind: MixKind::Targets,
            members,
        })
    }

    /// A LoRA mix from `--lora-mix NAME=WEIGHT,...`, plus a base-model control stream of
    /// `base_weight` when given (the member named `base`).
    pub fn adapters(spec: &str, base_weight: Option<f64>) -> Result<Mix, MixError> {
        let mut members = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once('=') {
                Some((n, w)) => (n.trim(), parse_weight(n.trim(), w.trim())?),
                None => (part, 1.0),
            };
            if name.is_empty() {
                return Err(MixError(format!(
                    "{part:?}: expected ADAPTER=WEIGHT (e.g. sql-lora=3)"
                )));
            }
            members.push(Member {
                name: name.to_string(),
                url: None,
                model: Some(name.to_string()),
                weight,
                role: Role::Adapter,
                api: None,
                concurrency: None,
            });
        }
        if members.is_empty() {
            return Err(MixError(
                "no adapter given (expected ADAPTER=WEIGHT,...)".into(),
            ));
        }
        if let Some(w) = base_weight {
            if !(w.is_finite() && w > 0.0) {
                return Err(MixError(format!(
                    "base model weight {w}: expected a number above 0"
                )));
            }
            members.push(Member {
                name: BASE_MEMBER.into(),
                url: None,
                model: None,
                weight: w,
                role: Role::Base,
                api: None,
                concurrency: None,
            });
        }
        distinct(&members)?;
        Ok(Mix {
            kind: MixKind::Adapters,
            members,
        })
    }

    /// Each member's share of the requests: its weight over the total.
    pub fn shares(&self) -> Vec<f64> {
        let total: f64 = self.members.iter().map(|m| m.weight).sum();
        self.members.iter().map(|m| m.weight / total).collect()
    }

    /// The weights, in member order.
    pub fn weights(&self) -> Vec<f64> {
        self.members.iter().map(|m| m.weight).collect()
    }

    /// The `--lora-mix` text of an adapter mix (canonical: `name=weight` joined by commas,
    /// without the base member), as recorded in the results' config.
    pub fn adapters_text(&self) -> String {
        self.members
            .iter()
            .filter(|m| m.role == Role::Adapter)
            .map(|m| format!("{}={}", m.name, m.weight))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The name of a LoRA mix's base-model control stream.
pub const BASE_MEMBER: &str = "base";

fn distinct(members: &[Member]) -> Result<(), MixError> {
    for (i, m) in members.iter().enumerate() {
        if members[..i].iter().any(|o| o.name == m.name) {
            return Err(MixError(format!("{:?} is named twice", m.name)));
        }
    }
    Ok(())
}

fn parse_weight(name: &str, text: &str) -> Result<f64, MixError> {
    match text.parse::<f64>() {
        Ok(w) if w.is_finite() && w > 0.0 => Ok(w),
        _ => Err(MixError(format!(
            "{name}: weight {text:?} is not a number above 0"
        ))),
    }
}

/// One `--target`: `name=Flash,url=http://host:8081,model=llama-7b,weight=0.7,api=llamacpp`
/// (keys in any order; `weight` defaults to 1; `name` to the URL's host:port; `api` to the
/// run's `--api`).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    /// Its name.
    pub name: String,
    /// The server's base URL.
    pub url: String,
    /// The model (or adapter) requests name.
    pub model: String,
    /// Its relative share of the requests.
    pub weight: f64,
    /// Its serving API; `None`: the run's `--api`.
    pub api: Option<crate::api::Api>,
    /// Its own requests in flight; `None`: a share of the run's `--concurrency` by weight.
    pub concurrency: Option<u32>,
}

impl FromStr for TargetSpec {
    type Err = MixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut name, mut url, mut model, mut weight, mut api, mut concurrency) =
            (None, None, None, None, None, None);
        // a part is never echoed: it may be a piece of a URL's password that held a comma
        for (n, part) in s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let Some((k, v)) = part.split_once('=') else {
                return Err(MixError(format!(
                    "item {} is not KEY=VALUE (KEY one of name, url, model, weight, api, concurrency; a comma inside a URL must be written %2C)",
                    n + 1
                )));
            };
            let v = v.trim();
            let slot = match k.trim() {
                "name" => &mut name,
                "url" => &mut url,
                "model" => &mut model,
                "weight" => &mut weight,
                "api" => &mut api,
                "concurrency" => &mut concurrency,
                _ => {
                    return Err(MixError(format!(
                        "item {} has an unknown key: expected name, url, model, weight, api or concurrency",
                        n + 1
                    )));
                }
            };
            if slot.replace(v.to_string()).is_some() {
                return Err(MixError(format!("{:?} given twice", k.trim())));
            }
        }
        let url = url.ok_or_else(|| MixError("no url= given".into()))?;
        let model = model.ok_or_else(|| MixError("no model= given".into()))?;
        let name = match name {
            Some(n) if !n.is_empty() => n,
            Some(_) => return Err(MixError("name= is empty".into())),
            None => url
                .split("://")
                .nth(1)
                .unwrap_or(&url)
                .split('/')
                .next()
                .unwrap_or(&url)
                .rsplit('@')
                .next()
                .unwrap_or(&url)
                .to_string(),
        };
        let weight = match weight {
            Some(w) => parse_weight(&name, &w)?,
            None => 1.0,
        };
        let api = api
            .map(|a| {
                a.parse::<crate::api::Api>()
                    .map_err(|e| MixError(format!("{name}: api: {e}")))
            })
            .transpose()?;
        let concurrency = match concurrency {
            Some(c) => match c.parse::<u32>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(MixError(format!(
                        "{name}: concurrency {c:?} is not a whole number above 0"
                    )));
                }
            },
            None => None,
        };
        Ok(TargetSpec {
            name,
            url,
            model,
            weight,
            api,
            concurrency,
        })
    }
}

impl fmt::Display for TargetSpec {
    /// The spec back as text, with the URL as given (redact before showing).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "name={},url={},model={},weight={}",
            self.name, self.url, self.model, self.weight
        )?;
        if let Some(a) = self.api {
            write!(f, ",api={a}")?;
        }
        match self.concurrency {
            Some(n) => write!(f, ",concurrency={n}"),
            None => Ok(()),
        }
    }
}

/// A smooth weighted round robin (nginx's): each turn every member gains its weight, the one
/// with the most goes and loses the total. After any n turns a member has had within two turns
/// of `n x weight / total` (within one for most weights), and members are interleaved rather
/// than sent in blocks.
#[derive(Debug, Clone)]
pub struct Picker {
    weights: Vec<f64>,
    total: f64,
    current: Vec<f64>,
}

impl Picker {
    /// A picker over `weights` (each > 0; at least one).
    pub fn new(weights: Vec<f64>) -> Picker {
        let total = weights.iter().sum();
        let current = vec![0.0; weights.len()];
        Picker {
            weights,
            total,
            current,
        }
    }

    /// The next member's index.
    pub fn next_member(&mut self) -> usize {
        for (c, w) in self.current.iter_mut().zip(&self.weights) {
            *c += w;
        }
        // the first of the largest: ties go to the earlier member
        let mut best = 0;
        for i in 1..self.current.len() {
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_in_any_order_with_defaults() {
        let t: TargetSpec = "url=http://127.0.0.1:8081/,model=m,name=Flash,weight=0.7"
            .parse()
            .unwrap();
        assert_eq!(
            t,
            TargetSpec {
                name: "Flash".into(),
                url: "http://127.0.0.1:8081/".into(),
                model: "m".into(),
                weight: 0.7,
                api: None,
                concurrency: None,
            }
        );
        let t: TargetSpec = "url=http://h:1,model=m,concurrency=6".parse().unwrap();
        assert_eq!(t.concurrency, Some(6));
        assert!(t.to_string().ends_with(",concurrency=6"));
        let half = vec![
            "url=http://a:1,model=m,concurrency=2".parse().unwrap(),
            "url=http://b:1,model=m".parse().unwrap(),
        ];
        assert!(
            Mix::targets(half)
                .unwrap_err()
                .0
                .contains("every target or to none")
        );
        let t: TargetSpec = "url=http://h:1,model=m,api=llamacpp".parse().unwrap();
        assert_eq!(t.api, Some(crate::api::Api::Llamacpp));
        assert!(t.to_string().ends_with(",api=llamacpp"));
        let t: TargetSpec = "url=http://u:p@h:9/v,model=m".parse().unwrap();
        assert_eq!((t.name.as_str(), t.weight), ("h:9", 1.0));
        for (bad, why) in [
            ("url=http://h,model=m,weight=0", "above 0"),
            ("url=http://h,model=m,weight=x", "above 0"),
            ("url=http://h", "no model"),
            ("model=m", "no url"),
            (
                "url=http://h,model=m,colour=red",
                "item 3 has an unknown key",
            ),
            ("url=http://u:pa,ss@h,model=m", "item 2 is not KEY=VALUE"),
            ("url=http://h,model=m,url=http://i", "given twice"),
            ("url=http://h,model=m,name=", "empty"),
            ("url=http://h,model=m,api=grpc", "api: unknown API \"grpc\""),
            (
                "url=http://h,model=m,concurrency=0",
                "not a whole number above 0",
            ),
            ("http://h", "item 1 is not KEY=VALUE"),
        ] {
            let e = bad.parse::<TargetSpec>().unwrap_err().0;
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn lora_mixes_parse_with_an_optional_base_stream() {
        let m = Mix::adapters("a=3, b=1,c", Some(0.5)).unwrap();
        let names: Vec<_> = m.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "base"]);
        assert_eq!(m.weights(), [3.0, 1.0, 1.0, 0.5]);
        assert_eq!(m.members[3].role, Role::Base);
        assert_eq!(m.members[3].model, None);
        assert_eq!(m.adapters_text(), "a=3,b=1,c=1");
        let shares = m.shares();
        assert!((shares[0] - 3.0 / 5.5).abs() < 1e-12);
        for (bad, why) in [
            ("a=3,a=1", "named twice"),
            ("a=-1", "above 0"),
            ("", "no adapter"),
            ("=2", "expected ADAPTER=WEIGHT"),
        ] {
            let e = Mix::adapters(bad, None).unwrap_err().0;
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(Mix::adapters("a", Some(0.0)).is_err());
        assert!(Mix::adapters("base=1", Some(1.0)).is_err());
    }

    #[test]
    fn the_picker_keeps_every_prefix_within_one_request_of_the_weights() {
        for weights in [
            vec![1.0, 1.0],
            vec![0.3, 0.7],
            vec![5.0, 1.0, 1.0],
            vec![0.01, 1.0, 2.5, 7.0],
        ] {
            let total: f64 = weights.iter().sum();
            let mut p = Picker::new(weights.clone());
            let mut counts = vec![0u64; weights.len()];
            for n in 1..=2000u64 {
                counts[p.next_member()] += 1;
                for (c, w) in counts.iter().zip(&weights) {
                    let ideal = n as f64 * w / total;
                    assert!(
                        (*c as f64 - ideal).abs() <= 1.0 + 1e-9,
                        "{weights:?} after {n}: {counts:?}"
                    );
                }
            }
        }
        // uneven weights (one request above its share at worst in this case: 1.125), and
        // seeded random ones: never two requests off
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut cases = vec![vec![0.1, 0.1, 1.0, 9.0, 9.0]];
        cases.extend((0..50).map(|_| (0..5).map(|_| 0.01 + 10.0 * rnd()).collect()));
        for weights in cases {
            let total: f64 = weights.iter().sum();
            let mut p = Picker::new(weights.clone());
            let mut counts = vec![0u64; weights.len()];
            for n in 1..=2000u64 {
                counts[p.next_member()] += 1;
                for (c, w) in counts.iter().zip(&weights) {
                    let off = (*c as f64 - n as f64 * w / total).abs();
                    assert!(off < 2.0, "{weights:?} after {n}: {counts:?}");
                }
            }
        }
        // interleaved, not in blocks: 1:1 alternates
        let mut p = Picker::new(vec![1.0, 1.0]);
        let seq: Vec<usize> = (0..6).map(|_| p.next_member()).collect();
        assert_eq!(seq, [0, 1, 0, 1, 0, 1]);
    }
}
