//! Roster import: the rows of a CSV or NDJSON file mapped to contact,
//! company and rep writes, once, for `convene import` (against a server or
//! a data directory) and `POST /v1/imports`.
//!
//! A column (a CSV header cell or an NDJSON key, after `--map` renames) is
//! one of:
//!
//! - a built-in key of the entity (contacts: `email`, `mobile`,
//!   `external_id`, `anonymous_id`, `subscription_status`; companies:
//!   `external_id`, `domain`; reps: `rep_id`, `name`, `email`, `department`,
//!   `active`);
//! - `<field>+` / `<field>-`: add values to / remove values from a list
//!   field (contacts and companies), values separated by [`LIST_SEPARATOR`];
//! - a server-owned key (`id`, `created_at`, …): ignored, so an export can
//!   be imported back (its `traits.<name>` / `attributes.<name>` columns
//!   are the trait `<name>`, its JSON-encoded lists and objects are read as
//!   values, and its formula guard — a `'` before `=`, `+`, `-`, `@` — is
//!   removed);
//! - anything else: a trait (an attribute for reps), typed by the fields
//!   registry like every write (`"500"` becomes 500 in a number field); a
//!   column the registry does not know creates a field with an inferred
//!   type. A CSV cell is text: for an unknown column, `true`/`false` and
//!   numbers written in their plain form (`500`, `-2`, `12.5`, not `007` or
//!   `1e3`) are read as booleans and numbers; a cell of a list field is
//!   split on [`LIST_SEPARATOR`].
//!
//! An empty CSV cell leaves the value as it is; in NDJSON `null` clears it.
//! The id column (`email` by default for contacts, `external_id` for
//! companies, `rep_id` for reps) finds the object: a row whose id column is
//! empty is refused. Rows are numbered by the line where they start in the
//! file (the CSV header is line 1), quoted values spanning lines included.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Number, Value};

use crate::batch::{CompanyUpsert, ContactUpsert};
use crate::company::CompanyChanges;
use crate::contact::ContactChanges;
use crate::error::{Error, Result};
use crate::field::{Entity, FieldRegistry, FieldType, validate_field_name};
use crate::identity::IdentityKind;
use crate::ingest::Lookups;
use crate::rep::{Rep, RepUpsert, RepWrite};

/// Separates the values of a list in one cell (`tags+` = `vip; newsletter`).
pub const LIST_SEPARATOR: char = ';';
/// Largest body of `POST /v1/imports`, in bytes.
pub const MAX_IMPORT_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Most rows one `POST /v1/imports` takes (one job, applied in one step).
pub const MAX_IMPORT_ROWS: usize = 100_000;

/// What a file imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportEntity {
    /// Contacts, found by an identity.
    Contacts,
    /// Companies, found by external id.
    Companies,
    /// Reps, found by rep id.
    Reps,
}

impl ImportEntity {
    /// Every entity, in documentation order.
    pub const ALL: [ImportEntity; 3] = [ImportEntity::Contacts, ImportEntity::Companies, ImportEntity::Reps];

    /// Reads `contacts`, `companies` or `reps`, naming `entity` when unknown.
    pub fn parse(s: &str) -> Result<Self> {
        ImportEntity::ALL.into_iter().find(|e| e.as_str() == s).ok_or_else(|| {
            Error::validation("entity", format!("entity must be contacts, companies or reps, not '{s}'"))
        })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportEntity::Contacts => "contacts",
            ImportEntity::Companies => "companies",
            ImportEntity::Reps => "reps",
        }
    }

    /// The fields registry its traits belong to.
    pub fn field_entity(self) -> Entity {
        match self {
            ImportEntity::Contacts => Entity::Contact,
            ImportEntity::Companies => Entity::Company,
            ImportEntity::Reps => Entity::Rep,
        }
    }

    /// The scope a key needs to import it.
    pub fn scope(self) -> crate::scope::Scope {
        match self {
            ImportEntity::Contacts => crate::scope::Scope::ContactsWrite,
            ImportEntity::Companies => crate::scope::Scope::CompaniesWrite,
            ImportEntity::Reps => crate::scope::Scope::RepsWrite,
        }
    }

    /// The columns that may identify a row; the first is the default.
    pub fn id_columns(self) -> &'static [&'static str] {
        match self {
            ImportEntity::Contacts => &["email", "mobile", "external_id"],
            ImportEntity::Companies => &["external_id"],
            ImportEntity::Reps => &["rep_id"],
        }
    }

    /// The built-in keys of the entity's body.
    fn keys(self) -> &'static [&'static str] {
        match self {
            ImportEntity::Contacts => &["email", "mobile", "external_id", "anonymous_id", "subscription_status"],
            ImportEntity::Companies => &["external_id", "domain"],
            ImportEntity::Reps => &crate::rep::BUILTIN_KEYS,
        }
    }

    /// Server-owned keys: accepted and ignored.
    fn ignored(self) -> &'static [&'static str] {
        match self {
            ImportEntity::Contacts => &["id", "workspace_id", "created_at", "updated_at", "last_seen_at", "company_id"],
            ImportEntity::Companies => &crate::company::READ_ONLY_KEYS,
            ImportEntity::Reps => &crate::rep::READ_ONLY_KEYS,
        }
    }

    /// The key of the body holding traits (`attributes` for reps).
    fn traits_key(self) -> &'static str {
        match self {
            ImportEntity::Reps => "attributes",
            _ => "traits",
        }
    }
}

/// The file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

/// What a column writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A built-in key of the entity's body (an identity, `domain`, …).
    Key(String),
    /// A trait (an attribute for reps).
    Trait(String),
    /// `<field>+`: values added to a list field.
    ListAdd(String),
    /// `<field>-`: values removed from a list field.
    ListRemove(String),
    /// Not imported: a server-owned key or a blank header cell.
    Ignored,
}

impl Target {
    /// The field the target writes, if any.
    fn field(&self) -> Option<&str> {
        match self {
            Target::Key(n) | Target::Trait(n) | Target::ListAdd(n) | Target::ListRemove(n) => Some(n),
            Target::Ignored => None,
        }
    }
}

/// How a file maps to writes: the entity, the id column and the renames.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportSpec {
    /// What is imported.
    pub entity: ImportEntity,
    /// The column that finds the object.
    pub id_column: String,
    /// `old` column → `new` name (an empty `new` drops the column).
    pub renames: Vec<(String, String)>,
}

impl ImportSpec {
    /// Checks the id column (default: the entity's first) and reads the
    /// `old=new` renames; errors name `id_column` or `map`.
    pub fn new(entity: ImportEntity, id_column: Option<&str>, maps: &[String]) -> Result<Self> {
        let allowed = entity.id_columns();
        let id_column = match id_column {
            None => allowed[0].to_string(),
            Some(c) if allowed.contains(&c) => c.to_string(),
            Some(c) => {
                return Err(Error::validation(
                    "id_column",
                    format!("id_column of {} must be {}, not '{c}'", entity.as_str(), allowed.join(", ")),
                ));
            }
        };
        let mut renames: Vec<(String, String)> = Vec::new();
        for m in maps {
            let Some((old, new)) = m.split_once('=') else {
                return Err(Error::validation("map", format!("--map takes OLD=NEW, got '{m}'")));
            };
            let (old, new) = (old.trim(), new.trim());
            if old.is_empty() {
                return Err(Error::validation("map", format!("--map '{m}' names no column")));
            }
            if renames.iter().any(|(o, _)| o == old) {
                return Err(Error::validation("map", format!("--map renames '{old}' twice")));
            }
            renames.push((old.to_string(), new.to_string()));
        }
        Ok(ImportSpec { entity, id_column, renames })
    }

    /// The name a column has after the renames.
    fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames.iter().find(|(old, _)| old == name).map_or(name, |(_, new)| new.as_str())
    }

    /// What the column named `column` in the file writes.
    pub fn target(&self, column: &str) -> Result<Target> {
        let entity = self.entity;
        let name = self.renamed(column.trim());
        // `convene export` writes a trait as `traits.<name>` (`attributes.<name>` for reps).
        let name = name.strip_prefix(entity.traits_key()).and_then(|n| n.strip_prefix('.')).unwrap_or(name);
        if name.is_empty() || entity.ignored().contains(&name) {
            return Ok(Target::Ignored);
        }
        if entity.keys().contains(&name) {
            return Ok(Target::Key(name.to_string()));
        }
        let op = name.strip_suffix('+').map(|b| (b, true)).or_else(|| name.strip_suffix('-').map(|b| (b, false)));
        if let Some((base, add)) = op.filter(|(b, _)| !b.is_empty()) {
            if entity == ImportEntity::Reps {
                return Err(Error::validation(
                    name,
                    format!("column '{name}': list operations (+/-) apply to contacts and companies, not reps"),
                ));
            }
            if entity.keys().contains(&base) {
                return Err(Error::validation(
                    name,
                    format!("column '{name}': list operations (+/-) apply to list fields, not to {base}"),
                ));
            }
            validate_field_name(base)?;
            return Ok(if add { Target::ListAdd(base.to_string()) } else { Target::ListRemove(base.to_string()) });
        }
        validate_field_name(name)?;
        Ok(Target::Trait(name.to_string()))
    }

    /// Resolves a CSV header: every `--map` must name a column, no two
    /// columns may write the same thing, and the id column must be there.
    pub fn columns(&self, header: &[&str]) -> Result<Vec<Target>> {
        for (old, _) in &self.renames {
            if !header.iter().any(|h| h.trim() == old) {
                return Err(Error::validation(
                    "map",
                    format!("--map names '{old}', which is not a column of the file"),
                ));
            }
        }
        let mut targets: Vec<Target> = Vec::with_capacity(header.len());
        for (i, column) in header.iter().enumerate() {
            let target = self.target(column)?;
            if let Some(field) = target.field() {
                let clash = targets.iter().position(|t| {
                    t == &target
                        || (t.field() == Some(field)
                            && matches!((t, &target), (Target::Trait(_), _) | (_, Target::Trait(_))))
                });
                if let Some(j) = clash {
                    return Err(Error::validation(
                        field,
                        format!("columns {} ('{}') and {} ('{column}') both write {field}", j + 1, header[j], i + 1),
                    ));
                }
            }
            targets.push(target);
        }
        if !targets.iter().any(|t| matches!(t, Target::Key(k) if *k == self.id_column)) {
            return Err(Error::validation(
                self.id_column.as_str(),
                format!("the id column '{}' is not in the header", self.id_column),
            ));
        }
        Ok(targets)
    }

    /// The contact write of a mapped row, found by the id column only.
    pub fn contact_write(&self, row: usize, body: Map<String, Value>) -> Result<ContactUpsert> {
        let kind = contact_id_kind(&self.id_column)?;
        let changes = ContactChanges::from_json(body)?;
        let lookups = id_lookup(&changes, kind)?;
        Ok(ContactUpsert { row, lookups, changes, create: true })
    }

    /// The company write of a mapped row.
    pub fn company_write(&self, row: usize, body: Map<String, Value>) -> Result<CompanyUpsert> {
        let changes = CompanyChanges::from_json(body)?;
        let external_id = changes.require_external_id()?.to_string();
        Ok(CompanyUpsert { row, external_id, changes })
    }

    /// The rep write of a mapped row.
    pub fn rep_write(&self, body: Map<String, Value>) -> Result<RepWrite> {
        RepWrite::from_native(body, None)
    }

    /// The per-row rep upsert of a mapped row (row `row` of the file).
    pub fn rep_upsert(&self, row: usize, body: Map<String, Value>) -> Result<RepUpsert> {
        Ok(RepUpsert { row, write: self.rep_write(body)? })
    }
}

/// Reads the id column of a contact import: `email`, `mobile` or
/// `external_id` (an error names `id_column`).
pub fn contact_id_kind(name: &str) -> Result<IdentityKind> {
    match name {
        "email" => Ok(IdentityKind::Email),
        "mobile" => Ok(IdentityKind::Mobile),
        "external_id" => Ok(IdentityKind::ExternalId),
        other => Err(Error::validation(
            "id_column",
            format!("id_column of contacts must be email, mobile or external_id, not '{other}'"),
        )),
    }
}

/// The lookup of a contact write found by one identity: the write must set
/// it (else the row is refused naming the identity).
pub fn id_lookup(changes: &ContactChanges, kind: IdentityKind) -> Result<Lookups> {
    match changes.identities.iter().find(|(k, _)| *k == kind) {
        Some((_, Some(v))) => Ok(vec![(kind, v.clone())]),
        _ => Err(Error::validation(kind.field(), format!("the id column '{}' is empty", kind.field()))),
    }
}

/// Checks a rep write against the registry as the store will apply it
/// (types, sizes; fields it creates are recorded in `registry`), so a bulk
/// write that is all or nothing gets only rows that pass.
pub fn check_rep(write: &RepWrite, registry: &mut FieldRegistry) -> Result<()> {
    let at = crate::ids::now();
    write.apply(&mut Rep::new(write.rep_id.clone(), at), registry, at).map(|_| ())
}

/// Splits a cell of a list on [`LIST_SEPARATOR`]: values trimmed, empty ones dropped.
pub fn split_list(text: &str) -> Vec<Value> {
    text.split(LIST_SEPARATOR).map(str::trim).filter(|v| !v.is_empty()).map(|v| Value::String(v.into())).collect()
}

/// A cell holding a JSON array or object (as `convene export` writes lists
/// and JSON fields), read as that value.
fn json_cell(text: &str) -> Option<Value> {
    if !(text.starts_with('[') || text.starts_with('{')) {
        return None;
    }
    serde_json::from_str::<Value>(text).ok().filter(|v| v.is_array() || v.is_object())
}

pub use crate::csv_cell::unneutralise;

/// A CSV cell of a column the registry does not know: `true`/`false`,
/// numbers in their plain written form and JSON arrays and objects are
/// typed, anything else is text.
pub fn infer_cell(text: &str) -> Value {
    match text {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Some(value) = json_cell(text) {
        return value;
    }
    let numeric = text.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'.');
    if numeric && !text.is_empty() {
        if let Ok(i) = text.parse::<i64>()
            && i.to_string() == text
        {
            return Value::from(i);
        }
        if let Some(n) = text.parse::<f64>().ok().filter(|f| f.is_finite()).and_then(Number::from_f64)
            && n.to_string() == text
        {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

/// The values of a list operation in NDJSON: a list, or text split on
/// [`LIST_SEPARATOR`]; `null` is none.
fn list_value(key: &str, value: Value) -> Result<Vec<Value>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(split_list(&s)),
        Value::Array(items) => Ok(items),
        _ => Err(Error::validation(key, format!("'{key}' takes a list or text separated by '{LIST_SEPARATOR}'"))),
    }
}

/// Maps rows to the body of the entity's native write (`{"email", …,
/// "traits": {…}}`), typed by a fields registry.
#[derive(Debug, Clone)]
pub struct Mapper {
    spec: ImportSpec,
    registry: FieldRegistry,
    columns: Vec<Target>,
    keys: HashMap<String, Target>,
}

/// List edits of one row: field → (add, remove).
type Edits = Vec<(String, Vec<Value>, Vec<Value>)>;

fn edit<'a>(edits: &'a mut Edits, field: &str) -> &'a mut (String, Vec<Value>, Vec<Value>) {
    match edits.iter().position(|(f, _, _)| f == field) {
        Some(i) => &mut edits[i],
        None => {
            edits.push((field.to_string(), Vec::new(), Vec::new()));
            let last = edits.len() - 1;
            &mut edits[last]
        }
    }
}

impl Mapper {
    /// A mapper typed by `registry` (the entity's fields; the built-ins when unknown).
    pub fn new(spec: ImportSpec, registry: FieldRegistry) -> Self {
        Mapper { spec, registry, columns: Vec::new(), keys: HashMap::new() }
    }

    /// The spec.
    pub fn spec(&self) -> &ImportSpec {
        &self.spec
    }

    /// Resolves the CSV header (see [`ImportSpec::columns`]).
    pub fn set_header(&mut self, header: &[&str]) -> Result<()> {
        self.columns = self.spec.columns(header)?;
        Ok(())
    }

    fn trait_cell(&self, name: &str, text: &str) -> Value {
        match self.registry.get(name) {
            Some(FieldType::List) => match json_cell(text) {
                Some(list @ Value::Array(_)) => list,
                _ => Value::Array(split_list(text)),
            },
            Some(FieldType::Json) => json_cell(text).unwrap_or_else(|| Value::String(text.to_string())),
            Some(_) => Value::String(text.to_string()),
            None => infer_cell(text),
        }
    }

    /// Maps one CSV row (its cells in header order).
    pub fn csv_row<'a>(&self, cells: impl ExactSizeIterator<Item = &'a str>) -> Result<Map<String, Value>> {
        if cells.len() != self.columns.len() {
            return Err(Error::bad_request(format!(
                "the row has {} fields; the header has {}",
                cells.len(),
                self.columns.len()
            )));
        }
        let mut body = Map::new();
        let mut traits = Map::new();
        let mut edits: Edits = Vec::new();
        for (target, text) in self.columns.iter().zip(cells) {
            if text.is_empty() {
                continue;
            }
            let text = unneutralise(text);
            match target {
                Target::Key(k) => {
                    body.insert(k.clone(), Value::String(text.to_string()));
                }
                Target::Trait(n) => {
                    traits.insert(n.clone(), self.trait_cell(n, text));
                }
                Target::ListAdd(n) => edit(&mut edits, n).1.extend(split_list(text)),
                Target::ListRemove(n) => edit(&mut edits, n).2.extend(split_list(text)),
                Target::Ignored => {}
            }
        }
        self.finish(body, traits, edits)
    }

    fn key_target(&mut self, key: &str) -> Result<Target> {
        if let Some(t) = self.keys.get(key) {
            return Ok(t.clone());
        }
        let t = self.spec.target(key)?;
        self.keys.insert(key.to_string(), t.clone());
        Ok(t)
    }

    /// Maps one NDJSON object: keys as CSV columns (a nested `traits` or
    /// `attributes` object is read as more columns), values as given.
    pub fn json_row(&mut self, object: Map<String, Value>) -> Result<Map<String, Value>> {
        let traits_key = self.spec.entity.traits_key();
        let mut pairs: Vec<(String, Value)> = Vec::with_capacity(object.len());
        for (key, value) in object {
            match value {
                Value::Object(nested) if key == traits_key => pairs.extend(nested),
                other => pairs.push((key, other)),
            }
        }
        let mut body = Map::new();
        let mut traits = Map::new();
        let mut edits: Edits = Vec::new();
        let mut seen: Vec<Target> = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let target = self.key_target(&key)?;
            if let Some(field) = target.field() {
                let clash = |t: &Target| {
                    t.field() == Some(field)
                        && (t == &target || matches!(t, Target::Trait(_)) || matches!(target, Target::Trait(_)))
                };
                if seen.iter().any(clash) {
                    return Err(Error::validation(field, format!("the row writes {field} twice")));
                }
                seen.push(target.clone());
            }
            match target {
                Target::Key(k) => {
                    body.insert(k, value);
                }
                Target::Trait(n) => {
                    let value = match value {
                        Value::String(s) if self.registry.get(&n) == Some(FieldType::List) => {
                            Value::Array(split_list(&s))
                        }
                        other => other,
                    };
                    traits.insert(n, value);
                }
                Target::ListAdd(n) => edit(&mut edits, &n).1.extend(list_value(&key, value)?),
                Target::ListRemove(n) => edit(&mut edits, &n).2.extend(list_value(&key, value)?),
                Target::Ignored => {}
            }
        }
        self.finish(body, traits, edits)
    }

    fn finish(
        &self,
        mut body: Map<String, Value>,
        mut traits: Map<String, Value>,
        edits: Edits,
    ) -> Result<Map<String, Value>> {
        let id = self.spec.id_column.as_str();
        if body.get(id).is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
            return Err(Error::validation(id, format!("the id column '{id}' is empty")));
        }
        for (field, add, remove) in edits {
            if add.is_empty() && remove.is_empty() {
                continue;
            }
            let mut op = Map::new();
            op.insert("add".into(), Value::Array(add));
            op.insert("remove".into(), Value::Array(remove));
            traits.insert(field, Value::Object(op));
        }
        if !traits.is_empty() {
            body.insert(self.spec.entity.traits_key().to_string(), Value::Object(traits));
        }
        Ok(body)
    }
}

/// The original text of a row, for a reject file.
#[derive(Debug, Clone)]
pub enum RawRow {
    /// A CSV row's cells as read.
    Csv(csv::ByteRecord),
    /// An NDJSON line.
    Line(String),
}

/// One data row of a request's file, mapped to its write.
#[derive(Debug)]
pub struct ImportRow<T> {
    /// 0-based index among the file's data rows.
    pub row: usize,
    /// The line where the row starts (a CSV header is line 1).
    pub line: u64,
    /// The write, or why the row is refused.
    pub write: Result<T>,
}

/// One row read from a file.
#[derive(Debug)]
pub struct ImportRecord {
    /// The line where the row starts (a CSV header is line 1).
    pub line: u64,
    /// The row as read (when the reader keeps it).
    pub raw: Option<RawRow>,
    /// The mapped body, or why the row is refused.
    pub body: Result<Map<String, Value>>,
}

enum Source<R: Read> {
    Csv(csv::Reader<Tap<R>>, csv::ByteRecord, Arc<Mutex<Window>>),
    Ndjson(BufReader<R>, Vec<u8>, u64, u64),
}

/// The bytes the CSV reader read lately (from `base` on). The csv crate
/// dates a record from where its read started, before the blank lines it
/// skips (and, in a CRLF file, before the `\n` of the previous line end):
/// the line of a record is that position's line plus the line ends that
/// follow it.
#[derive(Debug, Default)]
struct Window {
    base: u64,
    bytes: Vec<u8>,
}

/// Bytes kept before the window is trimmed (trimming moves the rest).
const WINDOW_SLACK: u64 = 64 * 1024;

/// A reader that copies what it reads into the window.
struct Tap<R> {
    inner: R,
    window: Arc<Mutex<Window>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        lock(&self.window).bytes.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn lock(window: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    window.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The line a record starts on: its read position's line plus the line
/// ends skipped from there; then forgets the bytes before `done`.
fn record_line(window: &Mutex<Window>, start: &csv::Position, done: u64) -> u64 {
    let mut w = lock(window);
    let line = match start.byte().checked_sub(w.base).and_then(|i| w.bytes.get(i as usize..)) {
        Some(rest) => {
            let skipped = rest.iter().take_while(|b| matches!(b, b'\r' | b'\n')).filter(|b| **b == b'\n').count();
            start.line() + skipped as u64
        }
        None => start.line(),
    };
    if done.saturating_sub(w.base) > WINDOW_SLACK {
        let cut = (done - w.base) as usize;
        let cut = cut.min(w.bytes.len());
        w.bytes.drain(..cut);
        w.base += cut as u64;
    }
    line
}

/// Reads a CSV or NDJSON file row by row, mapping each row.
pub struct ImportReader<R: Read> {
    source: Source<R>,
    mapper: Mapper,
    header: Vec<String>,
    keep_raw: bool,
}

impl<R: Read> ImportReader<R> {
    /// Opens the input; for CSV reads and resolves the header (an error
    /// refuses the whole file). `keep_raw` keeps each row's text (for a
    /// reject file).
    pub fn new(format: ImportFormat, input: R, mut mapper: Mapper, keep_raw: bool) -> Result<Self> {
        let (source, header) = match format {
            ImportFormat::Csv => {
                let window = Arc::new(Mutex::new(Window::default()));
                let tap = Tap { inner: input, window: window.clone() };
                let mut reader =
                    csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).has_headers(true).from_reader(tap);
                let header = reader
                    .byte_headers()
                    .map_err(|e| Error::bad_request(format!("cannot read the CSV header: {e}")))?
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        String::from_utf8(h.to_vec()).map_err(|_| {
                            Error::bad_request(format!("column {} of the CSV header is not valid UTF-8", i + 1))
                        })
                    })
                    .collect::<Result<Vec<String>>>()?;
                if header.iter().all(String::is_empty) {
                    return Err(Error::bad_request("the file has no header row"));
                }
                let refs: Vec<&str> = header.iter().map(String::as_str).collect();
                mapper.set_header(&refs)?;
                (Source::Csv(reader, csv::ByteRecord::new(), window), header)
            }
            ImportFormat::Ndjson => (Source::Ndjson(BufReader::new(input), Vec::new(), 0, 0), Vec::new()),
        };
        Ok(ImportReader { source, mapper, header, keep_raw })
    }

    /// The CSV header as read (empty for NDJSON).
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The mapper (its spec names the entity and id column).
    pub fn mapper(&self) -> &Mapper {
        &self.mapper
    }

    /// Bytes of the input consumed so far.
    pub fn position(&self) -> u64 {
        match &self.source {
            Source::Csv(reader, _, _) => reader.position().byte(),
            Source::Ndjson(_, _, _, bytes) => *bytes,
        }
    }

    /// Reads every row of a request's file (`POST /v1/imports`) and maps
    /// each good one with `write` (given its 0-based row index). More than
    /// [`MAX_IMPORT_ROWS`] rows refuse the file (413, naming how many it
    /// holds), as does a file without rows (400) or one that cannot be read
    /// further.
    pub fn read_all<T>(
        mut self,
        mut write: impl FnMut(usize, Map<String, Value>) -> Result<T>,
    ) -> Result<Vec<ImportRow<T>>> {
        let mut rows = Vec::new();
        while let Some(record) = self.next_record() {
            let record = record?;
            let row = rows.len();
            if row == MAX_IMPORT_ROWS {
                let mut total = row + 1;
                while self.next_record().is_some() {
                    total += 1;
                }
                return Err(Error::TooManyRows { limit: MAX_IMPORT_ROWS, rows: total });
            }
            let write = record.body.and_then(|body| write(row, body));
            rows.push(ImportRow { row, line: record.line, write });
        }
        if rows.is_empty() {
            return Err(Error::bad_request("the file has no rows to import"));
        }
        Ok(rows)
    }

    /// The next row: `None` at the end; `Some(Err)` when the input cannot
    /// be read further (not a row's fault).
    pub fn next_record(&mut self) -> Option<Result<ImportRecord>> {
        match &mut self.source {
            Source::Csv(reader, record, window) => match reader.read_byte_record(record) {
                Ok(false) => None,
                Ok(true) => {
                    let done = reader.position().byte();
                    let line = record.position().map_or(0, |p| record_line(window, p, done));
                    let cells: std::result::Result<Vec<&str>, usize> =
                        record.iter().enumerate().map(|(i, c)| std::str::from_utf8(c).map_err(|_| i)).collect();
                    let body = match cells {
                        Ok(cells) => self.mapper.csv_row(cells.into_iter()),
                        Err(i) => Err(Error::bad_request(format!("field {} is not valid UTF-8", i + 1))),
                    };
                    let raw = self.keep_raw.then(|| RawRow::Csv(record.clone()));
                    Some(Ok(ImportRecord { line, raw, body }))
                }
                Err(e) => match e.kind() {
                    csv::ErrorKind::Io(_) => Some(Err(Error::Internal(format!("cannot read the file: {e}")))),
                    _ => Some(Err(Error::bad_request(format!("the CSV cannot be read further: {e}")))),
                },
            },
            Source::Ndjson(reader, buf, line, bytes) => loop {
                buf.clear();
                match reader.read_until(b'\n', buf) {
                    Ok(0) => return None,
                    Ok(n) => {
                        *line += 1;
                        *bytes += n as u64;
                        let text = String::from_utf8_lossy(buf);
                        let trimmed = text.trim();
                        if trimmed.is_empty() {
                            continue;
                        }
                        let body = if std::str::from_utf8(buf).is_err() {
                            Err(Error::bad_request("the line is not valid UTF-8"))
                        } else {
                            match serde_json::from_str::<Value>(trimmed) {
                                Ok(Value::Object(object)) => self.mapper.json_row(object),
                                Ok(_) => Err(Error::bad_request("each line must be a JSON object")),
                                Err(e) => Err(Error::bad_request(format!("the line is not JSON: {e}"))),
                            }
                        };
                        let raw = self.keep_raw.then(|| RawRow::Line(trimmed.to_string()));
                        return Some(Ok(ImportRecord { line: *line, raw, body }));
                    }
                    Err(e) => return Some(Err(Error::Internal(format!("cannot read the file: {e}")))),
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(entity: ImportEntity, id: Option<&str>, maps: &[&str]) -> ImportSpec {
        let maps: Vec<String> = maps.iter().map(|m| m.to_string()).collect();
        ImportSpec::new(entity, id, &maps).unwrap()
    }

    fn read(spec: ImportSpec, registry: FieldRegistry, format: ImportFormat, text: &str) -> Vec<ImportRecord> {
        let mut reader = ImportReader::new(format, text.as_bytes(), Mapper::new(spec, registry), true).unwrap();
        let mut out = Vec::new();
        while let Some(r) = reader.next_record() {
            out.push(r.unwrap());
        }
        out
    }

    fn contacts(text: &str) -> Vec<ImportRecord> {
        read(spec(ImportEntity::Contacts, None, &[]), FieldRegistry::builtin_contact(), ImportFormat::Csv, text)
    }

    fn body(r: &ImportRecord) -> Value {
        Value::Object(r.body.as_ref().unwrap().clone())
    }

    #[test]
    fn the_header_maps_to_identities_and_traits() {
        // `Email` is not `email`: header names are exact.
        let err = ImportReader::new(
            ImportFormat::Csv,
            "Email,plan\na@x.io,1\n".as_bytes(),
            Mapper::new(spec(ImportEntity::Contacts, None, &[]), FieldRegistry::default()),
            false,
        )
        .err()
        .unwrap();
        assert_eq!(err.field(), Some("email"), "the missing id column is named: {err}");
        let rows = contacts("email,mobile,plan,score,vip,id,created_at\nann@x.io,+1 555 000 1111,pro,500,true,9,x\n");
        assert_eq!(
            body(&rows[0]),
            json!({"email": "ann@x.io", "mobile": "+1 555 000 1111", "traits": {"plan": "pro", "score": 500, "vip": true}})
        );
        let upsert = spec(ImportEntity::Contacts, None, &[]).contact_write(0, rows[0].body.as_ref().unwrap().clone());
        let upsert = upsert.unwrap();
        assert_eq!(upsert.lookups, vec![(IdentityKind::Email, "ann@x.io".to_string())]);
        assert_eq!(upsert.changes.identities.len(), 2);
    }

    #[test]
    fn map_renames_and_drops_columns() {
        let s = spec(ImportEntity::Contacts, None, &["E-mail=email", "Tags=tags+", "junk="]);
        let rows =
            read(s.clone(), FieldRegistry::builtin_contact(), ImportFormat::Csv, "E-mail,Tags,junk\na@x.io,a;b,zz\n");
        assert_eq!(body(&rows[0]), json!({"email": "a@x.io", "traits": {"tags": {"add": ["a", "b"], "remove": []}}}));
        let typo = ImportSpec::new(ImportEntity::Contacts, None, &["Mail=email".to_string()]).unwrap();
        let err = typo.columns(&["email"]).unwrap_err();
        assert_eq!(err.field(), Some("map"));
        assert!(ImportSpec::new(ImportEntity::Contacts, None, &["nope".to_string()]).is_err());
        let twice = spec(ImportEntity::Contacts, None, &[]).columns(&["email", "plan", "plan"]).unwrap_err();
        assert!(twice.to_string().contains("both write plan"), "{twice}");
    }

    #[test]
    fn the_id_column_finds_the_contact_and_must_be_filled() {
        let s = spec(ImportEntity::Contacts, Some("external_id"), &[]);
        let rows = read(
            s.clone(),
            FieldRegistry::builtin_contact(),
            ImportFormat::Csv,
            "external_id,email\nu-1,a@x.io\n,b@x.io\n",
        );
        let w = s.contact_write(0, rows[0].body.as_ref().unwrap().clone()).unwrap();
        assert_eq!(w.lookups, vec![(IdentityKind::ExternalId, "u-1".to_string())]);
        let err = rows[1].body.as_ref().unwrap_err();
        assert_eq!((err.field(), rows[1].line), (Some("external_id"), 3));
        let bad = ImportSpec::new(ImportEntity::Contacts, Some("name"), &[]).unwrap_err();
        assert_eq!(bad.field(), Some("id_column"));
        assert_eq!(ImportEntity::parse("people").unwrap_err().field(), Some("entity"));
    }

    #[test]
    fn list_operations_add_and_remove() {
        let rows = contacts("email,tags+,tags-\na@x.io, vip ; new |x ;,old\nb@x.io,,\n");
        assert_eq!(
            body(&rows[0])["traits"]["tags"],
            json!({"add": ["vip", "new |x"], "remove": ["old"]}),
            "';' separates, values are trimmed"
        );
        assert_eq!(body(&rows[1]), json!({"email": "b@x.io"}), "empty cells change nothing");
        let clash = spec(ImportEntity::Contacts, None, &[]).columns(&["email", "tags", "tags+"]).unwrap_err();
        assert_eq!(clash.field(), Some("tags"));
        assert!(spec(ImportEntity::Contacts, None, &[]).columns(&["email", "email+"]).is_err());
        assert!(spec(ImportEntity::Reps, None, &[]).columns(&["rep_id", "skills+"]).is_err());
        // A plain column of a list field sets the list.
        let rows = contacts("email,tags\na@x.io,a;b\n");
        assert_eq!(body(&rows[0])["traits"]["tags"], json!(["a", "b"]));
    }

    #[test]
    fn types_follow_the_registry() {
        let mut reg = FieldRegistry::builtin_contact();
        reg.insert("zip".into(), FieldType::Text);
        reg.insert("score".into(), FieldType::Number);
        let rows = read(
            spec(ImportEntity::Contacts, None, &[]),
            reg.clone(),
            ImportFormat::Csv,
            "email,zip,score,n,f,code,big,flag\na@x.io,500,500,12,12.5,007,1e3,TRUE\n",
        );
        let b = body(&rows[0]);
        assert_eq!(b["traits"]["zip"], json!("500"), "known text field: sent as text");
        assert_eq!(b["traits"]["score"], json!("500"), "known number field: the store coerces");
        assert_eq!((&b["traits"]["n"], &b["traits"]["f"]), (&json!(12), &json!(12.5)));
        assert_eq!((&b["traits"]["code"], &b["traits"]["big"]), (&json!("007"), &json!("1e3")));
        assert_eq!(b["traits"]["flag"], json!("TRUE"));
        // The store's coercion does the rest: "500" → 500 for the number field.
        let w =
            spec(ImportEntity::Contacts, None, &[]).contact_write(0, rows[0].body.as_ref().unwrap().clone()).unwrap();
        let mut state = crate::contact::ContactState::default();
        w.changes.apply(&mut state, &mut reg).unwrap();
        assert_eq!((&state.traits["score"], &state.traits["zip"]), (&json!(500), &json!("500")));
        assert_eq!(reg.get("n"), Some(FieldType::Number), "an unknown column gets an inferred field");
        assert_eq!(reg.get("code"), Some(FieldType::Text));
    }

    #[test]
    fn rows_are_numbered_by_their_first_line() {
        let rows = contacts(
            "email,note\n\"a@x.io\",\"two\nlines\"\nb@x.io,x\n\nc@x.io,\"three\n\nlines\"\nd@x.io,y,extra\ne@x.io,z\n",
        );
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 4, 6, 9, 10]);
        assert_eq!(body(&rows[0])["traits"]["note"], json!("two\nlines"));
        let err = rows[3].body.as_ref().unwrap_err();
        assert!(err.to_string().contains("the row has 3 fields; the header has 2"), "{err}");
        assert!(matches!(&rows[3].raw, Some(RawRow::Csv(r)) if r.len() == 3));
    }

    #[test]
    fn crlf_line_ends_count_once() {
        let rows = contacts("email,note\r\na@x.io,x\r\n\r\nb@x.io,\"y\r\nz\"\r\nc@x.io,w\r\n");
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 4, 6]);
    }

    #[test]
    fn a_large_file_keeps_counting() {
        let mut text = String::from("email,note\n");
        for i in 0..20_000 {
            if i % 7 == 0 {
                text.push_str(&format!("u{i}@x.io,\"multi\nline\"\n\n"));
            } else {
                text.push_str(&format!("u{i}@x.io,plain\n"));
            }
        }
        let rows = contacts(&text);
        let mut line = 2;
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.line, line, "row {i}");
            line += if i % 7 == 0 { 3 } else { 1 };
        }
    }

    #[test]
    fn a_bom_and_blank_header_cells_are_harmless() {
        let rows = contacts("\u{feff}email,,plan\na@x.io,ignored,p\n");
        assert_eq!(body(&rows[0]), json!({"email": "a@x.io", "traits": {"plan": "p"}}));
    }

    #[test]
    fn ndjson_rows_keep_their_types_and_lines() {
        let s = spec(ImportEntity::Contacts, None, &["mail=email"]);
        let text = "{\"mail\": \"a@x.io\", \"score\": \"7\", \"gone\": null, \"tags+\": [\"x\"], \"traits\": {\"plan\": \"pro\"}}\n\n[1]\n{\"email\": null}\nnot json\n{\"email\": \"b@x.io\", \"tags-\": \"x;y\"}\n";
        let rows = read(s, FieldRegistry::builtin_contact(), ImportFormat::Ndjson, text);
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1, 3, 4, 5, 6]);
        assert_eq!(
            body(&rows[0]),
            json!({"email": "a@x.io", "traits": {"score": "7", "gone": null, "plan": "pro", "tags": {"add": ["x"], "remove": []}}})
        );
        assert!(rows[1].body.is_err() && rows[3].body.is_err());
        assert_eq!(rows[2].body.as_ref().unwrap_err().field(), Some("email"));
        assert_eq!(body(&rows[4])["traits"]["tags"], json!({"add": [], "remove": ["x", "y"]}));
    }

    #[test]
    fn companies_and_reps_map_to_their_writes() {
        let s = spec(ImportEntity::Companies, None, &[]);
        let rows = read(
            s.clone(),
            FieldRegistry::default(),
            ImportFormat::Csv,
            "external_id,domain,size,id\nacme,Acme.com,50,3\n",
        );
        let w = s.company_write(0, rows[0].body.as_ref().unwrap().clone()).unwrap();
        assert_eq!((w.external_id.as_str(), w.changes.domain.clone()), ("acme", Some(Some("acme.com".into()))));
        let s = spec(ImportEntity::Reps, None, &[]);
        let rows = read(
            s.clone(),
            FieldRegistry::default(),
            ImportFormat::Csv,
            "rep_id,name,active,level\nmila,Mila,0,3\nbob,Bob,2,x\n",
        );
        let mut reg = FieldRegistry::default();
        let w = s.rep_write(rows[0].body.as_ref().unwrap().clone()).unwrap();
        assert_eq!((w.rep_id.as_str(), w.active), ("mila", Some(false)));
        check_rep(&w, &mut reg).unwrap();
        assert_eq!(reg.get("level"), Some(FieldType::Number));
        let err = s.rep_write(rows[1].body.as_ref().unwrap().clone()).unwrap_err();
        assert_eq!(err.field(), Some("active"));
        let typed = RepWrite::from_row(json!({"rep_id": "c", "level": "high"}).as_object().unwrap().clone(), None);
        assert_eq!(check_rep(&typed.unwrap(), &mut reg).unwrap_err().field(), Some("level"));
    }

    #[test]
    fn read_all_maps_every_row_with_its_index_and_line() {
        let s = spec(ImportEntity::Reps, None, &[]);
        let reader = |text: &'static str| {
            ImportReader::new(
                ImportFormat::Csv,
                text.as_bytes(),
                Mapper::new(s.clone(), FieldRegistry::default()),
                false,
            )
            .unwrap()
        };
        let rows = reader("rep_id,name,active\nmila,Mila,1\n,Nobody,1\nbob,\"Bob\nB\",2\nann,Ann,0\n")
            .read_all(|i, b| s.rep_upsert(i, b))
            .unwrap();
        let seen: Vec<(usize, u64, Option<&str>)> =
            rows.iter().map(|r| (r.row, r.line, r.write.as_ref().err().and_then(|e| e.field()))).collect();
        assert_eq!(seen, vec![(0, 2, None), (1, 3, Some("rep_id")), (2, 4, Some("active")), (3, 6, None)]);
        assert_eq!(rows[3].write.as_ref().map(|u| (u.row, u.write.rep_id.as_str())).ok(), Some((3, "ann")));
        let empty = reader("rep_id,name\n").read_all(|i, b| s.rep_upsert(i, b)).unwrap_err();
        assert_eq!(empty.code(), crate::error::ErrorCode::Validation, "{empty}");
    }

    #[test]
    fn an_export_reads_back() {
        let mut reg = FieldRegistry::builtin_contact();
        reg.insert("meta".into(), FieldType::Json);
        let text = "id,email,mobile,traits.plan,traits.tags,traits.meta,traits.new,company_id,created_at\n\
                    7,a@x.io,'+15550001111,'-x,\"[\"\"a\"\",\"\"b;c\"\"]\",\"{\"\"k\"\":1}\",\"[1,2]\",,2026-01-01T00:00:00Z\n";
        let rows = read(spec(ImportEntity::Contacts, None, &[]), reg, ImportFormat::Csv, text);
        assert_eq!(
            body(&rows[0]),
            json!({"email": "a@x.io", "mobile": "+15550001111", "traits": {
                "plan": "-x", "tags": ["a", "b;c"], "meta": {"k": 1}, "new": [1, 2]
            }})
        );
        assert_eq!(unneutralise("'x"), "'x");
        let reps = spec(ImportEntity::Reps, None, &[]);
        assert_eq!(reps.target("attributes.level").unwrap(), Target::Trait("level".into()));
    }

    #[test]
    fn plain_numbers_only_are_typed() {
        for (text, want) in [
            ("0", json!(0)),
            ("-3", json!(-3)),
            ("0.5", json!(0.5)),
            ("100.0", json!(100.0)),
            ("+3", json!("+3")),
            ("-0", json!("-0")),
            ("1.50", json!("1.50")),
            ("12345678901234567890", json!("12345678901234567890")),
            ("NaN", json!("NaN")),
            ("false", json!(false)),
        ] {
            assert_eq!(infer_cell(text), want, "{text}");
        }
    }
}
