//! Label sets of the gRPC families, as go-grpc-prometheus names them.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

use super::code::GrpcCode;
use crate::metrics::OVERFLOW_LABEL;
use crate::record::{read_label_methods, ExtraPairs, DEFAULT_FALLBACK_ROUTE};

/// Labels the gRPC families give their series.
pub(crate) const GRPC_LABEL_NAMES: [&str; 4] =
    ["grpc_type", "grpc_service", "grpc_method", "grpc_code"];

/// The `grpc_type` label: the shape of a method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GrpcType {
    /// One request message, one response message: `unary`.
    #[default]
    Unary,
    /// A stream of request messages, one response: `client_stream`.
    ClientStream,
    /// One request, a stream of responses: `server_stream`.
    ServerStream,
    /// Streams both ways: `bidi_stream`.
    BidiStream,
}

impl GrpcType {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            GrpcType::Unary => "unary",
            GrpcType::ClientStream => "client_stream",
            GrpcType::ServerStream => "server_stream",
            GrpcType::BidiStream => "bidi_stream",
        }
    }
}

/// Labels of `grpc_server_started_total`, `grpc_server_handling_seconds`,
/// `grpc_server_msg_received_total` and `grpc_server_msg_sent_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrpcLabels {
    grpc_type: GrpcType,
    service: Arc<str>,
    method: Arc<str>,
    /// Labels read from the call's metadata, after the method's.
    extra: ExtraPairs,
    overflow: bool,
}

impl GrpcLabels {
    /// The label set of a method of a service.
    pub fn new(
        grpc_type: GrpcType,
        service: impl Into<Arc<str>>,
        method: impl Into<Arc<str>>,
    ) -> Self {
        Self {
            grpc_type,
            service: service.into(),
            method: method.into(),
            extra: ExtraPairs::default(),
            overflow: false,
        }
    }

    read_label_methods!("the call's metadata");

    /// The labels of the series that methods past the cardinality cap fold into:
    /// service and method `_OTHER`, and `otel_metric_overflow="true"`, so queries by
    /// any of the family's labels still see those calls.
    pub fn overflow() -> Self {
        Self {
            overflow: true,
            ..Self::new(
                GrpcType::Unary,
                DEFAULT_FALLBACK_ROUTE,
                DEFAULT_FALLBACK_ROUTE,
            )
        }
    }

    /// The `grpc_type` label.
    pub fn grpc_type(&self) -> GrpcType {
        self.grpc_type
    }

    /// The `grpc_service` label: `package.Service`.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The `grpc_method` label.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// Whether these are the labels of the overflow series.
    pub fn is_overflow(&self) -> bool {
        self.overflow
    }
}

impl GrpcLabels {
    /// The labels of the method.
    fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            ("grpc_type", self.grpc_type.as_str()),
            ("grpc_service", &*self.service),
            ("grpc_method", &*self.method),
        ]
    }
}

impl EncodeLabelSet for GrpcLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.pairs().encode(encoder)?;
        self.extra.encode(encoder)?;
        if self.overflow {
            OVERFLOW_LABEL.encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// Labels of `grpc_server_handled_total`: a method's labels and the status code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrpcHandledLabels {
    method: GrpcLabels,
    code: GrpcCode,
}

impl GrpcHandledLabels {
    /// The label set of a method's calls that ended with `code`.
    pub fn new(method: GrpcLabels, code: GrpcCode) -> Self {
        Self { method, code }
    }

    /// The labels of the method.
    pub fn method(&self) -> &GrpcLabels {
        &self.method
    }

    /// The `grpc_code` label.
    pub fn code(&self) -> GrpcCode {
        self.code
    }
}

impl EncodeLabelSet for GrpcHandledLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.method.encode(encoder)?;
        ("grpc_code", self.code.as_str()).encode(encoder.encode_label())
    }
}
