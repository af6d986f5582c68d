//! From text to a YAML tree with positions, within limits of size, values, entries and nesting.

use super::error::{child, esc, index};
use super::model::{Pos, TOP_KEYS};
use super::yaml::{drop_tree, pos_of, pos_of_marker};
use marked_yaml::{LoadError, LoaderOptions, Node};
use yaml_rust2::parser::Event;

/// The largest config accepted, in bytes: a 100,000-node mesh takes about 20 MB.
pub const MAX_CONFIG_BYTES: usize = 32 << 20;
/// The most YAML values (scalars, lists and mappings) a config may hold: a mesh node takes about
/// a dozen, so a 100,000-node mesh about 1.3 million. Each costs some 150 bytes in the YAML tree.
pub const MAX_YAML_VALUES: usize = 3_000_000;
/// The most entries one list or mapping may hold: the longest lists of a mesh config are its
/// nodes and a policy rule's names, one per node.
pub const MAX_ENTRIES: usize = 1 << 20;
/// The most mappings a config may hold: one a node and one a policy rule, and a mapping costs
/// about a kilobyte in the YAML tree.
pub const MAX_MAPPINGS: usize = 300_000;

/// The deepest nesting accepted, as bounded by [`nesting_bound`]. A mesh config nests five levels.
const MAX_NESTING: usize = 10_000;
/// Stack for the YAML parser, which recurses once per level of nesting (about 3 KiB a level).
const PARSER_STACK: usize = 64 << 20;

/// Loads the YAML tree; on failure, the one error the YAML loader gives (position, key, message).
///
/// A file over [`MAX_CONFIG_BYTES`] is refused before anything else.
/// The YAML parser recurses once per level of nesting and has no limit of its own for block
/// collections, so a hostile file could overflow the stack. The nesting is bounded first from
/// the text alone, and the parser runs on a thread whose stack is large enough for that bound
/// (which also contains a panic of the parser, should it have one).
pub(super) fn load(text: &str) -> Result<Node, (Pos, String, String)> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err((
            Pos { line: 1, column: 1 },
            "(file)".to_string(),
            format!(
                "the file is {} bytes, more than the limit of {MAX_CONFIG_BYTES} bytes",
                text.len()
            ),
        ));
    }
    let (bound, widest) = nesting_bound(text);
    if bound > MAX_NESTING {
        return Err((
            widest,
            "(yaml)".to_string(),
            format!(
                "the file is too wide to parse safely: its lines could nest YAML up to {bound} levels deep, more than {MAX_NESTING}; break long lines up"
            ),
        ));
    }
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("meshd-yaml".to_string())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, || load_on_this_thread(text));
        match parser {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err((
                    Pos { line: 1, column: 1 },
                    "(yaml)".to_string(),
                    "the YAML parser failed on this file (an internal error; please report it)"
                        .to_string(),
                ))
            }),
            Err(e) => Err((
                Pos { line: 1, column: 1 },
                "(yaml)".to_string(),
                format!("cannot start a thread to parse the config: {e}"),
            )),
        }
    })
}

fn load_on_this_thread(text: &str) -> Result<Node, (Pos, String, String)> {
    if let Some((pos, message)) = past_value_limit(text) {
        return Err((pos, "(yaml)".to_string(), message));
    }
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| load_error(text, e))
}

/// Where the file first goes past [`MAX_YAML_VALUES`], [`MAX_ENTRIES`] or [`MAX_MAPPINGS`],
/// and the message.
///
/// Streams the parser's events without building a tree, so that a file of millions of tiny
/// values (`- a` lines, `[a,a,a,...]`) is refused before it takes gigabytes as a tree (whose
/// lists grow by doubling: one list of 3 million items peaks at twice its size). A syntax error
/// ends the count: the loader that runs next reports it.
fn past_value_limit(text: &str) -> Option<(Pos, String)> {
    let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
    let (mut values, mut mappings) = (0usize, 0usize);
    // The entries of each open list or mapping (a mapping's keys and values both count).
    let mut open: Vec<(bool, usize)> = Vec::new();
    loop {
        let (event, mark) = match parser.next_token() {
            Ok((Event::StreamEnd, _)) | Err(_) => return None,
            Ok(ev) => ev,
        };
        let pos = || Pos {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match event {
            Event::Scalar(..)
            | Event::SequenceStart(..)
            | Event::MappingStart(..)
            | Event::Alias(_) => {
                values += 1;
                if values > MAX_YAML_VALUES {
                    return Some((pos(), format!(
                        "the file holds more than {MAX_YAML_VALUES} YAML values (scalars, lists and mappings), more than a mesh config needs (about a dozen a node)"
                    )));
                }
                if let Some((is_map, entries)) = open.last_mut() {
                    *entries += 1;
                    let n = if *is_map {
                        entries.div_ceil(2)
                    } else {
                        *entries
                    };
                    if n > MAX_ENTRIES {
                        let what = if *is_map { "mapping" } else { "list" };
                        return Some((pos(), format!(
                            "this {what} has more than {MAX_ENTRIES} entries, more than a mesh config needs"
                        )));
                    }
                }
                match event {
                    Event::SequenceStart(..) => open.push((false, 0)),
                    Event::MappingStart(..) => {
                        mappings += 1;
                        if mappings > MAX_MAPPINGS {
                            return Some((pos(), format!(
                                "the file holds more than {MAX_MAPPINGS} mappings, more than a mesh config needs (one a node and one a policy rule)"
                            )));
                        }
                        open.push((true, 0));
                    }
                    _ => {}
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                open.pop();
            }
            _ => {}
        }
    }
}

/// An upper bound on how deeply the YAML in `text` can nest, and the place of the widest line.
///
/// Every open block collection starts at its own column (indentation only grows inward), at a
/// token that begins a word: the first character of a line or one after a space or tab. An
/// indentless sequence shares its parent's column, and flow collections nest at most 255 deep
/// in the parser. So the depth is at most twice the number of distinct columns where a word
/// starts, plus 256, plus the document.
fn nesting_bound(text: &str) -> (usize, Pos) {
    let mut columns = std::collections::HashSet::new();
    let mut widest = Pos { line: 1, column: 1 };
    let (mut line, mut column) = (1usize, 0usize);
    let mut after_blank = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\r' => {
                if !(c == '\r' && chars.peek() == Some(&'\n')) {
                    line += 1;
                    column = 0;
                }
                after_blank = true;
                continue;
            }
            ' ' | '\t' | '\u{feff}' => after_blank = true,
            _ => {
                if after_blank && columns.insert(column) && column + 1 > widest.column {
                    widest = Pos {
                        line,
                        column: column + 1,
                    };
                }
                after_blank = false;
            }
        }
        column += 1;
    }
    (2 * columns.len() + 260, widest)
}

fn load_error(text: &str, e: LoadError) -> (Pos, String, String) {
    let top = "(top level)".to_string();
    let syntax = "(yaml)".to_string();
    match e {
        LoadError::TopLevelMustBeMapping(m) => (
            pos_of_marker(Some(&m)),
            top,
            format!(
                "the config must be a mapping with the keys {}",
                TOP_KEYS.join(", ")
            ),
        ),
        LoadError::TopLevelMustBeSequence(m) => (
            pos_of_marker(Some(&m)),
            top,
            "the config must be a mapping".to_string(),
        ),
        LoadError::UnexpectedAnchor(m) => (
            pos_of_marker(Some(&m)),
            syntax,
            "YAML anchors and aliases (&name, *name) are not supported; write the value out"
                .to_string(),
        ),
        LoadError::MappingKeyMustBeScalar(m) => (
            pos_of_marker(Some(&m)),
            syntax,
            "a mapping key must be a plain word, not a list or a mapping".to_string(),
        ),
        LoadError::UnexpectedTag(m) => (
            pos_of_marker(Some(&m)),
            syntax,
            "YAML tags (!tag, !!str) are not supported; quote the value instead".to_string(),
        ),
        LoadError::ScanError(m, e) => (
            pos_of_marker(Some(&m)),
            syntax,
            format!(
                "YAML syntax error: {}{}",
                e.info(),
                syntax_hint(text, m.line())
            ),
        ),
        LoadError::DuplicateKey(inner) => {
            let first = pos_of(inner.prev_key.span());
            let second = pos_of(inner.key.span());
            let name = inner.key.as_str().to_string();
            // Find the key path of the duplicate in the tree loaded without the check, where the
            // mapping keeps the first occurrence of the key.
            // (This runs on the parser's thread, with its large stack.)
            let path = marked_yaml::parse_yaml_with_options(
                0,
                text,
                LoaderOptions::default().prevent_coercion(true),
            )
            .ok()
            .and_then(|root| {
                let path = find_key_path(&root, "", first, 0);
                drop_tree(root);
                path
            })
            .unwrap_or_else(|| esc(&name));
            (
                second,
                path,
                format!(
                    "duplicate key `{}`; it is already set at line {}, column {}",
                    esc(&name),
                    first.line,
                    first.column
                ),
            )
        }
    }
}

/// A hint for the syntax errors people make in a mesh config, from the line at fault.
fn syntax_hint(text: &str, line: usize) -> &'static str {
    let at_fault = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
    if at_fault.contains("]:") {
        " (quote a bracketed IPv6 address with a port: '[2001:db8::1]:51820')"
    } else if at_fault.contains('\t') {
        " (YAML indents with spaces, not tabs)"
    } else {
        ""
    }
}

/// The key path of the mapping key written at `pos`, searched depth-first (bounded depth).
fn find_key_path(node: &Node, path: &str, pos: Pos, depth: usize) -> Option<String> {
    if depth > 64 {
        return None;
    }
    match node {
        Node::Scalar(_) => None,
        Node::Mapping(m) => m.iter().find_map(|(k, v)| {
            let here = child(path, &esc(k.as_str()));
            if pos_of(k.span()) == pos {
                Some(here)
            } else {
                find_key_path(v, &here, pos, depth + 1)
            }
        }),
        Node::Sequence(s) => s
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_key_path(v, &index(path, i), pos, depth + 1)),
    }
}
