//! The families of an encoded exposition, to keep only those a scrape asked for.
//!
//! prometheus-client encodes a whole registry at once, and the collectors registered in
//! it (the multi-process aggregate, process metrics, build info) name their families
//! only as they encode them; so a filtered scrape encodes as usual and then drops, in
//! one pass over the body, the families nobody asked for.

use super::format::Format;

/// What kind of family, as far as sample names tell families apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// Info, state set, gauge histogram, unknown or untyped.
    Other,
}

impl Kind {
    /// This kind's bit in a set of kinds.
    pub(crate) fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The kind a text exposition's `# TYPE` line names.
    fn of_text(name: &str) -> Self {
        match name {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            "summary" => Kind::Summary,
            _ => Kind::Other,
        }
    }

    /// The kind of a protobuf `MetricType`; proto2 leaves out a field at its default,
    /// `COUNTER`.
    #[cfg(feature = "protobuf")]
    fn of_protobuf(number: u64) -> Self {
        match number {
            0 => Kind::Counter,
            1 => Kind::Gauge,
            2 => Kind::Summary,
            4 => Kind::Histogram,
            _ => Kind::Other,
        }
    }
}

/// An encoded body that is not what its format's encoder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the encoded body does not split into families")]
pub(crate) struct MalformedBody;

/// The families of `body`, encoded in `format`, for which `keep(name, kind)` holds,
/// `name` being the family's name as the Prometheus text format writes it (a counter's
/// with `_total`).
pub(crate) fn retain(
    format: Format,
    body: &[u8],
    keep: impl Fn(&str, Kind) -> bool,
) -> Result<Vec<u8>, MalformedBody> {
    match format {
        Format::PrometheusText => retain_text(body, false, keep),
        Format::OpenMetricsText => retain_text(body, true, keep),
        #[cfg(feature = "protobuf")]
        Format::PrometheusProtobuf => retain_protobuf(body, keep),
    }
}

/// Text: a family is its `# HELP` line and every line up to the next `# HELP` or
/// `# EOF`; its kind is on the `# TYPE` line right after its `# HELP` line.
fn retain_text(
    body: &[u8],
    openmetrics: bool,
    keep: impl Fn(&str, Kind) -> bool,
) -> Result<Vec<u8>, MalformedBody> {
    let body = std::str::from_utf8(body).map_err(|_| MalformedBody)?;
    let mut kept = String::with_capacity(body.len() / 4);
    let mut keeping = true;
    let mut lines = body.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if let Some(help) = line.strip_prefix("# HELP ") {
            let help_name = help.trim_end().split(' ').next().unwrap_or_default();
            // prometheus-client writes the `# TYPE` line right after; should a help text
            // break its line, the family is still found by name.
            let (name, type_name) = lines
                .peek()
                .and_then(|next| next.strip_prefix("# TYPE "))
                .and_then(|declared| declared.trim_end().rsplit_once(' '))
                .filter(|(declared, _)| *declared == help_name)
                .unwrap_or((help_name, "unknown"));
            let kind = Kind::of_text(type_name);
            // OpenMetrics names a counter's or an info's family without its suffix.
            keeping = match (openmetrics, type_name) {
                (true, "counter") => keep(&format!("{name}_total"), kind),
                (true, "info") => keep(&format!("{name}_info"), kind),
                _ => keep(name, kind),
            };
        } else if line.starts_with("# EOF") {
            keeping = true;
        }
        if keeping {
            kept.push_str(line);
        }
    }
    Ok(kept.into_bytes())
}

/// Delimited protobuf: each family is a length-prefixed `MetricFamily`, whose field 1 is
/// its name and field 3 its type.
#[cfg(feature = "protobuf")]
fn retain_protobuf(
    body: &[u8],
    keep: impl Fn(&str, Kind) -> bool,
) -> Result<Vec<u8>, MalformedBody> {
    let mut kept = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let (message, end) = length_delimited(body, at)?;
        let (name, kind) = protobuf_family(message)?;
        if keep(name, kind) {
            kept.extend_from_slice(&body[at..end]);
        }
        at = end;
    }
    Ok(kept)
}

#[cfg(feature = "protobuf")]
fn protobuf_family(message: &[u8]) -> Result<(&str, Kind), MalformedBody> {
    let mut name = None;
    let mut kind = Kind::Counter;
    let mut at = 0;
    while at < message.len() {
        let (tag, next) = varint(message, at)?;
        at = match (tag >> 3, tag & 7) {
            (field, 0) => {
                let (value, next) = varint(message, next)?;
                if field == 3 {
                    kind = Kind::of_protobuf(value);
                }
                next
            }
            (field, 2) => {
                let (bytes, end) = length_delimited(message, next)?;
                if field == 1 {
                    name = Some(std::str::from_utf8(bytes).map_err(|_| MalformedBody)?);
                }
                end
            }
            (_, 1) => next + 8,
            (_, 5) => next + 4,
            _ => return Err(MalformedBody),
        };
    }
    Ok((name.ok_or(MalformedBody)?, kind))
}

/// The bytes of the length-prefixed field at `at`, and where it ends.
#[cfg(feature = "protobuf")]
fn length_delimited(bytes: &[u8], at: usize) -> Result<(&[u8], usize), MalformedBody> {
    let (length, start) = varint(bytes, at)?;
    let end = usize::try_from(length)
        .ok()
        .and_then(|length| start.checked_add(length))
        .filter(|&end| end <= bytes.len())
        .ok_or(MalformedBody)?;
    Ok((&bytes[start..end], end))
}

/// The varint at `at`, and where it ends.
#[cfg(feature = "protobuf")]
fn varint(bytes: &[u8], at: usize) -> Result<(u64, usize), MalformedBody> {
    let mut value = 0u64;
    for (i, &byte) in bytes
        .get(at..)
        .unwrap_or_default()
        .iter()
        .take(10)
        .enumerate()
    {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, at + i + 1));
        }
    }
    Err(MalformedBody)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_families_are_kept_whole_and_eof_stays() {
        let body = "# HELP a_seconds A.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\n\
                    a_seconds_bucket{le=\"1\"} 1\na_seconds_count 1\n\
                    # HELP c C.\n# TYPE c counter\nc_total 2\n# EOF\n";
        let kept = retain(Format::OpenMetricsText, body.as_bytes(), |name, kind| {
            name == "c_total" && kind == Kind::Counter
        })
        .expect("splits");
        assert_eq!(kept, b"# HELP c C.\n# TYPE c counter\nc_total 2\n# EOF\n");
        let none = retain(Format::PrometheusText, body.as_bytes(), |_, _| false).expect("splits");
        assert_eq!(none, b"# EOF\n");
    }

    #[test]
    fn a_help_line_without_its_type_line_still_names_its_family() {
        let body = b"# HELP a A\nbroken.\na 1\n# HELP b B.\n# TYPE b gauge\nb 2\n";
        let kept = retain(Format::PrometheusText, body, |name, _| name == "a");
        assert_eq!(kept.as_deref(), Ok(&b"# HELP a A\nbroken.\na 1\n"[..]));
        assert_eq!(
            retain(Format::PrometheusText, b"\xff\n", |_, _| true),
            Err(MalformedBody)
        );
    }

    #[cfg(feature = "protobuf")]
    #[test]
    fn truncated_protobuf_is_malformed() {
        // A family claiming 5 bytes, with 2.
        assert_eq!(
            retain(Format::PrometheusProtobuf, &[5, 0x0a, 0x01], |_, _| true),
            Err(MalformedBody)
        );
        let family = [4, 0x0a, 0x01, b'g', 0x18, 0x01];
        assert_eq!(
            retain(Format::PrometheusProtobuf, &family[..], |_, _| true),
            Err(MalformedBody)
        );
        let family = [5, 0x0a, 0x01, b'g', 0x18, 0x01];
        let kept = retain(Format::PrometheusProtobuf, &family, |name, kind| {
            name == "g" && kind == Kind::Gauge
        });
        assert_eq!(kept.as_deref(), Ok(&family[..]));
    }
}
