//! zkw.toml: the same keys as zoo.cfg in TOML syntax, flattened into zoo.cfg-style entries.
//!
//! Keys are zoo.cfg's own names. Because those names contain dots, both spellings work: a quoted
//! key (`"4lw.commands.whitelist" = "*"`) and a dotted or sectioned one (`admin.serverPort =
//! 8080`, `[admin]`); nested tables are joined back with `.`. Values may be strings, integers or
//! booleans (an array of strings is joined with `,`, for the whitelist); every value becomes the
//! text zoo.cfg would hold, so one validator serves both formats. Line numbers come from spans.

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::properties::SyntaxError;
use super::Entry;

/// Parses `text` into entries sorted by line.
pub(crate) fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let table = DeTable::parse(text).map_err(|error| SyntaxError {
        line: error.span().map_or(1, |span| line_of(text, span.start)),
        reason: error.message().trim().to_owned(),
    })?;
    let mut entries = Vec::new();
    flatten(text, "", table.get_ref(), &mut entries)?;
    entries.sort_by_key(|entry| entry.line);
    Ok(entries)
}

fn flatten(
    text: &str,
    prefix: &str,
    table: &DeTable<'_>,
    entries: &mut Vec<Entry>,
) -> Result<(), SyntaxError> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        let line = line_of(text, key.span().start);
        match value.get_ref() {
            DeValue::Table(inner) => flatten(text, &name, inner, entries)?,
            other => {
                let value = scalar_text(other).map_err(|kind| SyntaxError {
                    line,
                    reason: format!("{name}: a {kind} is not a valid value here"),
                })?;
                entries.push(Entry {
                    key: name,
                    value,
                    line,
                });
            }
        }
    }
    Ok(())
}

/// The zoo.cfg text of a TOML value, or the name of its unsupported type.
fn scalar_text(value: &DeValue<'_>) -> Result<String, &'static str> {
    match value {
        DeValue::String(text) => Ok(text.to_string()),
        DeValue::Integer(integer) => {
            let digits = integer.as_str().replace('_', "");
            match integer.radix() {
                10 => Ok(digits),
                16 => Ok(format!("0x{digits}")),
                // Octal and binary have no zoo.cfg spelling: convert to decimal.
                radix => i64::from_str_radix(&digits, radix)
                    .map(|number| number.to_string())
                    .map_err(|_| "integer"),
            }
        }
        DeValue::Boolean(flag) => Ok(flag.to_string()),
        DeValue::Array(items) => items
            .iter()
            .map(|item: &Spanned<DeValue<'_>>| match item.get_ref() {
                DeValue::String(text) => Ok(text.to_string()),
                _ => Err("array of non-strings"),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| parts.join(",")),
        DeValue::Float(_) => Err("float"),
        DeValue::Datetime(_) => Err("datetime"),
        DeValue::Table(_) => Err("table"),
    }
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> u32 {
    let end = offset.min(text.len());
    let newline_count = text.as_bytes()[..end]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count();
    u32::try_from(newline_count).map_or(u32::MAX, |count| count.saturating_add(1))
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

    #[test]
    fn quoted_dotted_and_sectioned_keys_flatten_alike() {
        let text = "tickTime = 2000\n\"4lw.commands.whitelist\" = \"*\"\nadmin.serverPort = 9090\n\
                    [metricsProvider]\nhttpPort = 7001\n";
        assert_eq!(
            pairs(text),
            vec![
                ("tickTime".into(), "2000".into(), 1),
                ("4lw.commands.whitelist".into(), "*".into(), 2),
                ("admin.serverPort".into(), "9090".into(), 3),
                ("metricsProvider.httpPort".into(), "7001".into(), 5),
            ]
        );
    }

    #[test]
    fn values_become_zoo_cfg_text() {
        let text = "a = true\nb = 0xff\nc = 1_000\nd = [\"srvr\", \"ruok\"]\ne = 0o17\n";
        let values: Vec<String> = pairs(text).into_iter().map(|(_, value, _)| value).collect();
        assert_eq!(values, vec!["true", "0xff", "1000", "srvr,ruok", "15"]);
    }

    #[test]
    fn floats_are_refused_with_line() {
        let error = parse("tickTime = 2000\nsnapCount = 1.5\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.reason.contains("snapCount"), "{}", error.reason);
    }

    #[test]
    fn syntax_error_has_line() {
        let error = parse("tickTime = 2000\nclientPort = = 1\n").unwrap_err();
        assert_eq!(error.line, 2);
    }
}
