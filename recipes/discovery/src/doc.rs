//! The endpoints document, with no host calls: a JSON array with one instance per line,
//!
//! ```text
//! [
//! {"id":"a","address":"10.0.0.1","port":8080},
//! {"id":"b","address":"10.0.0.2","metadata":{"zone":"x"},"port":8080}
//! ]
//! ```
//!
//! sorted by id, each entry the instance's payload (compact, keys sorted) with `"id"` first.
//! One entry per line lets a join, change or leave splice one line in or out without parsing
//! the others: a run pays for one payload and a copy, not for parsing the whole service.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// The prefix every entry line starts with.
const ENTRY_PREFIX: &str = "{\"id\":";

/// An endpoints document's entry lines, borrowed from its bytes, in id order.
pub struct Lines<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Lines<'a> {
    /// Splits a document this module wrote; `None` for anything else (the caller rebuilds).
    /// Only the shape is checked, not the order or each line's JSON: the recipe is the only
    /// writer, and checking every entry would cost what splicing saves.
    pub fn parse(data: &'a [u8]) -> Option<Lines<'a>> {
        let text = std::str::from_utf8(data).ok()?;
        let body = text.strip_prefix("[\n")?.strip_suffix(']')?;
        let mut lines = Vec::new();
        for line in body.split_terminator('\n') {
            let line = line.strip_suffix(',').unwrap_or(line);
            if !line.starts_with(ENTRY_PREFIX) {
                return None;
            }
            lines.push(line);
        }
        Some(Lines { lines })
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The document with `id`'s entry set to `line` (inserted in id order, or replacing
    /// it), or removed when `line` is `None`. Binary search: O(log n) ids are read.
    pub fn splice(mut self, id: &str, line: Option<&'a str>) -> Vec<u8> {
        let found = self
            .lines
            .binary_search_by(|have| entry_id(have).as_deref().unwrap_or("").cmp(id));
        match (found, line) {
            (Ok(at), Some(line)) => {
                if let Some(slot) = self.lines.get_mut(at) {
                    *slot = line;
                }
            }
            (Ok(at), None) => {
                self.lines.remove(at);
            }
            (Err(at), Some(line)) => self.lines.insert(at, line),
            (Err(_), None) => {}
        }
        encode(&self.lines)
    }
}

/// A document of `lines` (entry lines in id order).
pub fn encode<S: AsRef<str>>(lines: &[S]) -> Vec<u8> {
    let size: usize = lines.iter().map(|line| line.as_ref().len() + 2).sum();
    let mut out = Vec::with_capacity(size + 3);
    out.extend_from_slice(b"[\n");
    for (n, line) in lines.iter().enumerate() {
        out.extend_from_slice(line.as_ref().as_bytes());
        out.extend_from_slice(if n + 1 < lines.len() { b",\n" } else { b"\n" });
    }
    out.push(b']');
    out
}

/// The id of an entry line: the JSON string after [`ENTRY_PREFIX`], borrowed unless it has
/// escapes.
fn entry_id(line: &str) -> Option<Cow<'_, str>> {
    let rest = line.strip_prefix(ENTRY_PREFIX)?;
    let bytes = rest.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut escapes = false;
    let mut at = 1;
    while let Some(byte) = bytes.get(at) {
        match byte {
            b'\\' => {
                escapes = true;
                at += 2;
                continue;
            }
            b'"' if escapes => return serde_json::from_str(rest.get(..=at)?).ok().map(Cow::Owned),
            b'"' => return rest.get(1..at).map(Cow::Borrowed),
            _ => at += 1,
        }
    }
    None
}

/// Checks an instance payload: a JSON object with a string `address`, an integer `port` in
/// 0..=[`crate::PORT_MAX`], no `id` (the recipe adds it) and, if present, an object
/// `metadata`. Other fields are kept as they are.
pub fn parse_instance(data: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value =
        serde_json::from_slice(data).map_err(|error| format!("not JSON: {error}"))?;
    let Value::Object(object) = value else {
        return Err("must be a JSON object".into());
    };
    if !object.get("address").is_some_and(Value::is_string) {
        return Err("needs a string \"address\"".into());
    }
    match object.get("port").and_then(Value::as_u64) {
        Some(port) if port <= crate::PORT_MAX => {}
        _ => {
            return Err(format!(
                "needs an integer \"port\" in 0..={}",
                crate::PORT_MAX
            ))
        }
    }
    if object.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err("\"metadata\" must be an object".into());
    }
    if object.contains_key("id") {
        return Err("\"id\" is the node's name: leave it out".into());
    }
    Ok(object)
}

/// `id`'s entry line for `payload`, or `None` when the payload is not a valid instance (one
/// written before the recipe was installed): such instances are left out.
pub fn entry_line(id: &str, payload: &[u8]) -> Option<String> {
    let object = parse_instance(payload).ok()?;
    // Serializing strings and Values cannot fail; an object with `address` is never empty.
    let id = serde_json::to_string(id).ok()?;
    let body = serde_json::to_string(&Value::Object(object)).ok()?;
    let fields = body.strip_prefix('{')?;
    Some(format!("{ENTRY_PREFIX}{id},{fields}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, port: u16) -> String {
        entry_line(
            id,
            format!(r#"{{"address": "h", "port": {port}}}"#).as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn lines_splice_in_id_order_and_round_trip() {
        let empty = encode::<&str>(&[]);
        assert_eq!(empty, b"[\n]");
        assert!(Lines::parse(&empty).unwrap().is_empty());
        let (a, b, b2, q) = (line("a", 1), line("b", 2), line("b", 20), line("c\"q", 3));
        let doc = Lines::parse(&empty).unwrap().splice("b", Some(&b));
        let doc = Lines::parse(&doc).unwrap().splice("a", Some(&a));
        let doc = Lines::parse(&doc).unwrap().splice("c\"q", Some(&q));
        let doc = Lines::parse(&doc).unwrap().splice("b", Some(&b2));
        let text = String::from_utf8(doc.clone()).unwrap();
        assert_eq!(
            text,
            "[\n{\"id\":\"a\",\"address\":\"h\",\"port\":1},\n\
             {\"id\":\"b\",\"address\":\"h\",\"port\":20},\n\
             {\"id\":\"c\\\"q\",\"address\":\"h\",\"port\":3}\n]"
        );
        let list: Vec<Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(list[2]["id"], "c\"q");
        assert_eq!(encode(&[&a, &b2, &q]), doc);
        let doc = Lines::parse(&doc).unwrap().splice("b", None);
        let doc = Lines::parse(&doc).unwrap().splice("zz", None);
        assert_eq!(Lines::parse(&doc).unwrap().len(), 2);
    }

    #[test]
    fn foreign_documents_are_not_parsed() {
        assert!(Lines::parse(b"[]").is_none());
        assert!(Lines::parse(b"[\n{\"address\":\"h\"}\n]").is_none());
        assert!(Lines::parse(&[0xff]).is_none());
    }

    #[test]
    fn payloads_are_checked() {
        parse_instance(br#"{"address": "h", "port": 1, "metadata": {"zone": "a"}}"#).unwrap();
        assert!(parse_instance(b"nope").unwrap_err().starts_with("not JSON"));
        assert!(parse_instance(b"[]").is_err());
        assert!(parse_instance(br#"{"port": 1}"#).is_err());
        assert!(parse_instance(br#"{"address": "h", "port": 70000}"#).is_err());
        assert!(parse_instance(br#"{"address": "h", "port": "80"}"#).is_err());
        assert!(parse_instance(br#"{"address": "h", "port": 1, "metadata": 3}"#).is_err());
        assert!(parse_instance(br#"{"address": "h", "port": 1, "id": "x"}"#).is_err());
        assert!(entry_line("x", b"{}").is_none());
    }
}
