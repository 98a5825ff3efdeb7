//! A step's `when` as Argo evaluates it: every `{{...}}` reference substituted first
//! ([`super::expr::render`]), then the text evaluated by govaluate, which reads a bare word
//! (`invalid`, `Succeeded`) as a string and `true` / `false` as booleans.
//!
//! Strictly the subset the manifests use: words, quoted strings, `==`, `!=`, `&&`, `||`, `!` and
//! parentheses. A number, another operator or function, a comparison of a string with a boolean,
//! or a word that is empty after substitution (govaluate would refuse the expression) is an error
//! naming the condition.

use super::expr::{self, Lookup};

/// Evaluates `when` with `lookup` resolving its references.
pub fn evaluate(when: &str, lookup: &Lookup<'_>) -> Result<bool, String> {
    let text = expr::render(when, lookup).map_err(|e| format!("when `{when}`: {e}"))?;
    let err = |reason: String| format!("when `{when}` (rendered `{text}`): {reason}");
    let tokens = tokenize(&text).map_err(err)?;
    let mut p = Parser { tokens, pos: 0 };
    let v = p.or().map_err(err)?;
    if let Some(t) = p.tokens.get(p.pos) {
        return Err(err(format!("unexpected {t:?}")));
    }
    match v {
        Val::Bool(b) => Ok(b),
        Val::Str(s) => Err(err(format!("is the string {s:?}, not a boolean"))),
    }
}

/// Checks `when` can be evaluated without knowing the earlier steps: each `steps.*` reference
/// stands for a word, every other reference resolves with `lookup`. For listing what could run.
pub fn check(when: &str, lookup: &Lookup<'_>) -> Result<(), String> {
    let placeholder = |r: &expr::Ref| match r {
        expr::Ref::Param(..) => lookup(r),
        _ => Ok("unknown_until_run".to_string()),
    };
    evaluate(when, &placeholder).map(drop)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Op(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Str(String),
    Bool(bool),
}

const OPS: [&str; 7] = ["==", "!=", "&&", "||", "!", "(", ")"];

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) {
            out.push(Tok::Op(op));
            rest = &rest[op.len()..];
        } else if let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let body = &rest[1..];
            let end = body
                .find(q)
                .ok_or_else(|| format!("unterminated string at `{rest}`"))?;
            out.push(Tok::Quoted(body[..end].to_string()));
            rest = &body[end + 1..];
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            if word.is_empty() || word.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!(
                    "`{rest}` is not rendered (words, quoted strings, ==, !=, &&, ||, ! and parentheses)"
                ));
            }
            out.push(Tok::Word(word.to_string()));
            rest = &rest[end..];
        }
        rest = rest.trim_start();
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn eat(&mut self, op: &'static str) -> bool {
        if self.tokens.get(self.pos) == Some(&Tok::Op(op)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Val, String> {
        let mut v = self.and()?;
        while self.eat("||") {
            let b = self.and()?;
            v = Val::Bool(boolean(v, "||")? | boolean(b, "||")?);
        }
        Ok(v)
    }

    fn and(&mut self) -> Result<Val, String> {
        let mut v = self.cmp()?;
        while self.eat("&&") {
            let b = self.cmp()?;
            v = Val::Bool(boolean(v, "&&")? & boolean(b, "&&")?);
        }
        Ok(v)
    }

    fn cmp(&mut self) -> Result<Val, String> {
        let a = self.unary()?;
        let eq = if self.eat("==") {
            true
        } else if self.eat("!=") {
            false
        } else {
            return Ok(a);
        };
        let b = self.unary()?;
        if std::mem::discriminant(&a) != std::mem::discriminant(&b) {
            return Err(format!("compares {a:?} with {b:?}"));
        }
        Ok(Val::Bool((a == b) == eq))
    }

    fn unary(&mut self) -> Result<Val, String> {
        if self.eat("!") {
            return Ok(Val::Bool(!boolean(self.unary()?, "!")?));
        }
        if self.eat("(") {
            let v = self.or()?;
            if !self.eat(")") {
                return Err("missing `)`".into());
            }
            return Ok(v);
        }
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        match t {
            Some(Tok::Word(w)) if w == "true" => Ok(Val::Bool(true)),
            Some(Tok::Word(w)) if w == "false" => Ok(Val::Bool(false)),
            Some(Tok::Word(w) | Tok::Quoted(w)) => Ok(Val::Str(w)),
            Some(Tok::Op(op)) => Err(format!(
                "`{op}` where a value was expected (an empty substitution?)"
            )),
            None => Err("a value is missing (an empty substitution?)".into()),
        }
    }
}

fn boolean(v: Val, op: &str) -> Result<bool, String> {
    match v {
        Val::Bool(b) => Ok(b),
        Val::Str(s) => Err(format!("`{op}` needs booleans, got the string {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::expr::{Ref, Scope};

    /// The gate's verdict condition.
    const VERDICT: &str = "{{steps.perf-decision.status}} != Succeeded && ({{steps.perf-decision.outputs.parameters.status}} != invalid || {{inputs.parameters.rerun-on-invalid}} == false)";

    fn lookup<'a>(
        phase: &'a str,
        status: &'a str,
        rerun: &'a str,
    ) -> impl Fn(&Ref) -> Result<String, String> + 'a {
        move |r: &Ref| match r {
            Ref::StepStatus(_) => Ok(phase.to_string()),
            Ref::StepOutput { .. } => Ok(status.to_string()),
            Ref::Param(Scope::Inputs, _) => Ok(rerun.to_string()),
            other => Err(format!("no {other}")),
        }
    }

    #[test]
    fn the_verdict_condition_for_each_decision() {
        for (phase, status, rerun, want) in [
            ("Succeeded", "passed", "true", false),
            ("Succeeded", "failed", "true", false), // fail-on-reject off: exit 0
            ("Failed", "failed", "true", true),     // fail-on-reject on: exit 1
            ("Failed", "error", "true", true),
            ("Failed", "invalid", "true", false), // the caller reruns
            ("Failed", "invalid", "false", true), // the rerun's verdict is final
        ] {
            assert_eq!(
                evaluate(VERDICT, &lookup(phase, status, rerun)).unwrap(),
                want,
                "{phase} {status} {rerun}"
            );
        }
    }

    #[test]
    fn words_quotes_and_precedence() {
        let l = lookup("x", "invalid", "true");
        for (text, want) in [
            ("{{steps.a.outputs.parameters.b}} == invalid", true),
            ("'{{steps.a.outputs.parameters.b}}' == \"invalid\"", true),
            ("!(a == a) || b == b && c != c", false),
            ("true == true && !false", true),
            ("a == b || a == a", true),
        ] {
            assert_eq!(evaluate(text, &l).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn anything_else_is_an_error_naming_the_condition() {
        let l = lookup("x", "", "true");
        for (text, reason) in [
            (
                "{{steps.a.outputs.parameters.b}} == invalid",
                "`==` where a value was expected",
            ),
            ("a ==", "a value is missing"),
            ("a > b", "`> b` is not rendered"),
            ("1 == 1", "`1 == 1` is not rendered"),
            ("a == true", "compares Str(\"a\") with Bool(true)"),
            ("a", "is the string \"a\""),
            ("a && b", "`&&` needs booleans"),
            ("(a == a", "missing `)`"),
            ("a == a b", "unexpected Word(\"b\")"),
            ("{{steps.a.outputs.result}} == x", "is not rendered"),
            (
                "{{tasks.a.status}} == x",
                "`tasks.a.status` is not rendered",
            ),
        ] {
            let e = evaluate(text, &l).unwrap_err();
            assert!(e.starts_with(&format!("when `{text}`")), "{e}");
            assert!(e.contains(reason), "{text}: {e}");
        }
    }
}
