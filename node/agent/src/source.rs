//! Health sources: where an agent's figures come from. An HTTP URL serving Prometheus text or
//! JSON, a command printing JSON, or the seeded synthetic model. A source that fails, times out
//! or reports a figure out of range yields no sample (no data is never a pass).

use std::time::Duration;

use http_body_util::BodyExt as _;

use scbe_core::rollout::evidence::{BodyError, Sample};

use crate::config::{HealthSection, HttpFormat, MetricNames};
use scbe_core::agent::Installed;
use scbe_core::agent::SyntheticModel;

/// Longest a source may take for one sample.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body read from a source.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a source yielded no sample.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    #[error("health.url {url:?}: {detail}")]
    BadUrl { url: String, detail: String },
    #[error("{from} did not answer within {SOURCE_TIMEOUT:?}")]
    Timeout { from: String },
    #[error("{from}: {detail}")]
    Unreachable { from: String, detail: String },
    #[error("{from} answered {status}")]
    HttpStatus { from: String, status: String },
    #[error("no health command configured")]
    NoCommand,
    #[error("cannot run {program}: {detail}")]
    CannotRun { program: String, detail: String },
    #[error("{program} failed ({status})")]
    CommandFailed { program: String, status: String },
    #[error("metric {0} is missing")]
    MissingMetric(String),
    #[error("health JSON: {0}")]
    Json(String),
    #[error("health JSON has no number {0:?}")]
    MissingField(String),
    #[error(transparent)]
    OutOfRange(#[from] BodyError),
}

pub enum HealthSource {
    Http {
        url: hyper::Uri,
        format: HttpFormat,
        names: MetricNames,
    },
    Command {
        argv: Vec<String>,
        names: MetricNames,
    },
    Synthetic(SyntheticModel),
}

impl HealthSource {
    pub fn from_config(h: &HealthSection) -> Result<Self, SourceError> {
        Ok(match h {
            HealthSection::Http { url, format, names } => HealthSource::Http {
                url: url.parse().map_err(|e: hyper::http::uri::InvalidUri| {
                    SourceError::BadUrl {
                        url: url.clone(),
                        detail: e.to_string(),
                    }
                })?,
                format: *format,
                names: names.clone(),
            },
            HealthSection::Command { command, names } => HealthSource::Command {
                argv: command.clone(),
                names: names.clone(),
            },
            HealthSection::Synthetic(m) => HealthSource::Synthetic(m.clone()),
        })
    }

    /// One sample of what the agent serves now. `k` counts samples since the deploy and `n` all
    /// samples this process took (the synthetic model uses them; real sources ignore them).
    pub async fn sample(
        &self,
        agent: &str,
        serving: &Installed,
        k: u32,
        n: u64,
    ) -> Result<Sample, SourceError> {
        let s = match self {
            HealthSource::Synthetic(m) => m.sample(agent, &serving.version, &serving.units, k, n),
            HealthSource::Http { url, format, names } => {
                let body = tokio::time::timeout(SOURCE_TIMEOUT, http_get(url))
                    .await
                    .map_err(|_| SourceError::Timeout {
                        from: url.to_string(),
                    })??;
                match format {
                    HttpFormat::Prometheus => from_prometheus(&body, names)?,
                    HttpFormat::Json => from_json(&body, names)?,
                }
            }
            HealthSource::Command { argv, names } => {
                let (program, args) = argv.split_first().ok_or(SourceError::NoCommand)?;
                let out = tokio::time::timeout(
                    SOURCE_TIMEOUT,
                    tokio::process::Command::new(program)
                        .args(args)
                        .kill_on_drop(true)
                        .output(),
                )
                .await
                .map_err(|_| SourceError::Timeout {
                    from: program.clone(),
                })?
                .map_err(|e| SourceError::CannotRun {
                    program: program.clone(),
                    detail: e.to_string(),
                })?;
                if !out.status.success() {
                    return Err(SourceError::CommandFailed {
                        program: program.clone(),
                        status: out.status.to_string(),
                    });
                }
                from_json(&String::from_utf8_lossy(&out.stdout), names)?
            }
        };
        s.check()?;
        Ok(s)
    }
}

async fn http_get(url: &hyper::Uri) -> Result<String, SourceError> {
    let from = || url.to_string();
    let unreachable = |detail: String| SourceError::Unreachable {
        from: from(),
        detail,
    };
    let host = url
        .host()
        .ok_or_else(|| unreachable("the URL has no host".into()))?;
    let port = url.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| unreachable(format!("cannot connect: {e}")))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(conn);
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| unreachable(e.to_string()))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(SourceError::HttpStatus {
            from: from(),
            status: resp.status().to_string(),
        });
    }
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The first sample of metric `name` in Prometheus text exposition (labels ignored).
pub fn prometheus_value(text: &str, name: &str) -> Option<f64> {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        if &line[..end] != name {
            continue;
        }
        let mut rest = &line[end..];
        if rest.starts_with('{') {
            // Skip the label set; label values are quoted and may contain '}'.
            let mut quoted = false;
            let mut escaped = false;
            let mut close = None;
            for (i, c) in rest.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    '}' if !quoted => {
                        close = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            rest = &rest[close? + 1..];
        }
        return rest.split_whitespace().next()?.parse().ok();
    }
    None
}

fn from_prometheus(text: &str, n: &MetricNames) -> Result<Sample, SourceError> {
    let get = |name: &str| {
        prometheus_value(text, name).ok_or_else(|| SourceError::MissingMetric(name.into()))
    };
    Ok(Sample {
        coherence: get(&n.coherence)?,
        error_rate: get(&n.error_rate)?,
        response_ms: get(&n.response_ms)?,
        safety: get(&n.safety)?,
        tasks_per_minute: get(&n.tasks_per_minute)?,
    })
}

fn from_json(text: &str, n: &MetricNames) -> Result<Sample, SourceError> {
    let v: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|e| SourceError::Json(e.to_string()))?;
    let get = |name: &str| {
        v.get(name)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| SourceError::MissingField(name.into()))
    };
    Ok(Sample {
        coherence: get(&n.coherence)?,
        error_rate: get(&n.error_rate)?,
        response_ms: get(&n.response_ms)?,
        safety: get(&n.safety)?,
        tasks_per_minute: get(&n.tasks_per_minute)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROM: &str = "# HELP scbe_agent_coherence Output coherence.\n\
# TYPE scbe_agent_coherence gauge\n\
scbe_agent_coherence{agent=\"a}b\",zone=\"x\"} 0.91\n\
scbe_agent_error_rate 0.02 1712345678\n\
scbe_agent_response_ms_p95{q=\"0.95\"} 120\n\
scbe_agent_safety 0.97\n\
scbe_agent_tasks_per_minute 33\n\
scbe_agent_coherence_total 5\n";

    #[test]
    fn prometheus_text_with_labels_and_timestamps() {
        let s = from_prometheus(PROM, &MetricNames::default()).expect("parses");
        assert_eq!(
            (
                s.coherence,
                s.error_rate,
                s.response_ms,
                s.safety,
                s.tasks_per_minute
            ),
            (0.91, 0.02, 120.0, 0.97, 33.0)
        );
        let e = from_prometheus("scbe_agent_coherence 1\n", &MetricNames::default()).err();
        assert_eq!(
            e,
            Some(SourceError::MissingMetric("scbe_agent_error_rate".into()))
        );
        assert_eq!(prometheus_value("x_total 3\nx 4", "x"), Some(4.0));
    }

    #[test]
    fn json_with_custom_names() {
        let names = MetricNames {
            coherence: "c".into(),
            error_rate: "e".into(),
            response_ms: "r".into(),
            safety: "s".into(),
            tasks_per_minute: "t".into(),
        };
        let s = from_json(
            r#"{"c": 0.8, "e": 0.01, "r": 99.5, "s": 0.99, "t": 7}"#,
            &names,
        )
        .expect("parses");
        assert_eq!(s.response_ms, 99.5);
        assert!(from_json(r#"{"c": "high"}"#, &names).is_err());
    }

    #[tokio::test]
    async fn an_http_source_is_read_and_out_of_range_figures_are_no_sample() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            for body in [PROM.to_string(), PROM.replace("0.97", "NaN")] {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        let src = HealthSource::from_config(&HealthSection::Http {
            url: format!("http://{addr}/metrics"),
            format: HttpFormat::Prometheus,
            names: MetricNames::default(),
        })
        .expect("source");
        let s = src
            .sample("a", &Installed::default(), 0, 0)
            .await
            .expect("sample");
        assert_eq!(s.safety, 0.97);
        let e = src.sample("a", &Installed::default(), 1, 1).await.err();
        assert!(
            matches!(
                e,
                Some(SourceError::OutOfRange(BodyError::NotAShare {
                    figure: "safety",
                    ..
                }))
            ),
            "{e:?}"
        );
    }
}
