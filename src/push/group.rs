//! The URL of a group on a Pushgateway: `<gateway>/metrics/job/<JOB>{/<LABEL>/<VALUE>}`.
//!
//! The Pushgateway reads a label name suffixed with `@base64` as taking a value in
//! RFC 4648's URL-safe base64; that is the only way to carry a value with a `/`, or an
//! empty one (written `=`). A value of only unreserved URL characters (RFC 3986: letters,
//! digits, `-`, `.`, `_`, `~`) goes as it is; any other, unicode included, goes in
//! base64, which needs no percent-escapes the gateway's router might undo or reject.

use http::uri::{Scheme, Uri};

use super::base64;
use super::PushError;
use crate::names::is_plain_name;

/// The URI of the group `job` with the `grouping` labels, on the Pushgateway at
/// `gateway` (`http://host:port`, with a path prefix or not, or `host:port`).
pub(crate) fn group_uri(
    gateway: &str,
    job: &str,
    grouping: &[(String, String)],
) -> Result<Uri, PushError> {
    let invalid =
        |reason: &'static str, source: Option<http::uri::InvalidUri>| PushError::InvalidUrl {
            url: gateway.to_string(),
            reason,
            source,
        };
    let base: Uri = gateway
        .parse()
        .map_err(|error| invalid("it does not parse as a URL", Some(error)))?;
    let Some(authority) = base.authority() else {
        return Err(invalid("it has no host (write http://host:port)", None));
    };
    if authority.as_str().contains('@') {
        return Err(invalid(
            "it holds credentials; give them to basic_auth instead",
            None,
        ));
    }
    match base.scheme() {
        // `host:port` parses as an authority alone.
        None => {}
        Some(scheme) if *scheme == Scheme::HTTP => {}
        Some(scheme) if *scheme == Scheme::HTTPS => {
            return Err(invalid(
                "https needs TLS, which the pusher does not speak; use http:// (through a TLS-terminating proxy, for example)",
                None,
            ))
        }
        Some(_) => return Err(invalid("the scheme is not http://", None)),
    }
    if base.query().is_some() {
        return Err(invalid("it has a query", None));
    }
    if job.is_empty() {
        return Err(PushError::EmptyJob);
    }
    check_labels(grouping)?;

    let prefix = base.path().trim_end_matches('/');
    let mut uri = format!("http://{authority}{prefix}/metrics");
    push_pair(&mut uri, "job", job);
    for (name, value) in grouping {
        push_pair(&mut uri, name, value);
    }
    uri.parse()
        .map_err(|error| invalid("the group's URL does not parse", Some(error)))
}

/// Checks that every grouping label is a label name of its own that the Pushgateway
/// does not reserve.
fn check_labels(grouping: &[(String, String)]) -> Result<(), PushError> {
    for (index, (name, _)) in grouping.iter().enumerate() {
        let reason = if !is_plain_name(name) {
            Some("it is not a label name (`[a-zA-Z_][a-zA-Z0-9_]*`)")
        } else if name == "job" {
            Some("the job is the pusher's own argument, not a grouping label")
        } else if name.starts_with("__") {
            Some("names starting with `__` are reserved")
        } else if grouping[..index].iter().any(|(earlier, _)| earlier == name) {
            Some("it is given twice")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(PushError::InvalidLabel {
                name: name.clone(),
                reason,
            });
        }
    }
    Ok(())
}

/// Appends `/<name>/<value>`, or `/<name>@base64/<value in base64>`.
fn push_pair(uri: &mut String, name: &str, value: &str) {
    uri.push('/');
    uri.push_str(name);
    if value.is_empty() {
        // An empty segment would vanish when the gateway cleans the path.
        uri.push_str("@base64/=");
    } else if goes_plain(value) {
        uri.push('/');
        uri.push_str(value);
    } else {
        uri.push_str("@base64/");
        uri.push_str(&base64::url_safe(value.as_bytes()));
    }
}

/// Whether `value` can be a path segment as it is: unreserved characters only, and not
/// `.` or `..`, which path cleaning would resolve away.
fn goes_plain(value: &str) -> bool {
    value != "."
        && value != ".."
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(job: &str, grouping: &[(&str, &str)]) -> String {
        let grouping: Vec<(String, String)> = grouping
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        group_uri("http://gateway:9091", job, &grouping)
            .expect("valid group")
            .path()
            .to_string()
    }

    fn label_error(grouping: &[(&str, &str)]) -> String {
        let grouping: Vec<(String, String)> = grouping
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        match group_uri("http://gateway:9091", "job", &grouping) {
            Err(PushError::InvalidLabel { name, .. }) => name,
            other => panic!("expected InvalidLabel, got {other:?}"),
        }
    }

    #[test]
    fn the_pushgateway_readmes_examples() {
        assert_eq!(
            path("directory_cleaner", &[("path", "/var/tmp")]),
            "/metrics/job/directory_cleaner/path@base64/L3Zhci90bXA"
        );
        assert_eq!(
            path(
                "example",
                &[("first_label", ""), ("second_label", "foobar")]
            ),
            "/metrics/job/example/first_label@base64/=/second_label/foobar"
        );
        assert_eq!(
            path("titan", &[("name", "Προμηθεύς")]),
            "/metrics/job/titan/name@base64/zqDPgc6_zrzOt864zrXPjc-C"
        );
    }

    #[test]
    fn a_job_with_a_slash_goes_in_base64() {
        assert_eq!(path("a/b", &[]), "/metrics/job@base64/YS9i");
        assert_eq!(
            path("nightly-backup_1.2~x", &[]),
            "/metrics/job/nightly-backup_1.2~x"
        );
    }

    #[test]
    fn dot_segments_and_reserved_characters_go_in_base64() {
        assert_eq!(path("j", &[("a", ".")]), "/metrics/job/j/a@base64/Lg");
        assert_eq!(path("j", &[("a", "..")]), "/metrics/job/j/a@base64/Li4");
        assert_eq!(path("j", &[("a", "x y")]), "/metrics/job/j/a@base64/eCB5");
        assert_eq!(path("j", &[("a", "%2F")]), "/metrics/job/j/a@base64/JTJG");
    }

    #[test]
    fn the_gateways_path_prefix_is_kept() {
        let uri = group_uri("http://gateway:9091/pushgateway/", "j", &[]).expect("valid");
        assert_eq!(
            uri.to_string(),
            "http://gateway:9091/pushgateway/metrics/job/j"
        );
        let uri = group_uri("gateway:9091", "j", &[]).expect("host:port is http");
        assert_eq!(uri.to_string(), "http://gateway:9091/metrics/job/j");
    }

    #[test]
    fn bad_gateways_are_refused_with_the_reason() {
        for (url, wanted) in [
            ("https://gateway:9091", "TLS"),
            ("ftp://gateway", "scheme"),
            ("/metrics", "no host"),
            ("http://gateway:9091/?x=1", "query"),
            ("http://gate way", "parse"),
            ("http://user:secret@gateway", "credentials"),
        ] {
            match group_uri(url, "j", &[]) {
                Err(PushError::InvalidUrl { reason, .. }) => {
                    assert!(reason.contains(wanted), "{url}: {reason}")
                }
                other => panic!("{url}: expected InvalidUrl, got {other:?}"),
            }
        }
        assert!(matches!(
            group_uri("http://gateway", "", &[]),
            Err(PushError::EmptyJob)
        ));
    }

    #[test]
    fn bad_grouping_labels_are_refused_by_name() {
        assert_eq!(label_error(&[("job", "x")]), "job");
        assert_eq!(label_error(&[("__name__", "x")]), "__name__");
        assert_eq!(label_error(&[("a:b", "x")]), "a:b");
        assert_eq!(label_error(&[("1a", "x")]), "1a");
        assert_eq!(label_error(&[("", "x")]), "");
        assert_eq!(
            label_error(&[("instance", "a"), ("instance", "b")]),
            "instance"
        );
    }
}
