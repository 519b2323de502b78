//! Exemplars: the labels of one recent observation (a trace id, say) kept beside a
//! histogram bucket or a counter, so a point on a dashboard links to the request
//! behind it. OpenMetrics and protobuf scrapes carry them; the Prometheus text format
//! has no place for them.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock, TryLockError};
use std::time::SystemTime;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::exemplar::{CounterWithExemplar, Exemplar};

use crate::names::is_label_name;

/// Longest label set of an exemplar, names and values together: OpenMetrics allows 128
/// characters; this crate keeps at most 128 bytes, the same for the ASCII of trace ids.
pub const MAX_EXEMPLAR_LENGTH: usize = 128;
/// Most labels an exemplar carries.
pub const MAX_EXEMPLAR_LABELS: usize = 8;

/// The labels of an exemplar: at most [`MAX_EXEMPLAR_LABELS`] pairs of at most
/// [`MAX_EXEMPLAR_LENGTH`] bytes in all, held inline so that recording one allocates
/// nothing.
///
/// ```
/// use tower_prometheus::metrics::ExemplarLabels;
///
/// let trace = ExemplarLabels::from_traceparent(
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
/// )
/// .expect("a sampled W3C trace context");
/// let pairs: Vec<_> = trace.iter().collect();
/// assert_eq!(
///     pairs,
///     [("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"), ("span_id", "00f067aa0ba902b7")]
/// );
/// // Too long for an exemplar: ignored, as OpenMetrics requires.
/// assert!(ExemplarLabels::new([("user", "x".repeat(200).as_str())]).is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ExemplarLabels {
    bytes: [u8; MAX_EXEMPLAR_LENGTH],
    /// Where each name and each value ends in `bytes`, alternately.
    ends: [u8; 2 * MAX_EXEMPLAR_LABELS],
    pairs: u8,
}

impl ExemplarLabels {
    /// These labels, or `None` when they are not a valid exemplar label set: too many,
    /// too long, a name that is not a Prometheus label name, or a name twice.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        let mut labels = Self {
            bytes: [0; MAX_EXEMPLAR_LENGTH],
            ends: [0; 2 * MAX_EXEMPLAR_LABELS],
            pairs: 0,
        };
        let mut len = 0;
        for (name, value) in pairs {
            let index = usize::from(labels.pairs);
            if index == MAX_EXEMPLAR_LABELS
                || !is_label_name(name)
                || labels.iter().any(|(seen, _)| seen == name)
            {
                return None;
            }
            for part in [name, value] {
                let end = len + part.len();
                labels
                    .bytes
                    .get_mut(len..end)?
                    .copy_from_slice(part.as_bytes());
                len = end;
            }
            // Both ends fit in a byte: `bytes` is 128 long.
            labels.ends[2 * index] = (len - value.len()) as u8;
            labels.ends[2 * index + 1] = len as u8;
            labels.pairs += 1;
        }
        Some(labels)
    }

    /// `trace_id` and `span_id` from a W3C `traceparent` header value, if it is valid
    /// and its trace is sampled (an unsampled trace is not kept by the tracing backend,
    /// so an exemplar would link to nothing).
    pub fn from_traceparent(value: &str) -> Option<Self> {
        TraceContext::parse(value.as_bytes())?.labels()
    }

    /// The `(name, value)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends[..2 * usize::from(self.pairs)]
            .chunks_exact(2)
            .map(move |ends| {
                let (name_end, value_end) = (usize::from(ends[0]), usize::from(ends[1]));
                let pair = (self.text(start, name_end), self.text(name_end, value_end));
                start = value_end;
                pair
            })
    }

    /// The text between `start` and `end`, which [`new`](Self::new) copied from a `str`.
    fn text(&self, start: usize, end: usize) -> &str {
        std::str::from_utf8(&self.bytes[start..end]).unwrap_or_default()
    }
}

impl fmt::Debug for ExemplarLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl EncodeLabelSet for ExemplarLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), fmt::Error> {
        self.iter()
            .try_for_each(|pair| pair.encode(encoder.encode_label()))
    }
}

/// A sampled W3C trace context, its ids kept as the header wrote them (checked, not
/// decoded): made into [`ExemplarLabels`] only when scraped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceContext {
    trace_id: [u8; 32],
    span_id: [u8; 16],
}

impl TraceContext {
    /// The context of a `traceparent` header value, if it is valid and sampled:
    /// `version-trace_id-span_id-flags`, of 2, 32, 16 and 2 lowercase hex digits.
    pub(crate) fn parse(value: &[u8]) -> Option<Self> {
        let (head, rest) = value.split_first_chunk::<55>()?;
        // Version 00 has exactly four fields; later versions may append more.
        let version = &head[..2];
        let known_end = match rest.first() {
            None => true,
            Some(&next) => version != b"00" && next == b'-',
        };
        let dashes = head[2] == b'-' && head[35] == b'-' && head[52] == b'-';
        let digits = [&head[..2], &head[3..35], &head[36..52], &head[53..]];
        if !known_end || !dashes || version == b"ff" || !digits.iter().all(|d| is_hex(d)) {
            return None;
        }
        let context = Self {
            trace_id: head[3..35].try_into().ok()?,
            span_id: head[36..52].try_into().ok()?,
        };
        let zero = context.trace_id == [b'0'; 32] || context.span_id == [b'0'; 16];
        // The sampled flag is the lowest bit of the last digit.
        let sampled = matches!(
            head[54],
            b'1' | b'3' | b'5' | b'7' | b'9' | b'b' | b'd' | b'f'
        );
        (!zero && sampled).then_some(context)
    }

    /// `trace_id` and `span_id`.
    fn labels(&self) -> Option<ExemplarLabels> {
        let pairs = [
            ("trace_id", std::str::from_utf8(&self.trace_id).ok()?),
            ("span_id", std::str::from_utf8(&self.span_id).ok()?),
        ];
        ExemplarLabels::new(pairs)
    }
}

/// Whether `text` is lowercase hexadecimal digits, as W3C trace context writes them;
/// without an early exit, so the check of a whole id runs in a few vector steps.
fn is_hex(text: &[u8]) -> bool {
    text.iter().fold(true, |hex, &b| {
        hex & (b.wrapping_sub(b'0') < 10 || b.wrapping_sub(b'a') < 6)
    })
}

/// The exemplar a request carries until it is recorded, boxed: a layer without
/// exemplars then carries one empty pointer per request, not the labels.
#[derive(Clone, Debug)]
pub(crate) struct RequestExemplar(Box<KeptExemplar>);

impl RequestExemplar {
    /// A sampled trace context.
    pub(crate) fn trace(context: TraceContext) -> Self {
        Self(Box::new(KeptExemplar::Trace(context)))
    }

    /// Labels a function made.
    pub(crate) fn labels(labels: ExemplarLabels) -> Self {
        Self(Box::new(KeptExemplar::Labels(labels)))
    }

    /// The exemplar to record, at the current time.
    pub(crate) fn recorded_now(&self) -> ExemplarRef<'_> {
        ExemplarRef::now(&self.0)
    }
}

/// An exemplar offered to metrics, with the time it was recorded (read once for all
/// the metrics a request records into).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExemplarRef<'a> {
    kept: &'a KeptExemplar,
    at: SystemTime,
}

impl<'a> ExemplarRef<'a> {
    /// `kept`, recorded now.
    pub(crate) fn now(kept: &'a KeptExemplar) -> Self {
        Self {
            kept,
            at: SystemTime::now(),
        }
    }
}

/// An exemplar as a request carries it and a slot keeps it: a trace context is made
/// into labels only when scraped.
#[derive(Clone, Copy, Debug)]
pub(crate) enum KeptExemplar {
    Trace(TraceContext),
    Labels(ExemplarLabels),
}

impl KeptExemplar {
    fn labels(&self) -> Option<ExemplarLabels> {
        match self {
            KeptExemplar::Trace(context) => context.labels(),
            KeptExemplar::Labels(labels) => Some(*labels),
        }
    }
}

/// One kept observation.
#[derive(Clone, Copy)]
struct Sample {
    kept: KeptExemplar,
    value: f64,
    at: SystemTime,
}

/// The latest exemplar of each bucket of a histogram (or of a counter, one slot),
/// allocated with the first one.
///
/// Writing one takes no lock that can wait: a thread that finds its slot being written
/// by another leaves it to that one, since an exemplar is a sample, not a count.
pub(crate) struct ExemplarSlots {
    slots: OnceLock<Box<[Mutex<Option<Sample>>]>>,
    len: usize,
}

impl ExemplarSlots {
    /// Slots for `len` buckets.
    pub(crate) fn new(len: usize) -> Self {
        Self {
            slots: OnceLock::new(),
            len,
        }
    }

    /// Keeps `exemplar` as the exemplar of slot `index`, for an observation of `value`.
    pub(crate) fn offer(&self, index: usize, exemplar: ExemplarRef<'_>, value: f64) {
        let slots = self
            .slots
            .get_or_init(|| (0..self.len).map(|_| Mutex::new(None)).collect());
        let Some(slot) = slots.get(index) else {
            return;
        };
        let mut kept = match slot.try_lock() {
            Ok(kept) => kept,
            // Only copies happen under the lock, so a poisoned one holds a whole value.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        *kept = Some(Sample {
            kept: *exemplar.kept,
            value,
            at: exemplar.at,
        });
    }

    /// The exemplars kept, by slot, as prometheus-client encodes them.
    pub(crate) fn exemplars(&self) -> HashMap<usize, Exemplar<ExemplarLabels, f64>> {
        let Some(slots) = self.slots.get() else {
            return HashMap::new();
        };
        let holder = CounterWithExemplar::default();
        slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| Some((index, to_exemplar(&holder, &sample(slot)?)?)))
            .collect()
    }

    /// The exemplar of slot `index`.
    pub(crate) fn exemplar(&self, index: usize) -> Option<Exemplar<ExemplarLabels, f64>> {
        let sample = sample(self.slots.get()?.get(index)?)?;
        to_exemplar(&CounterWithExemplar::default(), &sample)
    }
}

/// What `slot` keeps.
fn sample(slot: &Mutex<Option<Sample>>) -> Option<Sample> {
    match slot.lock() {
        Ok(kept) => *kept,
        // Only copies happen under the lock, so a poisoned one holds a whole value.
        Err(poisoned) => *poisoned.into_inner(),
    }
}

/// `sample` as a prometheus-client exemplar, made by the only public way to make one:
/// a counter that keeps it.
///
/// prometheus-client 0.26 builds an [`Exemplar`] only inside its own metrics and hands
/// out references to it; its encoders take exemplars by value in a map. The exemplar
/// is copied out bit for bit, which is a valid independent value because it owns
/// nothing that needs dropping: checked at compile time below, so a version that adds
/// such a field fails to build instead.
#[allow(unsafe_code)]
fn to_exemplar(
    holder: &CounterWithExemplar<ExemplarLabels, f64, AtomicU64>,
    sample: &Sample,
) -> Option<Exemplar<ExemplarLabels, f64>> {
    const {
        assert!(!std::mem::needs_drop::<Exemplar<ExemplarLabels, f64>>());
    }
    holder.inc_by(sample.value, Some(sample.kept.labels()?), Some(sample.at));
    let (_, kept) = holder.get();
    let exemplar = kept.as_ref()?;
    // SAFETY: `exemplar` is a live, initialised value behind the read guard `kept`,
    // which is held across the read, so nothing writes it meanwhile. Its type has no
    // drop glue (asserted above): neither copy frees anything, and the copy holds
    // only plain data (an `ExemplarLabels`, which is `Copy`, an `f64` and a time).
    Some(unsafe { std::ptr::read(exemplar) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_read_as_w3c_defines_it() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(ExemplarLabels::from_traceparent(valid).is_some());
        for invalid in [
            // Not sampled.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            // All-zero ids.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Upper case, short, extra field in version 00, version ff.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "",
        ] {
            assert_eq!(ExemplarLabels::from_traceparent(invalid), None, "{invalid}");
        }
        // A later version may carry more fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-more";
        assert!(ExemplarLabels::from_traceparent(later).is_some());
    }

    #[test]
    fn label_sets_are_bounded_and_checked() {
        let full = "v".repeat(MAX_EXEMPLAR_LENGTH - 1);
        let labels = ExemplarLabels::new([("k", full.as_str())]).expect("128 bytes fit");
        assert_eq!(labels.iter().collect::<Vec<_>>(), [("k", full.as_str())]);
        let over = "v".repeat(MAX_EXEMPLAR_LENGTH);
        assert!(ExemplarLabels::new([("k", over.as_str())]).is_none());
        for name in ["", "1a", "a-b", "__reserved"] {
            assert!(ExemplarLabels::new([(name, "v")]).is_none(), "{name:?}");
        }
        assert!(ExemplarLabels::new([("a", "1"), ("a", "2")]).is_none());
        let nine = (0..9).map(|i| ["a", "b", "c", "d", "e", "f", "g", "h", "i"][i]);
        assert!(ExemplarLabels::new(nine.map(|name| (name, ""))).is_none());
        let unicode = ExemplarLabels::new([("user", "h\u{e9}l\u{e8}ne \"x\"")]).expect("fits");
        assert_eq!(
            unicode.iter().next(),
            Some(("user", "h\u{e9}l\u{e8}ne \"x\""))
        );
        assert_eq!(ExemplarLabels::new([]).map(|l| l.iter().count()), Some(0));
    }

    #[test]
    fn slots_keep_the_latest_exemplar_of_each_bucket() {
        let slots = ExemplarSlots::new(3);
        assert!(slots.exemplars().is_empty());
        let first = ExemplarLabels::new([("trace_id", "a")]).expect("valid");
        let second = ExemplarLabels::new([("trace_id", "b")]).expect("valid");
        let (first, second) = (KeptExemplar::Labels(first), KeptExemplar::Labels(second));
        slots.offer(0, ExemplarRef::now(&first), 0.5);
        slots.offer(0, ExemplarRef::now(&second), 0.25);
        let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(trace.as_bytes()).expect("valid");
        slots.offer(2, RequestExemplar::trace(context).recorded_now(), 9.0);
        slots.offer(7, ExemplarRef::now(&first), 1.0);
        let kept = slots.exemplars();
        assert_eq!(kept.len(), 2);
        assert!(slots.exemplar(1).is_none());
        assert!(slots.exemplar(0).is_some());
    }
}
