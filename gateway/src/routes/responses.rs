//! Answers every route can give for the same reasons, added to the OpenAPI document
//! in one place so that no route forgets one and the document lists every status
//! the server really answers (a fuzzer checks that it does).

use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

pub struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                add_common_responses(operation);
            }
        }
    }
}

fn add_common_responses(operation: &mut Operation) {
    let has_input = operation.request_body.is_some() || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if has_input {
        add(operation, "400", "The body, a path parameter or a query parameter is malformed or invalid");
    }
    if requires_token(operation) {
        add(operation, "401", "Missing, invalid, expired or revoked token");
    }
    if operation.request_body.is_some() {
        add(operation, "413", "The body is too large");
    }
    add(operation, "503", "A backing service (NATS, Postgres) is unavailable or busy; try again after Retry-After");
}

/// True when every security requirement of the operation names a scheme (an empty
/// one, `{}`, means the token is optional).
fn requires_token(operation: &Operation) -> bool {
    operation.security.as_ref().is_some_and(|requirements| {
        !requirements.is_empty()
            && requirements
                .iter()
                .all(|requirement| serde_json::to_value(requirement).is_ok_and(|value| value.as_object().is_some_and(|o| !o.is_empty())))
    })
}

fn add(operation: &mut Operation, status: &str, description: &str) {
    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(failure(description)));
}

fn failure(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Failure"))).build())
        .build()
}
