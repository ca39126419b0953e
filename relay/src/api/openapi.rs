//! The OpenAPI document, generated from the handlers' annotations and types, served at
//! `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{enroll, heartbeat, ingest, policy, tenant};
use crate::error::{ErrorBody, ErrorDetail};

#[derive(OpenApi)]
#[openapi(
    info(title = "Quint relay", description = "Tenants, devices, enrollment, ingest and the tenant API. Tenancy is enforced by Postgres row level security."),
    paths(
        super::healthz, super::readyz,
        enroll::enroll, ingest::ingest, heartbeat::heartbeat,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation that takes a credential documents the common failures, with the error
    /// body, so clients (and schemathesis) know their shape.
    #[test]
    fn authenticated_operations_document_the_common_errors() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut checked = 0;
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                if operation.get("security").is_none() {
                    continue;
                }
                checked += 1;
                for status in ["400", "401", "429", "503"] {
                    let response = &operation["responses"][status];
                    assert!(
                        response["content"]["application/json"]["schema"]["$ref"]
                            .as_str()
                            .is_some_and(|r| r.ends_with("/ErrorBody")),
                        "{method} {path}: {status} is {response}"
                    );
                }
            }
        }
        assert!(checked >= 13, "{checked} authenticated operations");
    }
}
