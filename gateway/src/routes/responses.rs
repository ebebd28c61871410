//! Answers every route can give for the same reasons, added to the OpenAPI document
//! in one place so that no route forgets one and the document lists every status
//! the server really answers (a fuzzer checks that it does).

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder};

pub struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for operation in [&mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten() {
                add_idempotency(path, operation);
            }
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
    add(
        operation,
        "503",
        "`service_unavailable`: a backing service (NATS, Postgres) is down, nothing was stored; `busy`; or, \
        for a write, `outcome_unknown`: the change may or may not be stored, retry with the same Idempotency-Key. See Retry-After",
    );
}

/// The writes a client may retry safely: every operation that runs commands
/// (a login too: its retry gives back the same session and refresh token),
/// except refresh, whose answer carries a new secret a retry could not give
/// back (a repeated logout is harmless as it is), and the account emails'
/// routes: a reset request answers the same whatever happens, and a token is
/// itself the request's name (a repeat finds it used).
fn is_keyed_write(path: &str) -> bool {
    ![
        "/auth/refresh",
        "/auth/logout",
        "/chat",
        "/auth/password-reset",
        "/auth/password-reset/confirm",
        "/auth/verify-email",
    ]
    .iter()
    .any(|tail| path.ends_with(tail))
}

/// The 202 answer of every write, and the `Idempotency-Key` header of every
/// keyed one.
fn add_idempotency(path: &str, operation: &mut Operation) {
    add_accepted(operation);
    if !is_keyed_write(path) {
        return;
    }
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(crate::idempotency::MAX_LEN))
        .pattern(Some("^[!-~]+$"))
        .build();
    let header = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Names this request so that sending it again (after a timeout or a 503 `outcome_unknown`) within two \
             minutes is stored once and answered as the first was. Bound to the caller (for a registration: the \
             email) and the route. 1 to 255 visible ASCII characters.",
        ))
        .schema(Some(schema))
        .build();
    operation.parameters.get_or_insert_with(Vec::new).push(header);
}

fn add_accepted(operation: &mut Operation) {
    let accepted = ResponseBuilder::new()
        .description(
            "`stored_not_visible`: the change is stored but the read models did not show it within the request's \
             deadline; it shows shortly (a retry with the same Idempotency-Key is not stored again)",
        )
        .content("application/json", ContentBuilder::new().schema(Some(accepted_schema())).build())
        .build();
    operation.responses.responses.entry("202".to_owned()).or_insert_with(|| RefOr::T(accepted));
}

/// `{"success": true, "code": "stored_not_visible", "message": "..."}`.
fn accepted_schema() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .property("success", ObjectBuilder::new().schema_type(Type::Boolean))
            .property("code", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["stored_not_visible"])))
            .property("message", ObjectBuilder::new().schema_type(Type::String))
            .required("success")
            .required("code")
            .required("message")
            .build(),
    )
}

/// True when every security requirement of the operation names a scheme (an empty
/// one, `{}`, means the token is optional).
fn requires_token(operation: &Operation) -> bool {
    operation.security.as_ref().is_some_and(|requirements| {
        !requirements.is_empty()
            && requirements.iter().all(|requirement| {
                serde_json::to_value(requirement).is_ok_and(|value| value.as_object().is_some_and(|o| !o.is_empty()))
            })
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
