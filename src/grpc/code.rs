//! gRPC status codes, named as Go's `codes.Code.String()` names them.

use http::HeaderMap;

/// Header (or trailer) carrying a call's status.
const GRPC_STATUS: &str = "grpc-status";

/// A gRPC status code: the `grpc_code` label. Its value is Go's name for the code
/// (`OK`, `NotFound`, ...), as go-grpc-prometheus writes it, so dashboards and alerts
/// built on Go services match unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum GrpcCode {
    /// 0: `OK`
    Ok = 0,
    /// 1: `Canceled`
    Canceled = 1,
    /// 2: `Unknown`
    Unknown = 2,
    /// 3: `InvalidArgument`
    InvalidArgument = 3,
    /// 4: `DeadlineExceeded`
    DeadlineExceeded = 4,
    /// 5: `NotFound`
    NotFound = 5,
    /// 6: `AlreadyExists`
    AlreadyExists = 6,
    /// 7: `PermissionDenied`
    PermissionDenied = 7,
    /// 8: `ResourceExhausted`
    ResourceExhausted = 8,
    /// 9: `FailedPrecondition`
    FailedPrecondition = 9,
    /// 10: `Aborted`
    Aborted = 10,
    /// 11: `OutOfRange`
    OutOfRange = 11,
    /// 12: `Unimplemented`
    Unimplemented = 12,
    /// 13: `Internal`
    Internal = 13,
    /// 14: `Unavailable`
    Unavailable = 14,
    /// 15: `DataLoss`
    DataLoss = 15,
    /// 16: `Unauthenticated`
    Unauthenticated = 16,
}

impl GrpcCode {
    /// Number of codes.
    pub(crate) const COUNT: usize = 17;

    pub(crate) const ALL: [GrpcCode; Self::COUNT] = [
        GrpcCode::Ok,
        GrpcCode::Canceled,
        GrpcCode::Unknown,
        GrpcCode::InvalidArgument,
        GrpcCode::DeadlineExceeded,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unimplemented,
        GrpcCode::Internal,
        GrpcCode::Unavailable,
        GrpcCode::DataLoss,
        GrpcCode::Unauthenticated,
    ];

    /// The code with this number; numbers outside 0..=16 are `Unknown`, as gRPC
    /// clients read them.
    pub fn from_number(number: u32) -> Self {
        usize::try_from(number)
            .ok()
            .and_then(|index| Self::ALL.get(index).copied())
            .unwrap_or(GrpcCode::Unknown)
    }

    /// The code in the `grpc-status` entry of response headers or trailers, if there
    /// is one. A value that is not a number is `Unknown`.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(GRPC_STATUS)?;
        let number = std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|text| text.trim().parse().ok());
        Some(number.map_or(GrpcCode::Unknown, Self::from_number))
    }

    /// The code's number.
    pub fn number(self) -> u32 {
        self as u32
    }

    /// The label value: Go's name for the code.
    pub fn as_str(self) -> &'static str {
        match self {
            GrpcCode::Ok => "OK",
            GrpcCode::Canceled => "Canceled",
            GrpcCode::Unknown => "Unknown",
            GrpcCode::InvalidArgument => "InvalidArgument",
            GrpcCode::DeadlineExceeded => "DeadlineExceeded",
            GrpcCode::NotFound => "NotFound",
            GrpcCode::AlreadyExists => "AlreadyExists",
            GrpcCode::PermissionDenied => "PermissionDenied",
            GrpcCode::ResourceExhausted => "ResourceExhausted",
            GrpcCode::FailedPrecondition => "FailedPrecondition",
            GrpcCode::Aborted => "Aborted",
            GrpcCode::OutOfRange => "OutOfRange",
            GrpcCode::Unimplemented => "Unimplemented",
            GrpcCode::Internal => "Internal",
            GrpcCode::Unavailable => "Unavailable",
            GrpcCode::DataLoss => "DataLoss",
            GrpcCode::Unauthenticated => "Unauthenticated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(status: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(GRPC_STATUS, HeaderValue::from_static(status));
        headers
    }

    #[test]
    fn numbers_map_to_go_names() {
        assert_eq!(GrpcCode::from_number(0).as_str(), "OK");
        assert_eq!(GrpcCode::from_number(5).as_str(), "NotFound");
        assert_eq!(GrpcCode::from_number(14).as_str(), "Unavailable");
        assert_eq!(GrpcCode::from_number(16).as_str(), "Unauthenticated");
        for number in 0..17 {
            assert_eq!(GrpcCode::from_number(number).number(), number);
        }
    }

    #[test]
    fn status_is_read_from_headers() {
        assert_eq!(GrpcCode::from_headers(&HeaderMap::new()), None);
        assert_eq!(
            GrpcCode::from_headers(&headers("14")),
            Some(GrpcCode::Unavailable)
        );
        assert_eq!(
            GrpcCode::from_headers(&headers("99")),
            Some(GrpcCode::Unknown)
        );
        assert_eq!(
            GrpcCode::from_headers(&headers("x")),
            Some(GrpcCode::Unknown)
        );
    }
}
