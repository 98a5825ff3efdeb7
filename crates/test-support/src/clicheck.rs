//! Checks a manifest's [`Invocation`] against the binary's own command line (`Cli::command()`,
//! clap): every long flag (`--flag value` and `--flag=value`) and every env var must be one the
//! binary declares, or one it reads outside clap (an allow-list the caller gives, with reasons).
//! When the invocation is rendered (final values), each value must also parse with the flag's
//! own value parser, a flag without a value must not get one, and every required argument must
//! be given by a flag or its env var. A rendered value that still holds `{{` comes from an
//! earlier step's output at run time (the renderer leaves nothing else): its flag is checked,
//! not its value. An exclusive flag (`perf-decision --exit-for-status`) must come alone: clap
//! refuses it beside any other flag or any env var the binary reads.

use std::ffi::OsStr;

use crate::manifest::Invocation;
use crate::manifest::expr::{Piece, parse_template};

/// A binary the manifests may run.
#[derive(Debug, Clone)]
pub struct Binary {
    /// The program name manifests use (`load-test`).
    pub name: &'static str,
    /// Its clap command (`Cli::command()`).
    pub command: clap::Command,
    /// Env vars it reads outside clap.
    pub extra_env: Vec<&'static str>,
}

/// The problems of one invocation (empty: fine). Each names the origin.
///
/// A subcommand the binary dispatches itself (`load-test merge DIR...`) is a [`Binary`] of its
/// own, named `program subcommand`: an invocation whose first argument is such a word is
/// checked against that command line, with the arguments after it.
pub fn check(inv: &Invocation, binaries: &[Binary]) -> Vec<String> {
    let sub = inv.args.first().and_then(|first| {
        binaries
            .iter()
            .find(|b| b.name.split_once(' ') == Some((inv.program.as_str(), first.as_str())))
    });
    let (bin, argv) = match sub {
        Some(b) => (Some(b), &inv.args[1..]),
        None => (
            binaries.iter().find(|b| b.name == inv.program),
            &inv.args[..],
        ),
    };
    let Some(bin) = bin else {
        return vec![format!(
            "{}: runs `{}`, which is none of the gate's binaries ({})",
            inv.origin,
            inv.program,
            binaries
                .iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", ")
        )];
    };
    let mut cmd = bin.command.clone();
    cmd.build();
    let mut errors = Vec::new();
    let mut given: Vec<&str> = Vec::new(); // ids of the arguments given
    let mut err = |e: String| errors.push(format!("{}: {}: {e}", inv.origin, bin.name));

    // positional arguments, in order; one that takes many values takes every later one
    let positionals: Vec<&clap::Arg> = cmd.get_positionals().collect();
    let mut next_positional = 0;
    let mut args = argv.iter();
    while let Some(a) = args.next() {
        let Some(flag) = a.strip_prefix("--") else {
            if a.starts_with('-') && a.len() > 1 {
                err(format!(
                    "`{a}`: short flags are not used by the gate's manifests; use the long name"
                ));
            } else if a.starts_with("{{=") {
                // an expression producing whole arguments: check the flags in its literals
                match parse_template(a) {
                    Ok(pieces) => {
                        for p in pieces {
                            if let Piece::Expr(e) = p {
                                for lit in e.literals().into_iter().filter(|l| l.starts_with("--"))
                                {
                                    let name = lit[2..].split('=').next().unwrap_or_default();
                                    if find_long(&cmd, name).is_none() {
                                        err(format!("unknown flag --{name} (in `{a}`)"));
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => err(format!("cannot read {e}")),
                }
            } else if let Some(pos) = positionals.get(next_positional) {
                if !given.contains(&pos.get_id().as_str()) {
                    given.push(pos.get_id().as_str());
                }
                if pos.get_num_args().is_none_or(|n| n.max_values() <= 1) {
                    next_positional += 1;
                }
                if inv.rendered
                    && !a.contains("{{")
                    && let Err(e) = parse_value(pos, a)
                {
                    err(format!("{}: {e}", pos.get_id()));
                }
            } else {
                err(format!("unexpected positional argument `{a}`"));
            }
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        if name.contains("{{") {
            err(format!("`{a}`: the flag name is a template"));
            continue;
        }
        let Some(arg) = find_long(&cmd, name) else {
            err(format!("unknown flag --{name}"));
            continue;
        };
        given.push(arg.get_id().as_str());
        let value = if arg.get_action().takes_values() {
            match inline {
                Some(v) => Some(v.to_string()),
                None => match args.next() {
                    Some(v) => Some(v.clone()),
                    None => {
                        err(format!("--{name} needs a value"));
                        continue;
                    }
                },
            }
        } else {
            if inline.is_some() {
                err(format!("--{name} takes no value, got `{a}`"));
            }
            None
        };
        if let (true, Some(v)) = (inv.rendered, value)
            && !v.contains("{{")
            && let Err(e) = parse_value(arg, &v)
        {
            err(format!("--{name}={v}: {e}"));
        }
    }
    let given_flags = given.len();

    for (env, value) in &inv.env {
        match cmd
            .get_arguments()
            .find(|a| a.get_env() == Some(OsStr::new(env)))
        {
            Some(arg) => {
                let empty = value.as_deref().is_some_and(str::is_empty);
                if !empty {
                    given.push(arg.get_id().as_str());
                }
                // an empty env var counts as unset (perf_gate::cli)
                if let (true, Some(v), false) = (inv.rendered, value, empty)
                    && let Err(e) = parse_value(arg, v)
                {
                    err(format!("env {env}={v}: {e}"));
                }
            }
            None if bin.extra_env.contains(&env.as_str()) => {}
            None => err(format!("env var {env} is not read by {}", bin.name)),
        }
    }

    let exclusive = given[..given_flags]
        .iter()
        .find(|id| {
            cmd.get_arguments()
                .any(|a| a.get_id() == **id && a.is_exclusive_set())
        })
        .copied();
    if let Some(id) = exclusive {
        // env vars from Secrets count too: clap sees them whatever their value
        let others: Vec<String> = given[..given_flags]
            .iter()
            .filter(|g| **g != id)
            .map(|g| format!("--{g}"))
            .chain(inv.env.iter().filter_map(|(k, v)| {
                // an empty env var counts as unset (perf_gate::cli)
                let empty = v.as_deref().is_some_and(str::is_empty);
                (!empty
                    && cmd
                        .get_arguments()
                        .any(|a| a.get_env() == Some(OsStr::new(k))))
                .then(|| format!("env {k}"))
            }))
            .collect();
        if !others.is_empty() {
            err(format!(
                "--{} takes no other flag or env var, got {}",
                long_of(&cmd, id),
                others.join(", ")
            ));
        }
    } else if inv.rendered {
        // a required group (`one of --vllm-url, --target`) is named by its first member
        let groups = cmd
            .get_groups()
            .filter(|g| g.is_required_set())
            .filter_map(|g| {
                let ids: Vec<&str> = g.get_args().map(|a| a.as_str()).collect();
                (!ids.iter().any(|id| given.contains(id)))
                    .then(|| {
                        cmd.get_arguments()
                            .find(|a| Some(&a.get_id().as_str()) == ids.first())
                    })
                    .flatten()
            });
        let required: Vec<&clap::Arg> = cmd
            .get_arguments()
            .filter(|a| a.is_required_set())
            .chain(groups)
            .collect();
        for arg in required {
            if !given.contains(&arg.get_id().as_str()) {
                let env = arg
                    .get_env()
                    .map(|e| format!(" or env {}", e.to_string_lossy()))
                    .unwrap_or_default();
                match arg.get_long() {
                    Some(long) => err(format!("the required --{long}{env} is not given")),
                    None => err(format!(
                        "the required positional {} is not given",
                        arg.get_value_names()
                            .and_then(|v| v.first())
                            .map_or(arg.get_id().as_str(), |v| v.as_str())
                    )),
                }
            }
        }
    }
    errors
}

fn long_of(cmd: &clap::Command, id: &str) -> String {
    cmd.get_arguments()
        .find(|a| a.get_id() == id)
        .and_then(|a| a.get_long())
        .unwrap_or(id)
        .to_string()
}

fn find_long<'c>(cmd: &'c clap::Command, name: &str) -> Option<&'c clap::Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

/// Parses `value` with the argument's own value parser (as clap would from the command line or
/// the env var): a one-argument probe command with a copy of it.
fn parse_value(arg: &clap::Arg, value: &str) -> Result<(), String> {
    let probe = clap::Arg::new("value")
        .long("value")
        .action(clap::ArgAction::Set)
        .allow_hyphen_values(true)
        .value_parser(arg.get_value_parser().clone());
    clap::Command::new("probe")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--value={value}")])
        .map(drop)
        .map_err(|e| {
            e.to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .replace(" for '--value <value>'", "")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin() -> Binary {
        Binary {
            name: "tool",
            command: clap::Command::new("tool")
                .arg(clap::Arg::new("url").long("url").env("URL").required(true))
                .arg(
                    clap::Arg::new("n")
                        .long("n")
                        .env("N")
                        .value_parser(clap::value_parser!(u32)),
                )
                .arg(
                    clap::Arg::new("dry")
                        .long("dry")
                        .env("DRY")
                        .action(clap::ArgAction::SetTrue),
                )
                .arg(clap::Arg::new("only").long("only").exclusive(true)),
            extra_env: vec!["RUST_LOG"],
        }
    }

    fn inv(args: &[&str], env: &[(&str, Option<&str>)], rendered: bool) -> Invocation {
        Invocation {
            origin: "m.yaml".into(),
            program: "tool".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            rendered,
        }
    }

    #[test]
    fn known_flags_and_env_in_both_forms_pass() {
        let ok = inv(
            &["--url=http://x", "--n", "3", "--dry"],
            &[
                ("N", Some("4")),
                ("RUST_LOG", Some("debug")),
                ("DRY", Some("true")),
            ],
            true,
        );
        assert_eq!(check(&ok, &[bin()]), Vec::<String>::new());
        let env_only = inv(&[], &[("URL", Some("http://x")), ("N", Some(""))], true);
        assert_eq!(check(&env_only, &[bin()]), Vec::<String>::new());
        let templated = inv(
            &[
                "--url={{inputs.parameters.url}}",
                "--n={{inputs.parameters.n}}",
            ],
            &[],
            false,
        );
        assert_eq!(check(&templated, &[bin()]), Vec::<String>::new());
    }

    #[test]
    fn an_exclusive_flag_comes_alone_and_run_time_values_are_not_parsed() {
        let alone = inv(
            &["--only=x"],
            &[("RUST_LOG", Some("info")), ("N", Some(""))],
            true,
        );
        assert_eq!(check(&alone, &[bin()]), Vec::<String>::new());
        let crowded = inv(
            &["--only={{inputs.parameters.s}}", "--n=3"],
            &[("DRY", None)],
            false,
        );
        assert_eq!(
            check(&crowded, &[bin()]),
            ["m.yaml: tool: --only takes no other flag or env var, got --n, env DRY"]
        );
        // a value from an earlier step's output, known only at run time
        let later = inv(
            &["--url=x", "--n={{steps.a.outputs.parameters.n}}"],
            &[],
            true,
        );
        assert_eq!(check(&later, &[bin()]), Vec::<String>::new());
    }

    #[test]
    fn a_subcommand_is_checked_against_its_own_command_line_with_its_positionals() {
        let merge = Binary {
            name: "tool merge",
            command: clap::Command::new("tool merge")
                .arg(
                    clap::Arg::new("dirs")
                        .value_name("DIR")
                        .required(true)
                        .num_args(1..)
                        .value_parser(clap::value_parser!(u32)),
                )
                .arg(clap::Arg::new("out").long("out").env("OUT")),
            extra_env: vec![],
        };
        let bins = [bin(), merge];
        let ok = inv(
            &["merge", "1", "2", "--out=x", "3"],
            &[("OUT", Some("y"))],
            true,
        );
        assert_eq!(check(&ok, &bins), Vec::<String>::new());
        // the main command's flags and env are not the subcommand's
        let bad = inv(&["merge", "--url=x", "two"], &[("N", Some("1"))], true);
        let errors = check(&bad, &bins);
        let want = [
            "m.yaml: tool merge: unknown flag --url",
            "m.yaml: tool merge: dirs: invalid value 'two'",
            "m.yaml: tool merge: env var N is not read by tool merge",
        ];
        for w in want {
            assert!(
                errors.iter().any(|e| e.starts_with(w)),
                "missing {w:?} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), want.len(), "{errors:#?}");
        assert_eq!(
            check(&inv(&["merge"], &[], true), &bins),
            ["m.yaml: tool merge: the required positional DIR is not given"]
        );
        // without the subcommand word: the main command, which takes no positional
        assert_eq!(
            check(&inv(&["--url=x", "1"], &[], true), &bins),
            ["m.yaml: tool: unexpected positional argument `1`"]
        );
    }

    #[test]
    fn unknown_names_bad_values_and_missing_required_fail() {
        let bad = inv(
            &[
                "--ulr=http://x",
                "--n=three",
                "--dry=false",
                "pos",
                "{{='--nn=' + inputs.parameters.x}}",
            ],
            &[("NN", Some("1")), ("N", Some("x"))],
            true,
        );
        let errors = check(&bad, &[bin()]);
        let want = [
            "m.yaml: tool: unknown flag --ulr",
            "m.yaml: tool: --n=three: invalid value 'three'",
            "m.yaml: tool: --dry takes no value, got `--dry=false`",
            "m.yaml: tool: unexpected positional argument `pos`",
            "m.yaml: tool: unknown flag --nn (in `{{='--nn=' + inputs.parameters.x}}`)",
            "m.yaml: tool: env var NN is not read by tool",
            "m.yaml: tool: env N=x: invalid value 'x'",
            "m.yaml: tool: the required --url or env URL is not given",
        ];
        for w in want {
            assert!(
                errors.iter().any(|e| e.starts_with(w)),
                "missing {w:?} in {errors:#?}"
            );
        }
        assert_eq!(errors.len(), want.len(), "{errors:#?}");
        let other = Invocation {
            program: "tol".into(),
            ..inv(&[], &[], true)
        };
        assert_eq!(
            check(&other, &[bin()]),
            ["m.yaml: runs `tol`, which is none of the gate's binaries (tool)"]
        );
    }
}
