//! The YAML tree as the walk reads it: where a node starts, what a scalar is, how to name one.

use super::error::{esc, q};
use super::model::Pos;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{Marker, Node, Span};

/// Where a marker points; 0:0 when there is none.
pub(super) fn pos_of_marker(m: Option<&Marker>) -> Pos {
    m.map(|m| Pos {
        line: m.line(),
        column: m.column(),
    })
    .unwrap_or_default()
}

/// Where a span starts.
pub(super) fn pos_of(span: &Span) -> Pos {
    pos_of_marker(span.start())
}

/// Where a mapping starts: its `{`, or for a block mapping its first key (the YAML parser marks a
/// block mapping at the first `:`, which is not where anyone would look).
pub(super) fn mapping_pos(map: &MarkedMappingNode) -> Pos {
    let start = pos_of(map.span());
    match map.keys().next().map(|k| pos_of(k.span())) {
        Some(key) if (key.line, key.column) < (start.line, start.column) => key,
        _ => start,
    }
}

/// Where a node starts, as a person reading the file would point at it.
pub(super) fn node_pos(node: &Node) -> Pos {
    match node {
        Node::Mapping(map) => mapping_pos(map),
        _ => pos_of(node.span()),
    }
}

/// What a YAML scalar is, by the YAML 1.2 core schema (quoted scalars are always strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Null,
    Bool,
    /// An integer; `None` when it does not even fit an i128.
    Int(Option<i128>),
    Float,
    Str,
}

pub(super) fn kind(s: &MarkedScalarNode) -> Kind {
    if !s.may_coerce() {
        return Kind::Str;
    }
    let t = s.as_str();
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return Kind::Bool,
        _ => {}
    }
    if let Some(i) = yaml_int(t) {
        return Kind::Int(i);
    }
    if is_yaml_float(t) {
        return Kind::Float;
    }
    Kind::Str
}

/// `Some(value)` if `t` is a YAML integer (decimal with an optional sign, `0x..`, `0o..`).
fn yaml_int(t: &str) -> Option<Option<i128>> {
    let (negative, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (digits, radix) = if let Some(hex) = body.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(oct) = body.strip_prefix("0o") {
        (oct, 8)
    } else {
        (body, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = i128::from_str_radix(digits, radix)
        .ok()
        .map(|v| if negative { -v } else { v });
    Some(value)
}

fn is_yaml_float(t: &str) -> bool {
    let body = t
        .strip_prefix('-')
        .or_else(|| t.strip_prefix('+'))
        .unwrap_or(t);
    if matches!(body, ".inf" | ".Inf" | ".INF") || matches!(t, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (body.get(..i).unwrap_or(""), body.get(i + 1..)),
        None => (body, None),
    };
    let mut parts = mantissa.splitn(2, '.');
    let int_part = parts.next().unwrap_or("");
    let frac_part = parts.next();
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = match frac_part {
        Some(frac) => digits(int_part) && digits(frac) && !(int_part.is_empty() && frac.is_empty()),
        None => !int_part.is_empty() && digits(int_part) && exponent.is_some(),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e
                .strip_prefix('-')
                .or_else(|| e.strip_prefix('+'))
                .unwrap_or(e);
            !e.is_empty() && digits(e)
        }
    };
    mantissa_ok && exponent_ok
}

/// How a node is described in a type error: "a list", "the string \"x\"", ...
pub(super) fn describe(node: &Node) -> String {
    match node {
        Node::Mapping(_) => "a mapping".to_string(),
        Node::Sequence(_) => "a list".to_string(),
        Node::Scalar(s) => match kind(s) {
            Kind::Null => "no value".to_string(),
            Kind::Bool => format!("the boolean `{}`", esc(s.as_str())),
            Kind::Int(_) => format!("the integer `{}`", esc(s.as_str())),
            Kind::Float => format!("the number `{}`", esc(s.as_str())),
            Kind::Str => format!("the string {}", q(s.as_str())),
        },
    }
}

pub(super) fn is_null(node: &Node) -> bool {
    matches!(node, Node::Scalar(s) if kind(s) == Kind::Null)
}

/// Drops a YAML tree without recursion: the derived drop recurses once per level of nesting, and
/// a hostile file (`- - - - ...` on one long line) nests deep enough to overflow the stack.
pub(super) fn drop_tree(root: Node) {
    let mut stack = vec![root];
    while let Some(mut node) = stack.pop() {
        match &mut node {
            Node::Scalar(_) => {}
            Node::Sequence(seq) => stack.extend(std::mem::take(&mut **seq)),
            Node::Mapping(map) => {
                stack.extend(std::mem::take(&mut **map).into_iter().map(|(_, v)| v))
            }
        }
    }
}
