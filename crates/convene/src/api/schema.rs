//! The OpenAPI schemas of native request values whose rules the server
//! checks beyond their JSON type: names, emails, ids, domains, trait maps,
//! scopes. Each says what core accepts, so that a body valid against the
//! document is one the server takes (values the server normalises — a URL
//! given as a domain, white space around an email — are described in the
//! text, the pattern showing the canonical form).

use convene_core::conversation::{MAX_CHANNEL_CHARS, MAX_CONTENT_CHARS, MAX_LABEL_CHARS, MAX_LABELS};
use convene_core::event::{MAX_EVENT_NAME_LEN, MAX_EVENT_PROPERTIES};
use convene_core::ingest::{LOOKUP_ORDER, MAX_MESSAGE_ID_LEN};
use convene_core::limits::{
    MAX_DESCRIPTION_LEN, MAX_FIELD_NAME_LEN, MAX_IDENTITY_LEN, MAX_LIST_LEN, MAX_NAME_LEN, MAX_TEAMS,
    MAX_TRAITS_PER_WRITE,
};
use convene_core::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};
use convene_core::rep::{MAX_REP_ID_LEN, MAX_REP_TEXT_LEN};
use convene_core::scope::Scope;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{KnownFormat, RefOr};

use crate::dialects::doc::nullable;

/// Text with something besides white space and no control characters
/// (Unicode Cc): a name or id that core trims and checks.
pub const TEXT: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";
/// An email address as core reads it: one `@` with text before it, a domain
/// of dot-separated names, no white space or control characters.
pub const EMAIL: &str = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@.\s\x00-\x1f\x7f-\x9f]+(\.[^@.\s\x00-\x1f\x7f-\x9f]+)+$";
/// A phone number: an optional leading `+`, 5 to 20 digits, spaces, dashes,
/// dots and parentheses between them.
pub const MOBILE: &str = r"^\+?[ .()-]*([0-9][ .()-]*){5,20}$";
/// A base domain: names of letters, digits and inner hyphens (at most 63
/// characters each) joined by dots; empty unsets.
pub const DOMAIN: &str =
    r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)?$";
/// A field (trait, attribute) name: not starting with `$`, no control characters.
pub const FIELD_NAME: &str = r"^[^$\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";
/// At least 8 characters between the first and the last one that is not white space.
pub const PASSWORD: &str = r"\S[\s\S]{6,}\S";

fn typed(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Type(t))
}

fn string() -> ObjectBuilder {
    typed(Type::String)
}

/// A string that can only be `value` (a batch item's `type`).
pub fn literal(value: &'static str) -> Schema {
    string().enum_values(Some([value])).into()
}

/// A display name: 1 to 200 characters after trimming, no control characters.
pub fn display_name() -> Schema {
    string()
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_LEN))
        .pattern(Some(TEXT))
        .description(Some("1 to 200 characters after trimming, no control characters."))
        .into()
}

/// A display name or `null` (left as it is).
pub fn display_name_or_null() -> Schema {
    nullable(display_name())
}

/// An email address (lower-cased by the server; unique where it identifies).
pub fn email() -> Schema {
    string()
        .max_length(Some(MAX_IDENTITY_LEN))
        .pattern(Some(EMAIL))
        .description(Some(
            "An email address: one `@` with text before it, a dot inside the domain, no white space; at most 254 \
             bytes after trimming. Stored lower-cased.",
        ))
        .into()
}

/// An email or `null`.
pub fn email_or_null() -> Schema {
    nullable(email())
}

/// A phone number (kept as its digits and leading `+`).
pub fn mobile() -> Schema {
    string()
        .pattern(Some(MOBILE))
        .description(Some(
            "A phone number: 5 to 20 digits and an optional leading `+`; spaces, dashes, dots and parentheses are \
             dropped.",
        ))
        .into()
}

/// Text or a number (kept as its decimal text): 1 to `max` characters after
/// trimming, no control characters.
fn text_or_number(max: usize, description: &'static str) -> Schema {
    OneOfBuilder::new()
        .item(string().max_length(Some(max)).pattern(Some(TEXT)))
        .item(typed(Type::Number))
        .description(Some(description))
        .into()
}

/// An external id (a contact's or a company's) or anonymous id.
pub fn external_id() -> Schema {
    text_or_number(
        MAX_IDENTITY_LEN,
        "Text or a number (kept as its decimal text): 1 to 254 bytes after trimming, no control characters.",
    )
}

/// A rep's `rep_id`.
pub fn rep_id() -> Schema {
    text_or_number(
        MAX_REP_ID_LEN,
        "Text or a number (kept as its decimal text): 1 to 255 characters after trimming, no control characters.",
    )
}

/// A company's base domain; empty or `null` unsets.
pub fn domain_or_null() -> Schema {
    nullable(
        string()
            .max_length(Some(convene_core::company::MAX_DOMAIN_LEN))
            .pattern(Some(DOMAIN))
            .description(Some(
                "A base domain (`acme.com`), stored lower-cased; `https://`, a path, a port or a final dot are \
                 dropped if sent. Empty or `null` unsets.",
            ))
            .into(),
    )
}

/// A field (trait, attribute) name's rule: 1 to 128 characters, not
/// starting with `$`, no control characters.
fn field_name_rule() -> ObjectBuilder {
    string().min_length(Some(1)).max_length(Some(MAX_FIELD_NAME_LEN)).pattern(Some(FIELD_NAME))
}

/// A trait's or attribute's value: a list (an array) holds at most 1,000
/// scalars; any other value is taken as it is (on a contact or company, an
/// object is an operation).
fn field_values() -> Schema {
    let scalar = || SchemaType::Array(vec![Type::String, Type::Number, Type::Boolean, Type::Null]);
    let plain = ObjectBuilder::new().schema_type(SchemaType::Array(vec![
        Type::String,
        Type::Number,
        Type::Boolean,
        Type::Object,
        Type::Null,
    ]));
    let list = ArrayBuilder::new().items(ObjectBuilder::new().schema_type(scalar())).max_items(Some(MAX_LIST_LEN));
    AnyOfBuilder::new().item(plain).item(list).into()
}

/// A map of fields: at most `max` names (1 to 128 characters, not starting
/// with `$`, no control characters) and their values.
fn field_map(max: Option<usize>, description: &str) -> Schema {
    typed(Type::Object)
        .max_properties(max)
        .property_names(Some(field_name_rule()))
        .additional_properties(Some(field_values()))
        .description(Some(description))
        .into()
}

/// What trait operations are and the rules of their names and values.
const TRAIT_OPERATIONS: &str = "a value sets, `null` unsets, `{\"add\": [...], \"remove\": [...]}` edits a list, \
     `{\"$inc\": n}` increments, `{\"$set_once\": v}` sets when empty. Names of 1 to 128 characters, not starting \
     with `$`, no control characters; each value at most 64 KiB of JSON and of its field's type (a list holds at \
     most 1,000 strings, numbers or booleans).";

/// Trait operations: at most 500, names as fields; `null` is none.
pub fn traits_or_null() -> Schema {
    nullable(field_map(Some(MAX_TRAITS_PER_WRITE), &format!("Trait operations, at most 500: {TRAIT_OPERATIONS}")))
}

/// A contact's trait operations: as [`traits_or_null`], and an `email`,
/// `mobile`, `external_id` or `anonymous_id` key is that identity (`null`
/// unsets it; it must agree with the same identity at the top level).
pub fn contact_traits_or_null() -> Schema {
    nullable(field_map(
        Some(MAX_TRAITS_PER_WRITE + LOOKUP_ORDER.len()),
        &format!(
            "Trait operations, at most 500 besides the identities: {TRAIT_OPERATIONS} `email`, `mobile`, \
             `external_id` and `anonymous_id` are the contact's identities, as at the top level (and equal to them \
             when both are given)."
        ),
    ))
}

/// A rep's attributes: values to set (`null` clears one); `null` is none.
pub fn attributes_or_null() -> Schema {
    nullable(field_map(
        None,
        "Attributes to set (`null` clears one); unknown names create fields. Names of 1 to 128 characters, not \
         starting with `$`, no control characters, and none of `rep_id`, `name`, `email`, `department`, `active`; \
         each value of its field's type (a list holds at most 1,000 strings, numbers or booleans).",
    ))
}

/// A rep's name or department: at most 500 characters; empty or `null` clears.
pub fn rep_text_or_null() -> Schema {
    nullable(
        string()
            .max_length(Some(MAX_REP_TEXT_LEN))
            .description(Some("At most 500 characters, trimmed; empty or `null` clears."))
            .into(),
    )
}

/// A rep's email: an email address; empty or `null` clears.
pub fn rep_email_or_null() -> Schema {
    nullable(
        OneOfBuilder::new()
            .item(email())
            .item(string().max_length(Some(0)))
            .description(Some("An email address (stored lower-cased); empty or `null` clears."))
            .into(),
    )
}

/// A rep's `active`: `0`/`1`, `true`/`false`, also as text; `null` leaves it.
pub fn rep_active() -> Schema {
    OneOfBuilder::new()
        .item(typed(Type::Boolean))
        .item(typed(Type::Integer).enum_values(Some([0, 1])))
        .item(string().enum_values(Some(["0", "1", "true", "false"])))
        .item(typed(Type::Null))
        .description(Some("`true`/`false` or `1`/`0` (also as text); `null` leaves it. New reps are active."))
        .into()
}

/// A console password.
pub fn password() -> Schema {
    string()
        .min_length(Some(MIN_PASSWORD_CHARS))
        .max_length(Some(MAX_PASSWORD_BYTES))
        .pattern(Some(PASSWORD))
        .write_only(Some(true))
        .description(Some(
            "Console password: at least 8 characters after trimming, at most 1,024 bytes; stored as an argon2id \
             hash, never returned.",
        ))
        .into()
}

/// A message id that deduplicates retries: 1 to 200 bytes; `null` is none.
pub fn message_id_or_null() -> Schema {
    nullable(
        string()
            .min_length(Some(1))
            .max_length(Some(MAX_MESSAGE_ID_LEN))
            .description(Some("Deduplicates retries (for 7 days at least): 1 to 200 bytes."))
            .into(),
    )
}

/// An event name: 1 to 200 characters after trimming, no control characters.
pub fn event_name() -> Schema {
    string()
        .min_length(Some(1))
        .max_length(Some(MAX_EVENT_NAME_LEN))
        .pattern(Some(TEXT))
        .description(Some("The event's name: 1 to 200 characters after trimming, no control characters."))
        .into()
}

/// Event properties: at most 15 pairs and 32 KiB of JSON; `null` is none.
pub fn event_properties_or_null() -> Schema {
    nullable(
        typed(Type::Object)
            .max_properties(Some(MAX_EVENT_PROPERTIES))
            .description(Some("At most 15 key/value pairs and 32 KiB of JSON."))
            .into(),
    )
}

/// An RFC 3339 time or `null`.
pub fn time_or_null() -> Schema {
    nullable(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))).into())
}

/// An integer id (of a company, a user) or `null`.
pub fn id_or_null() -> Schema {
    nullable(typed(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))).into())
}

/// Scope names: each a scope or `<resource>:*` (its read and write scopes).
pub fn scopes() -> Schema {
    let mut names: Vec<String> = Scope::ALL.iter().map(|s| s.as_str().to_string()).collect();
    for scope in Scope::ALL {
        if let Some((resource, _)) = scope.as_str().split_once(':') {
            let wildcard = format!("{resource}:*");
            if !names.contains(&wildcard) {
                names.push(wildcard);
            }
        }
    }
    ArrayBuilder::new()
        .items(string().enum_values(Some(names)))
        .description(Some("Scope names; `<resource>:*` (e.g. `companies:*`) stands for its read and write scopes."))
        .into()
}

/// Scope names or `null` (the default).
pub fn scopes_or_null() -> Schema {
    nullable(scopes())
}

/// Team names: at most 100, each 1 to 200 characters after trimming.
pub fn teams() -> Schema {
    ArrayBuilder::new()
        .items(RefOr::T(display_name()))
        .max_items(Some(MAX_TEAMS))
        .description(Some("At most 100 team names of 1 to 200 characters."))
        .into()
}

/// Team names or `null` (left as they are).
pub fn teams_or_null() -> Schema {
    nullable(teams())
}

/// A description: at most 2,000 characters.
pub fn description() -> Schema {
    string().max_length(Some(MAX_DESCRIPTION_LEN)).into()
}

/// A description or `null` (left as it is).
pub fn description_or_null() -> Schema {
    nullable(description())
}

/// A field's underlying name: 1 to 128 characters, not starting with `$`, no
/// control characters.
pub fn field_name() -> Schema {
    field_name_rule()
        .description(Some("The trait key: 1 to 128 characters, not starting with `$`, no control characters."))
        .into()
}

/// A conversation's channel: 1 to 64 characters after trimming (lower-cased).
pub fn channel() -> Schema {
    string()
        .min_length(Some(1))
        .max_length(Some(MAX_CHANNEL_CHARS))
        .pattern(Some(r"\S"))
        .description(Some("1 to 64 characters after trimming, stored lower-cased (default `api`)."))
        .into()
}

/// A conversation's subject: at most 1,000 characters; `null` is none.
pub fn subject_or_null() -> Schema {
    nullable(string().max_length(Some(convene_core::conversation::MAX_SUBJECT_CHARS)).into())
}

/// A conversation's labels: at most 50 distinct ones of 1 to 100 characters.
pub fn labels() -> Schema {
    ArrayBuilder::new()
        .items(string().min_length(Some(1)).max_length(Some(MAX_LABEL_CHARS)).pattern(Some(r"\S")))
        .max_items(Some(MAX_LABELS))
        .description(Some("At most 50 labels of 1 to 100 characters after trimming (repeats count once)."))
        .into()
}

/// A message's text: 1 to 150,000 characters, not only white space.
pub fn content() -> Schema {
    string()
        .min_length(Some(1))
        .max_length(Some(MAX_CONTENT_CHARS))
        .pattern(Some(r"\S"))
        .description(Some("Text: 1 to 150,000 characters, not only white space."))
        .into()
}

/// A posted message's type: `incoming`, `outgoing` (default) or `note`.
pub fn message_type_or_null() -> Schema {
    nullable(
        string()
            .enum_values(Some(["incoming", "outgoing", "note"]))
            .description(Some("`incoming` (from the contact), `outgoing` (default) or `note`."))
            .into(),
    )
}

/// The schema of one identity of a contact by its key (an external or
/// anonymous id sent as a number is also taken, as its decimal text).
fn identity(key: &str) -> Schema {
    match key {
        "email" => email(),
        "mobile" => mobile(),
        _ => string()
            .max_length(Some(MAX_IDENTITY_LEN))
            .pattern(Some(TEXT))
            .description(Some("1 to 254 bytes after trimming, no control characters."))
            .into(),
    }
}

/// An identity or `null` (which unsets it on a contact, and is no identity
/// to find one by).
pub fn identity_or_null(key: &str) -> Schema {
    nullable(identity(key))
}

/// `{"<key>": <text or number>}`: the key present and not `null`.
fn present(key: &str) -> ObjectBuilder {
    let value = ObjectBuilder::new().schema_type(SchemaType::Array(vec![Type::String, Type::Number]));
    ObjectBuilder::new().property(key, value).required(key)
}

/// `fields` (an object schema) with at least one identity present and not
/// `null` at its top level. (An identify call may instead carry it inside
/// `traits`, which its description says.)
pub fn with_an_identity(fields: RefOr<Schema>, description: &str) -> RefOr<Schema> {
    let mut any = AnyOfBuilder::new().description(Some(description));
    for kind in LOOKUP_ORDER {
        any = any.item(present(kind.field()));
    }
    AllOfBuilder::new().item(fields).item(any).into()
}
