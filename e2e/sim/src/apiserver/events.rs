//! Events seen through two versions: core/v1 (stored form; what `kubectl describe` reads with
//! `involvedObject.*` field selectors) and events.k8s.io/v1 (what kube-rs' `Recorder` writes).
//! The field mapping is the one of kubernetes/pkg/apis/events/v1/conversion.go.

use serde_json::{Map, Value};

/// (events.k8s.io/v1 field, core/v1 field) pairs that differ only by name.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, api_version: &str, from_idx: usize) -> Value {
    let mut out = Map::new();
    if let Some(o) = obj.as_object() {
        for (k, v) in o {
            let renamed = RENAMES.iter().find(|pair| {
                if from_idx == 0 {
                    pair.0 == k
                } else {
                    pair.1 == k
                }
            });
            let key = match renamed {
                Some(pair) => {
                    if from_idx == 0 {
                        pair.1
                    } else {
                        pair.0
                    }
                }
                None => k.as_str(),
            };
            out.insert(key.to_string(), v.clone());
        }
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// events.k8s.io/v1 → core/v1.
pub fn events_v1_to_core(obj: &Value) -> Value {
    rename(obj, "v1", 0)
}

/// core/v1 → events.k8s.io/v1.
pub fn core_to_events_v1(obj: &Value) -> Value {
    rename(obj, "events.k8s.io/v1", 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_maps_fields() {
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hello", "reason": "Started",
            "reportingController": "barge", "reportingInstance": "i", "type": "Normal",
            "eventTime": "2024-01-01T00:00:00.000000Z", "action": "Run"});
        let core = events_v1_to_core(&ev);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "barge");
        assert_eq!(core["reason"], "Started");
        assert_eq!(core_to_events_v1(&core), ev);
    }
}
