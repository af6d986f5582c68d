//! A mapping's fields: unknown and missing keys reported, each value checked for its type.

use super::error::{child, esc, index, Errors};
use super::model::Pos;
use super::yaml::{describe, is_null, kind, mapping_pos, node_pos, pos_of, Kind};
use marked_yaml::types::{MarkedMappingNode, MarkedSequenceNode};
use marked_yaml::Node;

/// One value in a mapping, with its key path and where its key was written.
#[derive(Clone, Copy)]
pub(super) struct Field<'a, 'p> {
    pub(super) path: &'p str,
    pub(super) key_pos: Pos,
    pub(super) node: &'a Node,
}

impl Field<'_, '_> {
    /// Where an error about this value goes: the value itself, or its key when it has no value
    /// (an empty value's position is wherever the next token happens to be).
    pub(super) fn pos(&self) -> Pos {
        if is_null(self.node) {
            self.key_pos
        } else {
            node_pos(self.node)
        }
    }
}

/// The known keys of one mapping, unknown keys already reported.
pub(super) struct Fields<'a> {
    path: String,
    pub(super) pos: Pos,
    items: Vec<(&'a str, Pos, &'a Node, String)>,
}

impl<'a> Fields<'a> {
    pub(super) fn new(
        map: &'a MarkedMappingNode,
        path: &str,
        allowed: &[&str],
        errs: &mut Errors,
    ) -> Self {
        let mut items = Vec::new();
        for (k, v) in map.iter() {
            let key_pos = pos_of(k.span());
            if allowed.contains(&k.as_str()) {
                items.push((k.as_str(), key_pos, v, child(path, k.as_str())));
            } else {
                errs.push(
                    key_pos,
                    child(path, &esc(k.as_str())),
                    format!(
                        "unknown key `{}`; expected one of: {}",
                        esc(k.as_str()),
                        allowed.join(", ")
                    ),
                );
            }
        }
        Self {
            path: path.to_string(),
            pos: mapping_pos(map),
            items,
        }
    }

    /// The value of `name`, if the key is present (even with an empty value).
    fn get(&self, name: &str) -> Option<Field<'a, '_>> {
        self.items
            .iter()
            .find(|(k, ..)| *k == name)
            .map(|(_, key_pos, node, path)| Field {
                path: path.as_str(),
                key_pos: *key_pos,
                node,
            })
    }

    /// The value of an optional `name`: absent or empty (`key:`, `~`, `null`) means the default.
    pub(super) fn optional(&self, name: &str) -> Option<Field<'a, '_>> {
        self.get(name).filter(|f| !is_null(f.node))
    }

    /// The value of a required `name`; reports it missing at the mapping's position.
    pub(super) fn required(&self, name: &str, errs: &mut Errors) -> Option<Field<'a, '_>> {
        let f = self.get(name);
        if f.is_none() {
            errs.push(
                self.pos,
                child(&self.path, name),
                format!("missing required key `{name}`"),
            );
        }
        f
    }
}

pub(super) fn type_error(f: Field<'_, '_>, expected: &str, errs: &mut Errors) {
    let message = if is_null(f.node) {
        format!("no value given; expected {expected}")
    } else {
        format!("expected {expected}, found {}", describe(f.node))
    };
    errs.push(f.pos(), f.path, message);
}

pub(super) fn expect_map<'a>(f: Field<'a, '_>, errs: &mut Errors) -> Option<&'a MarkedMappingNode> {
    match f.node {
        Node::Mapping(m) => Some(m),
        _ => {
            type_error(f, "a mapping", errs);
            None
        }
    }
}

pub(super) fn expect_seq<'a>(
    f: Field<'a, '_>,
    errs: &mut Errors,
) -> Option<&'a MarkedSequenceNode> {
    match f.node {
        Node::Sequence(s) => Some(s),
        Node::Scalar(s) if kind(s) != Kind::Null => {
            errs.push(
                f.pos(),
                f.path,
                format!(
                    "expected a list, found {}; write [{}]",
                    describe(f.node),
                    esc(s.as_str())
                ),
            );
            None
        }
        _ => {
            type_error(f, "a list", errs);
            None
        }
    }
}

/// A scalar as text: strings, and numbers written as words (a node may be named `1`), but not
/// booleans or empty values, which are almost always a mistake.
pub(super) fn expect_text<'a>(
    f: Field<'a, '_>,
    expected: &str,
    errs: &mut Errors,
) -> Option<&'a str> {
    match f.node {
        Node::Scalar(s) => match kind(s) {
            Kind::Str | Kind::Int(_) | Kind::Float => Some(s.as_str()),
            Kind::Bool => {
                errs.push(
                    f.pos(),
                    f.path,
                    format!(
                        "expected {expected}, found the boolean `{}`; quote it if you mean the text",
                        esc(s.as_str())
                    ),
                );
                None
            }
            Kind::Null => {
                type_error(f, expected, errs);
                None
            }
        },
        _ => {
            type_error(f, expected, errs);
            None
        }
    }
}

/// An integer in `min..=max`, written as a YAML integer (not a string or a float).
pub(super) fn expect_int(
    f: Field<'_, '_>,
    what: &str,
    min: i128,
    max: i128,
    errs: &mut Errors,
) -> Option<i128> {
    let Node::Scalar(s) = f.node else {
        type_error(f, "an integer", errs);
        return None;
    };
    match kind(s) {
        Kind::Int(Some(v)) if (min..=max).contains(&v) => Some(v),
        Kind::Int(_) => {
            errs.push(
                f.pos(),
                f.path,
                format!(
                    "{what} {} is out of range; it must be between {min} and {max}",
                    esc(s.as_str())
                ),
            );
            None
        }
        _ => {
            type_error(f, "an integer", errs);
            None
        }
    }
}

/// The elements of a list field, each with its key path (made as the walk reaches it).
pub(super) fn elements<'a, 'p>(
    seq: &'a MarkedSequenceNode,
    path: &'p str,
) -> impl Iterator<Item = (String, &'a Node)> + 'p
where
    'a: 'p,
{
    seq.iter()
        .enumerate()
        .map(move |(i, n)| (index(path, i), n))
}

/// A list element as a field (an element's "key position" is its own position).
pub(super) fn element<'a, 'p>(path: &'p str, node: &'a Node) -> Field<'a, 'p> {
    Field {
        path,
        key_pos: node_pos(node),
        node,
    }
}
