//! The Java `.properties` syntax that ZooKeeper reads zoo.cfg with (`java.util.Properties.load`).
//!
//! Owns only the syntax: logical lines (a trailing odd run of backslashes continues the line and
//! the next line's leading whitespace is dropped), `#`/`!` comment lines, a key that ends at the
//! first unescaped `=`, `:` or whitespace, and the escapes `\t \n \r \f \uXXXX` (any other
//! escaped character stands for itself). It knows nothing about what the keys mean; entries come
//! out in file order with the number of the line each one starts on, so later entries of the
//! same key override earlier ones exactly as `Properties` does.

use super::Entry;

/// Whitespace as `Properties` counts it: space, tab and form feed (not newline).
fn is_blank(character: char) -> bool {
    matches!(character, ' ' | '\t' | '\u{c}')
}

/// Why a logical line could not be read; the caller adds file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: u32,
    pub reason: String,
}

/// Splits `text` into entries. Fails only on a malformed `\uXXXX` escape, as `Properties` does.
pub(crate) fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut entries = Vec::new();
    for (line, logical) in logical_lines(text) {
        let Some((raw_key, raw_value)) = split_key_value(&logical) else {
            continue;
        };
        let key = unescape(raw_key).map_err(|reason| SyntaxError { line, reason })?;
        let value = unescape(raw_value).map_err(|reason| SyntaxError { line, reason })?;
        entries.push(Entry { key, value, line });
    }
    Ok(entries)
}

/// Joins continued lines. Returns (first line number, text with the continuation backslashes
/// removed but other escapes kept) for every line that is neither blank nor a comment.
fn logical_lines(text: &str) -> Vec<(u32, String)> {
    let mut result = Vec::new();
    let mut pending: Option<(u32, String)> = None;
    let mut line_number: u32 = 0;
    for natural in split_natural_lines(text) {
        line_number = line_number.saturating_add(1);
        let trimmed = natural.trim_start_matches(is_blank);
        let (start, mut logical) = match pending.take() {
            Some((start, so_far)) => (start, so_far),
            None => {
                if trimmed.is_empty() || trimmed.starts_with(['#', '!']) {
                    continue;
                }
                (line_number, String::new())
            }
        };
        if continues(trimmed) {
            logical.push_str(&trimmed[..trimmed.len() - 1]);
            pending = Some((start, logical));
        } else {
            logical.push_str(trimmed);
            result.push((start, logical));
        }
    }
    if let Some(last) = pending {
        result.push(last);
    }
    result
}

/// `\n`, `\r` and `\r\n` all end a natural line.
fn split_natural_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(index) => {
                lines.push(&rest[..index]);
                let skip = if rest[index..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = &rest[index + skip..];
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines
}

/// An odd number of trailing backslashes means the last one escapes the line break.
fn continues(line: &str) -> bool {
    let backslash_count = line.chars().rev().take_while(|&c| c == '\\').count();
    backslash_count % 2 == 1
}

/// Splits a logical line into raw (still escaped) key and value.
fn split_key_value(logical: &str) -> Option<(&str, &str)> {
    if logical.is_empty() {
        return None;
    }
    let mut key_end = logical.len();
    let mut escaped = false;
    for (index, character) in logical.char_indices() {
        if escaped {
            escaped = false;
        } else if character == '\\' {
            escaped = true;
        } else if character == '=' || character == ':' || is_blank(character) {
            key_end = index;
            break;
        }
    }
    let key = &logical[..key_end];
    let mut rest = logical[key_end..].trim_start_matches(is_blank);
    if rest.starts_with(['=', ':']) {
        rest = rest[1..].trim_start_matches(is_blank);
    }
    Some((key, rest))
}

/// Resolves escapes. Whitespace inside the value is kept; callers trim as ZooKeeper does.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut characters = raw.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            out.push(character);
            continue;
        }
        match characters.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => out.push(unicode_escape(&mut characters)?),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

fn unicode_escape(characters: &mut std::str::Chars<'_>) -> Result<char, String> {
    const UNICODE_ESCAPE_DIGIT_COUNT: usize = 4;
    let digits: String = characters.take(UNICODE_ESCAPE_DIGIT_COUNT).collect();
    let malformed = || format!("malformed \\uxxxx escape \"\\u{digits}\"");
    if digits.len() != UNICODE_ESCAPE_DIGIT_COUNT {
        return Err(malformed());
    }
    let code = u32::from_str_radix(&digits, 16).map_err(|_| malformed())?;
    // A lone UTF-16 surrogate has no `char`; Java would keep it, we substitute U+FFFD.
    Ok(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (house rule)
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String, u32)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|entry| (entry.key, entry.value, entry.line))
            .collect()
    }

    fn one(key: &str, value: &str, line: u32) -> (String, String, u32) {
        (key.to_owned(), value.to_owned(), line)
    }

    #[test]
    fn separators_and_comments() {
        let text = "# comment\n! bang\n\n  a=1\nb : 2\nc 3\nd\te=f\ng=\nh\n";
        assert_eq!(
            pairs(text),
            vec![
                one("a", "1", 4),
                one("b", "2", 5),
                one("c", "3", 6),
                one("d", "e=f", 7),
                one("g", "", 8),
                one("h", "", 9),
            ]
        );
    }

    #[test]
    fn trailing_whitespace_is_kept_for_the_caller() {
        assert_eq!(pairs("a = 1  \n"), vec![one("a", "1  ", 1)]);
    }

    #[test]
    fn continuation_lines() {
        let text = "server.1=host1:\\\n      2888:3888\nnext=1\n";
        assert_eq!(
            pairs(text),
            vec![one("server.1", "host1:2888:3888", 1), one("next", "1", 3)]
        );
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        assert_eq!(
            pairs("a=x\\\\\nb=2"),
            vec![one("a", "x\\", 1), one("b", "2", 2)]
        );
    }

    #[test]
    fn comment_lines_do_not_continue() {
        assert_eq!(pairs("# c \\\na=1"), vec![one("a", "1", 2)]);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            pairs("k\\=ey=v\\u0041\\tz\\q"),
            vec![one("k=ey", "vA\tzq", 1)]
        );
        assert_eq!(pairs("a\\ b=c"), vec![one("a b", "c", 1)]);
    }

    #[test]
    fn malformed_unicode_escape_is_an_error() {
        let error = parse("a=1\nb=\\u12").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.reason.contains("malformed"));
    }

    #[test]
    fn line_endings() {
        assert_eq!(
            pairs("a=1\r\nb=2\rc=3"),
            vec![one("a", "1", 1), one("b", "2", 2), one("c", "3", 3)]
        );
    }
}
