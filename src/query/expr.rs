//! `--where` expressions: parsed once by a pest grammar (`expr.pest`), then evaluated on
//! each run's flattened keys.
//!
//! Semantics, chosen so that a filter over runs of mixed experiments reads as expected:
//! a key a run does not have is `null`; `null` equals only `null` and orders with
//! nothing (`metrics.test.ece < 0.03` is false for a failed run, not an error); numbers
//! compare as numbers whatever their JSON form (`1 == 1.0`); any other comparison of
//! values of different types (`status == 1`) is an error that names the column of the
//! expression and the run.

use pest::iterators::Pair;
use pest::Parser;
use serde_json::Value;
use std::cmp::Ordering;
use std::fmt;

#[derive(pest_derive::Parser)]
#[grammar = "query/expr.pest"]
struct Grammar;

/// A parsed `--where` expression.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
    text: String,
}

/// Why an expression could not be parsed or evaluated, with its 1-based column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--where {}, column {column}: {message}", quoted(text))]
pub struct ExprError {
    pub text: String,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone)]
enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
    Compare(Operand, Op, Operand),
    In {
        operand: Operand,
        list: Vec<Value>,
        negated: bool,
    },
    Like(Operand, glob::Pattern),
    Matches(Operand, regex::Regex),
    /// A lone operand used as a condition: it must be a boolean (or null, false).
    Holds(Operand),
}

#[derive(Debug, Clone)]
enum Operand {
    Key { name: String, at: usize },
    Value { value: Value, at: usize },
    Group { node: Box<Node>, at: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        })
    }
}

/// `text` in quotes, or (when it is too long to echo) its start and length.
pub(super) fn quoted(text: &str) -> String {
    if text.chars().count() <= 300 {
        format!("{text:?}")
    } else {
        crate::spec::excerpt(text)
    }
}

/// What an expression is evaluated on: one run's flattened keys.
pub trait Keys {
    fn get(&self, key: &str) -> Option<&Value>;
    /// The run, for messages.
    fn name(&self) -> String;
}

impl Filter {
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        if let Some(at) = too_deep(text) {
            return Err(ExprError {
                text: text.to_string(),
                column: text[..at].chars().count() + 1,
                message: format!("parentheses or `not`s nested deeper than {MAX_DEPTH}"),
            });
        }
        let mut pairs = Grammar::parse(Rule::expression, text).map_err(|e| {
            let column = match e.location {
                pest::error::InputLocation::Pos(p) | pest::error::InputLocation::Span((p, _)) => p,
            };
            ExprError {
                text: text.to_string(),
                column: text[..column.min(text.len())].chars().count() + 1,
                message: match e.variant {
                    pest::error::ErrorVariant::ParsingError { positives, .. } => {
                        expected(&positives)
                    }
                    pest::error::ErrorVariant::CustomError { message } => message,
                },
            }
        })?;
        let expression = pairs.next().expect("the grammar's root");
        let or_expr = expression
            .into_inner()
            .next()
            .expect("an expression holds an or_expr");
        let builder = Builder { text };
        Ok(Filter {
            root: builder.node(or_expr)?,
            text: text.to_string(),
        })
    }

    /// Every key the expression reads, with its column.
    pub fn keys(&self) -> Vec<(&str, usize)> {
        let mut keys = Vec::new();
        self.root.keys(&mut keys);
        keys
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the run with `keys` passes.
    pub fn matches(&self, keys: &impl Keys) -> Result<bool, ExprError> {
        self.root.eval(keys).map_err(|(at, message)| ExprError {
            text: self.text.clone(),
            column: self.column(at),
            message: format!("{message} (in run {})", keys.name()),
        })
    }

    /// The 1-based column of byte offset `at`.
    pub fn column(&self, at: usize) -> usize {
        self.text[..at.min(self.text.len())].chars().count() + 1
    }
}

/// Parentheses (and `not`s, which nest the same way) deeper than this are refused before
/// parsing: the parser and the evaluator recurse once per level.
const MAX_DEPTH: usize = 64;

/// The byte offset where `text` nests deeper than [`MAX_DEPTH`], if it does (quoted
/// text is skipped; a rough count is enough, the grammar checks the rest).
fn too_deep(text: &str) -> Option<usize> {
    let (mut depth, mut nots, mut quote) = (0usize, 0usize, None);
    for (at, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[') => depth += 1,
            (None, ')' | ']') => depth = depth.saturating_sub(1),
            (None, 'n') if text[at..].starts_with("not") => nots += 1,
            _ => {}
        }
        if depth > MAX_DEPTH || nots > MAX_DEPTH {
            return Some(at);
        }
    }
    None
}

/// "expected a key, a number, ..." from the rules pest would have accepted.
fn expected(rules: &[Rule]) -> String {
    let mut names: Vec<&str> = rules
        .iter()
        .filter_map(|rule| {
            Some(match rule {
                Rule::key => "a key",
                Rule::number => "a number",
                Rule::string => "a string",
                Rule::literal | Rule::true_ | Rule::false_ | Rule::null => "a value",
                Rule::list => "a list",
                Rule::operand => "a key or a value",
                Rule::comparison => "a comparison (== != < <= > >=)",
                Rule::in_list | Rule::in_ => "`in`",
                Rule::like => "`like`",
                Rule::matches => "`~`",
                Rule::and => "`and`",
                Rule::or => "`or`",
                Rule::not | Rule::not_expr => "`not`",
                Rule::EOI => "the end of the expression",
                _ => return None,
            })
        })
        .collect();
    names.dedup();
    if names.is_empty() {
        "unexpected text".to_string()
    } else {
        format!("expected {}", names.join(", "))
    }
}

struct Builder<'t> {
    text: &'t str,
}

impl Builder<'_> {
    fn error(&self, at: usize, message: String) -> ExprError {
        ExprError {
            text: self.text.to_string(),
            column: self.text[..at].chars().count() + 1,
            message,
        }
    }

    fn node(&self, pair: Pair<Rule>) -> Result<Node, ExprError> {
        match pair.as_rule() {
            Rule::or_expr | Rule::and_expr => {
                let is_or = pair.as_rule() == Rule::or_expr;
                let mut parts: Vec<Node> = pair
                    .into_inner()
                    .filter(|p| !matches!(p.as_rule(), Rule::and | Rule::or))
                    .map(|p| self.node(p))
                    .collect::<Result<_, _>>()?;
                Ok(match (parts.len(), is_or) {
                    (1, _) => parts.remove(0),
                    (_, true) => Node::Or(parts),
                    (_, false) => Node::And(parts),
                })
            }
            Rule::not_expr => {
                let mut inner = pair.into_inner();
                let first = inner.next().expect("not_expr is not or a test");
                if first.as_rule() == Rule::not {
                    let operand = inner.next().expect("not is followed by an expression");
                    Ok(Node::Not(Box::new(self.node(operand)?)))
                } else {
                    self.node(first)
                }
            }
            Rule::test => self.test(pair),
            rule => unreachable!("{rule:?} is not a condition"),
        }
    }

    fn test(&self, pair: Pair<Rule>) -> Result<Node, ExprError> {
        let mut inner = pair.into_inner();
        let left = self.operand(inner.next().expect("a test starts with an operand"))?;
        let Some(next) = inner.next() else {
            return Ok(Node::Holds(left));
        };
        match next.as_rule() {
            Rule::comparison => {
                let op = match next.as_str() {
                    "==" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    _ => Op::Ge,
                };
                let right = self.operand(inner.next().expect("a comparison has two sides"))?;
                Ok(Node::Compare(left, op, right))
            }
            Rule::in_list => {
                let mut parts = next.into_inner();
                let first = parts.next().expect("in or not in");
                let negated = first.as_rule() == Rule::not;
                if negated {
                    parts.next();
                }
                let list = parts.next().expect("a list after in");
                Ok(Node::In {
                    operand: left,
                    list: self.list(list)?,
                    negated,
                })
            }
            Rule::like => {
                let pattern = inner.next().expect("like is followed by a string");
                let at = pattern.as_span().start();
                let text = self.string(pattern)?;
                let glob = glob::Pattern::new(&text)
                    .map_err(|e| self.error(at, format!("not a glob pattern: {e}")))?;
                Ok(Node::Like(left, glob))
            }
            Rule::matches => {
                let pattern = inner.next().expect("~ is followed by a string");
                let at = pattern.as_span().start();
                let text = self.string(pattern)?;
                let regex = regex::Regex::new(&text)
                    .map_err(|e| self.error(at, format!("not a regular expression: {e}")))?;
                Ok(Node::Matches(left, regex))
            }
            rule => unreachable!("{rule:?} after an operand"),
        }
    }

    fn operand(&self, pair: Pair<Rule>) -> Result<Operand, ExprError> {
        let at = pair.as_span().start();
        let inner = pair
            .into_inner()
            .next()
            .expect("an operand holds one thing");
        Ok(match inner.as_rule() {
            Rule::key => Operand::Key {
                name: inner.as_str().to_string(),
                at,
            },
            Rule::literal => Operand::Value {
                value: self.literal(inner)?,
                at,
            },
            Rule::list => Operand::Value {
                value: Value::Array(self.list(inner)?),
                at,
            },
            _ => Operand::Group {
                node: Box::new(self.node(inner)?),
                at,
            },
        })
    }

    fn list(&self, pair: Pair<Rule>) -> Result<Vec<Value>, ExprError> {
        pair.into_inner().map(|p| self.literal(p)).collect()
    }

    fn literal(&self, pair: Pair<Rule>) -> Result<Value, ExprError> {
        let inner = pair.into_inner().next().expect("a literal holds one value");
        let at = inner.as_span().start();
        Ok(match inner.as_rule() {
            Rule::number => {
                // As JSON reads it, so that `2` shows as 2 and `2.0` as 2.0.
                serde_json::from_str::<serde_json::Number>(inner.as_str())
                    .ok()
                    .filter(|n| n.as_f64().is_some_and(f64::is_finite))
                    .map(Value::Number)
                    .ok_or_else(|| self.error(at, "the number is out of range".to_string()))?
            }
            Rule::string => Value::String(self.string(inner)?),
            Rule::true_ => Value::Bool(true),
            Rule::false_ => Value::Bool(false),
            _ => Value::Null,
        })
    }

    /// A string literal's text: `"..."` with `\"`, `\\`, `\n`, `\t` escapes, or `'...'`
    /// as written (handy for regular expressions).
    fn string(&self, pair: Pair<Rule>) -> Result<String, ExprError> {
        let at = pair.as_span().start();
        let inner = pair.into_inner().next().expect("a string holds its text");
        if inner.as_rule() == Rule::single {
            return Ok(inner.as_str().to_string());
        }
        let mut out = String::new();
        let mut chars = inner.as_str().chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(c @ ('"' | '\\')) => out.push(c),
                Some(c) => {
                    // Keep other escapes for regular expressions: `\.` is `\.`.
                    out.push('\\');
                    out.push(c);
                }
                None => return Err(self.error(at, "the string ends in a backslash".into())),
            }
        }
        Ok(out)
    }
}

/// An evaluation error: the byte offset of the operand at fault and the message.
type Failure = (usize, String);

impl Node {
    fn keys<'a>(&'a self, keys: &mut Vec<(&'a str, usize)>) {
        let operand = |o: &'a Operand, keys: &mut Vec<(&'a str, usize)>| match o {
            Operand::Key { name, at } => keys.push((name.as_str(), *at)),
            Operand::Group { node, .. } => node.keys(keys),
            Operand::Value { .. } => {}
        };
        match self {
            Node::Or(parts) | Node::And(parts) => parts.iter().for_each(|p| p.keys(keys)),
            Node::Not(node) => node.keys(keys),
            Node::Compare(left, _, right) => {
                operand(left, keys);
                operand(right, keys);
            }
            Node::In { operand: o, .. }
            | Node::Like(o, _)
            | Node::Matches(o, _)
            | Node::Holds(o) => operand(o, keys),
        }
    }

    fn eval(&self, keys: &impl Keys) -> Result<bool, Failure> {
        match self {
            Node::Or(parts) => {
                for part in parts {
                    if part.eval(keys)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Node::And(parts) => {
                for part in parts {
                    if !part.eval(keys)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Node::Not(node) => Ok(!node.eval(keys)?),
            Node::Compare(left, op, right) => {
                let (l, r) = (left.value(keys)?, right.value(keys)?);
                compare(&l, *op, &r).map_err(|message| {
                    (
                        left.at(),
                        format!(
                            "{} {op} {}: {message}",
                            left.describe(&l),
                            right.describe(&r)
                        ),
                    )
                })
            }
            Node::In {
                operand,
                list,
                negated,
            } => {
                let value = operand.value(keys)?;
                let mut found = false;
                for item in list {
                    if equal(&value, item).map_err(|m| {
                        (
                            operand.at(),
                            format!("{} in [.., {item}, ..]: {m}", operand.describe(&value)),
                        )
                    })? {
                        found = true;
                        break;
                    }
                }
                Ok(found != *negated)
            }
            Node::Like(operand, pattern) => {
                text_of(operand, keys, "like").map(|t| t.is_some_and(|t| pattern.matches(&t)))
            }
            Node::Matches(operand, regex) => {
                text_of(operand, keys, "~").map(|t| t.is_some_and(|t| regex.is_match(&t)))
            }
            Node::Holds(operand) => match operand.value(keys)? {
                Value::Bool(b) => Ok(b),
                Value::Null => Ok(false),
                other => Err((
                    operand.at(),
                    format!(
                        "{} is not true or false; compare it with something (==, <, in, like)",
                        operand.describe(&other)
                    ),
                )),
            },
        }
    }
}

/// The string an operand holds for `like`/`~`; `None` for null.
fn text_of(operand: &Operand, keys: &impl Keys, op: &str) -> Result<Option<String>, Failure> {
    match operand.value(keys)? {
        Value::String(s) => Ok(Some(s)),
        Value::Null => Ok(None),
        other => Err((
            operand.at(),
            format!(
                "{} is not a string, so `{op}` cannot match it",
                operand.describe(&other)
            ),
        )),
    }
}

impl Operand {
    fn value(&self, keys: &impl Keys) -> Result<Value, Failure> {
        Ok(match self {
            Operand::Key { name, .. } => keys.get(name).cloned().unwrap_or(Value::Null),
            Operand::Value { value, .. } => value.clone(),
            Operand::Group { node, .. } => Value::Bool(node.eval(keys)?),
        })
    }

    fn at(&self) -> usize {
        match self {
            Operand::Key { at, .. } | Operand::Value { at, .. } | Operand::Group { at, .. } => *at,
        }
    }

    /// `status ("failed", a string)` or `1 (a number)`, for messages.
    fn describe(&self, value: &Value) -> String {
        let shown = match value {
            Value::String(s) => crate::spec::excerpt(s),
            other => crate::spec::excerpt(&other.to_string())
                .trim_matches('"')
                .to_string(),
        };
        match self {
            Operand::Key { name, .. } => format!("{name} ({}, {})", shown, kind(value)),
            _ => format!("{shown} ({})", kind(value)),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `l op r`; `Err` for values that cannot be compared.
fn compare(l: &Value, op: Op, r: &Value) -> Result<bool, String> {
    match op {
        Op::Eq => equal(l, r),
        Op::Ne => equal(l, r).map(|e| !e),
        _ => {
            let ordering = match (l, r) {
                (Value::Null, _) | (_, Value::Null) => return Ok(false),
                (Value::Number(a), Value::Number(b)) => match number_order(a, b) {
                    Some(o) => o,
                    None => return Ok(false),
                },
                (Value::String(a), Value::String(b)) => a.cmp(b),
                _ => {
                    return Err(format!(
                        "{} and {} have no order",
                        plural(kind(l)),
                        plural(kind(r))
                    ))
                }
            };
            Ok(match op {
                Op::Lt => ordering == Ordering::Less,
                Op::Le => ordering != Ordering::Greater,
                Op::Gt => ordering == Ordering::Greater,
                _ => ordering != Ordering::Less,
            })
        }
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "null" => "null".into(),
        k => format!("{}s", k.trim_start_matches("a ").trim_start_matches("an ")),
    }
}

/// Numbers by value: integers exactly (seeds are u64, beyond f64's 2⁵³), else as f64.
pub(super) fn number_order(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    match (a.as_i128(), b.as_i128()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// Equality: numbers by value, lists element by element, null only with null.
fn equal(l: &Value, r: &Value) -> Result<bool, String> {
    Ok(match (l, r) {
        (Value::Null, _) | (_, Value::Null) => l.is_null() && r.is_null(),
        (Value::Number(a), Value::Number(b)) => number_order(a, b) == Some(Ordering::Equal),
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Ok(false);
            }
            for (x, y) in a.iter().zip(b) {
                if !equal(x, y)? {
                    return Ok(false);
                }
            }
            true
        }
        (Value::Object(_), Value::Object(_)) => l == r,
        _ => {
            return Err(format!(
                "{} and {} cannot be equal; write the value as the run holds it",
                plural(kind(l)),
                plural(kind(r))
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Run(BTreeMap<String, Value>);

    impl Keys for Run {
        fn get(&self, key: &str) -> Option<&Value> {
            self.0.get(key)
        }
        fn name(&self) -> String {
            "r".into()
        }
    }

    fn run() -> Run {
        let json = serde_json::json!({
            "status": "completed",
            "swept.loss.smoothing": 0.1,
            "swept.seed": 2,
            "metrics.test.ece": 0.025,
            "config.optimizer.name": "adamw",
            "config.optimizer.nesterov": false,
            "config.model.hidden": [256, 256],
            "run_id": "smoothing=0.1_744862da",
        });
        Run(json
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn eval(text: &str) -> Result<bool, ExprError> {
        Filter::parse(text)?.matches(&run())
    }

    #[test]
    fn every_operator() {
        for (text, expected) in [
            ("metrics.test.ece < 0.03", true),
            ("metrics.test.ece <= 0.025", true),
            ("metrics.test.ece > 0.025", false),
            ("metrics.test.ece >= 0.025", true),
            ("swept.seed == 2.0", true),
            ("swept.seed != 2", false),
            ("status == \"completed\"", true),
            ("status == 'completed'", true),
            ("status in [\"failed\", \"completed\"]", true),
            ("status not in [\"failed\", \"completed\"]", false),
            ("swept.seed in [0, 1]", false),
            ("config.optimizer.name like \"adam*\"", true),
            ("config.optimizer.name like \"sgd\"", false),
            ("run_id ~ '^smoothing=0\\.1_'", true),
            ("run_id ~ \"^smoothing=0\\.2_\"", false),
            ("config.optimizer.nesterov", false),
            ("not config.optimizer.nesterov", true),
            ("config.optimizer.nesterov == false", true),
            ("config.model.hidden == [256, 256]", true),
            ("config.model.hidden == [256]", false),
            ("error == null", true),
            ("error != null", false),
            ("metrics.test_scaled.ece < 1", false),
            ("not (metrics.test_scaled.ece < 1)", true),
        ] {
            assert_eq!(eval(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        // true or (false and false) = true; (true or false) and false would be false.
        assert_eq!(
            eval("swept.seed == 2 or swept.seed == 3 and status == \"x\""),
            Ok(true)
        );
        assert_eq!(
            eval("(swept.seed == 2 or swept.seed == 3) and status == \"x\""),
            Ok(false)
        );
        assert_eq!(
            eval("not swept.seed == 3 and status == \"completed\""),
            Ok(true)
        );
        assert_eq!(eval("not not (swept.seed == 2)"), Ok(true));
        // Keywords need a boundary: `order` and `notes` are keys.
        assert_eq!(eval("order == null and notes == null"), Ok(true));
    }

    #[test]
    fn errors_name_the_column() {
        let e = eval("status == 1").unwrap_err();
        assert_eq!(e.column, 1);
        assert!(
            e.message.contains("strings and numbers cannot be equal"),
            "{}",
            e.message
        );
        let e = eval("swept.seed == 2 and status < 3").unwrap_err();
        assert_eq!(e.column, 21, "{e}");
        assert!(e.message.contains("have no order"), "{}", e.message);
        let e = eval("swept.seed like \"2\"").unwrap_err();
        assert!(e.message.contains("is not a string"), "{}", e.message);
        let e = eval("swept.seed").unwrap_err();
        assert!(e.message.contains("is not true or false"), "{}", e.message);

        let e = Filter::parse("metrics.test.ece <").unwrap_err();
        assert_eq!(e.column, 19, "{e}");
        assert!(e.message.contains("expected"), "{}", e.message);
        let e = Filter::parse("a == 1 and").unwrap_err();
        assert_eq!(e.column, 11, "{e}");
        let e = Filter::parse("a == 1 b == 2").unwrap_err();
        assert_eq!(e.column, 8, "{e}");
        let e = Filter::parse("run_id ~ \"(\"").unwrap_err();
        assert!(
            e.message.contains("not a regular expression"),
            "{}",
            e.message
        );
        let e = Filter::parse("status in [1, ]x").unwrap_err();
        assert_eq!(e.column, 16, "{e}");
    }

    #[test]
    fn integers_compare_exactly_and_groups_name_their_column() {
        let mut r = run();
        r.0.insert("config.seed".into(), Value::from(u64::MAX - 1));
        let holds = |t: &str| Filter::parse(t).unwrap().matches(&r).unwrap();
        assert!(!holds("config.seed == 18446744073709551615"));
        assert!(holds("config.seed == 18446744073709551614"));
        assert!(holds("config.seed < 18446744073709551615"));
        let e = eval("swept.seed == 2 and (status == 'completed') < 1").unwrap_err();
        assert_eq!(e.column, 21, "{e}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}a == 1{}", "(".repeat(100), ")".repeat(100));
        let e = Filter::parse(&deep).unwrap_err();
        assert!(e.message.contains("nested deeper than 64"), "{e}");
        let fine = format!("{}a == 1{}", "(".repeat(60), ")".repeat(60));
        assert!(Filter::parse(&fine).is_ok());
        assert!(Filter::parse(&format!("{}a", "not ".repeat(300))).is_err());
    }

    #[test]
    fn keys_are_listed_with_their_columns() {
        let f = Filter::parse("a.b < 1 or (c == 2 and not d)").unwrap();
        assert_eq!(f.keys(), [("a.b", 0), ("c", 12), ("d", 27)]);
    }
}
