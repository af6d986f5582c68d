//! Reading command output and logs: last lines, whole words, key formats.

/// The last `n` lines of a text, for failure messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Whether `word` occurs in `line` as a whole word (so `ready` does not match `already`).
pub fn contains_word(line: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// The bytes a base64 string (a WireGuard key) stands for, in lowercase hex: how a key would
/// look if something printed it in hex.
pub fn hex_of_base64(b64: &str) -> String {
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "printf %s \"$0\" | base64 -d | od -An -tx1 | tr -d ' \\n'",
            b64,
        ])
        .output()
        .expect("run base64");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words() {
        assert!(contains_word("INFO meshd: ready iface=meshd0", "ready"));
        assert!(contains_word("ready", "ready"));
        assert!(contains_word("x: ready.", "ready"));
        assert!(!contains_word("already up", "ready"));
        assert!(!contains_word("readyness", "ready"));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
