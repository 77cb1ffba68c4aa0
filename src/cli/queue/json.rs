//! The `--json` shape of the queue commands (and `tokens list`): the store's rows with their
//! JSON-text lists as arrays and their millisecond times as RFC 3339.

/// The `--json` shape of `queue list` and `queue show`: the store's rows, with the lists it
/// keeps as JSON text (`reasons`, `loan_numbers`, `recipients`, `review`) as real arrays and
/// its times (`at`, `…_at`, Unix milliseconds) as RFC 3339 UTC strings.
pub fn json_view(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(json_view).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s)
                            if matches!(
                                k.as_str(),
                                "reasons" | "loan_numbers" | "recipients" | "review"
                            ) =>
                        {
                            match serde_json::from_str::<Value>(&s) {
                                Ok(list @ Value::Array(_)) => list,
                                _ => Value::String(s),
                            }
                        }
                        Value::Number(n) if k == "at" || k.ends_with("_at") => n
                            .as_i64()
                            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                            .map(|t| Value::String(rfc3339(t)))
                            .unwrap_or(Value::Number(n)),
                        other => json_view(other),
                    };
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// `2026-12-04T07:15:00.123Z` (milliseconds only when there are any).
fn rfc3339(t: jiff::Timestamp) -> String {
    if t.subsec_millisecond() == 0 {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}
