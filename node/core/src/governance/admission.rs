//! Release admission: what the ledger checks before a release enters staging, beyond its digest.
//! The same rules as `scbe fuse` and more, because a requester can register any JSON: every
//! metric finite and in range, one unit per provider with that provider's role, identifiers,
//! URIs and versions bounded in length and character set, and the release checked against the
//! ledger's own gates, never gates the requester chose. Every failure names its field.

use std::fmt;

use super::gates::Gates;
use super::manifest::{Metrics, Provider};
use super::release::FusedRelease;

pub const MAX_VERSION_CHARS: usize = 64;
pub const MAX_ID_CHARS: usize = 128;
pub const MAX_URI_CHARS: usize = 512;
pub const MAX_GENERATED_AT_CHARS: usize = 64;
pub const MAX_REASON_CHARS: usize = 512;

/// A version or model id: letters, digits and `.-_+`, starting with a letter or digit.
fn is_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
}

/// A unit id may also hold the path separators model hubs use (`org/model:tag@rev`).
fn is_unit_id(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '/' | ':' | '@')
        })
}

/// Printable ASCII without spaces: no control characters, escapes or newlines in the log.
fn is_printable(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_graphic())
}

/// What is wrong with one text field of a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("{field} must not be empty")]
    Empty { field: String },
    #[error("{field} has {chars} characters, at most {max} allowed")]
    TooLong {
        field: String,
        chars: usize,
        max: usize,
    },
    #[error("{field} {rule}")]
    Characters { field: String, rule: &'static str },
}

/// A text field: not empty, at most `max` characters, and `ok` (its character rule, `rule`).
fn check_field(
    field: impl fmt::Display,
    value: &str,
    max: usize,
    ok: bool,
    rule: &'static str,
) -> Result<(), FieldError> {
    let chars = value.chars().count();
    if value.is_empty() {
        Err(FieldError::Empty {
            field: field.to_string(),
        })
    } else if chars > max {
        Err(FieldError::TooLong {
            field: field.to_string(),
            chars,
            max,
        })
    } else if !ok {
        Err(FieldError::Characters {
            field: field.to_string(),
            rule,
        })
    } else {
        Ok(())
    }
}

/// [`check_field`], its failure added to `errors` (a release names every failed field).
fn bounded(
    errors: &mut Vec<String>,
    field: impl fmt::Display,
    value: &str,
    max: usize,
    ok: bool,
    rule: &'static str,
) {
    if let Err(e) = check_field(field, value, max, ok, rule) {
        errors.push(e.to_string());
    }
}

/// A version as the ledger accepts it (also used for promotion and rollback targets).
pub fn check_version(field: &str, version: &str) -> Result<(), FieldError> {
    check_field(
        field,
        version,
        MAX_VERSION_CHARS,
        is_name(version),
        "may hold only letters, digits and . - _ + (starting with a letter or digit)",
    )
}

/// `host:port` where peers reach a member: a port below 65536 and a host that is a DNS name
/// (a Kubernetes service name too), an IPv4 address, or an IPv6 address in brackets.
pub fn check_address(addr: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("{addr:?} must be host:port"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("{addr:?}: the port must be a number below 65536"));
    }
    let ipv6 = host.len() > 2
        && host.starts_with('[')
        && host.ends_with(']')
        && host[1..host.len() - 1].contains(':')
        && host[1..host.len() - 1]
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    // A DNS name; an IPv4 address is one by this rule too.
    let dns = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if dns || ipv6 {
        Ok(())
    } else {
        Err(format!(
            "{addr:?}: the host must be an IP address or a DNS name"
        ))
    }
}

/// Free text a requester attaches (a rollback's reason): bounded, no control characters (it
/// may be empty).
pub fn check_reason(field: &str, text: &str) -> Result<(), FieldError> {
    if text.is_empty() {
        return Ok(());
    }
    check_field(
        field,
        text,
        MAX_REASON_CHARS,
        !text.chars().any(char::is_control),
        "must not hold control characters",
    )
}

fn check_metrics(errors: &mut Vec<String>, field: UnitField, m: &Metrics) {
    let unit = [("quality", m.quality), ("safety", m.safety)];
    for (name, v) in unit {
        if !v.is_finite() || !(0.0..=1.0).contains(&v) {
            errors.push(format!("{field}.{name} must be between 0 and 1, got {v}"));
        }
    }
    let positive = [
        ("latency_ms_p95", m.latency_ms_p95),
        ("cost_per_1k_tokens", m.cost_per_1k_tokens),
    ];
    for (name, v) in positive {
        if !v.is_finite() || v < 0.0 {
            errors.push(format!(
                "{field}.{name} must be a finite number >= 0, got {v}"
            ));
        }
    }
}

/// A field of one provider's unit, as `units.<provider>.<name>`: written out only when a check
/// fails (formatting the names of every field that passed cost each registration a dozen
/// allocations, 2.7% of a validator's CPU under saturated registrations; issue 27).
#[derive(Clone, Copy)]
struct UnitField(Provider, &'static str);

impl fmt::Display for UnitField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "units.{}.{}", self.0, self.1)
    }
}

/// Every reason `release` may not be registered on a ledger with `gates` (empty: admissible).
/// Gate failures of the metrics themselves are reported separately by the caller.
pub fn check_release(release: &FusedRelease, gates: &Gates) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = check_version("version", &release.version) {
        errors.push(e.to_string());
    }
    bounded(
        &mut errors,
        "fused_model_id",
        &release.fused_model_id,
        MAX_ID_CHARS,
        is_name(&release.fused_model_id),
        "may hold only letters, digits and . - _ +",
    );
    if release.generated_at.chars().count() > MAX_GENERATED_AT_CHARS
        || !release.generated_at.chars().all(|c| c.is_ascii_graphic())
    {
        errors.push(format!(
            "generated_at must be at most {MAX_GENERATED_AT_CHARS} printable characters"
        ));
    }
    if release.providers != Provider::ALL {
        errors.push(format!(
            "providers must be exactly {:?}, got {} entries",
            Provider::ALL.map(Provider::name),
            release.providers.len()
        ));
    }
    if release.gates != *gates {
        errors.push(format!(
            "gates must be this ledger's gates {gates:?}, not the requester's {:?}: fuse the release again against the cluster's gates",
            release.gates
        ));
    }
    for p in Provider::ALL {
        let Some(unit) = release.units.get(&p) else {
            errors.push(format!("units.{p} is missing"));
            continue;
        };
        bounded(
            &mut errors,
            UnitField(p, "id"),
            &unit.id,
            MAX_ID_CHARS,
            is_unit_id(&unit.id),
            "may hold only letters, digits and . - _ + / : @",
        );
        if unit.role != p.expected_role() {
            errors.push(format!(
                "units.{p}.role must be {:?}, got {:?}",
                p.expected_role(),
                unit.role
            ));
        }
        bounded(
            &mut errors,
            UnitField(p, "uri"),
            &unit.uri,
            MAX_URI_CHARS,
            is_printable(&unit.uri),
            "must be printable ASCII without spaces",
        );
        check_metrics(&mut errors, UnitField(p, "metrics"), &unit.metrics);
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::release::Unit;
    use std::collections::BTreeMap;

    fn good() -> FusedRelease {
        let unit = |id: &str, role: &str| Unit {
            id: id.into(),
            role: role.into(),
            uri: format!("hf://org/{id}"),
            metrics: Metrics {
                quality: 0.85,
                safety: 0.98,
                latency_ms_p95: 90.0,
                cost_per_1k_tokens: 0.5,
            },
        };
        let units = BTreeMap::from([
            (Provider::Hf, unit("org/textgen-v1", "textgen")),
            (Provider::Gcp, unit("embed", "embed")),
            (Provider::Aws, unit("runtime", "runtime")),
        ]);
        FusedRelease::new(units, Gates::default(), Some("r1".into()), "t".into())
    }

    /// Each bad release from the hardening report is refused, naming the field.
    #[test]
    fn every_bad_field_is_named() {
        let gates = Gates::default();
        assert_eq!(check_release(&good(), &gates), Vec::<String>::new());
        type Edit = fn(&mut FusedRelease);
        let cases: Vec<(&str, Edit)> = vec![
            ("units.hf.metrics.quality", |r| {
                r.units
                    .get_mut(&Provider::Hf)
                    .expect("unit")
                    .metrics
                    .quality = 1e308
            }),
            ("units.gcp.metrics.safety", |r| {
                r.units
                    .get_mut(&Provider::Gcp)
                    .expect("unit")
                    .metrics
                    .safety = 1.7e308
            }),
            ("units.aws.metrics.latency_ms_p95", |r| {
                r.units
                    .get_mut(&Provider::Aws)
                    .expect("unit")
                    .metrics
                    .latency_ms_p95 = -5.0
            }),
            ("units.aws.metrics.cost_per_1k_tokens", |r| {
                r.units
                    .get_mut(&Provider::Aws)
                    .expect("unit")
                    .metrics
                    .cost_per_1k_tokens = -1.0
            }),
            ("units.hf.metrics.quality", |r| {
                r.units
                    .get_mut(&Provider::Hf)
                    .expect("unit")
                    .metrics
                    .quality = f64::NAN
            }),
            ("providers", |r| r.providers.clear()),
            ("providers", |r| r.providers = vec![Provider::Hf; 100_000]),
            ("gates", |r| r.gates.min_safety = 0.0),
            ("units.hf.id", |r| {
                r.units.get_mut(&Provider::Hf).expect("unit").id.clear()
            }),
            ("units.gcp.uri", |r| {
                r.units.get_mut(&Provider::Gcp).expect("unit").uri.clear()
            }),
            ("units.gcp.uri", |r| {
                r.units.get_mut(&Provider::Gcp).expect("unit").uri = "u://a\nb".into()
            }),
            ("units.aws.role", |r| {
                r.units.get_mut(&Provider::Aws).expect("unit").role = "textgen".into()
            }),
            ("units.gcp", |r| {
                r.units.remove(&Provider::Gcp);
            }),
            ("version", |r| r.version = "v".repeat(900_000)),
            ("version", |r| r.version = "v1\nforged".into()),
            ("version", |r| r.version = "v1\u{1b}[31m".into()),
            ("version", |r| r.version = "v1\0".into()),
            ("version", |r| r.version = String::new()),
            ("fused_model_id", |r| r.fused_model_id = "x y".into()),
            ("generated_at", |r| r.generated_at = "t".repeat(1000)),
        ];
        for (field, edit) in cases {
            let mut r = good();
            edit(&mut r);
            let errors = check_release(&r, &gates);
            assert!(
                errors.iter().any(|e| e.starts_with(field)),
                "{field}: {errors:?}"
            );
        }
    }
}
