//! Tab completion for the interactive shell (rustyline's `Helper`), like zkCli's
//! JLineZNodeCompleter: the first word completes to command names; a word starting with `/`
//! completes to the children of its parent znode, listed with getChildren on the shell's
//! current session (a bounded wait, so a dead server cannot hang the prompt).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use super::commands::COMMANDS;
use crate::client::Client;

/// How long a completion may wait for the server's child list.
const COMPLETION_WAIT_MS: u64 = 2000;

/// The session the completer lists children with; the shell swaps it on connect / close.
pub type SharedClient = Arc<Mutex<Option<Arc<Client>>>>;

pub struct ShellHelper {
    pub client: SharedClient,
    pub runtime: tokio::runtime::Handle,
}

/// Where the word under the cursor starts.
fn word_start(line: &str, pos: usize) -> usize {
    line[..pos]
        .rfind(char::is_whitespace)
        .map_or(0, |space| space + 1)
}

/// The command names (and the shell-only `help`) starting with `prefix`.
pub fn command_candidates(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = COMMANDS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .chain(std::iter::once("help".to_owned()))
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Splits a typed path into the parent to list and the prefix a child must start with:
/// `/a/b` -> (`/a`, `b`), `/a/` -> (`/a`, ``), `/x` -> (`/`, `x`).
pub fn split_for_completion(word: &str) -> (String, String) {
    match word.rfind('/') {
        Some(0) | None => ("/".to_owned(), word.trim_start_matches('/').to_owned()),
        Some(slash) => (word[..slash].to_owned(), word[slash + 1..].to_owned()),
    }
}

/// Full paths for the children of `parent` whose names start with `prefix`, sorted.
pub fn path_candidates(parent: &str, prefix: &str, children: &[String]) -> Vec<String> {
    let mut paths: Vec<String> = children
        .iter()
        .filter(|name| name.starts_with(prefix))
        .map(|name| {
            if parent == "/" {
                format!("/{name}")
            } else {
                format!("{parent}/{name}")
            }
        })
        .collect();
    paths.sort();
    paths
}

impl ShellHelper {
    fn children(&self, parent: &str) -> Vec<String> {
        let client = match self.client.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let Some(client) = client else {
            return Vec::new();
        };
        let wait = Duration::from_millis(COMPLETION_WAIT_MS);
        self.runtime
            .block_on(async {
                tokio::time::timeout(wait, client.get_children(parent, false)).await
            })
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = word_start(line, pos);
        let word = &line[start..pos];
        let candidates = if word.starts_with('/') {
            let (parent, prefix) = split_for_completion(word);
            path_candidates(&parent, &prefix, &self.children(&parent))
        } else if line[..start].trim().is_empty() {
            command_candidates(word)
        } else {
            Vec::new()
        };
        let pairs = candidates
            .into_iter()
            .map(|candidate| Pair {
                display: candidate.clone(),
                replacement: candidate,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_complete_by_prefix() {
        assert_eq!(
            command_candidates("getA"),
            ["getAcl", "getAllChildrenNumber"]
        );
        assert_eq!(command_candidates("q"), ["quit"]);
        assert!(command_candidates("zz").is_empty());
        assert_eq!(word_start("ls /a/b", 7), 3);
        assert_eq!(word_start("ls", 2), 0);
    }

    #[test]
    fn paths_complete_from_the_parent() {
        assert_eq!(split_for_completion("/ab"), ("/".into(), "ab".into()));
        assert_eq!(split_for_completion("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split_for_completion("/a/"), ("/a".into(), "".into()));
        let children = ["beta".to_owned(), "alpha".to_owned(), "bravo".to_owned()];
        assert_eq!(
            path_candidates("/a", "b", &children),
            ["/a/beta", "/a/bravo"]
        );
        assert_eq!(path_candidates("/", "al", &children), ["/alpha"]);
    }
}
