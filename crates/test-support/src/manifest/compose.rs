//! A Compose file's services that run the gate's image: their command (a list: a string would be
//! split by a shell) and environment (a map or a `KEY=VALUE` list). Compose's `${VAR}`
//! interpolation is not rendered: a value using it is an error.

use std::path::Path;

use serde_norway::Value;

use super::ManifestError;
use super::k8s::is_gate_image;
use super::scan::Invocation;

/// Whether a document is a Compose file (top-level `services`, no `kind`).
pub fn is_compose(doc: &Value) -> bool {
    doc.get("services").is_some_and(Value::is_mapping) && doc.get("kind").is_none()
}

/// (invocations of the gate's binaries, other services as `service NAME (image …)`).
pub fn services(path: &Path, doc: &Value) -> Result<(Vec<Invocation>, Vec<String>), ManifestError> {
    let invalid = |what: String| ManifestError::invalid(path, what);
    let mut ours = Vec::new();
    let mut foreign = Vec::new();
    let Some(services) = doc.get("services").and_then(Value::as_mapping) else {
        return Ok((ours, foreign));
    };
    for (name, svc) in services {
        let name = name.as_str().unwrap_or("?");
        let image = svc.get("image").and_then(Value::as_str).unwrap_or("");
        if !is_gate_image(image) {
            foreign.push(format!(
                "{}: service {name} (image {image})",
                path.display()
            ));
            continue;
        }
        let argv: Vec<String> = match svc.get("command") {
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|v| {
                    scalar(v).ok_or_else(|| {
                        invalid(format!("services.{name}.command: not a list of strings"))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(invalid(format!(
                    "services.{name}.command: use a list (a string is split by a shell)"
                )));
            }
            None => {
                return Err(invalid(format!(
                    "services.{name}: the gate's image has no default command; give one"
                )));
            }
        };
        let mut env = Vec::new();
        match svc.get("environment") {
            None => {}
            Some(Value::Mapping(m)) => {
                for (k, v) in m {
                    let k = k.as_str().unwrap_or("?").to_string();
                    let v = if v.is_null() { None } else { scalar(v) };
                    env.push((k, v));
                }
            }
            Some(Value::Sequence(items)) => {
                for item in items {
                    let s = item.as_str().ok_or_else(|| {
                        invalid(format!(
                            "services.{name}.environment: not KEY=VALUE strings"
                        ))
                    })?;
                    match s.split_once('=') {
                        Some((k, v)) => env.push((k.to_string(), Some(v.to_string()))),
                        None => env.push((s.to_string(), None)),
                    }
                }
            }
            Some(_) => {
                return Err(invalid(format!(
                    "services.{name}.environment: a map or a list"
                )));
            }
        }
        if argv
            .iter()
            .chain(env.iter().filter_map(|(_, v)| v.as_ref()))
            .any(|s| s.contains('$'))
        {
            return Err(invalid(format!(
                "services.{name}: `$` interpolation is not rendered"
            )));
        }
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| invalid(format!("services.{name}.command is empty")))?;
        ours.push(Invocation {
            origin: format!("{}: service {name}", path.display()),
            program: program.rsplit('/').next().unwrap_or(program).to_string(),
            args: args.to_vec(),
            env,
            rendered: true,
        });
    }
    Ok((ours, foreign))
}

/// A scalar as the string Compose passes (numbers and booleans as YAML spells them).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
