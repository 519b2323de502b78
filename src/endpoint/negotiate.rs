//! Content negotiation: which format and which encoding a scrape asked for, from its
//! `Accept` and `Accept-Encoding` headers (with q-values, as Prometheus sends them).

use http::header::{ACCEPT, ACCEPT_ENCODING};
use http::HeaderMap;

use super::format::Format;

/// One media range or coding of a header list, with its parameters and quality.
struct Offer<'a> {
    value: &'a str,
    params: Vec<(&'a str, &'a str)>,
    /// The weight in thousandths, as RFC 9110 writes it with at most three decimals.
    quality: u16,
}

/// The entries of comma-separated header values; a malformed quality counts as 0.
fn offers<'a>(headers: &'a HeaderMap, name: http::header::HeaderName) -> Vec<Offer<'a>> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let value = parts.next().filter(|v| !v.is_empty())?;
            let mut quality = 1000;
            let mut params = Vec::new();
            for param in parts {
                let (key, val) = param.split_once('=').unwrap_or((param, ""));
                // A weight with spaces around its `=` is malformed too, not a parameter.
                if key.trim_end().eq_ignore_ascii_case("q") {
                    quality = qvalue(val).unwrap_or(0);
                } else {
                    let (key, val) = (key.trim(), val.trim().trim_matches('"'));
                    params.push((key, val));
                }
            }
            Some(Offer {
                value,
                params,
                quality,
            })
        })
        .collect()
}

/// An RFC 9110 `qvalue` (section 12.4.2) in thousandths: `0` to `1` with at most three
/// decimals, no sign, exponent or whitespace, so `NaN`, `inf`, `1.5` and `0.0001` are
/// malformed.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, decimals) = text.split_once('.').unwrap_or((text, ""));
    if decimals.len() > 3 || !decimals.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let thousandths = decimals
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |value, digit| value * 10 + u16::from(digit - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

impl Offer<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }

    /// The format this media range names, if it is one the endpoint serves.
    fn format(&self) -> Option<Format> {
        let value = self.value.to_ascii_lowercase();
        match value.as_str() {
            "application/openmetrics-text" => {
                matches!(self.param("version"), None | Some("1.0.0") | Some("0.0.1"))
                    .then_some(Format::OpenMetricsText)
            }
            "application/vnd.google.protobuf" => {
                let family = self.param("proto") == Some("io.prometheus.client.MetricFamily");
                let delimited = self.param("encoding") == Some("delimited");
                (family && delimited).then(Format::protobuf).flatten()
            }
            "text/plain" | "text/*" | "*/*" => Some(Format::PrometheusText),
            _ => None,
        }
    }
}

/// The format to answer with: the acceptable one with the highest quality (the first
/// listed among equals), else the Prometheus text format.
pub(crate) fn format(headers: &HeaderMap) -> Format {
    let mut best: Option<(u16, Format)> = None;
    for offer in offers(headers, ACCEPT) {
        if offer.quality == 0 {
            continue;
        }
        if let Some(format) = offer.format() {
            if best.is_none_or(|(quality, _)| offer.quality > quality) {
                best = Some((offer.quality, format));
            }
        }
    }
    best.map_or(Format::PrometheusText, |(_, format)| format)
}

/// Whether the client takes a gzip body: `gzip` (or `*`) with a quality above 0, and
/// not refused by a later, more specific entry.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let offers = offers(headers, ACCEPT_ENCODING);
    let quality = |name: &str| {
        offers
            .iter()
            .find(|offer| offer.value.eq_ignore_ascii_case(name))
            .map(|offer| offer.quality)
    };
    quality("gzip")
        .or_else(|| quality("*"))
        .is_some_and(|q| q > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(name: http::header::HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn picks_the_format_prometheus_asks_for() {
        // What Prometheus 2.x sends by default.
        let default = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(format(&headers(ACCEPT, default)), Format::OpenMetricsText);
        // With native histograms.
        let native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3";
        assert_eq!(
            format(&headers(ACCEPT, native)),
            Format::protobuf().unwrap_or(Format::PrometheusText)
        );
        assert_eq!(format(&HeaderMap::new()), Format::PrometheusText);
        assert_eq!(format(&headers(ACCEPT, "*/*")), Format::PrometheusText);
        assert_eq!(
            format(&headers(
                ACCEPT,
                "text/plain;q=0.9, application/openmetrics-text;q=0.1"
            )),
            Format::PrometheusText
        );
        assert_eq!(
            format(&headers(ACCEPT, "application/openmetrics-text;q=0")),
            Format::PrometheusText
        );
        assert_eq!(
            format(&headers(ACCEPT, "application/json")),
            Format::PrometheusText
        );
        assert_eq!(
            format(&headers(
                ACCEPT,
                "application/vnd.google.protobuf;proto=other"
            )),
            Format::PrometheusText
        );
    }

    #[test]
    fn qvalues_as_rfc_9110_writes_them() {
        for (text, expected) in [
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("0", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.001", Some(1)),
            ("0.999", Some(999)),
        ] {
            assert_eq!(qvalue(text), expected, "{text}");
        }
        for malformed in [
            "NaN", "nan", "inf", "-inf", "+0.5", "-0", "1.5", "1.001", "2", "0.0001", "00.5", ".5",
            "0,5", "1e0", "0.5 ", " 0.5", "\"0.5\"", "", "0x1",
        ] {
            assert_eq!(qvalue(malformed), None, "{malformed:?}");
        }
    }

    #[test]
    fn malformed_qvalues_count_as_zero() {
        // Were `NaN` or `inf` a weight, they would win over `text/plain`.
        for weight in ["=NaN", "=inf", "=1.5", "=0.0001", "=1e3", " = 1"] {
            let accept = format!("application/openmetrics-text;q{weight}, text/plain;q=0.1");
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT, HeaderValue::from_str(&accept).expect("valid"));
            assert_eq!(format(&headers), Format::PrometheusText, "{accept}");
            let encoding = format!("gzip;q{weight}");
            headers.insert(
                ACCEPT_ENCODING,
                HeaderValue::from_str(&encoding).expect("valid"),
            );
            assert!(!accepts_gzip(&headers), "{encoding}");
        }
        // A weight of 0.001 is a weight: it still beats no offer at all.
        assert_eq!(
            format(&headers(ACCEPT, "application/openmetrics-text;q=0.001")),
            Format::OpenMetricsText
        );
        assert_eq!(
            format(&headers(
                ACCEPT,
                "application/openmetrics-text;Q=0.9, text/plain;q=0.8"
            )),
            Format::OpenMetricsText
        );
    }

    #[test]
    fn gzip_only_when_accepted() {
        assert!(accepts_gzip(&headers(ACCEPT_ENCODING, "gzip")));
        assert!(accepts_gzip(&headers(
            ACCEPT_ENCODING,
            "br;q=1.0, gzip;q=0.8, *;q=0.1"
        )));
        assert!(accepts_gzip(&headers(ACCEPT_ENCODING, "*")));
        assert!(!accepts_gzip(&headers(ACCEPT_ENCODING, "gzip;q=0")));
        assert!(!accepts_gzip(&headers(ACCEPT_ENCODING, "identity")));
        assert!(!accepts_gzip(&headers(ACCEPT_ENCODING, "*, gzip;q=0")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
