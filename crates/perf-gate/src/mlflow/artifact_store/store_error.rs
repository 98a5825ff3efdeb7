//! One clear line out of a failed S3 request: `object_store`'s error texts repeat every layer
//! of their chain and carry S3's XML body across lines, so the message keeps only the HTTP
//! status with S3's error code and message, or the root cause of a transport failure and the
//! retries made, plus a hint (credentials, bucket, endpoint).

use super::super::error::MlflowError;

/// The error of a failed S3 request, with a one-line message and a hint.
pub(super) fn store_error(
    operation: &'static str,
    location: String,
    endpoint: &str,
    error: object_store::Error,
) -> MlflowError {
    let mut chain = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = cur {
        chain.push(e.to_string());
        cur = e.source();
    }
    let summary = summarize(&chain);
    let hint = match &error {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            " (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN and the bucket's policy)".to_string()
        }
        object_store::Error::NotFound { .. } => format!(
            " (does the bucket exist at {endpoint}? MLFLOW_S3_ENDPOINT_URL must name the store MLflow uses)"
        ),
        _ if summary.status.is_none() => format!(
            " (is the store at {endpoint} reachable? MLFLOW_S3_ENDPOINT_URL names an S3-compatible store)"
        ),
        _ => String::new(),
    };
    MlflowError::ArtifactStore {
        operation,
        location,
        message: format!("{}{hint}", summary.text),
        error: Box::new(error),
    }
}

/// What [`summarize`] found.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    /// HTTP status, when the store answered.
    status: Option<u16>,
    /// One line for the message.
    text: String,
}

/// Longest summary kept (the rest is cut).
const SUMMARY_MAX: usize = 300;

/// One line out of the texts of an `object_store` error chain (outermost first), which repeat
/// each other and may hold an XML body over several lines: `http 403 Forbidden
/// InvalidAccessKeyId: <S3's message>` when the store answered, else `no answer after N
/// retries: <innermost two causes>`.
fn summarize(chain: &[String]) -> Summary {
    let all = chain.join("\n");
    let between = |open: &str, close: &str| {
        let start = all.find(open)? + open.len();
        let len = all[start..].find(close)?;
        Some(all[start..start + len].trim().to_string())
    };
    let status_text = all.find("status code: ").map(|i| {
        let rest = &all[i + "status code: ".len()..];
        rest[..rest.find([':', '\n']).unwrap_or(rest.len())]
            .trim()
            .to_string()
    });
    let status = status_text
        .as_deref()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|c| c.parse::<u16>().ok());
    let retries = all.find("after ").and_then(|i| {
        let rest = &all[i + "after ".len()..];
        let (n, tail) = rest.split_once(' ')?;
        tail.starts_with("retries").then(|| n.parse::<u32>().ok())?
    });
    let text = match (status, status_text) {
        (Some(_), Some(st)) => {
            let mut t = format!("http {st}");
            if let Some(code) = between("<Code>", "</Code>") {
                t.push(' ');
                t.push_str(&code);
            }
            if let Some(msg) = between("<Message>", "</Message>") {
                t.push_str(": ");
                t.push_str(&msg);
            }
            t
        }
        _ => {
            let root = match chain {
                [] => String::from("unknown error"),
                [only] => only.clone(),
                [.., outer, inner] if outer.contains(inner.as_str()) => outer.clone(),
                [.., outer, inner] => format!("{outer}: {inner}"),
            };
            match retries {
                Some(r) if r > 0 => format!("no answer after {r} retries: {root}"),
                _ => format!("no answer: {root}"),
            }
        }
    };
    let mut text = one_line(&text);
    if text.chars().count() > SUMMARY_MAX {
        text = text.chars().take(SUMMARY_MAX).collect::<String>() + "...";
    }
    Summary { status, text }
}

/// `s` on one line: control characters become spaces, runs of spaces one space.
pub(super) fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(chain: &[&str]) -> Vec<String> {
        chain.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_refused_connection_names_the_root_cause_and_the_retries() {
        // the chain object_store 0.14 gives for a closed port (texts as seen with the real crate)
        let put = "Error performing PUT http://127.0.0.1:43717/b/k in 3.4s, after 4 retries, max_retries: 4, retry_timeout: 60s  - HTTP error: error sending request";
        let s = summarize(&texts(&[
            &format!("Generic S3 error: {put}"),
            put,
            "HTTP error: error sending request",
            "error sending request",
            "client error (Connect)",
            "tcp connect error",
            "Connection refused (os error 111)",
        ]));
        assert_eq!(s.status, None);
        assert_eq!(
            s.text,
            "no answer after 4 retries: tcp connect error: Connection refused (os error 111)"
        );
    }

    #[test]
    fn an_s3_error_answer_gives_status_code_and_message_on_one_line() {
        let body = "\n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message><RequestId>x</RequestId></Error>";
        let put = format!(
            "Error performing PUT http://127.0.0.1:1/b/k in 2ms - Server returned non-2xx status code: 403 Forbidden: {body}"
        );
        let s = summarize(&texts(&[
            &format!(
                "The operation lacked the necessary privileges to complete for path b/k: {put}"
            ),
            &put,
            &format!("Server returned non-2xx status code: 403 Forbidden: {body}"),
        ]));
        assert_eq!(s.status, Some(403));
        assert_eq!(
            s.text,
            "http 403 Forbidden InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records."
        );
        // no XML body: the status alone; never more than one line
        let s = summarize(&texts(&[
            "Server returned non-2xx status code: 502 Bad Gateway: ",
        ]));
        assert_eq!(
            (s.status, s.text.as_str()),
            (Some(502), "http 502 Bad Gateway")
        );
        let s = summarize(&texts(&[&"x\ny ".repeat(400)]));
        assert!(!s.text.contains('\n') && s.text.ends_with("...") && s.text.len() < 320);
    }

    #[test]
    fn store_errors_carry_a_hint_and_keep_the_original() {
        let generic = object_store::Error::Generic {
            store: "S3",
            source: "Error performing PUT http://127.0.0.1:9/b/k in 1s, after 2 retries, max_retries: 2, retry_timeout: 60s  - HTTP error: error sending request".into(),
        };
        let e = store_error("PUT", "s3://b/k".into(), "http://127.0.0.1:9", generic);
        let msg = e.to_string();
        assert!(
            msg.starts_with("PUT s3://b/k: no answer after 2 retries: "),
            "{msg}"
        );
        assert!(msg.ends_with("(is the store at http://127.0.0.1:9 reachable? MLFLOW_S3_ENDPOINT_URL names an S3-compatible store)"), "{msg}");
        assert!(
            matches!(e, MlflowError::ArtifactStore { ref error, .. } if matches!(**error, object_store::Error::Generic { .. }))
        );
        let denied = object_store::Error::PermissionDenied {
            path: "b/k".into(),
            source: "Server returned non-2xx status code: 403 Forbidden: <Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>".into(),
        };
        let msg = store_error("PUT", "s3://b/k".into(), "AWS S3 (us-east-1)", denied).to_string();
        assert_eq!(
            msg,
            "PUT s3://b/k: http 403 Forbidden AccessDenied: Access Denied (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN and the bucket's policy)"
        );
        let missing = object_store::Error::NotFound {
            path: "b/k".into(),
            source: "Server returned non-2xx status code: 404 Not Found: <Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>".into(),
        };
        let msg = store_error("GET", "s3://b/k".into(), "http://minio:9000", missing).to_string();
        assert!(msg.contains("http 404 Not Found NoSuchBucket: The specified bucket does not exist (does the bucket exist at http://minio:9000?"), "{msg}");
    }
}
