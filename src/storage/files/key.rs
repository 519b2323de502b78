//! The key of a file entry: `[metric, sample, {labels}, help]` in JSON, written byte
//! for byte as Python's `json.dumps(..., sort_keys=True)` writes it, so keys written
//! here and by Python's prometheus_client name the same series.

use std::fmt::Write as _;

use crate::names::{is_label_name, is_metric_name};

/// A parsed entry key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    /// The family name (`http_server_requests` for a counter, without `_total`).
    pub(crate) metric: String,
    /// The sample name (`http_server_requests_total`, `..._bucket`, `..._sum`).
    pub(crate) sample: String,
    /// Label pairs sorted by name.
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) help: String,
}

/// Writes the key of a sample; `labels` need not be sorted.
pub(crate) fn encode(
    metric: &str,
    sample: &str,
    labels: &[(String, String)],
    help: &str,
) -> String {
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(64 + metric.len() * 2 + help.len());
    out.push('[');
    push_string(&mut out, metric);
    out.push_str(", ");
    push_string(&mut out, sample);
    out.push_str(", {");
    for (index, (name, value)) in sorted.into_iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        push_string(&mut out, name);
        out.push_str(": ");
        push_string(&mut out, value);
    }
    out.push_str("}, ");
    push_string(&mut out, help);
    out.push(']');
    out
}

/// A JSON string as Python writes it with `ensure_ascii=True`.
fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// A key that is not the JSON this format uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed entry key at byte {position}: {reason}")]
pub(crate) struct MalformedKey {
    position: usize,
    reason: &'static str,
}

/// Parses a key written by this crate or by Python (any JSON spacing).
pub(crate) fn decode(text: &str) -> Result<Key, MalformedKey> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        text,
        position: 0,
    };
    parser.expect(b'[')?;
    let metric = parser.string()?;
    parser.expect(b',')?;
    let sample = parser.string()?;
    parser.expect(b',')?;
    parser.expect(b'{')?;
    let mut labels = Vec::new();
    if !parser.accept(b'}') {
        loop {
            let name = parser.string()?;
            parser.expect(b':')?;
            let value = parser.string()?;
            labels.push((name, value));
            if parser.accept(b'}') {
                break;
            }
            parser.expect(b',')?;
        }
    }
    parser.expect(b',')?;
    let help = parser.string()?;
    parser.expect(b']')?;
    parser.skip_space();
    if parser.position != parser.bytes.len() {
        return Err(parser.error("trailing bytes"));
    }
    // Names go into scrapes as they are: one a parser refuses would make Prometheus
    // drop the whole scrape, every other family with it.
    let names_valid = is_metric_name(&metric)
        && is_metric_name(&sample)
        && labels.iter().all(|(name, _)| is_label_name(name));
    if !names_valid {
        return Err(MalformedKey {
            position: 0,
            reason: "a metric or label name no exposition parser takes",
        });
    }
    labels.sort();
    Ok(Key {
        metric,
        sample,
        labels,
        help,
    })
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    position: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &'static str) -> MalformedKey {
        MalformedKey {
            position: self.position,
            reason,
        }
    }

    fn skip_space(&mut self) {
        while matches!(
            self.bytes.get(self.position),
            Some(b' ' | b'\n' | b'\r' | b'\t')
        ) {
            self.position += 1;
        }
    }

    fn accept(&mut self, byte: u8) -> bool {
        self.skip_space();
        if self.bytes.get(self.position) == Some(&byte) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), MalformedKey> {
        if self.accept(byte) {
            Ok(())
        } else {
            Err(self.error("unexpected character"))
        }
    }

    fn string(&mut self) -> Result<String, MalformedKey> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.position;
            while let Some(&b) = self.bytes.get(self.position) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.position += 1;
            }
            // Only ASCII bytes stop the scan, so both ends are character boundaries.
            out.push_str(
                self.text
                    .get(start..self.position)
                    .ok_or_else(|| self.error("bad UTF-8"))?,
            );
            match self.bytes.get(self.position) {
                Some(b'"') => {
                    self.position += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.position += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.error("control character in string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), MalformedKey> {
        let byte = *self
            .bytes
            .get(self.position)
            .ok_or_else(|| self.error("unterminated escape"))?;
        self.position += 1;
        match byte {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'u' => {
                let first = self.hex4()?;
                let c = if (0xD800..0xDC00).contains(&first) {
                    if self.bytes.get(self.position..self.position + 2) != Some(b"\\u") {
                        return Err(self.error("unpaired surrogate"));
                    }
                    self.position += 2;
                    let second = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&second) {
                        return Err(self.error("unpaired surrogate"));
                    }
                    char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
                } else {
                    char::from_u32(first)
                };
                out.push(c.ok_or_else(|| self.error("invalid code point"))?);
            }
            _ => return Err(self.error("unknown escape")),
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, MalformedKey> {
        let digits = self
            .text
            .get(self.position..self.position + 4)
            .ok_or_else(|| self.error("short \\u escape"))?;
        let value = u32::from_str_radix(digits, 16).map_err(|_| self.error("bad \\u escape"))?;
        self.position += 4;
        Ok(value)
    }
}

/// A bucket bound as Python's `floatToGoString` writes the `le` label, so both sides
/// write the same key for the same bucket.
pub(crate) fn go_float(value: f64) -> String {
    if value == f64::INFINITY {
        return "+Inf".into();
    }
    if value == f64::NEG_INFINITY {
        return "-Inf".into();
    }
    if value.is_nan() {
        return "NaN".into();
    }
    let repr = python_repr(value);
    if value > 0.0 {
        if let Some(dot) = repr.find('.') {
            if dot > 6 {
                // Go switches to exponents sooner than Python.
                let digits = format!("{}{}", &repr[1..dot], &repr[dot + 1..]);
                let mantissa = format!("{}.{}", &repr[..1], digits);
                let mantissa = mantissa.trim_end_matches(['0', '.']);
                return format!("{mantissa}e+{:02}", dot - 1);
            }
        }
    }
    repr
}

/// Python's `repr` of a finite float: the shortest round-trip digits, fixed notation
/// for exponents from -4 to 15, scientific with a two-digit exponent otherwise.
fn python_repr(value: f64) -> String {
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat(point.unsigned_abs() as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let mantissa = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(labels: &[(&str, &str)]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_match_python_json_dumps() {
        // json.dumps(["c", "c_total", {"b": "2", "a": "1"}, "help"], sort_keys=True)
        assert_eq!(
            encode("c", "c_total", &pairs(&[("b", "2"), ("a", "1")]), "help"),
            r#"["c", "c_total", {"a": "1", "b": "2"}, "help"]"#
        );
        assert_eq!(encode("g", "g", &[], "h"), r#"["g", "g", {}, "h"]"#);
        // json.dumps(["m", "m", {"l": "q\"\\\n\té\u007f😀"}, "h"], sort_keys=True)
        assert_eq!(
            encode("m", "m", &pairs(&[("l", "q\"\\\n\té\u{7f}😀")]), "h"),
            r#"["m", "m", {"l": "q\"\\\n\t\u00e9\u007f\ud83d\ude00"}, "h"]"#
        );
    }

    #[test]
    fn keys_round_trip() {
        let labels = pairs(&[
            ("route", "/a\"b\\c\nd"),
            ("method", "GET"),
            ("x", "é😀\u{1}"),
        ]);
        let key = decode(&encode("m", "m_total", &labels, "Help \"text\".")).unwrap();
        let mut sorted = labels.clone();
        sorted.sort();
        assert_eq!(key.metric, "m");
        assert_eq!(key.sample, "m_total");
        assert_eq!(key.labels, sorted);
        assert_eq!(key.help, "Help \"text\".");
    }

    #[test]
    fn malformed_keys_are_errors() {
        for bad in [
            "",
            "[",
            r#"["a", "b", {}]"#,
            r#"["a", "b", {"x": 1}, "h"]"#,
            r#"["a\q", "b", {}, "h"]"#,
            r#"["a", "b", {}, "h"] x"#,
            r#"["a b", "a b_total", {}, "h"]"#,
            r#"["a", "a-b", {}, "h"]"#,
            r#"["a", "a", {"é": "v"}, "h"]"#,
            r#"["a", "a", {"__name__": "v"}, "h"]"#,
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bucket_bounds_match_float_to_go_string() {
        for (value, python) in [
            (0.005, "0.005"),
            (1.0, "1.0"),
            (10.0, "10.0"),
            (2.5, "2.5"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (123456.0, "123456.0"),
            (1234567.0, "1.234567e+06"),
            (1e16, "1e+16"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(go_float(value), python, "{value}");
        }
    }
}
