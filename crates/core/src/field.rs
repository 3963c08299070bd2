//! The fields registry: typed custom fields per workspace and entity, type
//! inference for unknown traits, and lossless coercion of values.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::limits::{MAX_FIELD_NAME_LEN, MAX_LIST_LEN};

/// The type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// A string.
    Text,
    /// Any JSON number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339 date and time, kept in UTC.
    Datetime,
    /// An array of scalars (tags are a list).
    List,
    /// Any JSON value.
    Json,
}

impl FieldType {
    /// Every type, in documentation order.
    pub const ALL: [FieldType; 8] = [
        FieldType::Text,
        FieldType::Number,
        FieldType::Integer,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::Datetime,
        FieldType::List,
        FieldType::Json,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Integer => "integer",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::List => "list",
            FieldType::Json => "json",
        }
    }

    /// True for number and integer: the types `$inc` applies to.
    pub fn is_numeric(self) -> bool {
        matches!(self, FieldType::Number | FieldType::Integer)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FieldType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        FieldType::ALL.into_iter().find(|t| t.as_str() == s).ok_or(())
    }
}

/// The kind of object a field belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Entity {
    /// Contact traits.
    Contact,
    /// Company traits.
    Company,
    /// Rep attributes.
    Rep,
    /// Conversation attributes.
    Conversation,
}

impl Entity {
    /// Every entity.
    pub const ALL: [Entity; 4] = [Entity::Contact, Entity::Company, Entity::Rep, Entity::Conversation];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Contact => "contact",
            Entity::Company => "company",
            Entity::Rep => "rep",
            Entity::Conversation => "conversation",
        }
    }
}

impl FromStr for Entity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Entity::ALL.into_iter().find(|e| e.as_str() == s).ok_or(())
    }
}

/// A field definition as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// The entity it belongs to.
    pub entity: Entity,
    /// The underlying name (the trait key).
    pub name: String,
    /// A human label.
    pub label: String,
    /// Its type.
    pub field_type: FieldType,
    /// True when created on the fly from an unknown trait.
    pub inferred: bool,
    /// True for fields every workspace has (`tags`).
    pub builtin: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Fields every workspace has for contacts.
pub const BUILTIN_CONTACT_FIELDS: [(&str, &str, FieldType); 1] = [("tags", "Tags", FieldType::List)];

/// The types of the known fields of one entity in one workspace.
#[derive(Debug, Clone, Default)]
pub struct FieldRegistry {
    types: HashMap<String, FieldType>,
}

impl FieldRegistry {
    /// A registry from `(name, type)` pairs.
    pub fn new(fields: impl IntoIterator<Item = (String, FieldType)>) -> Self {
        FieldRegistry { types: fields.into_iter().collect() }
    }

    /// The registry of a new workspace's contacts.
    pub fn builtin_contact() -> Self {
        FieldRegistry::new(BUILTIN_CONTACT_FIELDS.iter().map(|(n, _, t)| (n.to_string(), *t)))
    }

    /// The type of `name`, if the field exists.
    pub fn get(&self, name: &str) -> Option<FieldType> {
        self.types
            .get(name)
            .copied()
            .or_else(|| BUILTIN_CONTACT_FIELDS.iter().find(|(n, _, _)| *n == name).map(|(_, _, t)| *t))
    }

    /// Records a field.
    pub fn insert(&mut self, name: String, field_type: FieldType) {
        self.types.insert(name, field_type);
    }
}

/// Checks a field name: 1 to 128 characters, no control characters, not
/// starting with `$` (reserved for operations).
pub fn validate_field_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.chars().count() > MAX_FIELD_NAME_LEN {
        return Err(Error::validation(
            name,
            format!("field name '{name}' must have 1 to {MAX_FIELD_NAME_LEN} characters"),
        ));
    }
    if name.starts_with('$') {
        return Err(Error::validation(name, format!("field name '{name}' must not start with '$'")));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(Error::validation(name, "field names must not contain control characters"));
    }
    Ok(())
}

/// The type of a new field created from its first value: number → number,
/// boolean → boolean, array → list, object → json, an ISO-8601 date string →
/// date, a date-time string → datetime, any other string → text.
pub fn infer_type(value: &Value) -> FieldType {
    match value {
        Value::Number(_) => FieldType::Number,
        Value::Bool(_) => FieldType::Boolean,
        Value::Array(_) => FieldType::List,
        Value::Object(_) => FieldType::Json,
        Value::String(s) if parse_date(s).is_some() => FieldType::Date,
        Value::String(s) if parse_datetime(s).is_some() => FieldType::Datetime,
        Value::String(_) | Value::Null => FieldType::Text,
    }
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // ISO-8601 without an offset is read as UTC.
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

/// Fits `value` to `field_type`: returned as is when it fits, coerced when
/// the coercion loses nothing (`"1500"` → 1500 for a number, `1500` → `"1500"`
/// for text), refused otherwise with an error naming `field`.
pub fn coerce(field: &str, field_type: FieldType, value: Value) -> Result<Value, Error> {
    let refuse = |value: &Value, why: &str| {
        Error::invalid_value(field, format!("field '{field}' is of type {field_type}; {} {why}", describe(value)))
    };
    match (field_type, value) {
        (_, Value::Null) => Ok(Value::Null),
        (FieldType::Json, v) => Ok(v),
        (FieldType::Text, Value::String(s)) => Ok(Value::String(s)),
        (FieldType::Text, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (FieldType::Text, Value::Bool(b)) => Ok(Value::String(b.to_string())),
        (FieldType::Number, Value::Number(n)) => Ok(Value::Number(n)),
        (FieldType::Number, Value::String(s)) => match parse_number(&s) {
            Some(n) => Ok(Value::Number(n)),
            None => Err(refuse(&Value::String(s), "is not a number")),
        },
        (FieldType::Integer, Value::Number(n)) => match as_integer(&n) {
            Some(i) => Ok(Value::from(i)),
            None => Err(refuse(&Value::Number(n), "is not a whole number")),
        },
        (FieldType::Integer, Value::String(s)) => match parse_number(&s).as_ref().and_then(as_integer) {
            Some(i) => Ok(Value::from(i)),
            None => Err(refuse(&Value::String(s), "is not a whole number")),
        },
        (FieldType::Boolean, Value::Bool(b)) => Ok(Value::Bool(b)),
        (FieldType::Boolean, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(refuse(&Value::String(s), "is not true or false")),
        },
        (FieldType::Date, Value::String(s)) => {
            if parse_date(&s).is_some() {
                Ok(Value::String(s))
            } else if let Some(t) = parse_datetime(&s).filter(|t| t.time() == chrono::NaiveTime::MIN) {
                Ok(Value::String(t.format("%Y-%m-%d").to_string()))
            } else {
                Err(refuse(&Value::String(s), "is not a date (YYYY-MM-DD)"))
            }
        }
        (FieldType::Datetime, Value::String(s)) => {
            if let Some(t) = parse_datetime(&s) {
                Ok(Value::String(crate::ids::fmt_time(&t)))
            } else if let Some(d) = parse_date(&s) {
                Ok(Value::String(crate::ids::fmt_time(&d.and_time(chrono::NaiveTime::MIN).and_utc())))
            } else {
                Err(refuse(&Value::String(s), "is not an RFC 3339 date-time"))
            }
        }
        (FieldType::List, Value::Array(items)) => {
            if items.len() > MAX_LIST_LEN {
                return Err(Error::invalid_value(
                    field,
                    format!("list field '{field}' holds at most {MAX_LIST_LEN} values"),
                ));
            }
            if items.iter().any(|v| v.is_array() || v.is_object()) {
                return Err(Error::invalid_value(
                    field,
                    format!("list field '{field}' holds scalars only (strings, numbers, booleans)"),
                ));
            }
            Ok(Value::Array(items))
        }
        (_, other) => Err(refuse(&other, "cannot be converted without loss")),
    }
}

fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("the value {}…", text.chars().take(40).collect::<String>())
    } else {
        format!("the value {text}")
    }
}

fn parse_number(s: &str) -> Option<serde_json::Number> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(i) = t.parse::<i64>() {
        return Some(i.into());
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite()).and_then(serde_json::Number::from_f64)
}

fn as_integer(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inference_follows_the_documented_table() {
        assert_eq!(infer_type(&json!(3)), FieldType::Number);
        assert_eq!(infer_type(&json!(true)), FieldType::Boolean);
        assert_eq!(infer_type(&json!(["a"])), FieldType::List);
        assert_eq!(infer_type(&json!("2024-02-29")), FieldType::Date);
        assert_eq!(infer_type(&json!("2024-02-29T10:00:00Z")), FieldType::Datetime);
        assert_eq!(infer_type(&json!("2024-02-30")), FieldType::Text);
        assert_eq!(infer_type(&json!("hello")), FieldType::Text);
        assert_eq!(infer_type(&json!({"a": 1})), FieldType::Json);
    }

    #[test]
    fn lossless_coercions_apply_and_lossy_ones_are_refused() {
        assert_eq!(coerce("n", FieldType::Number, json!("1500")).unwrap(), json!(1500));
        assert_eq!(coerce("n", FieldType::Integer, json!(7.0)).unwrap(), json!(7));
        assert!(coerce("n", FieldType::Integer, json!(7.5)).is_err());
        assert!(coerce("n", FieldType::Number, json!("lots")).is_err());
        assert_eq!(coerce("t", FieldType::Text, json!(12)).unwrap(), json!("12"));
        assert!(coerce("t", FieldType::Text, json!([1])).is_err());
        assert_eq!(coerce("b", FieldType::Boolean, json!("TRUE")).unwrap(), json!(true));
        assert!(coerce("b", FieldType::Boolean, json!(1)).is_err());
        assert_eq!(
            coerce("d", FieldType::Datetime, json!("2024-01-02T03:04:05+02:00")).unwrap(),
            json!("2024-01-02T01:04:05.000Z")
        );
        assert!(coerce("d", FieldType::Date, json!("yesterday")).is_err());
        let err = coerce("career_sales", FieldType::Number, json!("lots")).unwrap_err();
        assert_eq!(err.field(), Some("career_sales"));
        assert_eq!(err.code().status(), 422);
    }
}
