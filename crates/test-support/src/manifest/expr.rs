//! Argo's `{{...}}` templates, strictly: plain references (`{{workflow.parameters.x}}`,
//! `{{inputs.parameters.x}}`, and in a steps template the earlier steps' `{{steps.S.status}}`,
//! `{{steps.S.outputs.parameters.x}}` and `{{steps.S.outputs.artifacts.x}}`) and `{{= expr }}`
//! expressions in the small subset of expr-lang the manifests use: string literals,
//! `inputs.parameters['x']` / `workflow.parameters.x`, `==`, `!=`, `+` (string concatenation),
//! `&&`, `||`, `!`, `? :` and parentheses.
//!
//! Anything else (a function call, a number, `steps.*` inside an expression, `tasks.*`,
//! `outputs.result`, sprig) is an error naming the expression: the manifests must stay within what
//! this renders, so a test never runs a command line that Argo would build differently.

use std::fmt;

/// Where a parameter comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `workflow.parameters.*`: the workflow's arguments.
    Workflow,
    /// `inputs.parameters.*`: the template's inputs.
    Inputs,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Workflow => "workflow",
            Scope::Inputs => "inputs",
        })
    }
}

/// What a plain `{{...}}` tag refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// `workflow.parameters.NAME` / `inputs.parameters.NAME`.
    Param(Scope, String),
    /// `steps.STEP.status`: the phase of an earlier step (`Succeeded`, `Failed`, `Skipped`).
    StepStatus(String),
    /// `steps.STEP.outputs.parameters.NAME`.
    StepOutput {
        /// The step.
        step: String,
        /// The output parameter.
        name: String,
    },
    /// `steps.STEP.outputs.artifacts.NAME` (an artifact's `from` only).
    StepArtifact {
        /// The step.
        step: String,
        /// The output artifact.
        name: String,
    },
}

impl fmt::Display for Ref {
    /// The reference as written between the braces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Param(scope, name) => write!(f, "{scope}.parameters.{name}"),
            Ref::StepStatus(step) => write!(f, "steps.{step}.status"),
            Ref::StepOutput { step, name } => write!(f, "steps.{step}.outputs.parameters.{name}"),
            Ref::StepArtifact { step, name } => write!(f, "steps.{step}.outputs.artifacts.{name}"),
        }
    }
}

/// Resolves a reference to its value, or says why it cannot.
pub type Lookup<'a> = dyn Fn(&Ref) -> Result<String, String> + 'a;

/// A parse or evaluation error of one `{{...}}` tag (without the file: the caller adds it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{{{{{tag}}}}}`: {reason}")]
pub struct ExprError {
    /// The tag's text between the braces.
    pub tag: String,
    /// What is wrong.
    pub reason: String,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `'text'` or `"text"`.
    Str(String),
    /// A parameter reference.
    Param(Scope, String),
    /// `!e`.
    Not(Box<Expr>),
    /// `a op b`.
    Binary(Op, Box<Expr>, Box<Expr>),
    /// `c ? a : b`.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `+` on strings.
    Concat,
    /// `&&`
    And,
    /// `||`
    Or,
}

/// A value: expressions compute strings and booleans only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string.
    Str(String),
    /// A boolean (from `==`, `!=`, `!`, `&&`, `||`).
    Bool(bool),
}

impl Expr {
    /// Every string literal in the expression, in order (the checker reads `--flag` names from
    /// them without evaluating).
    pub fn literals(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk_literals(&mut out);
        out
    }

    fn walk_literals<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Str(s) => out.push(s),
            Expr::Param(..) => {}
            Expr::Not(e) => e.walk_literals(out),
            Expr::Binary(_, a, b) => {
                a.walk_literals(out);
                b.walk_literals(out);
            }
            Expr::Cond(c, a, b) => {
                c.walk_literals(out);
                a.walk_literals(out);
                b.walk_literals(out);
            }
        }
    }

    /// Evaluates with `lookup` resolving parameters.
    pub fn eval(&self, lookup: &Lookup<'_>) -> Result<Value, String> {
        Ok(match self {
            Expr::Str(s) => Value::Str(s.clone()),
            Expr::Param(scope, name) => Value::Str(lookup(&Ref::Param(*scope, name.clone()))?),
            Expr::Not(e) => Value::Bool(!e.eval(lookup)?.boolean("!")?),
            Expr::Binary(op, a, b) => {
                let a = a.eval(lookup)?;
                match op {
                    Op::And => Value::Bool(a.boolean("&&")? && b.eval(lookup)?.boolean("&&")?),
                    Op::Or => Value::Bool(a.boolean("||")? || b.eval(lookup)?.boolean("||")?),
                    Op::Eq | Op::Ne => {
                        let b = b.eval(lookup)?;
                        if std::mem::discriminant(&a) != std::mem::discriminant(&b) {
                            return Err(format!("cannot compare {a:?} with {b:?}"));
                        }
                        Value::Bool((a == b) == (*op == Op::Eq))
                    }
                    Op::Concat => {
                        let b = b.eval(lookup)?;
                        Value::Str(a.string("+")? + &b.string("+")?)
                    }
                }
            }
            Expr::Cond(c, a, b) => {
                if c.eval(lookup)?.boolean("?:")? {
                    a.eval(lookup)?
                } else {
                    b.eval(lookup)?
                }
            }
        })
    }
}

impl Value {
    fn boolean(self, op: &str) -> Result<bool, String> {
        match self {
            Value::Bool(b) => Ok(b),
            Value::Str(s) => Err(format!("`{op}` needs a boolean, got the string {s:?}")),
        }
    }

    fn string(self, op: &str) -> Result<String, String> {
        match self {
            Value::Str(s) => Ok(s),
            Value::Bool(b) => Err(format!("`{op}` needs strings, got the boolean {b}")),
        }
    }
}

/// One piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// `{{workflow.parameters.x}}`, `{{inputs.parameters.x}}`, `{{steps.s.status}}`, ...
    Ref(Ref),
    /// `{{= expr }}`.
    Expr(Expr),
}

/// Splits a string into literal text, references and expressions. Fails on a tag it does not
/// understand (naming it).
pub fn parse_template(text: &str) -> Result<Vec<Piece>, ExprError> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| ExprError {
            tag: after.to_string(),
            reason: "no closing `}}`".into(),
        })?;
        let tag = &after[..end];
        let err = |reason: String| ExprError {
            tag: tag.to_string(),
            reason,
        };
        if let Some(expr) = tag.strip_prefix('=') {
            pieces.push(Piece::Expr(parse_expr(expr).map_err(err)?));
        } else {
            pieces.push(Piece::Ref(parse_ref(tag.trim()).map_err(err)?));
        }
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

/// A plain tag's reference: `workflow.parameters.NAME`, `inputs.parameters.NAME`,
/// `steps.STEP.status`, `steps.STEP.outputs.parameters.NAME`, `steps.STEP.outputs.artifacts.NAME`.
pub fn parse_ref(tag: &str) -> Result<Ref, String> {
    if let Some(rest) = tag.strip_prefix("steps.") {
        let (step, what) = rest
            .split_once('.')
            .ok_or_else(|| format!("`{tag}` names no step field"))?;
        if step.is_empty() || !step.chars().all(is_name_char) {
            return Err(format!("`{tag}`: `{step}` is not a step name"));
        }
        let step = step.to_string();
        let named = |prefix: &str| {
            what.strip_prefix(prefix)
                .filter(|n| !n.is_empty() && n.chars().all(is_name_char))
                .map(str::to_string)
        };
        return if what == "status" {
            Ok(Ref::StepStatus(step))
        } else if let Some(name) = named("outputs.parameters.") {
            Ok(Ref::StepOutput { step, name })
        } else if let Some(name) = named("outputs.artifacts.") {
            Ok(Ref::StepArtifact { step, name })
        } else {
            Err(format!(
                "`{tag}` is not rendered (of a step: only status, outputs.parameters.NAME and outputs.artifacts.NAME)"
            ))
        };
    }
    let mut p = Parser::new(tag);
    match p.reference()? {
        Expr::Param(scope, name) if p.at_end() => Ok(Ref::Param(scope, name)),
        _ => Err("not a parameter reference (only workflow.parameters.NAME, inputs.parameters.NAME and steps.STEP.{status,outputs...} render)".into()),
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Renders a template string with `lookup`.
pub fn render(text: &str, lookup: &Lookup<'_>) -> Result<String, ExprError> {
    let mut out = String::new();
    for piece in parse_template(text)? {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Ref(r) => out.push_str(&lookup(&r).map_err(|reason| ExprError {
                tag: r.to_string(),
                reason,
            })?),
            Piece::Expr(e) => {
                let tag = || tag_of(text);
                match e.eval(lookup) {
                    Ok(Value::Str(s)) => out.push_str(&s),
                    Ok(Value::Bool(b)) => {
                        return Err(ExprError {
                            tag: tag(),
                            reason: format!("renders the boolean {b}, not a string"),
                        });
                    }
                    Err(reason) => return Err(ExprError { tag: tag(), reason }),
                }
            }
        }
    }
    Ok(out)
}

/// The source text of the first `{{=...}}` tag in `text` (for error messages).
fn tag_of(text: &str) -> String {
    text.find("{{=")
        .and_then(|s| {
            let t = &text[s + 2..];
            t.find("}}").map(|e| t[..e].to_string())
        })
        .unwrap_or_else(|| text.to_string())
}

/// Parses the expression of a `{{= ... }}` tag.
pub fn parse_expr(text: &str) -> Result<Expr, String> {
    let mut p = Parser::new(text);
    let e = p.ternary()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(format!(
            "unexpected `{}` at offset {} (this renderer knows strings, parameters, ==, !=, +, &&, ||, !, ?: and parentheses)",
            p.rest(),
            p.pos
        ));
    }
    Ok(e)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    /// Consumes `tok` (after whitespace) if it is next.
    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    fn ternary(&mut self) -> Result<Expr, String> {
        let cond = self.or()?;
        if self.eat("?") {
            let a = self.ternary()?;
            if !self.eat(":") {
                return Err(format!("`?` without `:` at offset {}", self.pos));
            }
            let b = self.ternary()?;
            return Ok(Expr::Cond(Box::new(cond), Box::new(a), Box::new(b)));
        }
        Ok(cond)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.eat("||") {
            e = Expr::Binary(Op::Or, Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.cmp()?;
        while self.eat("&&") {
            e = Expr::Binary(Op::And, Box::new(e), Box::new(self.cmp()?));
        }
        Ok(e)
    }

    fn cmp(&mut self) -> Result<Expr, String> {
        let a = self.concat()?;
        let op = if self.eat("==") {
            Op::Eq
        } else if self.eat("!=") {
            Op::Ne
        } else {
            return Ok(a);
        };
        Ok(Expr::Binary(op, Box::new(a), Box::new(self.concat()?)))
    }

    fn concat(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        while self.eat("+") {
            e = Expr::Binary(Op::Concat, Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.skip_ws();
        if self.rest().starts_with('!') && !self.rest().starts_with("!=") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        self.skip_ws();
        if self.eat("(") {
            let e = self.ternary()?;
            if !self.eat(")") {
                return Err(format!("missing `)` at offset {}", self.pos));
            }
            return Ok(e);
        }
        match self.rest().chars().next() {
            Some(q @ ('\'' | '"')) => self.string(q).map(Expr::Str),
            Some(_) => self.reference(),
            None => Err("unexpected end of the expression".into()),
        }
    }

    /// A quoted string without escapes (the manifests need none; an escape is an error).
    fn string(&mut self, quote: char) -> Result<String, String> {
        let body = &self.rest()[1..];
        let end = body
            .find(quote)
            .ok_or_else(|| format!("unterminated string at offset {}", self.pos))?;
        let s = &body[..end];
        if s.contains('\\') {
            return Err(format!("escape sequences in {s:?} are not rendered"));
        }
        self.pos += end + 2;
        Ok(s.to_string())
    }

    /// `inputs.parameters.NAME`, `inputs.parameters['NAME']`, likewise `workflow`.
    fn reference(&mut self) -> Result<Expr, String> {
        self.skip_ws();
        let word_end = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        let scope = match &self.rest()[..word_end] {
            "inputs" => Scope::Inputs,
            "workflow" => Scope::Workflow,
            _ => {
                return Err(format!(
                    "`{}` is not rendered (only inputs.parameters and workflow.parameters)",
                    self.rest()
                ));
            }
        };
        self.pos += word_end;
        if !self.rest().starts_with(".parameters") {
            return Err(format!(
                "`{scope}{}` is not rendered (only {scope}.parameters)",
                self.rest()
            ));
        }
        self.pos += ".parameters".len();
        let name = if self.rest().starts_with('.') {
            self.pos += 1;
            let end = self
                .rest()
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(self.rest().len());
            let name = &self.rest()[..end];
            self.pos += end;
            name.to_string()
        } else if self.rest().starts_with('[') {
            self.pos += 1;
            self.skip_ws();
            let q = self.rest().chars().next().unwrap_or(' ');
            if q != '\'' && q != '"' {
                return Err("a parameter index must be a quoted name".into());
            }
            let name = self.string(q)?;
            if !self.eat("]") {
                return Err("missing `]`".into());
            }
            name
        } else {
            return Err(format!("`{scope}.parameters` without a name"));
        };
        if name.is_empty() {
            return Err(format!("`{scope}.parameters.` without a name"));
        }
        Ok(Expr::Param(scope, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(r: &Ref) -> Result<String, String> {
        match r {
            Ref::Param(Scope::Inputs, n) if n == "candidate-version" => Ok(String::new()),
            Ref::Param(Scope::Inputs, n) if n == "candidate-alias" => Ok("eval-passed".into()),
            Ref::Param(Scope::Workflow, n) if n == "image" => Ok("img:1".into()),
            Ref::Param(scope, n) => Err(format!("no parameter {scope}.{n}")),
            other => Err(format!("no {other}")),
        }
    }

    const CANDIDATE: &str = "{{=inputs.parameters['candidate-version'] == '' ? '--candidate-alias=' + inputs.parameters['candidate-alias'] : '--candidate-version=' + inputs.parameters['candidate-version']}}";

    #[test]
    fn renders_references_and_the_candidate_expression() {
        assert_eq!(
            render(
                "--x={{inputs.parameters.candidate-alias}}/{{ workflow.parameters.image }}",
                &lookup
            )
            .unwrap(),
            "--x=eval-passed/img:1"
        );
        assert_eq!(
            render(CANDIDATE, &lookup).unwrap(),
            "--candidate-alias=eval-passed"
        );
        let other = |r: &Ref| match r {
            Ref::Param(_, n) if n == "candidate-version" => Ok("7".to_string()),
            _ => lookup(r),
        };
        assert_eq!(render(CANDIDATE, &other).unwrap(), "--candidate-version=7");
        let Piece::Expr(e) = parse_template(CANDIDATE).unwrap().remove(0) else {
            panic!("an expression")
        };
        assert_eq!(
            e.literals(),
            ["", "--candidate-alias=", "--candidate-version="]
        );
    }

    #[test]
    fn step_references_render_through_the_lookup_and_print_as_written() {
        let steps = |r: &Ref| match r {
            Ref::StepStatus(s) if s == "perf-decision" => Ok("Failed".to_string()),
            Ref::StepOutput { step, name } if step == "perf-decision" && name == "status" => {
                Ok("invalid".to_string())
            }
            other => Err(format!("no {other}")),
        };
        assert_eq!(
            render(
                "{{steps.perf-decision.status}} {{ steps.perf-decision.outputs.parameters.status }}",
                &steps
            )
            .unwrap(),
            "Failed invalid"
        );
        let tags = [
            "steps.a.status",
            "steps.a.outputs.parameters.b-c",
            "steps.a.outputs.artifacts.load-test-results",
            "inputs.parameters.x",
        ];
        for tag in tags {
            assert_eq!(parse_ref(tag).unwrap().to_string(), tag);
        }
        let e = render("{{steps.load-test.status}}", &steps).unwrap_err();
        assert_eq!(e.tag, "steps.load-test.status");
        assert!(e.reason.contains("no steps.load-test.status"), "{e}");
    }

    #[test]
    fn operators_follow_precedence() {
        let l = |r: &Ref| match r {
            Ref::Param(_, n) => Ok(n.to_string()),
            other => Err(format!("{other}")),
        };
        let eval = |s: &str| parse_expr(s).unwrap().eval(&l).unwrap();
        assert_eq!(
            eval("'a' == 'a' && !('b' == 'c') || 'x' == 'y'"),
            Value::Bool(true)
        );
        assert_eq!(
            eval("inputs.parameters.a + 'b' == 'ab' ? 'yes' : 'no'"),
            Value::Str("yes".into())
        );
        assert_eq!(eval("'a' != 'a' ? 'x' : 'y'"), Value::Str("y".into()));
    }

    #[test]
    fn anything_else_is_an_error_naming_the_tag() {
        for (text, reason) in [
            ("{{=sprig.upper(inputs.parameters.x)}}", "`sprig.upper"),
            (
                "{{=steps['load-test'].outputs.parameters.status}}",
                "`steps",
            ),
            (
                "{{steps.load-test.outputs.result}}",
                "only status, outputs.parameters",
            ),
            ("{{steps.load-test}}", "names no step field"),
            (
                "{{tasks.load-test.status}}",
                "`tasks.load-test.status` is not rendered",
            ),
            ("{{=inputs.parameters.x == 1}}", "`1`"),
            ("{{=asInt(inputs.parameters.x)}}", "`asInt"),
            (
                "{{inputs.parameters.x | upper}}",
                "not a parameter reference",
            ),
            ("{{=inputs.parameters['x'] ? 'a'}}", "without `:`"),
            ("{{inputs.parameters.x", "no closing"),
        ] {
            let e = parse_template(text).unwrap_err();
            assert!(e.reason.contains(reason), "{text}: {e}");
            assert!(e.to_string().starts_with("`{{"), "{e}");
        }
        // evaluation errors name the tag too
        let e = render("{{=inputs.parameters.nope + 'x'}}", &lookup).unwrap_err();
        assert_eq!(e.tag, "=inputs.parameters.nope + 'x'");
        assert!(e.reason.contains("no parameter inputs.nope"), "{e}");
        let e = render("{{='a' == 'a'}}", &lookup).unwrap_err();
        assert!(e.reason.contains("boolean true"), "{e}");
        let e = render(
            "{{=inputs.parameters.candidate-alias + ('a' == 'b')}}",
            &lookup,
        )
        .unwrap_err();
        assert!(e.reason.contains("needs strings"), "{e}");
    }
}
