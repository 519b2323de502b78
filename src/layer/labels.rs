//! Label sets of the HTTP families, following OpenTelemetry's semantic conventions in
//! their Prometheus form.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

use crate::record::{read_label_methods, ExtraPairs, HttpMethod};

/// Labels the HTTP families give their series.
pub(crate) const HTTP_LABEL_NAMES: [&str; 3] = [
    "http_request_method",
    "http_response_status_code",
    "http_route",
];

/// Labels of `http_server_request_duration_seconds` and `http_server_requests_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpLabels {
    method: HttpMethod,
    status: u16,
    route: Arc<str>,
    extra: ExtraPairs,
}

impl HttpLabels {
    /// The label set for a method, response status code and route.
    pub fn new(method: HttpMethod, status: u16, route: impl Into<Arc<str>>) -> Self {
        Self {
            method,
            status,
            route: route.into(),
            extra: ExtraPairs::default(),
        }
    }

    read_label_methods!("the request or the response");

    /// The `http_request_method` label.
    pub fn method(&self) -> HttpMethod {
        self.method
    }

    /// The `http_response_status_code` label.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The `http_route` label.
    pub fn route(&self) -> &str {
        &self.route
    }
}

impl EncodeLabelSet for HttpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("http_request_method", self.method.as_str()).encode(encoder.encode_label())?;
        ("http_response_status_code", self.status).encode(encoder.encode_label())?;
        ("http_route", &*self.route).encode(encoder.encode_label())?;
        self.extra.encode(encoder)
    }
}

/// Labels of `http_server_active_requests`: the status is not known while a request
/// is in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ActiveRequestLabels {
    method: HttpMethod,
    route: Arc<str>,
    extra: ExtraPairs,
}

impl ActiveRequestLabels {
    /// The label set for a method and route.
    pub fn new(method: HttpMethod, route: impl Into<Arc<str>>) -> Self {
        Self {
            method,
            route: route.into(),
            extra: ExtraPairs::default(),
        }
    }

    read_label_methods!("the request");

    /// The `http_request_method` label.
    pub fn method(&self) -> HttpMethod {
        self.method
    }

    /// The `http_route` label.
    pub fn route(&self) -> &str {
        &self.route
    }
}

impl ActiveRequestLabels {
    fn pairs(&self) -> [(&'static str, &str); 2] {
        [
            ("http_request_method", self.method.as_str()),
            ("http_route", &*self.route),
        ]
    }
}

impl EncodeLabelSet for ActiveRequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.pairs().encode(encoder)?;
        self.extra.encode(encoder)
    }
}
