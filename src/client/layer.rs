//! [`ClientMetricsLayer`] and its builder.

use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::families::HttpClientFamilies;
use super::grpc_families::{GrpcClientFamilies, GRPC_CLIENT_STARTED};
use super::service::{ClientMetricsService, ClientShared};
use crate::grpc::{methods_within, series_cap, GrpcCount, GrpcType, MethodTypes};
use crate::metrics::DEFAULT_MAX_SERIES;
use crate::{BuildError, MetricsRegistry};

/// A [`tower::Layer`] around a client (hyper-util's `Client`, a tonic `Channel`, any
/// `tower::Service<http::Request<B>>`) that records every request it sends into the
/// HTTP client families, and every gRPC call into the gRPC client families; see the
/// [module docs](super). It answers nothing itself.
///
/// Building it initialises the registry. Clones share everything.
#[derive(Clone)]
pub struct ClientMetricsLayer {
    shared: Arc<ClientShared>,
}

impl ClientMetricsLayer {
    /// A layer with the defaults: [`DEFAULT_MAX_SERIES`] series per family.
    pub fn new(registry: &MetricsRegistry) -> Result<Self, BuildError> {
        Self::builder(registry).build()
    }

    /// A builder, to change the defaults.
    pub fn builder(registry: &MetricsRegistry) -> ClientMetricsLayerBuilder {
        ClientMetricsLayerBuilder {
            registry: registry.clone(),
            max_series: None,
            grpc_types: MethodTypes::default(),
        }
    }
}

impl fmt::Debug for ClientMetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientMetricsLayer")
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S> Layer<S> for ClientMetricsLayer {
    type Service = ClientMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientMetricsService::new(inner, Arc::clone(&self.shared))
    }
}

/// Builds a [`ClientMetricsLayer`].
#[must_use]
pub struct ClientMetricsLayerBuilder {
    registry: MetricsRegistry,
    /// `None` until set: then a layer built on families that exist takes their cap.
    max_series: Option<usize>,
    grpc_types: MethodTypes,
}

impl ClientMetricsLayerBuilder {
    /// Caps each client family at `max_series` label sets (default
    /// [`DEFAULT_MAX_SERIES`]): servers times methods times outcomes in the HTTP
    /// ones; past it, requests fold into the overflow series. The gRPC client families
    /// hold that many methods, plus `_OTHER` and the overflow series.
    ///
    /// The families are shared by every client layer of a registry: a layer built
    /// after another fails to build with [`BuildError::Setting`] if its cap differs.
    pub fn max_series(mut self, max_series: usize) -> Self {
        self.max_series = Some(max_series);
        self
    }

    /// Declares the `grpc_type` of the method at `path` (`/package.Service/Method`);
    /// the others are `unary`.
    pub fn grpc_method_type(mut self, path: impl Into<String>, grpc_type: GrpcType) -> Self {
        self.grpc_types.insert(path.into(), grpc_type);
        self
    }

    /// Declares the client families (unless the registry already holds those names),
    /// initialises the registry and builds the layer. The registry may already be
    /// initialised, by a [`MetricsLayer`](crate::MetricsLayer) or an endpoint: the
    /// client families are added to it then.
    pub fn build(self) -> Result<ClientMetricsLayer, BuildError> {
        if let Some(invalid) = self.grpc_types.invalid() {
            return Err(BuildError::InvalidGrpcMethod(invalid.to_string()));
        }
        let max_series = self.max_series.unwrap_or(DEFAULT_MAX_SERIES);
        HttpClientFamilies::declare(&self.registry, max_series)?;
        GrpcClientFamilies::declare(&self.registry, max_series)?;
        self.registry.init()?;
        let http = HttpClientFamilies::from_registry(&self.registry)?;
        // The method cap follows the shared families' cap, which an earlier layer may
        // have set.
        let started_cap = self
            .registry
            .get::<GrpcCount>(GRPC_CLIENT_STARTED)?
            .series_limit();
        if self.max_series.is_some()
            && (http.series_limit() != max_series
                || started_cap != series_cap(GRPC_CLIENT_STARTED, max_series))
        {
            return Err(BuildError::Setting {
                setting: "max_series",
                message: format!(
                    "the client families already exist in the registry with a cap of {} \
                     series, not {max_series}: set the cap on the layer built first",
                    http.series_limit()
                ),
            });
        }
        let max_methods = methods_within(started_cap);
        let grpc = GrpcClientFamilies::from_registry(&self.registry, self.grpc_types, max_methods)?;
        Ok(ClientMetricsLayer {
            shared: Arc::new(ClientShared::new(http, grpc)),
        })
    }
}

impl fmt::Debug for ClientMetricsLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientMetricsLayerBuilder")
            .field("registry", &self.registry)
            .field("max_series", &self.max_series)
            .field("grpc_types", &self.grpc_types)
            .finish()
    }
}
