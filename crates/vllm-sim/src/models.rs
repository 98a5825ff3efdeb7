//! The served models: the base model and its LoRA adapters, `/v1/models`, name lookup.
//!
//! `/v1/models` has the real vLLM's shape: the base (`parent: null`, `max_model_len` set)
//! then each adapter (`parent` = base name, `root` = adapter path, `max_model_len: null`),
//! each with one `permission` entry.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::config::SimConfig;

/// A model a request may name.
#[derive(Debug, Clone)]
pub(crate) struct ModelRef {
    /// The name as served (echoed in responses' `model` field).
    pub(crate) name: Arc<str>,
    /// Index of the adapter in `--lora-modules`, `None` for the base model.
    pub(crate) lora: Option<usize>,
}

/// The model registry, fixed at start.
#[derive(Debug)]
pub(crate) struct Models {
    base: ModelRef,
    adapters: Vec<ModelRef>,
    list_body: Bytes,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelCard<'a>>,
}

#[derive(Serialize)]
struct ModelCard<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
    root: &'a str,
    parent: Option<&'a str>,
    max_model_len: Option<u32>,
    permission: [Permission; 1],
}

#[derive(Serialize)]
struct Permission {
    id: String,
    object: &'static str,
    created: u64,
    allow_create_engine: bool,
    allow_sampling: bool,
    allow_logprobs: bool,
    allow_search_indices: bool,
    allow_view: bool,
    allow_fine_tuning: bool,
    organization: &'static str,
    group: Option<String>,
    is_blocking: bool,
}

impl Permission {
    fn new(seed: u64, index: usize, created: u64) -> Self {
        let id = crate::faults::splitmix64(seed ^ 0x6d6f_6465_6c70_6572 ^ index as u64);
        Self {
            id: format!("modelperm-{id:016x}"),
            object: "model_permission",
            created,
            allow_create_engine: false,
            allow_sampling: true,
            allow_logprobs: true,
            allow_search_indices: false,
            allow_view: true,
            allow_fine_tuning: false,
            organization: "*",
            group: None,
            is_blocking: false,
        }
    }
}

impl Models {
    /// Builds the registry; `created` is the unix time shown in `/v1/models`.
    pub(crate) fn new(config: &SimConfig, created: u64) -> Self {
        let base = ModelRef {
            name: Arc::from(config.served_model_name.as_str()),
            lora: None,
        };
        let adapters = config
            .lora_modules
            .iter()
            .enumerate()
            .map(|(i, m)| ModelRef {
                name: Arc::from(m.name.as_str()),
                lora: Some(i),
            })
            .collect();
        let mut data = vec![ModelCard {
            id: &config.served_model_name,
            object: "model",
            created,
            owned_by: "vllm",
            root: &config.model_root,
            parent: None,
            max_model_len: Some(config.max_model_len),
            permission: [Permission::new(config.seed, 0, created)],
        }];
        data.extend(
            config
                .lora_modules
                .iter()
                .enumerate()
                .map(|(i, m)| ModelCard {
                    id: &m.name,
                    object: "model",
                    created,
                    owned_by: "vllm",
                    root: &m.path,
                    parent: Some(&config.served_model_name),
                    max_model_len: None,
                    permission: [Permission::new(config.seed, i + 1, created)],
                }),
        );
        let list = ModelList {
            object: "list",
            data,
        };
        // Serializing plain strings, numbers and options cannot fail.
        let list_body = serde_json::to_vec(&list)
            .map(Bytes::from)
            .unwrap_or_default();
        Self {
            base,
            adapters,
            list_body,
        }
    }

    /// The `/v1/models` body.
    pub(crate) fn list_body(&self) -> Bytes {
        self.list_body.clone()
    }

    /// The base model.
    pub(crate) fn base(&self) -> &ModelRef {
        &self.base
    }

    /// Looks a requested name up; `None` (no `model` field) means the base, as in vLLM.
    pub(crate) fn resolve(&self, requested: Option<&str>) -> Option<&ModelRef> {
        match requested {
            None => Some(&self.base),
            Some(name) if name == &*self.base.name => Some(&self.base),
            Some(name) => self.adapters.iter().find(|m| &*m.name == name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_base_then_adapters_and_resolves_names() {
        let models = Models::new(&SimConfig::default(), 1_700_000_000);
        let v: serde_json::Value = serde_json::from_slice(&models.list_body()).expect("json");
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][0]["id"], "tiny-base");
        assert_eq!(v["data"][0]["parent"], serde_json::Value::Null);
        assert_eq!(v["data"][0]["max_model_len"], 1024);
        assert_eq!(v["data"][1]["id"], "candidate");
        assert_eq!(v["data"][1]["parent"], "tiny-base");
        assert_eq!(v["data"][1]["root"], "/models/lora");
        assert_ne!(
            v["data"][0]["permission"][0]["id"],
            v["data"][1]["permission"][0]["id"]
        );
        assert_eq!(
            models.resolve(Some("candidate")).and_then(|m| m.lora),
            Some(0)
        );
        assert_eq!(models.resolve(None).map(|m| m.lora), Some(None));
        assert!(models.resolve(Some("nope")).is_none());
    }
}
