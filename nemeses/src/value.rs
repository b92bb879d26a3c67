//! Reading the fields of a fault op's value, with one-sentence errors naming the op.
//!
//! Values come from our own `next_op` but also from hand-written or replayed schedules,
//! so every field is checked rather than trusted.

use crate::error::NemesisError;
use crate::nemesis::FaultOp;
use serde_json::Value;

fn field<'a>(op: &'a FaultOp, key: &str) -> Option<&'a Value> {
    op.value.get(key).filter(|v| !v.is_null())
}

pub(crate) fn opt_str<'a>(op: &'a FaultOp, key: &str) -> Result<Option<&'a str>, NemesisError> {
    match field(op, key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| NemesisError::bad_value(&op.f, format!("`{key}` must be a string"))),
    }
}

pub(crate) fn opt_i64(op: &FaultOp, key: &str) -> Result<Option<i64>, NemesisError> {
    match field(op, key) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| NemesisError::bad_value(&op.f, format!("`{key}` must be an integer"))),
    }
}

pub(crate) fn opt_f64(op: &FaultOp, key: &str) -> Result<Option<f64>, NemesisError> {
    match field(op, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| NemesisError::bad_value(&op.f, format!("`{key}` must be a number"))),
    }
}

/// A list of node names, e.g. `"nodes": ["n1", "n2"]`.
pub(crate) fn opt_names(op: &FaultOp, key: &str) -> Result<Option<Vec<String>>, NemesisError> {
    match field(op, key) {
        None => Ok(None),
        Some(v) => names_of(&op.f, key, v).map(Some),
    }
}

pub(crate) fn names_of(f: &str, key: &str, v: &Value) -> Result<Vec<String>, NemesisError> {
    let bad = || NemesisError::bad_value(f, format!("`{key}` must be a list of node names"));
    let items = v.as_array().ok_or_else(bad)?;
    items
        .iter()
        .map(|item| item.as_str().map(str::to_string).ok_or_else(bad))
        .collect()
}

/// An integer field that must be present and within `min..=max`.
pub(crate) fn bounded_i64(
    op: &FaultOp,
    key: &str,
    min: i64,
    max: i64,
) -> Result<i64, NemesisError> {
    let v = opt_i64(op, key)?
        .ok_or_else(|| NemesisError::bad_value(&op.f, format!("`{key}` is missing")))?;
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(NemesisError::bad_value(
            &op.f,
            format!("`{key}` is {v}, outside {min}..={max}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_are_errors_not_panics() {
        let op = FaultOp::new("kill", json!({"nodes": [1], "delta_ms": "x"}));
        assert!(opt_names(&op, "nodes").is_err());
        assert!(opt_i64(&op, "delta_ms").is_err());
        assert!(bounded_i64(&op, "missing", 0, 1).is_err());
        let op = FaultOp::new("kill", json!({"delta_ms": 5}));
        assert!(bounded_i64(&op, "delta_ms", 0, 4).is_err());
        assert_eq!(bounded_i64(&op, "delta_ms", 0, 5).unwrap(), 5);
    }

    #[test]
    fn a_null_value_has_no_fields() {
        let op = FaultOp::new("start", Value::Null);
        assert_eq!(opt_names(&op, "nodes").unwrap(), None);
    }
}
