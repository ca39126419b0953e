//! The OpenAPI document, generated from the handlers' annotations and types, served at
//! `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{enroll, ingest, policy, tenant};
use crate::error::{ErrorBody, ErrorDetail};

#[derive(OpenApi)]
#[openapi(
    info(title = "Quint relay", description = "Tenants, devices, enrollment, ingest and the tenant API. Tenancy is enforced by Postgres row level security."),
    paths(
        super::healthz, super::readyz,
        enroll::enroll, ingest::ingest,
        tenant::list_devices, tenant::revoke_device,
        tenant::create_deploy_token, tenant::list_deploy_tokens, tenant::revoke_deploy_token,
        tenant::list_actions, tenant::list_sessions, tenant::list_agents,
        tenant::list_alerts, tenant::update_alert,
        policy::get_policy, policy::put_policy,
    ),
    components(schemas(ErrorBody, ErrorDetail, super::Status)),
    modifiers(&BearerSchemes)
)]
pub struct ApiDoc;

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, format) in [("api_key", "qk_…"), ("device_token", "qdv_…")] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format(format)
                        .build(),
                ),
            );
        }
    }
}
