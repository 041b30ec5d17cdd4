//! Config documents and schemas, with no host calls: which format a config is in (JSON when
//! its first non-whitespace byte is `{`, TOML otherwise), parsing it, and checking it against
//! an optional schema (required and optional keys, dotted for nesting, with their types).

use std::collections::BTreeMap;

/// A parsed config: both formats have a table (object) at the top. TOML stays in the
/// parser's borrowed form: converting it to owned values would cost a second pass, and fuel.
#[derive(Debug)]
pub enum Doc<'a> {
    Json(serde_json::Map<String, serde_json::Value>),
    Toml(toml::de::DeTable<'a>),
}

/// The value types a schema can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    /// Any number (an integer counts as a float).
    Float,
    Boolean,
    Array,
    Table,
    /// TOML only: an offset or local date-time, date or time.
    Datetime,
    /// Any type, as long as the key is there.
    Any,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "string" => Kind::String,
            "integer" => Kind::Integer,
            "float" | "number" => Kind::Float,
            "boolean" | "bool" => Kind::Boolean,
            "array" => Kind::Array,
            "table" | "object" => Kind::Table,
            "datetime" => Kind::Datetime,
            "any" => Kind::Any,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Integer => "integer",
            Kind::Float => "float",
            Kind::Boolean => "boolean",
            Kind::Array => "array",
            Kind::Table => "table",
            Kind::Datetime => "datetime",
            Kind::Any => "any",
        }
    }

    /// True when a value of type `actual` satisfies `self`.
    fn admits(self, actual: Kind) -> bool {
        self == actual || self == Kind::Any || (self == Kind::Float && actual == Kind::Integer)
    }
}

/// A schema node's content: `{"required": {"key": "type"}, "optional": {"key": "type"}}`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Schema {
    pub required: BTreeMap<String, Kind>,
    pub optional: BTreeMap<String, Kind>,
}

/// Parses a config: JSON (an object) when the first non-whitespace byte is `{`, else TOML.
/// The error is a reason a person can act on.
pub fn parse_config(data: &[u8]) -> Result<Doc<'_>, String> {
    let text = std::str::from_utf8(data).map_err(|_| "config is not UTF-8".to_owned())?;
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text)
            .map(Doc::Json)
            .map_err(|error| format!("invalid JSON: {error}"))
    } else {
        toml::de::DeTable::parse(text)
            .map(|table| Doc::Toml(table.into_inner()))
            .map_err(|error| format!("invalid TOML: {}", one_line(&error.to_string())))
    }
}

/// TOML's errors span several lines (a snippet with a caret); a log line wants one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses a schema node's data (JSON). Empty data means no schema.
pub fn parse_schema(data: &[u8]) -> Result<Schema, String> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Schema::default());
    }
    let value: serde_json::Value =
        serde_json::from_slice(data).map_err(|error| format!("schema is not JSON: {error}"))?;
    let serde_json::Value::Object(top) = value else {
        return Err("schema must be a JSON object".into());
    };
    let mut schema = Schema::default();
    for (section, keys) in top {
        let target = match section.as_str() {
            "required" => &mut schema.required,
            "optional" => &mut schema.optional,
            other => return Err(format!("schema: unknown section {other:?}")),
        };
        let serde_json::Value::Object(keys) = keys else {
            return Err(format!("schema: {section} must map keys to type names"));
        };
        for (key, kind) in keys {
            let kind = kind
                .as_str()
                .and_then(Kind::parse)
                .ok_or_else(|| format!("schema: {key}: unknown type {kind}"))?;
            target.insert(key, kind);
        }
    }
    Ok(schema)
}

/// Checks `doc` against `schema`: every required key present with its type, every optional
/// key present only with its type.
pub fn check(doc: &Doc, schema: &Schema) -> Result<(), String> {
    for (key, want) in &schema.required {
        match kind_at(doc, key) {
            None => return Err(format!("missing required key {key:?} ({})", want.name())),
            Some(actual) if !want.admits(actual) => {
                return Err(wrong_type(key, *want, actual));
            }
            Some(_) => {}
        }
    }
    for (key, want) in &schema.optional {
        if let Some(actual) = kind_at(doc, key) {
            if !want.admits(actual) {
                return Err(wrong_type(key, *want, actual));
            }
        }
    }
    Ok(())
}

fn wrong_type(key: &str, want: Kind, actual: Kind) -> String {
    format!("key {key:?} must be {}, not {}", want.name(), actual.name())
}

/// The type of the value at a dotted key (`db.port`), if there is one.
fn kind_at(doc: &Doc, key: &str) -> Option<Kind> {
    let mut parts = key.split('.');
    let first = parts.next()?;
    match doc {
        Doc::Json(map) => {
            let mut value = map.get(first)?;
            for part in parts {
                value = value.as_object()?.get(part)?;
            }
            Some(json_kind(value))
        }
        Doc::Toml(table) => {
            let mut value = table.get(first)?.get_ref();
            for part in parts {
                let toml::de::DeValue::Table(table) = value else {
                    return None;
                };
                value = table.get(part)?.get_ref();
            }
            Some(toml_kind(value))
        }
    }
}

fn json_kind(value: &serde_json::Value) -> Kind {
    match value {
        // JSON has no "absent but typed": a null counts as no usable value of any type but Any.
        serde_json::Value::Null => Kind::Any,
        serde_json::Value::Bool(_) => Kind::Boolean,
        serde_json::Value::Number(number) if number.is_f64() => Kind::Float,
        serde_json::Value::Number(_) => Kind::Integer,
        serde_json::Value::String(_) => Kind::String,
        serde_json::Value::Array(_) => Kind::Array,
        serde_json::Value::Object(_) => Kind::Table,
    }
}

fn toml_kind(value: &toml::de::DeValue<'_>) -> Kind {
    match value {
        toml::de::DeValue::String(_) => Kind::String,
        toml::de::DeValue::Integer(_) => Kind::Integer,
        toml::de::DeValue::Float(_) => Kind::Float,
        toml::de::DeValue::Boolean(_) => Kind::Boolean,
        toml::de::DeValue::Datetime(_) => Kind::Datetime,
        toml::de::DeValue::Array(_) => Kind::Array,
        toml::de::DeValue::Table(_) => Kind::Table,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_first_byte() {
        assert!(matches!(
            parse_config(b"  {\"a\": 1}").unwrap(),
            Doc::Json(_)
        ));
        assert!(matches!(parse_config(b"a = 1\n").unwrap(), Doc::Toml(_)));
        assert!(matches!(
            parse_config(b"[db]\nport = 5\n").unwrap(),
            Doc::Toml(_)
        ));
        let json = parse_config(b"{\"a\": ").unwrap_err();
        assert!(json.starts_with("invalid JSON"), "{json}");
        let toml = parse_config(b"a = = 1").unwrap_err();
        assert!(toml.starts_with("invalid TOML"), "{toml}");
        assert!(!toml.contains('\n'), "{toml}");
        assert_eq!(parse_config(&[0xff]).unwrap_err(), "config is not UTF-8");
        // What only the spec's semantics forbid, not the grammar.
        assert!(parse_config(b"a = 1\na = 2\n").is_err());
        assert!(parse_config(b"[t]\nx = 1\n[t]\ny = 2\n").is_err());
        assert!(parse_config(b"a = 1\n[a]\nb = 2\n").is_err());
        assert!(parse_config(b"t = 1979-05-27T07:32:00Z\n").is_ok());
        // A top-level JSON array is neither a JSON object nor TOML.
        assert!(parse_config(b"[1, 2]").is_err());
    }

    #[test]
    fn schemas_check_required_and_optional_types() {
        let schema = parse_schema(
            br#"{"required": {"db.port": "integer", "name": "string"},
                 "optional": {"debug": "boolean", "ratio": "float"}}"#,
        )
        .unwrap();
        let good = parse_config(b"name = \"x\"\nratio = 2\n[db]\nport = 5432\n").unwrap();
        check(&good, &schema).unwrap();
        let good = parse_config(br#"{"name": "x", "db": {"port": 1}, "debug": true}"#).unwrap();
        check(&good, &schema).unwrap();
        let missing = parse_config(b"name = \"x\"\n").unwrap();
        assert_eq!(
            check(&missing, &schema).unwrap_err(),
            "missing required key \"db.port\" (integer)"
        );
        let typed = parse_config(br#"{"name": "x", "db": {"port": "5432"}}"#).unwrap();
        assert_eq!(
            check(&typed, &schema).unwrap_err(),
            "key \"db.port\" must be integer, not string"
        );
        let optional = parse_config(br#"{"name": "x", "db": {"port": 1}, "debug": 1}"#).unwrap();
        assert!(check(&optional, &schema).is_err());
    }

    #[test]
    fn bad_schemas_are_refused() {
        assert_eq!(parse_schema(b"").unwrap(), Schema::default());
        assert!(parse_schema(b"nope").is_err());
        assert!(parse_schema(b"[]").is_err());
        assert!(parse_schema(br#"{"required": {"a": "strang"}}"#).is_err());
        assert!(parse_schema(br#"{"mandatory": {}}"#).is_err());
        assert!(parse_schema(br#"{"required": ["a"]}"#).is_err());
    }
}
