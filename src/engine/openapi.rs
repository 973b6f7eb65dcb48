//! The API's OpenAPI 3.1 document, generated from the code: the paths and
//! their schemas come from the handlers' annotations and the one route list
//! in `api.rs` (`described`), which is also the router
//! served, so a route cannot exist undescribed. What is added here applies
//! to every operation alike: the problem schema on every error answer (its
//! `type` values read from [`Kind::ALL`]), the refusals of the ops gate
//! (401, 403, 429) on every ops operation, and 500 everywhere.
//!
//! Served at `/v1/openapi.json`, printed by `hostwright openapi`, committed
//! as `docs/openapi.json` (tests/openapi.rs fails when that copy is stale).

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, LicenseBuilder, OpenApi, Ref, RefOr,
};

use super::problem::{CONTENT_TYPE, Kind};

/// The name of the problem schema under `components/schemas`.
pub const PROBLEM_SCHEMA: &str = "Problem";

/// The document as a value.
pub fn openapi() -> OpenApi {
    let mut doc = super::api::described_paths();
    doc.info = InfoBuilder::new()
        .title("hostwright")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Signed hosting contracts in, real resources and billable state out. \
             Errors are RFC 9457 problem details (`application/problem+json`) with a \
             stable `type` per kind of error; listings page with `next_cursor`. \
             See docs/api.md.",
        ))
        .license(Some(LicenseBuilder::new().name("Apache-2.0").build()))
        .build();
    let components = doc.components.take().unwrap_or_default();
    let components = ComponentsBuilder::from(components)
        .schema(PROBLEM_SCHEMA, problem_schema())
        .security_scheme(
            "ops_token",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A named ops token (`hostwright tokens create`); its scopes \
                         (read, operate, secrets) are the roles listed per operation",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "intake_credential",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The contract system's credential (`intake.credential_file`), \
                         required when one is configured; the envelope's signature \
                         stays the proof of the contract",
                    ))
                    .build(),
            ),
        )
        .build();
    doc.components = Some(components);
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            complete(op);
        }
    }
    doc
}

/// The document as pretty JSON with a final newline (the committed form).
pub fn document() -> String {
    let mut text = serde_json::to_string_pretty(&openapi()).expect("the document serializes");
    text.push('\n');
    text
}

/// Adds what every operation of its kind answers, and the problem schema on
/// each error answer that has no body of its own.
fn complete(op: &mut Operation) {
    let gated = op.security.as_ref().is_some_and(|reqs| {
        reqs.iter().any(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_object().map(|o| o.contains_key("ops_token")))
                .unwrap_or(false)
        })
    });
    let responses = &mut op.responses.responses;
    if gated {
        for (status, description) in [
            ("401", "No valid ops token (`unauthenticated`)"),
            (
                "403",
                "The token lacks the scope (`forbidden`, with `scope`)",
            ),
            (
                "429",
                "This address failed to authenticate too often (`rate-limited`, `Retry-After`)",
            ),
        ] {
            responses
                .entry(status.to_string())
                .or_insert_with(|| ResponseBuilder::new().description(description).into());
        }
    }
    responses.entry("500".to_string()).or_insert_with(|| {
        ResponseBuilder::new()
            .description("Our failure (`internal`)")
            .into()
    });
    for (status, response) in responses.iter_mut() {
        let is_error = status.parse::<u16>().is_ok_and(|s| s >= 400);
        if let (true, RefOr::T(r)) = (is_error, response)
            && r.content.is_empty()
        {
            r.content.insert(
                CONTENT_TYPE.to_string(),
                Content::new(Some(Ref::from_schema_name(PROBLEM_SCHEMA))),
            );
        }
    }
}

/// RFC 9457 problem details as this API answers them: `type` is one of
/// the URNs of [`Kind`]; extension members (`findings`, `scope`, `job_id`,
/// `parameter`, ...) sit beside the standard ones.
fn problem_schema() -> Schema {
    let types: Vec<String> = Kind::ALL.iter().map(|k| k.type_uri()).collect();
    let string = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description.to_string()))
    };
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "RFC 9457 problem details (application/problem+json); clients branch on `type`",
            ))
            .property(
                "type",
                string("A stable URN per kind of error (docs/api.md)").enum_values(Some(types)),
            )
            .required("type")
            .property("title", string("The kind's title"))
            .required("title")
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("The HTTP status")),
            )
            .required("status")
            .property("detail", string("What happened, for a person"))
            .required("detail")
            .property(
                "findings",
                utoipa::openapi::schema::ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::Object))
                    .description(Some(
                        "contract-refused: every finding (rule, article, path, message)",
                    )),
            )
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(true),
            ))
            .build(),
    )
}
