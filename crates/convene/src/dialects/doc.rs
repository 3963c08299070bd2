//! OpenAPI building blocks shared by the dialects' documents: each dialect's
//! frame (its tag and security schemes) and the schemas of values whose rules
//! core enforces the same way in every dialect (trait maps, event properties,
//! identities that may come as text or number).

use convene_core::event::{MAX_EVENT_NAME_LEN, MAX_EVENT_PROPERTIES};
use convene_core::limits::{MAX_IDENTITY_LEN, MAX_TRAITS_PER_WRITE};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::SecurityScheme;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{Components, OpenApi, OpenApiBuilder, RefOr};

/// A dialect's document before its routes: one tag and its security schemes.
pub fn frame(tag: &str, description: &str, schemes: Vec<(&str, SecurityScheme)>) -> OpenApi {
    let mut components = Components::new();
    for (name, scheme) in schemes {
        components.add_security_scheme(name, scheme);
    }
    OpenApiBuilder::new()
        .tags(Some([TagBuilder::new().name(tag).description(Some(description)).build()]))
        .components(Some(components))
        .build()
}

/// `Authorization: Bearer <token>` with a convene API key (the dialects
/// whose vendors authenticate that way).
pub fn bearer() -> SecurityScheme {
    SecurityScheme::Http(
        utoipa::openapi::security::HttpBuilder::new()
            .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
            .description(Some("`Authorization: Bearer <token>` with a convene API key."))
            .build(),
    )
}

pub use crate::http::error::ConveneCode;

fn object_of_at_most(members: usize, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .max_properties(Some(members))
        .description(Some(description))
}

/// A traits map: at most 500 members (a contact's identity keys aside); names of 1 to
/// 128 characters, not starting with `$`; each value at most 64 KiB.
pub fn traits() -> Schema {
    object_of_at_most(
        MAX_TRAITS_PER_WRITE,
        "Traits: at most 500 (on a contact, `email`, `mobile` and `external_id` are identities and not counted); \
         names of 1 to 128 characters, not starting with `$` and without control characters; each value at most \
         64 KiB of JSON.",
    )
    .build()
    .into()
}

/// The same map, or `null` (no traits).
pub fn traits_or_null() -> Schema {
    nullable(traits())
}

/// A vendor's variables: plain values (an object is a value, `null` removes
/// one), at most 500, names as traits; `null` is none.
pub fn variables() -> Schema {
    nullable(
        object_of_at_most(
            MAX_TRAITS_PER_WRITE,
            "Variables, each set as given (an object is a value; `null` removes it): at most 500; names of 1 to \
             128 characters, not starting with `$` and without control characters; each value at most 64 KiB of JSON.",
        )
        .build()
        .into(),
    )
}

/// An event's properties: at most 15 members and 32 KiB.
pub fn event_properties() -> Schema {
    nullable(
        object_of_at_most(MAX_EVENT_PROPERTIES, "At most 15 key/value pairs and 32 KiB of JSON; `null` is none.")
            .build()
            .into(),
    )
}

/// `schema` or `null`.
pub fn nullable(schema: Schema) -> Schema {
    OneOfBuilder::new().item(schema).item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null))).build().into()
}

/// An id sent as text or as a number (kept as its decimal text), `null`
/// allowed when `nullable`.
fn text_or_number(max_length: Option<usize>, nullable: bool, description: &str) -> Schema {
    let text = ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).max_length(max_length);
    let number = ObjectBuilder::new().schema_type(SchemaType::Type(Type::Number));
    let mut one_of = OneOfBuilder::new().item(text).item(number);
    if nullable {
        one_of = one_of.item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)));
    }
    one_of.description(Some(description)).build().into()
}

const IDENTITY: &str =
    "Text or a number: 1 to 254 bytes after trimming, no control characters; an empty text or `null` is absent.";

/// An identity (Segment `userId`, `anonymousId`): text or a number, 1 to 254
/// bytes after trimming, no control characters; empty or `null` is absent.
pub fn identity() -> Schema {
    text_or_number(Some(MAX_IDENTITY_LEN), true, IDENTITY)
}

/// A required identity (Segment `groupId`).
pub fn required_identity() -> Schema {
    text_or_number(
        Some(MAX_IDENTITY_LEN),
        false,
        "Text or a number: 1 to 254 bytes after trimming, no control characters.",
    )
}

/// A required id with no limit of its own (the message's 32 KB bounds it).
pub fn any_id() -> Schema {
    text_or_number(None, false, "Text or a number (kept as its decimal text).")
}

const EVENT_NAME: &str = "Text or a number: 1 to 200 characters after trimming, no control characters.";

/// A required event name: text or a number, 1 to 200 characters after
/// trimming, no control characters.
pub fn event_name() -> Schema {
    text_or_number(Some(MAX_EVENT_NAME_LEN), false, EVENT_NAME)
}

/// An optional event name (`null` or empty is absent).
pub fn optional_event_name() -> Schema {
    text_or_number(Some(MAX_EVENT_NAME_LEN), true, EVENT_NAME)
}

/// Any JSON value (accepted and not stored).
pub fn any_value() -> RefOr<Schema> {
    RefOr::T(Schema::Object(ObjectBuilder::new().description(Some("Any JSON value; accepted and not stored.")).build()))
}

/// The `Idempotency-Key` header of the queued routes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKey {
    /// Makes a retried request apply once: item `i` without its own message id gets `key#i`
    /// (1 to 200 bytes after trimming).
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 200)]
    idempotency_key: Option<String>,
}
