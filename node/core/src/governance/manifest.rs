//! Provider manifests: what a training pipeline hands us. Schema (see
//! `../shared/examples/manifests/`):
//!
//! ```json
//! {"provider": "hf"|"gcp"|"aws",
//!  "artifacts": [{"id", "role", "uri", "metrics": {"quality", "safety", "latency_ms_p95", "cost_per_1k_tokens"}}]}
//! ```
//!
//! Parsing walks the JSON by hand so every error names the file, the field path
//! (`artifacts[1].metrics.quality`) and what was wrong. Python's `json` writes `NaN` and
//! `Infinity` as bare tokens, which strict JSON rejects; they are recognised and reported against
//! the field they sit in rather than as a syntax error.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A model provider and the role its artifacts play in a fused release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Hf,
    Gcp,
    Aws,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Hf, Provider::Gcp, Provider::Aws];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Hf => "hf",
            Provider::Gcp => "gcp",
            Provider::Aws => "aws",
        }
    }

    /// HuggingFace trains text generation, Vertex embeddings, SageMaker the runtime model.
    pub fn expected_role(self) -> &'static str {
        match self {
            Provider::Hf => "textgen",
            Provider::Gcp => "embed",
            Provider::Aws => "runtime",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An artifact's evaluation metrics.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub quality: f64,
    pub safety: f64,
    pub latency_ms_p95: f64,
    pub cost_per_1k_tokens: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub id: String,
    pub role: String,
    pub metrics: Metrics,
    pub uri: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// Where it came from (a file path), for error messages and reports.
    pub source: String,
    pub provider: Provider,
    pub artifacts: Vec<Artifact>,
}

/// A manifest that cannot be used, and exactly why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {field}: {problem}")]
pub struct ManifestError {
    pub source_name: String,
    pub field: String,
    pub problem: String,
}

const NAN: &str = "\u{0}NaN";
const POS_INF: &str = "\u{0}Infinity";
const NEG_INF: &str = "\u{0}-Infinity";

/// Replaces bare `NaN`, `Infinity` and `-Infinity` tokens outside strings with marker strings, so
/// the JSON parses and the field holding them can be named in the error.
fn mark_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        // The markers start with U+0000, written as the JSON escape so the text stays valid.
        let replaced = [
            ("-Infinity", "\"\\u0000-Infinity\""),
            ("Infinity", "\"\\u0000Infinity\""),
            ("NaN", "\"\\u0000NaN\""),
        ]
        .into_iter()
        .find(|(token, _)| rest.starts_with(token));
        if let Some((token, marker)) = replaced {
            out.push_str(marker);
            rest = &rest[token.len()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn type_name(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

struct Ctx<'a> {
    source: &'a str,
}

impl Ctx<'_> {
    fn err(&self, field: impl Into<String>, problem: impl Into<String>) -> ManifestError {
        ManifestError {
            source_name: self.source.to_string(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    fn string(
        &self,
        obj: &serde_json::Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Result<String, ManifestError> {
        let field = format!("{path}{key}");
        match obj.get(key) {
            None => Err(self.err(field, "missing")),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(self.err(field, "must not be empty"))
            }
            Some(Value::String(s)) if s.starts_with('\u{0}') => {
                Err(self.err(field, "must be a string, got a non-finite number"))
            }
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => {
                Err(self.err(field, format!("must be a string, got {}", type_name(other))))
            }
        }
    }

    fn metric(
        &self,
        obj: &serde_json::Map<String, Value>,
        path: &str,
        key: &str,
        unit_interval: bool,
    ) -> Result<f64, ManifestError> {
        let field = format!("{path}{key}");
        let v = match obj.get(key) {
            None => return Err(self.err(field, "missing")),
            Some(Value::String(s)) if s == NAN => {
                return Err(self.err(field, "is NaN, not a number"))
            }
            Some(Value::String(s)) if s == POS_INF || s == NEG_INF => {
                return Err(self.err(field, "is infinite, not a finite number"))
            }
            Some(Value::Number(n)) => n.as_f64(),
            Some(other) => {
                return Err(self.err(field, format!("must be a number, got {}", type_name(other))))
            }
        };
        let Some(v) = v.filter(|v| v.is_finite()) else {
            return Err(self.err(field, "is not a finite number"));
        };
        if v < 0.0 {
            return Err(self.err(field, format!("must not be negative, got {v}")));
        }
        if unit_interval && v > 1.0 {
            return Err(self.err(field, format!("must be between 0 and 1, got {v}")));
        }
        Ok(v)
    }
}

/// Parses one manifest; `source` names it in errors.
pub fn parse_manifest(source: &str, text: &str) -> Result<Manifest, ManifestError> {
    let ctx = Ctx { source };
    let doc: Value = serde_json::from_str(&mark_non_finite(text))
        .map_err(|e| ctx.err("(document)", format!("not JSON: {e}")))?;
    let Value::Object(root) = doc else {
        return Err(ctx.err(
            "(document)",
            format!("must be a JSON object, got {}", type_name(&doc)),
        ));
    };
    let provider_name = ctx.string(&root, "", "provider")?;
    let provider = Provider::parse(&provider_name).ok_or_else(|| {
        ctx.err(
            "provider",
            format!("unknown provider {provider_name:?} (expected \"hf\", \"gcp\" or \"aws\")"),
        )
    })?;
    let artifacts = match root.get("artifacts") {
        None => return Err(ctx.err("artifacts", "missing")),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(ctx.err(
                "artifacts",
                "is empty: a manifest needs at least one artifact",
            ))
        }
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(ctx.err(
                "artifacts",
                format!("must be an array, got {}", type_name(other)),
            ))
        }
    };
    let mut out = Vec::with_capacity(artifacts.len());
    let mut ids = BTreeSet::new();
    for (i, a) in artifacts.iter().enumerate() {
        let path = format!("artifacts[{i}].");
        let Value::Object(obj) = a else {
            return Err(ctx.err(
                format!("artifacts[{i}]"),
                format!("must be an object, got {}", type_name(a)),
            ));
        };
        let id = ctx.string(obj, &path, "id")?;
        if !ids.insert(id.clone()) {
            return Err(ctx.err(format!("{path}id"), format!("duplicate artifact id {id:?}")));
        }
        let role = ctx.string(obj, &path, "role")?;
        let uri = ctx.string(obj, &path, "uri")?;
        let mpath = format!("{path}metrics.");
        let metrics = match obj.get("metrics") {
            None => return Err(ctx.err(format!("{path}metrics"), "missing")),
            Some(Value::Object(m)) => Metrics {
                quality: ctx.metric(m, &mpath, "quality", true)?,
                safety: ctx.metric(m, &mpath, "safety", true)?,
                latency_ms_p95: ctx.metric(m, &mpath, "latency_ms_p95", false)?,
                cost_per_1k_tokens: ctx.metric(m, &mpath, "cost_per_1k_tokens", false)?,
            },
            Some(other) => {
                return Err(ctx.err(
                    format!("{path}metrics"),
                    format!("must be an object, got {}", type_name(other)),
                ))
            }
        };
        out.push(Artifact {
            id,
            role,
            metrics,
            uri,
        });
    }
    Ok(Manifest {
        source: source.to_string(),
        provider,
        artifacts: out,
    })
}

/// Checks a set of manifests for fusion: exactly one per provider, every provider present.
pub fn check_provider_set(manifests: &[Manifest]) -> Result<(), ManifestError> {
    let mut seen: Vec<(Provider, &str)> = Vec::new();
    for m in manifests {
        if let Some((_, first)) = seen.iter().find(|(p, _)| *p == m.provider) {
            return Err(ManifestError {
                source_name: m.source.clone(),
                field: "provider".into(),
                problem: format!(
                    "provider {} is also given by {first}; give each provider once",
                    m.provider
                ),
            });
        }
        seen.push((m.provider, &m.source));
    }
    for p in Provider::ALL {
        if !seen.iter().any(|(q, _)| *q == p) {
            return Err(ManifestError {
                source_name: "(manifests)".into(),
                field: "provider".into(),
                problem: format!("no manifest for provider {p} (a release needs hf, gcp and aws)"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"provider": "aws", "artifacts": [{"id": "a", "role": "runtime",
        "metrics": {"quality": 0.8, "safety": 0.98, "latency_ms_p95": 70, "cost_per_1k_tokens": 0.5},
        "uri": "s3://x"}]}"#;

    fn err(text: &str) -> String {
        parse_manifest("m.json", text)
            .expect_err("must be rejected")
            .to_string()
    }

    fn with_metric(name: &str, value: &str) -> String {
        let metrics = [
            ("quality", "0.8"),
            ("safety", "0.98"),
            ("latency_ms_p95", "70"),
            ("cost_per_1k_tokens", "0.5"),
        ]
        .iter()
        .filter_map(|(k, v)| {
            if *k == name {
                (!value.is_empty()).then(|| format!("\"{k}\": {value}"))
            } else {
                Some(format!("\"{k}\": {v}"))
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
        format!(
            r#"{{"provider": "aws", "artifacts": [{{"id": "a", "role": "runtime", "metrics": {{{metrics}}}, "uri": "s3://x"}}]}}"#
        )
    }

    #[test]
    fn parses_the_example_manifests() {
        // The repository's copies of the shared provider examples (configs/examples/manifests),
        // compiled in: the core's tests read no files.
        for (file, text, provider) in [
            (
                "hf_manifest.json",
                include_str!("../../../../configs/examples/manifests/hf_manifest.json"),
                Provider::Hf,
            ),
            (
                "gcp_manifest.json",
                include_str!("../../../../configs/examples/manifests/gcp_manifest.json"),
                Provider::Gcp,
            ),
            (
                "aws_manifest.json",
                include_str!("../../../../configs/examples/manifests/aws_manifest.json"),
                Provider::Aws,
            ),
        ] {
            let m = parse_manifest(file, text).expect("example parses");
            assert_eq!(m.provider, provider);
            assert_eq!(m.artifacts[0].role, provider.expected_role());
        }
        let m = parse_manifest("m.json", GOOD).expect("parses");
        assert_eq!(m.artifacts[0].metrics.quality, 0.8);
    }

    #[test]
    fn not_json() {
        assert!(err("{nope").starts_with("m.json: (document): not JSON:"));
    }

    #[test]
    fn not_an_object() {
        assert_eq!(
            err("[1, 2]"),
            "m.json: (document): must be a JSON object, got an array"
        );
    }

    #[test]
    fn unknown_and_missing_provider() {
        assert_eq!(
            err(r#"{"provider": "azure", "artifacts": []}"#),
            r#"m.json: provider: unknown provider "azure" (expected "hf", "gcp" or "aws")"#
        );
        assert_eq!(err(r#"{"artifacts": []}"#), "m.json: provider: missing");
        assert_eq!(
            err(r#"{"provider": 3}"#),
            "m.json: provider: must be a string, got number 3"
        );
    }

    #[test]
    fn empty_missing_or_malformed_artifacts() {
        assert_eq!(
            err(r#"{"provider": "hf", "artifacts": []}"#),
            "m.json: artifacts: is empty: a manifest needs at least one artifact"
        );
        assert_eq!(err(r#"{"provider": "hf"}"#), "m.json: artifacts: missing");
        assert_eq!(
            err(r#"{"provider": "hf", "artifacts": {}}"#),
            "m.json: artifacts: must be an array, got an object"
        );
        assert_eq!(
            err(r#"{"provider": "hf", "artifacts": [7]}"#),
            "m.json: artifacts[0]: must be an object, got number 7"
        );
    }

    #[test]
    fn missing_metric() {
        assert_eq!(
            err(&with_metric("safety", "")),
            "m.json: artifacts[0].metrics.safety: missing"
        );
    }

    #[test]
    fn non_numeric_metric() {
        assert_eq!(
            err(&with_metric("quality", "\"high\"")),
            r#"m.json: artifacts[0].metrics.quality: must be a number, got string "high""#
        );
    }

    #[test]
    fn nan_and_infinity() {
        assert_eq!(
            err(&with_metric("quality", "NaN")),
            "m.json: artifacts[0].metrics.quality: is NaN, not a number"
        );
        assert_eq!(
            err(&with_metric("latency_ms_p95", "Infinity")),
            "m.json: artifacts[0].metrics.latency_ms_p95: is infinite, not a finite number"
        );
        // A string that happens to say NaN is not the token.
        assert_eq!(
            err(&with_metric("quality", "\"NaN\"")),
            r#"m.json: artifacts[0].metrics.quality: must be a number, got string "NaN""#
        );
    }

    #[test]
    fn negative_and_out_of_range() {
        assert_eq!(
            err(&with_metric("cost_per_1k_tokens", "-0.5")),
            "m.json: artifacts[0].metrics.cost_per_1k_tokens: must not be negative, got -0.5"
        );
        assert_eq!(
            err(&with_metric("safety", "1.5")),
            "m.json: artifacts[0].metrics.safety: must be between 0 and 1, got 1.5"
        );
    }

    #[test]
    fn same_provider_twice_and_missing_provider() {
        let a = parse_manifest("a.json", GOOD).expect("parses");
        let b = parse_manifest("b.json", GOOD).expect("parses");
        assert_eq!(
            check_provider_set(&[a.clone(), b])
                .expect_err("duplicate")
                .to_string(),
            "b.json: provider: provider aws is also given by a.json; give each provider once"
        );
        assert_eq!(
            check_provider_set(&[a]).expect_err("missing").to_string(),
            "(manifests): provider: no manifest for provider hf (a release needs hf, gcp and aws)"
        );
    }

    #[test]
    fn duplicate_artifact_id() {
        let text = r#"{"provider": "hf", "artifacts": [
            {"id": "x", "role": "textgen", "uri": "u", "metrics": {"quality": 0.9, "safety": 0.99, "latency_ms_p95": 1, "cost_per_1k_tokens": 0.1}},
            {"id": "x", "role": "textgen", "uri": "u", "metrics": {"quality": 0.9, "safety": 0.99, "latency_ms_p95": 1, "cost_per_1k_tokens": 0.1}}]}"#;
        assert_eq!(
            err(text),
            r#"m.json: artifacts[1].id: duplicate artifact id "x""#
        );
    }
}
