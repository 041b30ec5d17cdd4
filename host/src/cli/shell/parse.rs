//! Pure parsing for the shell, following ZooKeeper 3.8's zkCli: the line tokenizer
//! (ZooKeeperMain.MyCommandOptions' regex, quotes included), the per-command option parser
//! (the subset of commons-cli's DefaultParser that zkCli's commands use, error texts included),
//! ACL strings (`scheme:id:perms,...`, AclParser) and client-side path validation
//! (PathUtils.validatePath), whose messages zkCli prints as they are.

use crate::proto::{perms, Acl, Id};
use crate::tree::path::{path_fault, PathFault};

/// A command's failure as zkCli reports it: the message goes to stderr, the exit code is the
/// process's in one-shot mode (CliException: 1; CommandNotFoundException: 127).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub message: String,
    pub exit_code: u8,
}

/// zkCli's exit code for a failed command.
pub const EXIT_FAILED: u8 = 1;
/// zkCli's exit code for an unknown command.
pub const EXIT_COMMAND_NOT_FOUND: u8 = 127;

impl CliError {
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            exit_code: EXIT_FAILED,
        }
    }
}

fn is_java_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// Splits a command line like zkCli: repeated `find()` of
/// `\s*([^"']\S*|"[^"]*"|'[^']*')\s*`, then one pair of surrounding quotes is stripped. An
/// unclosed quote is skipped, as the regex skips it; `"a b"c` gives `a b` and `c`.
pub fn tokenize(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut tokens = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        match match_at(&chars, start) {
            Some((token, end)) => {
                tokens.push(strip_quotes(token));
                start = end;
            }
            None => start += 1,
        }
    }
    tokens
}

/// One regex match attempt at `start`: the token and where the match ends.
fn match_at(chars: &[char], start: usize) -> Option<(String, usize)> {
    let mut spaces_end = start;
    while spaces_end < chars.len() && is_java_space(chars[spaces_end]) {
        spaces_end += 1;
    }
    // `\s*` is greedy: try the longest run of spaces first, then give them back one by one.
    for at in (start..=spaces_end).rev() {
        if let Some(token_end) = group_at(chars, at) {
            let mut end = token_end;
            while end < chars.len() && is_java_space(chars[end]) {
                end += 1;
            }
            return Some((chars[at..token_end].iter().collect(), end));
        }
    }
    None
}

/// The end of the group `[^"']\S*|"[^"]*"|'[^']*'` starting at `at`, if it matches there.
fn group_at(chars: &[char], at: usize) -> Option<usize> {
    let first = *chars.get(at)?;
    if first == '"' || first == '\'' {
        let close = chars[at + 1..].iter().position(|&c| c == first)?;
        return Some(at + 1 + close + 1);
    }
    let mut end = at + 1;
    while end < chars.len() && !is_java_space(chars[end]) {
        end += 1;
    }
    Some(end)
}

fn strip_quotes(token: String) -> String {
    let mut chars = token.chars();
    match (chars.next(), chars.next_back()) {
        (Some(first), Some(last)) if first == last && (first == '"' || first == '\'') => {
            chars.collect()
        }
        _ => token,
    }
}

/// One option of a command: `-name`, with a value when `value` is true.
#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    pub name: &'static str,
    pub value: bool,
}

pub const fn flag(name: &'static str) -> OptSpec {
    OptSpec { name, value: false }
}

pub const fn valued(name: &'static str) -> OptSpec {
    OptSpec { name, value: true }
}

/// A parsed command line: the non-option words (the command name first, as commons-cli's
/// `getArgs()` gives zkCli) and the options seen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub args: Vec<String>,
    pub opts: Vec<(&'static str, Option<String>)>,
}

impl Parsed {
    pub fn has(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| *n == name)
    }

    /// The value of the first `-name` seen.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

fn unrecognized(token: &str) -> CliError {
    CliError::new(format!(
        "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {token}"
    ))
}

fn missing_argument(name: &str) -> CliError {
    CliError::new(format!(
        "org.apache.commons.cli.MissingArgumentException: Missing argument for option: {name}"
    ))
}

/// Parses `tokens` (command name included) against `specs` the way commons-cli's
/// DefaultParser does for zkCli: options may come anywhere, `--` ends them, `-sw` is `-s -w`,
/// `-v5` is `-v 5`, and a value may be a negative number.
pub fn parse_options(specs: &[OptSpec], tokens: &[String]) -> Result<Parsed, CliError> {
    let find = |name: &str| specs.iter().find(|spec| spec.name == name);
    let is_option = |token: &str| {
        token.len() > 1 && token.starts_with('-') && {
            let name = &token[1..];
            find(name).is_some()
                || name
                    .chars()
                    .next()
                    .is_some_and(|c| find(&c.to_string()).is_some())
        }
    };
    let mut parsed = Parsed::default();
    let mut rest = tokens.iter();
    while let Some(token) = rest.next() {
        if token == "--" {
            parsed.args.extend(rest.by_ref().cloned());
            break;
        }
        if token.len() < 2 || !token.starts_with('-') {
            parsed.args.push(token.clone());
            continue;
        }
        let body = &token[1..];
        if let Some(spec) = find(body) {
            let value = if spec.value {
                match rest.as_slice().first() {
                    Some(next) if !is_option(next) || next.parse::<f64>().is_ok() => {
                        rest.next().cloned()
                    }
                    _ => return Err(missing_argument(spec.name)),
                }
            } else {
                None
            };
            parsed.opts.push((spec.name, value));
            continue;
        }
        // Concatenated short options: `-sw`, or `-v5` for an option that takes a value.
        for (index, c) in body.char_indices() {
            let spec = find(&c.to_string()).ok_or_else(|| unrecognized(token))?;
            if spec.value {
                let inline = &body[index + c.len_utf8()..];
                let value = if inline.is_empty() {
                    match rest.next() {
                        Some(next) => next.clone(),
                        None => return Err(missing_argument(spec.name)),
                    }
                } else {
                    inline.to_owned()
                };
                parsed.opts.push((spec.name, Some(value)));
                break;
            }
            parsed.opts.push((spec.name, None));
        }
    }
    Ok(parsed)
}

/// Parses `scheme:id:perms[,...]` like zkCli's AclParser. Entries without two colons and
/// unknown permission letters are skipped with a warning (returned, for stderr), as zkCli does.
pub fn parse_acl(text: &str) -> (Vec<Acl>, Vec<String>) {
    let mut acl = Vec::new();
    let mut warnings = Vec::new();
    for entry in text.split(',') {
        let (Some(first), Some(last)) = (entry.find(':'), entry.rfind(':')) else {
            warnings.push(format!("{entry} does not have the form scheme:id:perm"));
            continue;
        };
        if first == last {
            warnings.push(format!("{entry} does not have the form scheme:id:perm"));
            continue;
        }
        let mut bits = 0;
        for c in entry[last + 1..].chars() {
            match perms::LETTERS.iter().find(|(letter, _)| *letter == c) {
                Some((_, bit)) => bits |= bit,
                None => warnings.push(format!("Unknown perm type: {c}")),
            }
        }
        acl.push(Acl {
            perms: bits,
            id: Id::new(&entry[..first], &entry[first + 1..last]),
        });
    }
    (acl, warnings)
}

/// ZooKeeper's client-side path check (PathUtils.validatePath); the error is the message zkCli
/// prints. A sequential create may end in `/` (the server appends the counter).
pub fn validate_path(path: &str, sequential: bool) -> Result<(), String> {
    if sequential {
        return validate_path(&format!("{path}1"), false);
    }
    match path_fault(path) {
        None => Ok(()),
        Some(fault @ (PathFault::Empty | PathFault::NotAbsolute | PathFault::TrailingSlash)) => {
            Err(fault.to_string())
        }
        Some(fault) => Err(format!("Invalid path string \"{path}\" caused by {fault}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        tokenize(line)
    }

    #[test]
    fn tokenizer_groups_quoted_words() {
        assert_eq!(
            words("create /a \"hello world\""),
            ["create", "/a", "hello world"]
        );
        assert_eq!(words("  set /a 'x y'  "), ["set", "/a", "x y"]);
        assert_eq!(words("get   /a"), ["get", "/a"]);
        assert_eq!(words("set /a \"\""), ["set", "/a", ""]);
        assert!(words("").is_empty());
        // As with the Java regex, `\s*` gives a space back so `[^"']` can match it.
        assert_eq!(words("   "), [" "]);
    }

    #[test]
    fn tokenizer_follows_the_regex_on_odd_quotes() {
        // A quote inside a word is part of it; an unclosed quote is skipped.
        assert_eq!(words("set /a x\"y"), ["set", "/a", "x\"y"]);
        assert_eq!(words("set /a \"abc"), ["set", "/a", "abc"]);
        // A closed quote ends its token even when a word follows without a space.
        assert_eq!(words("set /a \"a b\"c"), ["set", "/a", "a b", "c"]);
        assert_eq!(words("set /a 'it\"s'"), ["set", "/a", "it\"s"]);
    }

    fn toks(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    const SET: &[OptSpec] = &[flag("s"), valued("v"), flag("b")];

    #[test]
    fn options_anywhere_concatenated_and_valued() {
        let parsed = parse_options(SET, &toks(&["set", "/a", "d", "-s", "-v", "3"])).unwrap();
        assert_eq!(parsed.args, ["set", "/a", "d"]);
        assert!(parsed.has("s"));
        assert_eq!(parsed.value("v"), Some("3"));
        let parsed = parse_options(SET, &toks(&["set", "-sv5", "/a", "d"])).unwrap();
        assert_eq!(parsed.value("v"), Some("5"));
        assert!(parsed.has("s"));
        let parsed = parse_options(SET, &toks(&["set", "-v", "-1", "/a", "d"])).unwrap();
        assert_eq!(parsed.value("v"), Some("-1"));
        let parsed = parse_options(SET, &toks(&["set", "--", "-a", "d"])).unwrap();
        assert_eq!(parsed.args, ["set", "-a", "d"]);
    }

    #[test]
    fn option_errors_use_commons_cli_texts() {
        let error = parse_options(SET, &toks(&["set", "-z", "/a"])).unwrap_err();
        assert_eq!(
            error.message,
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -z"
        );
        let error = parse_options(SET, &toks(&["set", "/a", "-v"])).unwrap_err();
        assert_eq!(
            error.message,
            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: v"
        );
        let long = [valued("members"), valued("add")];
        let parsed = parse_options(&long, &toks(&["reconfig", "-add", "x=1"])).unwrap();
        assert_eq!(parsed.value("add"), Some("x=1"));
    }

    #[test]
    fn acl_strings_parse_like_acl_parser() {
        let (acl, warnings) = parse_acl("world:anyone:r,digest:u:hash:cdrwa,bad,ip:1.2.3.4:rz");
        assert_eq!(
            acl,
            vec![
                Acl {
                    perms: perms::READ,
                    id: Id::new("world", "anyone")
                },
                Acl {
                    perms: perms::ALL,
                    id: Id::new("digest", "u:hash")
                },
                Acl {
                    perms: perms::READ,
                    id: Id::new("ip", "1.2.3.4")
                },
            ]
        );
        assert_eq!(
            warnings,
            [
                "bad does not have the form scheme:id:perm",
                "Unknown perm type: z"
            ]
        );
    }

    #[test]
    fn paths_validate_like_path_utils() {
        assert!(validate_path("/", false).is_ok());
        assert!(validate_path("/a/b", false).is_ok());
        assert_eq!(
            validate_path("a", false).unwrap_err(),
            "Path must start with / character"
        );
        assert_eq!(
            validate_path("/a/", false).unwrap_err(),
            "Path must not end with / character"
        );
        assert!(validate_path("/a/", true).is_ok());
        assert_eq!(
            validate_path("/a//b", false).unwrap_err(),
            "Invalid path string \"/a//b\" caused by empty node name specified @3"
        );
        assert_eq!(
            validate_path("/a/..", false).unwrap_err(),
            "Invalid path string \"/a/..\" caused by relative paths not allowed @4"
        );
        assert_eq!(
            validate_path("", false).unwrap_err(),
            "Path length must be > 0"
        );
        assert!(validate_path("/a.b/..c", false).is_ok());
    }
}
