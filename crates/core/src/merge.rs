//! Trait operations and the one function that applies them.
//!
//! A write carries, per trait, one [`TraitOp`]: set a value, unset it
//! (`null`), edit a list (`{"add": [...], "remove": [...]}`), increment a
//! number (`{"$inc": n}`) or set it only when empty (`{"$set_once": v}`).
//! [`apply_traits`] applies a whole write atomically: either every operation
//! applies or none does. The native API, every dialect and the ingest
//! appliers call it; there is no second implementation.

use serde_json::{Map, Number, Value};

use crate::error::Error;
use crate::field::{FieldRegistry, FieldType, coerce, infer_type, validate_field_name};
use crate::limits::{MAX_TRAIT_VALUE_BYTES, MAX_TRAITS_PER_CONTACT, MAX_TRAITS_PER_WRITE};

/// One operation on one trait.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TraitOp {
    /// Replace the value.
    Set(Value),
    /// Remove the trait (`null`).
    Unset,
    /// Add values to and remove values from a list (added first, then
    /// removed: a value in both ends up absent). `raw` is the object as sent,
    /// stored as is when the field is of type json.
    ListEdit {
        /// Values to append when absent.
        add: Vec<Value>,
        /// Values to remove.
        remove: Vec<Value>,
        /// The object as sent.
        raw: Value,
    },
    /// Add `n` to a number (absent counts as 0).
    Inc(Number),
    /// Set only when the trait is absent or null.
    SetOnce(Value),
}

/// A parsed list of trait operations, in the order they were sent.
pub type TraitOps = Vec<(String, TraitOp)>;

impl TraitOp {
    /// Reads one trait's JSON value as an operation.
    pub fn parse(name: &str, value: Value) -> Result<TraitOp, Error> {
        let object = match value {
            Value::Null => return Ok(TraitOp::Unset),
            Value::Object(object) => object,
            other => return Ok(TraitOp::Set(other)),
        };
        if object.len() == 1 {
            if let Some(n) = object.get("$inc") {
                return match n {
                    Value::Number(n) => Ok(TraitOp::Inc(n.clone())),
                    _ => Err(Error::validation(name, format!("'$inc' on '{name}' needs a number"))),
                };
            }
            if let Some(v) = object.get("$set_once") {
                return Ok(TraitOp::SetOnce(v.clone()));
            }
        }
        let is_list_edit = !object.is_empty()
            && object.keys().all(|k| k == "add" || k == "remove")
            && object.values().all(Value::is_array);
        if is_list_edit {
            let take = |key: &str| match object.get(key) {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            };
            return Ok(TraitOp::ListEdit { add: take("add"), remove: take("remove"), raw: Value::Object(object) });
        }
        if let Some(op) = object.keys().find(|k| k.starts_with('$')) {
            return Err(Error::validation(
                name,
                format!("unknown operation '{op}' on '{name}'; known: $inc, $set_once, add/remove"),
            ));
        }
        Ok(TraitOp::Set(Value::Object(object)))
    }

    /// Reads a JSON object of traits as operations, checking names and sizes.
    pub fn parse_map(traits: &Map<String, Value>) -> Result<TraitOps, Error> {
        TraitOp::parse_owned_map(traits.clone())
    }

    /// As [`TraitOp::parse_map`], taking the object: names and values move
    /// into the operations instead of being copied (the ingest path reads
    /// every item's traits through here).
    pub fn parse_owned_map(traits: Map<String, Value>) -> Result<TraitOps, Error> {
        if traits.len() > MAX_TRAITS_PER_WRITE {
            return Err(Error::validation("traits", format!("at most {MAX_TRAITS_PER_WRITE} traits per write")));
        }
        traits
            .into_iter()
            .map(|(name, value)| {
                validate_field_name(&name)?;
                check_size(&name, &value)?;
                let op = TraitOp::parse(&name, value)?;
                Ok((name, op))
            })
            .collect()
    }
}

impl TraitOp {
    /// Reads a JSON object of plain values (a vendor's "variables"): each
    /// value is set as given — objects are values, not operations — and
    /// `null` unsets. Names and sizes are checked as in [`TraitOp::parse_map`].
    pub fn parse_plain_map(traits: &Map<String, Value>) -> Result<TraitOps, Error> {
        if traits.len() > MAX_TRAITS_PER_WRITE {
            return Err(Error::validation("traits", format!("at most {MAX_TRAITS_PER_WRITE} traits per write")));
        }
        traits
            .iter()
            .map(|(name, value)| {
                validate_field_name(name)?;
                check_size(name, value)?;
                let op = if value.is_null() { TraitOp::Unset } else { TraitOp::Set(value.clone()) };
                Ok((name.clone(), op))
            })
            .collect()
    }
}

fn check_size(name: &str, value: &Value) -> Result<(), Error> {
    let fits = match value {
        Value::String(s) => s.len() <= MAX_TRAIT_VALUE_BYTES,
        Value::Number(_) | Value::Bool(_) | Value::Null => true,
        other => serde_json::to_writer(ByteBudget(MAX_TRAIT_VALUE_BYTES), other).is_ok(),
    };
    if fits {
        Ok(())
    } else {
        Err(Error::validation(name, format!("the value of '{name}' is larger than {MAX_TRAIT_VALUE_BYTES} bytes")))
    }
}

/// A writer that only counts, failing once more than its budget of bytes
/// is written: a value's JSON size is checked without building the JSON.
struct ByteBudget(usize);

impl std::io::Write for ByteBudget {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.checked_sub(buf.len()).ok_or_else(|| std::io::Error::other("over budget"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What applying a write changed beyond the traits themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergeOutcome {
    /// Fields created on the fly, with their inferred types, in first-use order.
    pub new_fields: Vec<(String, FieldType)>,
    /// Whether the record differs from what it was: false when every
    /// operation left its value as it was (then the store writes nothing and
    /// keeps `updated_at`). Set by [`apply_traits`] for the traits; the
    /// applies of contacts, companies and reps add their own columns.
    pub changed: bool,
}

/// Applies `ops` to `traits`, all or nothing. Unknown traits get a field with
/// an inferred type (recorded in `registry` and in the outcome); values are
/// coerced to their field's type or refused with an error naming the field.
pub fn apply_traits(
    traits: &mut Map<String, Value>,
    ops: &[(String, TraitOp)],
    registry: &mut FieldRegistry,
) -> Result<MergeOutcome, Error> {
    let mut next = traits.clone();
    let mut outcome = MergeOutcome::default();
    for (name, op) in ops {
        let known = registry.get(name).or_else(|| outcome.new_fields.iter().find(|(n, _)| n == name).map(|(_, t)| *t));
        let field_type = match known {
            Some(t) => t,
            None => match inferred_type(op) {
                Some(t) => {
                    outcome.new_fields.push((name.clone(), t));
                    t
                }
                None => {
                    // unsetting a trait without a field creates no field
                    next.remove(name);
                    continue;
                }
            },
        };
        apply_one(&mut next, name, op, field_type)?;
    }
    if next.len() > MAX_TRAITS_PER_CONTACT && next.len() > traits.len() {
        return Err(Error::validation("traits", format!("a record holds at most {MAX_TRAITS_PER_CONTACT} traits")));
    }
    outcome.changed = next != *traits;
    *traits = next;
    for (name, t) in &outcome.new_fields {
        registry.insert(name.clone(), *t);
    }
    Ok(outcome)
}

fn inferred_type(op: &TraitOp) -> Option<FieldType> {
    match op {
        TraitOp::Set(v) | TraitOp::SetOnce(v) => Some(infer_type(v)),
        TraitOp::Unset => None,
        TraitOp::ListEdit { .. } => Some(FieldType::List),
        TraitOp::Inc(_) => Some(FieldType::Number),
    }
}

fn apply_one(traits: &mut Map<String, Value>, name: &str, op: &TraitOp, field_type: FieldType) -> Result<(), Error> {
    match op {
        TraitOp::Unset => {
            traits.remove(name);
        }
        TraitOp::Set(value) => set(traits, name, coerce(name, field_type, value.clone())?),
        TraitOp::SetOnce(value) => {
            if traits.get(name).is_none_or(Value::is_null) {
                set(traits, name, coerce(name, field_type, value.clone())?);
            }
        }
        TraitOp::ListEdit { raw, .. } if field_type == FieldType::Json => {
            traits.insert(name.to_string(), raw.clone());
        }
        TraitOp::ListEdit { add, remove, .. } => {
            if field_type != FieldType::List {
                return Err(Error::invalid_value(
                    name,
                    format!("'add'/'remove' apply to list fields; '{name}' is of type {field_type}"),
                ));
            }
            let mut items = match traits.remove(name) {
                Some(Value::Array(items)) => items,
                Some(Value::Null) | None => Vec::new(),
                Some(other) => vec![other],
            };
            for value in add {
                if !items.contains(value) {
                    items.push(value.clone());
                }
            }
            items.retain(|v| !remove.contains(v));
            set(traits, name, coerce(name, FieldType::List, Value::Array(items))?);
        }
        TraitOp::Inc(by) => {
            if !field_type.is_numeric() {
                return Err(Error::invalid_value(
                    name,
                    format!("'$inc' applies to number fields; '{name}' is of type {field_type}"),
                ));
            }
            let current = match traits.get(name) {
                None | Some(Value::Null) => Value::from(0),
                Some(v) => coerce(name, field_type, v.clone())?,
            };
            let sum = add_numbers(&current, by)
                .ok_or_else(|| Error::invalid_value(name, format!("'$inc' on '{name}' overflows")))?;
            set(traits, name, coerce(name, field_type, sum)?);
        }
    }
    Ok(())
}

fn set(traits: &mut Map<String, Value>, name: &str, value: Value) {
    if value.is_null() {
        traits.remove(name);
    } else {
        traits.insert(name.to_string(), value);
    }
}

fn add_numbers(current: &Value, by: &Number) -> Option<Value> {
    let current = current.as_number()?;
    if let (Some(a), Some(b)) = (current.as_i64(), by.as_i64()) {
        return a.checked_add(b).map(Value::from);
    }
    let sum = current.as_f64()? + by.as_f64()?;
    Number::from_f64(sum).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn ops(v: Value) -> TraitOps {
        TraitOp::parse_map(v.as_object().unwrap()).unwrap()
    }

    #[test]
    fn every_operation_applies() {
        let mut reg = FieldRegistry::builtin_contact();
        let mut t =
            json!({"plan": "free", "tags": ["a", "b"], "visits": 2, "first_seen": "x"}).as_object().unwrap().clone();
        reg.insert("visits".into(), FieldType::Integer);
        let o = apply_traits(
            &mut t,
            &ops(json!({
                "plan": null,
                "tags": {"add": ["c", "a"], "remove": ["b"]},
                "visits": {"$inc": 3},
                "first_seen": {"$set_once": "y"},
                "source": {"$set_once": "ads"},
                "score": 9.5
            })),
            &mut reg,
        )
        .unwrap();
        assert_eq!(
            Value::Object(t),
            json!({"tags": ["a", "c"], "visits": 5, "first_seen": "x", "source": "ads", "score": 9.5})
        );
        let names: Vec<&str> = o.new_fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["first_seen", "score", "source"], "traits without a field get one");
        assert_eq!(reg.get("score"), Some(FieldType::Number));
    }

    #[test]
    fn the_outcome_says_whether_the_traits_changed() {
        let mut reg = FieldRegistry::builtin_contact();
        reg.insert("score".into(), FieldType::Number);
        let write = ops(json!({"plan": "pro", "score": "500", "tags": {"add": ["a"]}, "gone": null}));
        let mut t = json!({"gone": 1}).as_object().unwrap().clone();
        assert!(apply_traits(&mut t, &write, &mut reg).unwrap().changed);
        let before = t.clone();
        let again = apply_traits(&mut t, &write, &mut reg).unwrap();
        assert!(!again.changed, "the same write again leaves every value as it was");
        assert_eq!(t, before);
        let set_once = ops(json!({"x": {"$set_once": 1}, "x2": null}));
        assert!(apply_traits(&mut t, &set_once, &mut reg).unwrap().changed, "a new trait is a change");
        assert!(!apply_traits(&mut t, &ops(json!({"x": {"$set_once": 2}})), &mut reg).unwrap().changed);
        assert!(apply_traits(&mut t, &ops(json!({"score": {"$inc": 0.5}})), &mut reg).unwrap().changed);
        assert!(!apply_traits(&mut t, &[], &mut reg).unwrap().changed);
    }

    #[test]
    fn a_failing_operation_changes_nothing() {
        let mut reg = FieldRegistry::builtin_contact();
        reg.insert("age".into(), FieldType::Integer);
        let mut t = Map::new();
        let err = apply_traits(&mut t, &ops(json!({"plan": "pro", "age": "old"})), &mut reg).unwrap_err();
        assert_eq!(err.field(), Some("age"));
        assert!(t.is_empty());
        assert_eq!(reg.get("plan"), None, "a refused write creates no field");
    }

    #[test]
    fn unknown_dollar_operations_are_refused() {
        assert!(TraitOp::parse_map(json!({"x": {"$mul": 2}}).as_object().unwrap()).is_err());
        assert!(TraitOp::parse_map(json!({"$x": 1}).as_object().unwrap()).is_err());
        assert!(TraitOp::parse_map(json!({"x": {"$inc": "2"}}).as_object().unwrap()).is_err());
    }

    #[test]
    fn list_edit_on_a_json_field_stores_the_object() {
        let mut reg = FieldRegistry::default();
        reg.insert("meta".into(), FieldType::Json);
        let mut t = Map::new();
        apply_traits(&mut t, &ops(json!({"meta": {"add": [1]}})), &mut reg).unwrap();
        assert_eq!(t["meta"], json!({"add": [1]}));
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof!["[a-d]{1,2}".prop_map(Value::from), (0i64..5).prop_map(Value::from),]
    }

    proptest! {
        #[test]
        fn inc_commutes(start in -1000i64..1000, incs in proptest::collection::vec(-1000i64..1000, 0..8)) {
            let mut forward = json!({"n": start}).as_object().unwrap().clone();
            let mut backward = forward.clone();
            let mut reg = FieldRegistry::default();
            for i in &incs {
                apply_traits(&mut forward, &[("n".into(), TraitOp::Inc((*i).into()))], &mut reg).unwrap();
            }
            for i in incs.iter().rev() {
                apply_traits(&mut backward, &[("n".into(), TraitOp::Inc((*i).into()))], &mut reg).unwrap();
            }
            prop_assert_eq!(&forward, &backward);
            prop_assert_eq!(forward["n"].as_i64().unwrap(), start + incs.iter().sum::<i64>());
        }

        #[test]
        fn add_then_remove_restores_the_list(list in proptest::collection::vec(scalar(), 0..6), extra in scalar()) {
            prop_assume!(!list.contains(&extra));
            let mut dedup: Vec<Value> = Vec::new();
            for v in list { if !dedup.contains(&v) { dedup.push(v); } }
            let original = json!({"tags": dedup}).as_object().unwrap().clone();
            let mut t = original.clone();
            let mut reg = FieldRegistry::builtin_contact();
            apply_traits(&mut t, &[("tags".into(), TraitOp::ListEdit { add: vec![extra.clone()], remove: vec![], raw: Value::Null })], &mut reg).unwrap();
            prop_assert!(t["tags"].as_array().unwrap().contains(&extra));
            apply_traits(&mut t, &[("tags".into(), TraitOp::ListEdit { add: vec![], remove: vec![extra], raw: Value::Null })], &mut reg).unwrap();
            prop_assert_eq!(t, original);
        }

        #[test]
        fn list_add_is_idempotent(list in proptest::collection::vec(scalar(), 0..6), add in proptest::collection::vec(scalar(), 0..4)) {
            let mut reg = FieldRegistry::builtin_contact();
            let mut once = json!({"tags": list}).as_object().unwrap().clone();
            let op = [("tags".to_string(), TraitOp::ListEdit { add, remove: vec![], raw: Value::Null })];
            apply_traits(&mut once, &op, &mut reg).unwrap();
            let mut twice = once.clone();
            apply_traits(&mut twice, &op, &mut reg).unwrap();
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn set_once_never_overwrites(first in scalar(), second in scalar()) {
            let mut reg = FieldRegistry::default();
            reg.insert("x".into(), FieldType::Json);
            let mut t = Map::new();
            apply_traits(&mut t, &[("x".into(), TraitOp::SetOnce(first.clone()))], &mut reg).unwrap();
            apply_traits(&mut t, &[("x".into(), TraitOp::SetOnce(second))], &mut reg).unwrap();
            prop_assert_eq!(&t["x"], &first);
        }

        #[test]
        fn merge_never_panics_on_arbitrary_ops(keys in proptest::collection::vec("[a-c]", 1..5), vals in proptest::collection::vec(scalar(), 1..5)) {
            let mut reg = FieldRegistry::builtin_contact();
            let mut t = Map::new();
            for (k, v) in keys.iter().zip(vals) {
                let _ = apply_traits(&mut t, &[(k.clone(), TraitOp::Set(v.clone()))], &mut reg);
                let _ = apply_traits(&mut t, &[(k.clone(), TraitOp::Inc(1.into()))], &mut reg);
            }
        }
    }
}
