//! Services a plugin serves besides (or instead of) `proto.Plugin`, and the descriptors
//! its gRPC server reflection (v1 and v1alpha) describes.

use std::convert::Infallible;

use tonic::{server::NamedService, service::RoutesBuilder};

use super::Call;

/// Adds one service to the router.
type AddService = Box<dyn FnOnce(&mut RoutesBuilder) + Send>;

/// What [`Server::service`](super::Server::service) and
/// [`Server::descriptors`](super::Server::descriptors) collected.
#[derive(Default)]
pub(crate) struct Extras {
    /// Whether `proto.Plugin` is served ([`Server::typed`](super::Server::typed) says not).
    pub(crate) without_call: bool,
    pub(crate) services: Vec<AddService>,
    /// The names of `services`.
    pub(crate) names: Vec<&'static str>,
    /// Encoded `FileDescriptorSet`s for reflection.
    pub(crate) descriptors: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Extras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extras")
            .field("without_call", &self.without_call)
            .field("services", &self.services.len())
            .field("descriptors", &self.descriptors.len())
            .finish()
    }
}

impl Extras {
    pub(crate) fn add<S>(&mut self, service: S)
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.services.push(Box::new(move |routes| {
            routes.add_service(service);
        }));
    }

    /// The reflection services (v1 and v1alpha) over the bundled descriptors and the
    /// plugin's own, listing exactly the services served: `served` and the plugin's.
    pub(crate) fn add_reflection(
        &self,
        routes: &mut RoutesBuilder,
        served: &[&'static str],
    ) -> Result<(), String> {
        let builder = || {
            let mut b = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
            for set in &self.descriptors {
                b = b.register_encoded_file_descriptor_set(set);
            }
            for name in served.iter().chain(&self.names) {
                b = b.with_service_name(*name);
            }
            b
        };
        let bad = |e: tonic_reflection::server::Error| {
            format!("the descriptors given to Server::descriptors do not load: {e}")
        };
        routes.add_service(builder().build_v1().map_err(bad)?);
        routes.add_service(builder().build_v1alpha().map_err(bad)?);
        Ok(())
    }
}

/// The plugin of a [`Server::typed`](super::Server::typed): it serves no `proto.Plugin`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCall;

impl Call for NoCall {
    async fn call(
        &self,
        _request: crate::proto::polaris::Request,
    ) -> Result<crate::proto::polaris::Response, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "this plugin serves typed services, not proto.Plugin",
        ))
    }
}
