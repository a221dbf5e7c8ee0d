//! `serve`'s log lines on stderr: text for a person, or one JSON object per
//! line (`--log-format json`) for a log collector.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::pki::validity::fmt_time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy)]
pub struct Log {
    pub format: Format,
}

impl Log {
    /// One event: `level` is "info", "warn" or "error"; `fields` add detail.
    pub fn event(&self, level: &str, msg: &str, fields: &[(&str, Value)]) {
        eprintln!("{}", self.line(OffsetDateTime::now_utc(), level, msg, fields));
    }

    fn line(&self, at: OffsetDateTime, level: &str, msg: &str, fields: &[(&str, Value)]) -> String {
        match self.format {
            Format::Json => {
                let mut obj = Map::new();
                obj.insert("time".into(), json!(fmt_time(at)));
                obj.insert("level".into(), json!(level));
                obj.insert("msg".into(), json!(msg));
                for (k, v) in fields {
                    obj.insert((*k).into(), v.clone());
                }
                Value::Object(obj).to_string()
            }
            Format::Text => {
                let mut line = format!("{} {:5} {msg}", fmt_time(at), level.to_uppercase());
                for (k, v) in fields {
                    match v {
                        Value::String(s) => line.push_str(&format!(" {k}={s}")),
                        other => line.push_str(&format!(" {k}={other}")),
                    }
                }
                line
            }
        }
    }
}

/// `--skip-validation`: every challenge passes, and each one says so in
/// the log, so nobody mistakes a skipped check for a real one.
pub struct SkippedChecks {
    pub log: Log,
}

impl crate::acme::Validator for SkippedChecks {
    fn validate(
        &self,
        ident: &crate::acme::model::Ident,
        kind: crate::acme::model::ChallengeKind,
        _: &str,
    ) -> Result<(), crate::acme::problem::Problem> {
        let fields = [("identifier", json!(ident.value)), ("challenge", json!(kind.name()))];
        self.log.event("warn", "challenge NOT checked (--skip-validation)", &fields);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_parse_and_text_lines_read() {
        let at = OffsetDateTime::from_unix_timestamp(0).unwrap();
        let fields = [("status", json!(201)), ("path", json!("/new-order"))];
        let j = Log { format: Format::Json }.line(at, "info", "request", &fields);
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(
            (v["level"].as_str(), v["status"].as_u64(), v["time"].as_str()),
            (Some("info"), Some(201), Some("1970-01-01T00:00:00Z"))
        );
        let t = Log { format: Format::Text }.line(at, "warn", "request", &fields);
        assert_eq!(t, "1970-01-01T00:00:00Z WARN  request status=201 path=/new-order");
    }
}
