//! `--config FILE`: a YAML file that can hold any flag of a binary, layered under the command
//! line and the env vars: **command line > env var > file > default**.
//!
//! The file is a flat mapping whose keys are the long flag names (`max-tokens`, or `max_tokens`);
//! a value is a scalar, `true`/`false` for a switch (`vllm-insecure-tls: true`), or a list for a
//! repeatable flag (`threshold: ["ttft_p95<2s", "error_rate<5%"]`). Nothing here knows a flag:
//! the keys are looked up in the clap [`Command`] (a flag another engineer adds tomorrow is a
//! valid key at once), and the values go through clap's own parsers. How:
//!
//! 1. a lenient parse ([`Command::ignore_errors`]) finds `--config` (or its env var) and which
//!    flags the command line or an env var already set;
//! 2. each key of the file whose flag was not set that way becomes `--key=value` (`--flag` for a
//!    switch, once per item for a list), inserted before the user's arguments;
//! 3. the real parse runs over those, so a bad value in the file fails as it would on the
//!    command line, named with its key and file.
//!
//! Each binary gives `--config` its own env var (`LOAD_TEST_CONFIG`, `PERF_DECISION_CONFIG`),
//! not a shared one: a shell or pod may run both steps, and one step's file is full of keys the
//! other does not know. A subcommand (`perf-decision override`) reads no file.
//!
//! Secrets are refused in the file: a flag whose env value is hidden (`hide_env_values`: API
//! key, token, password, the one list both binaries keep) must come from its env var, so a
//! committed config never holds one. [`effective`] records every flag's value after precedence
//! and its source (`cli`, `env`, `file`, `preset`, `default`) for `config.json`, with secrets shown as
//! `<redacted>` and URL credentials redacted.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};
use serde_json::{Value, json};

/// The id and long name of the config flag every binary declares (`--config PATH`).
pub const CONFIG_ARG: &str = "config";

/// Version of the `config.json` layout.
pub const SCHEMA_VERSION: u32 = 1;

pub use perf_gate::step::CONFIG_RECORD_FILE;

/// Shown instead of a secret's value.
const REDACTED: &str = "<redacted>";

/// A command line after the config file was layered under it.
#[derive(Debug)]
pub struct Layered {
    /// The matches of the final parse.
    pub matches: ArgMatches,
    /// The `config.json` record ([`effective`]).
    pub effective: Value,
}

/// A preset's flag values: (long name without `--`, value as on the command line).
pub type PresetFlags = &'static [(&'static str, &'static str)];

/// Named presets of flag values (`load-test --scenario NAME`): a layer under the config file,
/// **command line > env var > file > preset > default**. A preset's flag is dropped when the
/// layers above set it, or set another flag of one of its [`Presets::groups`] (alternatives
/// such as `--duration` and `--num-requests`: a user's `--num-requests 5` replaces a preset's
/// duration rather than clashing with it). The groups hold for the file too: a command-line or
/// env flag replaces the file's alternatives to it.
#[derive(Debug, Clone, Copy)]
pub struct Presets {
    /// The id (and long name) of the flag that names the preset.
    pub arg: &'static str,
    /// A preset's flag values (long names without `--`), or why the name is unknown.
    pub lookup: fn(&str) -> Result<PresetFlags, String>,
    /// Groups of flags (long names) that stand for one another.
    pub groups: &'static [&'static [&'static str]],
}

/// [`crate::env::try_parse`] with the config file: the command line, env vars (an empty one
/// counts as unset) and `--config`'s file, parsed into `T`, and the `config.json` record.
pub fn try_parse<T: clap::Parser>() -> Result<(T, Value), clap::Error> {
    try_parse_with::<T>(None)
}

/// [`try_parse`] with a layer of `presets` under the file.
pub fn try_parse_with<T: clap::Parser>(
    presets: Option<&Presets>,
) -> Result<(T, Value), clap::Error> {
    let cmd = T::command();
    crate::env::register_secret_args(&cmd, std::env::args_os());
    let layered = get_matches_with(
        crate::env::empty_env_as_unset(cmd),
        std::env::args_os(),
        presets,
    )?;
    let parsed = T::from_arg_matches(&layered.matches)?;
    Ok((parsed, layered.effective))
}

/// Parses `args` (the program name first) with `cmd`, layering the config file of `--config`
/// (or its env var) under the command line and the env vars. A problem with the file comes back
/// as a clap error (exit code 2) whose one line names the file.
pub fn get_matches_from(
    cmd: Command,
    args: impl IntoIterator<Item = OsString>,
) -> Result<Layered, clap::Error> {
    get_matches_with(cmd, args, None)
}

/// [`get_matches_from`] with a layer of `presets` under the file.
pub fn get_matches_with(
    cmd: Command,
    args: impl IntoIterator<Item = OsString>,
    presets: Option<&Presets>,
) -> Result<Layered, clap::Error> {
    let args: Vec<OsString> = args.into_iter().collect();
    let file = config_path(&cmd, &args);
    if file.is_none() && presets.is_none() {
        let matches = cmd.clone().try_get_matches_from(&args)?;
        let effective = effective(&cmd, &matches, None);
        return Ok(Layered { matches, effective });
    }
    let given = cmd
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(&args)?;
    let mut from_file = FileValues::default();
    if let Some(file) = &file {
        let text = std::fs::read_to_string(&file.path).map_err(|e| {
            config_error(
                &file.path,
                format_args!("cannot read it: {e} (from {})", file.from),
            )
        })?;
        let groups = presets.map_or(&[][..], |p| p.groups);
        for entry in read_entries(&cmd, &file.path, &text)? {
            let set_elsewhere = matches!(
                given.value_source(entry.id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            // an alternative given on the command line or by env replaces the file's (its
            // --prompt-text over the file's eval-data-path, its --duration over the stages)
            let replaced = groups
                .iter()
                .filter(|g| g.contains(&entry.long.as_str()))
                .flat_map(|g| g.iter())
                .filter(|other| **other != entry.long)
                .any(|other| set_on_command_line_or_env(&cmd, &given, other));
            if !set_elsewhere && !replaced {
                from_file.ids.insert(entry.id.clone());
                from_file.keys.insert(entry.long.clone(), entry.key.clone());
                from_file.args.extend(entry.args);
            }
        }
    }
    let mut layered_args = Vec::with_capacity(args.len() + from_file.args.len());
    layered_args.extend(args.first().cloned());
    layered_args.extend(from_file.args.iter().map(OsString::from));
    layered_args.extend(args.iter().skip(1).cloned());
    let mut preset_ids = BTreeSet::new();
    if let Some(p) = presets {
        let preset = preset_args(&cmd, &given, &from_file.ids, &layered_args, p)?;
        preset_ids = preset.0;
        layered_args.splice(1..1, preset.1.into_iter().map(OsString::from));
    }
    let matches = match &file {
        Some(file) => cmd
            .clone()
            .try_get_matches_from(layered_args)
            .map_err(|e| blame_file(e, &file.path, &from_file))?,
        None => cmd.clone().try_get_matches_from(layered_args)?,
    };
    let mut effective = effective(
        &cmd,
        &matches,
        file.as_ref().map(|f| (f.path.as_path(), &from_file.ids)),
    );
    for id in &preset_ids {
        let name = cmd
            .get_arguments()
            .find(|a| a.get_id().as_str() == id)
            .and_then(|a| a.get_long())
            .unwrap_or(id);
        if let Some(v) = effective["values"].get_mut(name) {
            v["source"] = json!("preset");
        }
    }
    Ok(Layered { matches, effective })
}

/// Whether the flag `long` was given on the command line or by an env var.
fn set_on_command_line_or_env(cmd: &Command, given: &ArgMatches, long: &str) -> bool {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .is_some_and(|a| {
            matches!(
                given.value_source(a.get_id().as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
}

/// The ids and `--long=value` arguments of the preset the layers name, less the flags they set
/// (or set an alternative of); none when no preset is named.
fn preset_args(
    cmd: &Command,
    given: &ArgMatches,
    file_ids: &BTreeSet<String>,
    layered_args: &[OsString],
    p: &Presets,
) -> Result<(BTreeSet<String>, Vec<String>), clap::Error> {
    let lenient = cmd
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(layered_args)?;
    let Some(name) = lenient
        .try_get_raw(p.arg)
        .ok()
        .flatten()
        .and_then(|mut r| r.next_back())
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| !v.is_empty())
    else {
        return Ok(Default::default());
    };
    let refused =
        |why: String| clap::Error::raw(ErrorKind::InvalidValue, format!("--{}: {why}\n", p.arg));
    let pairs = (p.lookup)(&name).map_err(refused)?;
    let long_of = |long: &str| cmd.get_arguments().find(|a| a.get_long() == Some(long));
    let set_above = |long: &str| {
        long_of(long).is_some_and(|a| {
            let id = a.get_id().as_str();
            file_ids.contains(id)
                || matches!(
                    given.value_source(id),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
        })
    };
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    for (long, value) in pairs {
        let Some(arg) = long_of(long) else {
            return Err(refused(format!(
                "preset {name:?} sets --{long}, which this program does not have"
            )));
        };
        let replaced = set_above(long)
            || p.groups
                .iter()
                .filter(|g| g.contains(long))
                .any(|g| g.iter().any(|other| set_above(other)));
        if !replaced {
            ids.insert(arg.get_id().as_str().to_string());
            out.push(format!("--{long}={value}"));
        }
    }
    Ok((ids, out))
}

/// The value the config file (of `--config` or its env var) gives `long`, read leniently: for
/// a binary that must find, say, its output directory when the command line is refused. `None`
/// when there is no file, it cannot be read, or it does not set `long` to a scalar.
pub fn lenient_value(
    cmd: &Command,
    args: impl IntoIterator<Item = OsString>,
    long: &str,
) -> Option<String> {
    // a raw scan: a refused argument stops even clap's lenient parse
    let mut path = None;
    let mut args = args.into_iter().skip(1);
    while let Some(a) = args.next() {
        let a = a.to_string_lossy().into_owned();
        if a == "--" {
            break;
        } else if a == format!("--{CONFIG_ARG}") {
            path = args.next();
        } else if let Some(v) = a.strip_prefix(&format!("--{CONFIG_ARG}=")) {
            path = Some(v.into());
        }
    }
    let env = || {
        let arg = cmd.get_arguments().find(|a| a.get_id() == CONFIG_ARG)?;
        std::env::var_os(arg.get_env()?)
    };
    let path = path.or_else(env).filter(|p| !p.is_empty())?;
    let text = std::fs::read_to_string(path).ok()?;
    let doc: serde_norway::Mapping = serde_norway::from_str(&text).ok()?;
    doc.iter()
        .find(|(k, _)| k.as_str().is_some_and(|k| k.replace('_', "-") == long))
        .and_then(|(_, v)| scalar(v).ok())
}

/// Where the config file is named: its path and `--config` or the env var's name.
struct ConfigPath {
    path: PathBuf,
    from: String,
}

/// The file `--config` (last one wins) or its env var names; `None` when the command has no
/// config flag, neither is given, or a subcommand runs (the file holds the step's flags).
fn config_path(cmd: &Command, args: &[OsString]) -> Option<ConfigPath> {
    let arg = cmd.get_arguments().find(|a| a.get_id() == CONFIG_ARG)?;
    // lenient: a refused command line is reported by the real parse, with the file or without
    let m = cmd
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(args)
        .ok()?;
    if m.subcommand_name().is_some() {
        return None;
    }
    let raw = m.try_get_raw(CONFIG_ARG).ok()??.next_back()?.to_owned();
    if raw.is_empty() {
        return None;
    }
    let from = match (m.value_source(CONFIG_ARG), arg.get_env()) {
        (Some(ValueSource::EnvVariable), Some(var)) => var.to_string_lossy().into_owned(),
        _ => format!("--{CONFIG_ARG}"),
    };
    Some(ConfigPath {
        path: PathBuf::from(raw),
        from,
    })
}

/// What the file sets (the flags not set on the command line or by an env var).
#[derive(Debug, Default)]
struct FileValues {
    /// Arg ids.
    ids: BTreeSet<String>,
    /// Long name → the key as the file spells it (for messages).
    keys: BTreeMap<String, String>,
    /// `--long=value` and `--flag` arguments.
    args: Vec<String>,
}

/// One key of the file, checked, as arguments.
struct Entry {
    key: String,
    id: String,
    long: String,
    args: Vec<String>,
}

/// The file's keys, each checked against `cmd` and turned into arguments.
fn read_entries(cmd: &Command, path: &Path, text: &str) -> Result<Vec<Entry>, clap::Error> {
    let doc: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" (line {})", l.line()))
            .unwrap_or_default();
        let why = e.to_string();
        let why = why.split(" at line ").next().unwrap_or(&why).to_string();
        config_error(path, format_args!("not valid YAML: {why}{at}"))
    })?;
    let map = match doc {
        serde_norway::Value::Null => return Ok(Vec::new()),
        serde_norway::Value::Mapping(m) => m,
        _ => {
            return Err(config_error(
                path,
                "expected a mapping of flag names to values (`max-tokens: 256`)",
            ));
        }
    };
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut entries = Vec::new();
    for (k, v) in map {
        let Some(key) = k.as_str().map(str::to_string) else {
            return Err(config_error(
                path,
                format_args!("a key is not a flag name: {}", short_yaml(&k)),
            ));
        };
        let at = line_of(text, &key)
            .map(|n| format!(" (line {n})"))
            .unwrap_or_default();
        let name = key.replace('_', "-");
        let Some(arg) = cmd.get_arguments().find(|a| {
            a.get_long() == Some(name.as_str())
                || a.get_all_aliases()
                    .is_some_and(|al| al.contains(&name.as_str()))
        }) else {
            let hint = did_you_mean(cmd, &name)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(config_error(
                path,
                format_args!("unknown key `{key}`{at}{hint}"),
            ));
        };
        let long = arg.get_long().unwrap_or(name.as_str()).to_string();
        let id = arg.get_id().as_str().to_string();
        if id == CONFIG_ARG {
            return Err(config_error(
                path,
                format_args!("`{key}`{at}: a config file cannot name another"),
            ));
        }
        if arg.is_hide_env_values_set() {
            let via = arg
                .get_env()
                .map(|v| format!("set {}", v.to_string_lossy()))
                .unwrap_or_else(|| format!("pass --{long}"));
            return Err(config_error(
                path,
                format_args!(
                    "`{key}`{at} is a secret and is not read from a config file (a file gets committed): {via} instead"
                ),
            ));
        }
        if let Some(earlier) = seen.insert(id.clone(), key.clone()) {
            return Err(config_error(
                path,
                format_args!("`{earlier}` and `{key}`{at} set the same flag --{long}"),
            ));
        }
        let args = to_args(arg, &long, &v)
            .map_err(|why| config_error(path, format_args!("`{key}`{at}: {why}")))?;
        entries.push(Entry {
            key,
            id,
            long,
            args,
        });
    }
    Ok(entries)
}

/// The arguments a value of the file stands for, or why it does not fit the flag.
fn to_args(
    arg: &clap::Arg,
    long: &str,
    value: &serde_norway::Value,
) -> Result<Vec<String>, String> {
    use serde_norway::Value as Y;
    let flag = format!("--{long}");
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => {
            let Y::Bool(b) = value else {
                return Err(format!("expected true or false, got {}", short_yaml(value)));
            };
            let set = matches!(arg.get_action(), ArgAction::SetTrue) == *b;
            Ok(if set { vec![flag] } else { Vec::new() })
        }
        ArgAction::Count => match value.as_u64() {
            Some(n) if n <= 16 => Ok(vec![flag; usize::try_from(n).unwrap_or(0)]),
            _ => Err(format!("expected a count, got {}", short_yaml(value))),
        },
        ArgAction::Append => {
            let items: Vec<&Y> = match value {
                Y::Sequence(s) => s.iter().collect(),
                other => vec![other],
            };
            items
                .into_iter()
                .map(|v| item(v).map(|s| format!("{flag}={s}")))
                .collect()
        }
        ArgAction::Set => match value {
            Y::Sequence(_) => Err(format!(
                "--{long} takes one value, not a list ({})",
                short_yaml(value)
            )),
            v => scalar(v).map(|s| vec![format!("{flag}={s}")]),
        },
        _ => Err(format!("--{long} cannot be set in a config file")),
    }
}

/// An item of a repeatable flag as the command line would spell it: a scalar as itself, a
/// mapping of scalars as `key=value` pairs joined by commas (`{name: Flash, weight: 0.7}` is
/// `name=Flash,weight=0.7`, the form of `--target`).
fn item(v: &serde_norway::Value) -> Result<String, String> {
    let serde_norway::Value::Mapping(m) = v else {
        return scalar(v);
    };
    let mut pairs = Vec::with_capacity(m.len());
    for (k, v) in m {
        let k = scalar(k)?;
        let v = scalar(v).map_err(|e| format!("{k}: {e}"))?;
        pairs.push(format!("{k}={v}"));
    }
    if pairs.is_empty() {
        return Err("an empty mapping".into());
    }
    Ok(pairs.join(","))
}

/// A scalar as the command line would spell it.
fn scalar(v: &serde_norway::Value) -> Result<String, String> {
    use serde_norway::Value as Y;
    match v {
        Y::String(s) => Ok(s.clone()),
        Y::Number(n) => Ok(n.to_string()),
        Y::Bool(b) => Ok(b.to_string()),
        Y::Null => Err("no value (remove the key to keep the default)".into()),
        other => Err(format!("expected a value, got {}", short_yaml(other))),
    }
}

/// A YAML value shown in a message, on one line and short.
fn short_yaml(v: &serde_norway::Value) -> String {
    let text = serde_norway::to_string(v).unwrap_or_default();
    let line = text.trim().replace('\n', " ");
    let mut shown: String = line.chars().take(60).collect();
    if shown.len() < line.len() {
        shown.push('…');
    }
    match v {
        serde_norway::Value::Mapping(_) => format!("a mapping ({shown})"),
        serde_norway::Value::Sequence(_) => format!("a list ({shown})"),
        _ => shown,
    }
}

/// The 1-based line where `key` is defined at the top level (unindented, quoted or not).
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            ["", "\"", "'"].iter().any(|q| {
                l.strip_prefix(q)
                    .and_then(|r| r.strip_prefix(key))
                    .and_then(|r| r.strip_prefix(q))
                    .is_some_and(|r| r.trim_start().starts_with(':'))
            })
        })
        .map(|i| i + 1)
}

/// The long flag name nearest to `name` (edit distance at most a third of it, at least 2).
fn did_you_mean(cmd: &Command, name: &str) -> Option<String> {
    let limit = (name.chars().count() / 3).max(2);
    cmd.get_arguments()
        .filter(|a| a.get_id() != CONFIG_ARG && !a.is_hide_set())
        .filter_map(|a| a.get_long())
        .map(|l| (edit_distance(name, l), l))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, l)| l.to_string())
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A clap error (exit code 2) whose message is one line naming the file.
fn config_error(path: &Path, why: impl std::fmt::Display) -> clap::Error {
    clap::Error::raw(
        ErrorKind::InvalidValue,
        format!("config file {}: {why}\n", path.display()),
    )
}

/// A refused value that came from the file is reported as the file's, naming its key.
fn blame_file(e: clap::Error, path: &Path, from_file: &FileValues) -> clap::Error {
    let Some(ContextValue::String(invalid)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    let long = invalid
        .trim_start_matches('-')
        .split(['=', ' '])
        .next()
        .unwrap_or_default();
    let Some(key) = from_file.keys.get(long) else {
        return e;
    };
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let line = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| line_of(&t, key))
        .map(|n| format!(" (line {n})"))
        .unwrap_or_default();
    config_error(path, format_args!("`{key}`{line}: {first}"))
}

/// The `config.json` record: every flag of `cmd` (the top level) by its long name, with its
/// value after precedence and its source (`cli`, `env`, `file`, `default`); a secret's value
/// is `<redacted>`, URL credentials and queries are redacted, known secrets scrubbed.
pub fn effective(
    cmd: &Command,
    matches: &ArgMatches,
    file: Option<(&Path, &BTreeSet<String>)>,
) -> Value {
    let mut values = serde_json::Map::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        ) {
            continue;
        }
        let name = arg.get_long().unwrap_or(id).to_string();
        let source = match matches.value_source(id) {
            _ if file.is_some_and(|(_, ids)| ids.contains(id)) => "file",
            Some(ValueSource::CommandLine) => "cli",
            Some(ValueSource::EnvVariable) => "env",
            _ => "default",
        };
        let raw: Vec<String> = matches
            .try_get_raw(id)
            .ok()
            .flatten()
            .map(|r| r.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = if raw.is_empty() {
            // a switch the file turned off is not on the command line at all
            match arg.get_action() {
                ArgAction::SetTrue => json!(false),
                ArgAction::SetFalse => json!(true),
                ArgAction::Append => json!([]),
                _ => Value::Null,
            }
        } else if arg.is_hide_env_values_set() {
            json!(REDACTED)
        } else if let Ok(Some(on)) = matches.try_get_one::<bool>(id) {
            // a switch or a boolean flag as parsed, not its text: `IGNORE_EOS=y` and
            // `--preconnect=no` are recorded as what the run used
            json!(on)
        } else {
            match arg.get_action() {
                ArgAction::Count => json!(raw.len()),
                ArgAction::Append => Value::Array(raw.iter().map(|v| json!(clean(v))).collect()),
                _ => json!(clean(raw.last().map(String::as_str).unwrap_or_default())),
            }
        };
        values.insert(name, json!({ "value": value, "source": source }));
    }
    json!({
        "schema_version": SCHEMA_VERSION,
        "config_file": file.map(|(p, _)| p.display().to_string()),
        "values": values,
    })
}

/// A value with URL credentials and queries redacted and known secrets scrubbed.
fn clean(v: &str) -> String {
    let v = perf_gate::urls::redact_urls_in(v);
    perf_gate::secrets::scrub(&v).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// A command with each kind of flag. `PATH` is set in every test process, so `from-env`
    /// shows the env layer without setting a variable.
    #[derive(Debug, Parser)]
    #[command(name = "demo")]
    struct Demo {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value_t = 10)]
        concurrency: u32,
        #[arg(long, default_value_t = 256)]
        max_tokens: u32,
        #[arg(long)]
        url: Option<String>,
        #[arg(long, env = "PATH")]
        from_env: Option<String>,
        #[arg(long)]
        insecure: bool,
        #[arg(long, default_value_t = true, action = ArgAction::Set)]
        preconnect: bool,
        #[arg(long = "threshold")]
        thresholds: Vec<String>,
        #[arg(long, env = "PERF_GATE_CLI_CONFIG_DEMO_KEY", hide_env_values = true)]
        api_key: Option<String>,
    }

    /// The file `yaml` in a temp dir, and the parse of `args` with `--config` naming it.
    fn parse(yaml: &str, args: &[&str]) -> Result<(Demo, Value), clap::Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).unwrap();
        let mut all: Vec<OsString> = vec!["demo".into(), "--config".into(), path.into()];
        all.extend(args.iter().map(OsString::from));
        let layered = get_matches_from(Demo::command(), all)?;
        let demo = Demo::from_arg_matches(&layered.matches)?;
        Ok((demo, layered.effective))
    }

    fn message(e: &clap::Error) -> String {
        e.render().to_string()
    }

    use clap::FromArgMatches as _;

    #[test]
    fn a_mapping_is_written_as_key_value_pairs() {
        // a list of mappings for a repeatable flag (seed 002's `servers:`), one value each
        let yaml = "threshold:\n  - {name: Flash, url: 'http://h:1', weight: 0.7}\n  - name: Thinker\n    weight: 3\n";
        let (d, _) = parse(yaml, &[]).unwrap();
        assert_eq!(
            d.thresholds,
            [
                "name=Flash,url=http://h:1,weight=0.7",
                "name=Thinker,weight=3"
            ]
        );
        // a nested value is not a command-line value
        let e = parse("threshold: [{a: [1, 2]}]\n", &[]).unwrap_err();
        assert!(
            message(&e).contains("a: expected a value"),
            "{}",
            message(&e)
        );
    }

    #[test]
    fn file_values_lose_to_the_command_line_and_env_and_beat_defaults() {
        let yaml = "concurrency: 4\nmax_tokens: 32\nfrom-env: from-file\nurl: http://file:1\n";
        let (d, e) = parse(yaml, &["--url=http://cli:2"]).unwrap();
        assert_eq!((d.concurrency, d.max_tokens), (4, 32));
        assert_eq!(d.url.as_deref(), Some("http://cli:2"));
        assert_eq!(d.from_env, std::env::var("PATH").ok());
        let v = &e["values"];
        assert_eq!(v["concurrency"], json!({"value": "4", "source": "file"}));
        assert_eq!(v["max-tokens"], json!({"value": "32", "source": "file"}));
        assert_eq!(v["url"], json!({"value": "http://cli:2", "source": "cli"}));
        assert_eq!(v["from-env"]["source"], "env");
        assert_eq!(v["preconnect"], json!({"value": true, "source": "default"}));
        assert_eq!(v["insecure"], json!({"value": false, "source": "default"}));
        assert_eq!(v["api-key"], json!({"value": null, "source": "default"}));
        assert_eq!(v["threshold"], json!({"value": [], "source": "default"}));
        assert!(v.get("help").is_none());
        assert_eq!(v["config"]["source"], "cli");
        assert!(e["config_file"].as_str().unwrap().ends_with("c.yaml"));
        assert_eq!(e["schema_version"], 1);
        // the command line given after the file's values wins even for a repeatable flag
        let (d, _) = parse("threshold: [a<1]\n", &["--threshold=b<2"]).unwrap();
        assert_eq!(d.thresholds, ["b<2"]);
    }

    #[test]
    fn switches_set_bools_and_lists_repeat() {
        let yaml =
            "insecure: true\npreconnect: false\nthreshold:\n  - ttft_p95<2s\n  - error_rate<5%\n";
        let (d, e) = parse(yaml, &[]).unwrap();
        assert!(d.insecure && !d.preconnect);
        assert_eq!(d.thresholds, ["ttft_p95<2s", "error_rate<5%"]);
        let v = &e["values"];
        assert_eq!(v["insecure"], json!({"value": true, "source": "file"}));
        assert_eq!(v["preconnect"], json!({"value": false, "source": "file"}));
        assert_eq!(
            v["threshold"],
            json!({"value": ["ttft_p95<2s", "error_rate<5%"], "source": "file"})
        );
        // a single item without a list, and a switch turned off by the file
        let (d, e) = parse("threshold: rps>1\ninsecure: false\n", &[]).unwrap();
        assert_eq!(d.thresholds, ["rps>1"]);
        assert!(!d.insecure);
        assert_eq!(
            e["values"]["insecure"],
            json!({"value": false, "source": "file"})
        );
    }

    #[test]
    fn without_a_file_every_value_is_recorded_with_its_source() {
        let layered = get_matches_from(
            Demo::command(),
            ["demo", "--concurrency=3"].map(OsString::from),
        )
        .unwrap();
        let e = layered.effective;
        assert_eq!(e["config_file"], Value::Null);
        assert_eq!(e["values"]["concurrency"]["source"], "cli");
        assert_eq!(e["values"]["max-tokens"]["source"], "default");
    }

    #[test]
    fn an_unknown_key_is_one_line_with_its_line_and_a_suggestion() {
        let e = parse("concurrency: 2\nmax-token: 3\n", &[]).unwrap_err();
        let text = message(&e);
        assert_eq!(e.exit_code(), 2);
        assert!(
            text.starts_with("error: config file ")
                && text.contains(
                    "c.yaml: unknown key `max-token` (line 2); did you mean `max-tokens`?"
                ),
            "{text}"
        );
        assert_eq!(text.trim_end().lines().count(), 1, "{text}");
        let text = message(&parse("zzzzzz: 1\n", &[]).unwrap_err());
        assert!(text.contains("unknown key `zzzzzz` (line 1)\n"), "{text}");
    }

    #[test]
    fn wrong_types_and_bad_values_name_the_key_and_the_file() {
        for (yaml, want) in [
            (
                "insecure: yes please\n",
                "`insecure` (line 1): expected true or false",
            ),
            (
                "concurrency: [1, 2]\n",
                "`concurrency` (line 1): --concurrency takes one value, not a list",
            ),
            ("url:\n", "`url` (line 1): no value"),
            (
                "url: {a: 1}\n",
                "`url` (line 1): expected a value, got a mapping",
            ),
            (
                "\n\nconcurrency: many\n",
                "`concurrency` (line 3): invalid value 'many' for '--concurrency",
            ),
            ("[1, 2]\n", "expected a mapping of flag names to values"),
            ("a: [\n", "not valid YAML"),
            ("url: a\nurl: b\n", "not valid YAML"),
            (
                "max_tokens: 1\nmax-tokens: 2\n",
                "`max_tokens` and `max-tokens` (line 2) set the same flag --max-tokens",
            ),
            (
                "config: other.yaml\n",
                "`config` (line 1): a config file cannot name another",
            ),
        ] {
            let text = message(&parse(yaml, &[]).unwrap_err());
            assert!(text.starts_with("error: config file "), "{yaml:?}: {text}");
            assert!(text.contains(want), "{yaml:?}: {text}");
        }
        // a bad value given on the command line is still clap's own message
        let text = message(&parse("url: x\n", &["--concurrency=many"]).unwrap_err());
        assert!(!text.contains("config file"), "{text}");
    }

    #[test]
    fn a_secret_is_refused_in_the_file_and_never_echoed() {
        let text = message(&parse("api_key: sk-File-Secret-1\n", &[]).unwrap_err());
        assert!(
            text.contains("`api_key` (line 1) is a secret and is not read from a config file (a file gets committed): set PERF_GATE_CLI_CONFIG_DEMO_KEY instead"),
            "{text}"
        );
        assert!(!text.contains("sk-File-Secret-1"), "{text}");
        // given on the command line, it is used and recorded redacted
        let (d, e) = parse("url: http://u:Url-Pw-2@h:1/\n", &["--api-key=sk-Cli-1"]).unwrap();
        assert_eq!(d.api_key.as_deref(), Some("sk-Cli-1"));
        assert_eq!(
            e["values"]["api-key"],
            json!({"value": "<redacted>", "source": "cli"})
        );
        let record = e.to_string();
        assert!(
            !record.contains("sk-Cli-1") && !record.contains("Url-Pw-2"),
            "{record}"
        );
    }

    #[test]
    fn a_missing_file_or_an_empty_one() {
        let e = get_matches_from(
            Demo::command(),
            ["demo", "--config=/nonexistent/c.yaml"].map(OsString::from),
        )
        .unwrap_err();
        let text = message(&e);
        assert!(
            text.starts_with("error: config file /nonexistent/c.yaml: cannot read it: ")
                && text.contains("(from --config)"),
            "{text}"
        );
        let (d, _) = parse("# nothing yet\n", &[]).unwrap();
        assert_eq!(d.concurrency, 10);
    }

    #[test]
    fn a_value_is_found_leniently_for_a_refused_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "output_dir: /out\nbogus: 1\n").unwrap();
        let args = |extra: &str| {
            ["demo", "--concurrency=x", extra]
                .into_iter()
                .map(OsString::from)
                .chain([OsString::from("--config"), path.clone().into()])
                .collect::<Vec<_>>()
        };
        let cmd = Demo::command().arg(clap::Arg::new("output_dir").long("output-dir"));
        assert_eq!(
            lenient_value(&cmd, args("--unknown"), "output-dir").as_deref(),
            Some("/out")
        );
        assert_eq!(lenient_value(&cmd, args("--url=u"), "url"), None);
        assert_eq!(
            lenient_value(&cmd, ["demo"].map(OsString::from), "output-dir"),
            None
        );
    }

    #[test]
    fn edit_distance_and_line_lookup() {
        assert_eq!(edit_distance("max-token", "max-tokens"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(line_of("a: 1\n\"b\": 2\n  c: 3\n", "b"), Some(2));
        assert_eq!(line_of("a: 1\n  c: 3\n", "c"), None);
        assert_eq!(line_of("ab: 1\na: 2\n", "a"), Some(2));
    }

    #[derive(Debug, Parser)]
    #[command(name = "presets")]
    struct WithPreset {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        preset: Option<String>,
        #[arg(long, default_value_t = 10)]
        concurrency: u32,
        #[arg(long, default_value_t = 256)]
        max_tokens: u32,
        #[arg(long)]
        url: Option<String>,
    }

    const PRESETS: Presets = Presets {
        arg: "preset",
        lookup: |name| match name {
            "p" => Ok(&[
                ("concurrency", "7"),
                ("max-tokens", "9"),
                ("url", "http://preset:1"),
            ]),
            other => Err(format!("unknown preset {other:?}")),
        },
        groups: &[&["max-tokens", "url"]],
    };

    fn with_preset(yaml: Option<&str>, args: &[&str]) -> Result<(WithPreset, Value), clap::Error> {
        let dir = tempfile::tempdir().unwrap();
        let mut all: Vec<OsString> = vec!["presets".into()];
        if let Some(yaml) = yaml {
            let path = dir.path().join("c.yaml");
            std::fs::write(&path, yaml).unwrap();
            all.extend(["--config".into(), path.into_os_string()]);
        }
        all.extend(args.iter().map(OsString::from));
        let layered = get_matches_with(WithPreset::command(), all, Some(&PRESETS))?;
        Ok((
            WithPreset::from_arg_matches(&layered.matches)?,
            layered.effective,
        ))
    }

    #[test]
    fn presets_sit_under_the_file_and_give_way_to_alternatives() {
        // the preset alone
        let (d, e) = with_preset(None, &["--preset", "p"]).unwrap();
        assert_eq!((d.concurrency, d.max_tokens), (7, 9));
        assert_eq!(d.url.as_deref(), Some("http://preset:1"));
        assert_eq!(e["values"]["concurrency"]["source"], "preset");
        // the file beats the preset; the file can name the preset itself
        let (d, e) = with_preset(Some("preset: p\nconcurrency: 4\n"), &[]).unwrap();
        assert_eq!((d.concurrency, d.max_tokens), (4, 9));
        assert_eq!(e["values"]["concurrency"]["source"], "file");
        assert_eq!(e["values"]["max-tokens"]["source"], "preset");
        // a flag of a group replaces the preset's whole group: max-tokens back to its default
        let (d, e) = with_preset(None, &["--preset", "p", "--url", "http://cli:2"]).unwrap();
        assert_eq!(d.url.as_deref(), Some("http://cli:2"));
        assert_eq!((d.concurrency, d.max_tokens), (7, 256));
        assert_eq!(e["values"]["max-tokens"]["source"], "default");
        // the groups hold for the file too: the command line's url replaces the file's
        // max-tokens (its alternative), which then falls to its default, not the preset's
        let (d, e) = with_preset(
            Some("max-tokens: 11\n"),
            &["--preset", "p", "--url", "http://cli:3"],
        )
        .unwrap();
        assert_eq!(d.max_tokens, 256);
        assert_eq!(e["values"]["max-tokens"]["source"], "default");
        // no preset named: nothing changes
        let (d, _) = with_preset(None, &[]).unwrap();
        assert_eq!((d.concurrency, d.max_tokens, d.url), (10, 256, None));
        let e = with_preset(None, &["--preset", "q"]).unwrap_err();
        assert!(
            message(&e).contains("--preset: unknown preset \"q\""),
            "{}",
            message(&e)
        );
    }
}
