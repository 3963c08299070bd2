//! Reports: one query model and one aggregation engine behind the native
//! `GET /v1/reports` and every dialect's report endpoint.
//!
//! A [`ReportQuery`] names a source (conversations — calls among them — or
//! events), a period `[from, to)`, filters on dimensions, the dimensions to
//! group by (a time bucket in a time zone and/or rep, department, vendor,
//! …) and metrics (`count`, `sum`, `avg`, `min`, `max`, `p50`, `p90` over a
//! numeric measure). A store selects the matching rows and feeds each one
//! to an [`Aggregator`] (time, dimension values, measure values); the
//! grouping, the time buckets and every metric are computed here, once, so
//! both backends give the same numbers. docs/reports.md describes the model.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::error::Error;
use crate::field::{FieldType, validate_field_name};

/// Most dimensions (time bucket excluded) one report groups by.
pub const MAX_DIMENSIONS: usize = 6;
/// Most metrics one report computes.
pub const MAX_METRICS: usize = 20;
/// Most groups one report returns; more is an error asking for a coarser query.
pub const MAX_GROUPS: usize = 100_000;
/// Most values a report keeps for its percentiles (80 MB); more is an error
/// asking for a shorter period.
pub const MAX_KEPT_VALUES: usize = 10_000_000;

/// What a report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Conversations and calls; time is the call's start, else the creation.
    Conversations,
    /// Events; time is the event's timestamp.
    Events,
}

impl Source {
    /// Reads `conversations` | `calls` | `events`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "conversations" | "calls" => Ok(Source::Conversations),
            "events" => Ok(Source::Events),
            other => Err(Error::validation("source", format!("unknown source '{other}'; use conversations or events"))),
        }
    }
}

/// A time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Local hour.
    Hour,
    /// Local calendar day.
    Day,
    /// Local week, starting Monday.
    Week,
    /// Local calendar month.
    Month,
}

impl Bucket {
    /// Reads `hour` | `day` | `week` | `month`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Bucket::Hour),
            "day" => Some(Bucket::Day),
            "week" => Some(Bucket::Week),
            "month" => Some(Bucket::Month),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
        }
    }

    /// The local start of the bucket holding `local`.
    fn truncate(self, local: NaiveDateTime) -> NaiveDateTime {
        let date = local.date();
        let day = date.and_hms_opt(0, 0, 0).unwrap_or(local);
        match self {
            Bucket::Hour => date.and_hms_opt(local.hour(), 0, 0).unwrap_or(local),
            Bucket::Day => day,
            Bucket::Week => day - chrono::Days::new(u64::from(date.weekday().num_days_from_monday())),
            Bucket::Month => date.with_day(1).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap_or(day),
        }
    }

    /// How a bucket is labelled: an RFC 3339 time with offset for hours,
    /// `YYYY-MM-DD` for days and weeks (the Monday), `YYYY-MM` for months.
    pub fn label(self, start: &DateTime<FixedOffset>) -> String {
        match self {
            Bucket::Hour => start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            Bucket::Day | Bucket::Week => format!("{:04}-{:02}-{:02}", start.year(), start.month(), start.day()),
            Bucket::Month => format!("{:04}-{:02}", start.year(), start.month()),
        }
    }
}

/// Something to group or filter by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// The rep (`rep_id`) of a call.
    Rep,
    /// The rep's department.
    Department,
    /// A call's vendor.
    Vendor,
    /// A call's campaign.
    Campaign,
    /// A call's direction.
    Direction,
    /// The conversation's status.
    Status,
    /// The conversation's channel.
    Channel,
    /// The event's name.
    EventName,
    /// A text attribute (conversations) or property (events).
    Field(String),
}

impl Dimension {
    /// Reads a dimension name for `source`: the built-in names, then (for
    /// conversations) a field of the registry, (for events) any property
    /// name. `fields` is the registry of entity `conversation`.
    pub fn parse(name: &str, source: Source, fields: &HashMap<String, FieldType>) -> Result<Self, Error> {
        let builtin = match (source, name) {
            (Source::Conversations, "rep" | "rep_id") => Some(Dimension::Rep),
            (Source::Conversations, "department") => Some(Dimension::Department),
            (Source::Conversations, "vendor") => Some(Dimension::Vendor),
            (Source::Conversations, "campaign") => Some(Dimension::Campaign),
            (Source::Conversations, "direction") => Some(Dimension::Direction),
            (Source::Conversations, "status") => Some(Dimension::Status),
            (Source::Conversations, "channel") => Some(Dimension::Channel),
            (Source::Events, "event" | "event_name" | "name") => Some(Dimension::EventName),
            _ => None,
        };
        if let Some(d) = builtin {
            return Ok(d);
        }
        let field = name.strip_prefix("field.").or_else(|| name.strip_prefix("properties.")).unwrap_or(name);
        let unknown = || {
            Error::validation(
                name,
                match source {
                    Source::Conversations => format!(
                        "unknown dimension '{name}'; use rep_id, department, vendor, campaign, direction, status, \
                         channel, a time bucket (hour, day, week, month) or a conversation field"
                    ),
                    Source::Events => format!(
                        "unknown dimension '{name}'; use event, a time bucket (hour, day, week, month) or a property"
                    ),
                },
            )
        };
        validate_field_name(field).map_err(|_| unknown())?;
        match source {
            Source::Conversations if fields.contains_key(field) => Ok(Dimension::Field(field.to_string())),
            Source::Conversations => Err(unknown()),
            Source::Events => Ok(Dimension::Field(field.to_string())),
        }
    }

    /// The name used for this dimension in results.
    pub fn key(&self) -> &str {
        match self {
            Dimension::Rep => "rep_id",
            Dimension::Department => "department",
            Dimension::Vendor => "vendor",
            Dimension::Campaign => "campaign",
            Dimension::Direction => "direction",
            Dimension::Status => "status",
            Dimension::Channel => "channel",
            Dimension::EventName => "event",
            Dimension::Field(name) => name,
        }
    }
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// Rows in the group.
    Count,
    /// Sum of the measure.
    Sum,
    /// Mean of the measure (rows where it is present).
    Avg,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Median (linear interpolation between closest ranks).
    P50,
    /// 90th percentile (same interpolation).
    P90,
}

impl Agg {
    /// Reads `count` | `sum` | `avg` | `min` | `max` | `p50` | `p90`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "avg" => Agg::Avg,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "p50" | "median" => Agg::P50,
            "p90" => Agg::P90,
            _ => return None,
        })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Agg::Count => "count",
            Agg::Sum => "sum",
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::P50 => "p50",
            Agg::P90 => "p90",
        }
    }
}

/// A numeric value of each row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Measure {
    /// A call's duration in seconds.
    Duration,
    /// A number attribute (conversations) or property (events).
    Field(String),
}

impl Measure {
    /// Reads a measure for `source`: `duration` (conversations), else a
    /// number field of the registry (conversations) or any property (events).
    pub fn parse(name: &str, source: Source, fields: &HashMap<String, FieldType>) -> Result<Self, Error> {
        if source == Source::Conversations && name == "duration" {
            return Ok(Measure::Duration);
        }
        let field = name.strip_prefix("field.").or_else(|| name.strip_prefix("properties.")).unwrap_or(name);
        validate_field_name(field)?;
        match source {
            Source::Conversations => match fields.get(field) {
                Some(t) if t.is_numeric() => Ok(Measure::Field(field.to_string())),
                Some(t) => {
                    Err(Error::validation(name, format!("'{name}' is a {t} field; metrics need a number field")))
                }
                None => Err(Error::validation(
                    name,
                    format!("unknown measure '{name}'; use duration or a number field of conversations"),
                )),
            },
            Source::Events => Ok(Measure::Field(field.to_string())),
        }
    }

    /// The name used in metric names.
    pub fn key(&self) -> &str {
        match self {
            Measure::Duration => "duration",
            Measure::Field(name) => name,
        }
    }
}

/// One metric of a report: its output name, aggregate and measure (none for `count`).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The key in each result row.
    pub name: String,
    /// The aggregate.
    pub agg: Agg,
    /// The measure it aggregates (none for `count`).
    pub measure: Option<Measure>,
}

impl Metric {
    /// Reads `count` or `AGG:MEASURE` (e.g. `avg:duration`, `p90:talk_ratio`),
    /// named `count` / `AGG_MEASURE` in results.
    pub fn parse(spec: &str, source: Source, fields: &HashMap<String, FieldType>) -> Result<Self, Error> {
        let (agg, measure) = spec.split_once(':').map_or((spec, None), |(a, m)| (a, Some(m)));
        let bad = || {
            Error::validation(
                spec,
                format!("unknown metric '{spec}'; use count or sum|avg|min|max|p50|p90 followed by ':' and a measure"),
            )
        };
        let agg = Agg::parse(agg).ok_or_else(bad)?;
        match (agg, measure) {
            (Agg::Count, None) => Ok(Metric { name: "count".into(), agg, measure: None }),
            (Agg::Count, Some(_)) | (_, None) => Err(bad()),
            (_, Some(m)) => {
                let measure = Measure::parse(m, source, fields).map_err(|e| Error::validation(spec, e.to_string()))?;
                Ok(Metric { name: format!("{}_{}", agg.as_str(), measure.key()), agg, measure: Some(measure) })
            }
        }
    }
}

/// A validated report.
#[derive(Debug, Clone)]
pub struct ReportQuery {
    /// What is read.
    pub source: Source,
    /// Start of the period (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// End of the period (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// The time zone of buckets.
    pub tz: Tz,
    /// Time bucket, if grouped by time.
    pub bucket: Option<Bucket>,
    /// Dimensions grouped by, in output order.
    pub dimensions: Vec<Dimension>,
    /// Metrics computed.
    pub metrics: Vec<Metric>,
    /// Rows kept: each dimension's value must be one of the listed values.
    pub filters: Vec<(Dimension, Vec<String>)>,
}

impl ReportQuery {
    /// A query over `source` with no grouping, filter or metric yet.
    pub fn new(source: Source) -> Self {
        ReportQuery {
            source,
            from: None,
            to: None,
            tz: Tz::UTC,
            bucket: None,
            dimensions: Vec::new(),
            metrics: Vec::new(),
            filters: Vec::new(),
        }
    }

    /// Adds a group-by name: a bucket or a dimension (each at most once).
    pub fn group_by(&mut self, name: &str, fields: &HashMap<String, FieldType>) -> Result<(), Error> {
        if let Some(b) = Bucket::parse(name) {
            if self.bucket.is_some() {
                return Err(Error::validation("group_by", "group by one time bucket at most"));
            }
            self.bucket = Some(b);
            return Ok(());
        }
        let d = Dimension::parse(name, self.source, fields)?;
        if !self.dimensions.contains(&d) {
            self.dimensions.push(d);
        }
        if self.dimensions.len() > MAX_DIMENSIONS {
            return Err(Error::validation("group_by", format!("group by at most {MAX_DIMENSIONS} dimensions")));
        }
        Ok(())
    }

    /// Reads a time zone name (`Europe/Paris`, `UTC`).
    pub fn set_tz(&mut self, name: &str) -> Result<(), Error> {
        self.tz = name.parse::<Tz>().map_err(|_| {
            Error::validation("tz", format!("unknown time zone '{name}'; use an IANA name such as Europe/Paris"))
        })?;
        Ok(())
    }

    /// Reads a period bound: RFC 3339, Unix seconds, or a date (local
    /// midnight in the query's time zone — set it first).
    pub fn time_param(&self, raw: &str, field: &str) -> Result<DateTime<Utc>, Error> {
        let raw = raw.trim();
        if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            && let Some(midnight) = d.and_hms_opt(0, 0, 0)
        {
            return self
                .tz
                .from_local_datetime(&midnight)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| Error::validation(field, format!("{field}: no such local time")));
        }
        let value = raw.parse::<f64>().map(serde_json::Value::from).unwrap_or_else(|_| raw.into());
        crate::call::time_of(&value, field)?.ok_or_else(|| {
            Error::validation(field, format!("{field} must be a date, an RFC 3339 time or Unix seconds"))
        })
    }

    /// Checks the whole query: at least one metric, not too many, a period
    /// that does not end before it starts.
    pub fn validate(&self) -> Result<(), Error> {
        if self.metrics.is_empty() {
            return Err(Error::validation("metrics", "name at least one metric"));
        }
        if self.metrics.len() > MAX_METRICS {
            return Err(Error::validation("metrics", format!("at most {MAX_METRICS} metrics")));
        }
        // Each metric is a key of the result rows: a name sent twice would be a key twice.
        for (i, m) in self.metrics.iter().enumerate() {
            if self.metrics[..i].iter().any(|earlier| earlier.name == m.name) {
                return Err(Error::validation("metrics", format!("metric '{}' is named twice", m.name)));
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && to < from
        {
            return Err(Error::validation("to", "to is before from"));
        }
        Ok(())
    }

    /// The distinct measures a store must select, in the order the
    /// aggregator expects their values.
    pub fn measures(&self) -> Vec<Measure> {
        let mut out: Vec<Measure> = Vec::new();
        for m in self.metrics.iter().filter_map(|m| m.measure.as_ref()) {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }
}

impl ReportQuery {
    /// The result as JSON objects, one per group: the bucket under its name
    /// (`day`: `2026-01-31`, see [`Bucket::label`]), each dimension under
    /// its key, each metric under its name (`count` metrics as integers).
    /// Serialised straight from the groups, without a map per row.
    pub fn rows(self, result: ReportResult) -> ReportRows {
        ReportRows { query: self, result }
    }
}

/// A report's groups ready to serialise as a JSON array (see [`ReportQuery::rows`]).
#[derive(Debug, Clone)]
pub struct ReportRows {
    /// The query (for names and order).
    pub query: ReportQuery,
    /// The result.
    pub result: ReportResult,
}

impl serde::Serialize for ReportRows {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        let q = &self.query;
        let mut seq = serializer.serialize_seq(Some(self.result.groups.len()))?;
        for g in &self.result.groups {
            seq.serialize_element(&GroupRow { query: q, group: g })?;
        }
        return seq.end();

        struct GroupRow<'a> {
            query: &'a ReportQuery,
            group: &'a ReportGroup,
        }
        impl serde::Serialize for GroupRow<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let (q, g) = (self.query, self.group);
                let mut map = serializer.serialize_map(None)?;
                if let (Some(bucket), Some(start)) = (q.bucket, &g.bucket) {
                    map.serialize_entry(bucket.as_str(), &bucket.label(start))?;
                }
                for (d, v) in q.dimensions.iter().zip(&g.dims) {
                    map.serialize_entry(d.key(), v)?;
                }
                for (m, v) in q.metrics.iter().zip(&g.values) {
                    match (m.agg, v) {
                        (Agg::Count, Some(n)) => map.serialize_entry(&m.name, &(*n as u64))?,
                        (_, Some(x)) if x.is_finite() => map.serialize_entry(&m.name, x)?,
                        _ => map.serialize_entry(&m.name, &None::<f64>)?,
                    }
                }
                map.end()
            }
        }
    }
}

/// One group of a report's result.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportGroup {
    /// The bucket's local start, when grouped by time.
    pub bucket: Option<DateTime<FixedOffset>>,
    /// Dimension values in the query's order (`None`: no value).
    pub dims: Vec<Option<String>>,
    /// Metric values in the query's order (`None`: no value to aggregate).
    pub values: Vec<Option<f64>>,
}

/// A report's result: groups ordered by bucket, then dimension values.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportResult {
    /// The groups.
    pub groups: Vec<ReportGroup>,
    /// Rows aggregated.
    pub rows: u64,
}

#[derive(Default)]
struct Acc {
    count: u64,
    /// Per measure: (values present, sum, min, max, kept values for percentiles).
    measures: Vec<(u64, f64, f64, f64, Vec<f64>)>,
}

/// Folds rows into groups. Stores call [`Aggregator::push`] once per row
/// that matches the query's period and filters.
pub struct Aggregator {
    bucket: Option<Bucket>,
    tz: Tz,
    dims: usize,
    measures: usize,
    keep_values: Vec<bool>,
    metrics: Vec<(Agg, Option<usize>)>,
    interned: Vec<HashMap<String, u32>>,
    names: Vec<Vec<String>>,
    groups: IntMap<(i64, [u32; MAX_DIMENSIONS]), Acc>,
    slot_cache: IntMap<i64, i64>,
    rows: u64,
    kept: usize,
}

/// A fast hasher for the aggregator's integer keys (bucket starts and
/// interned dimension ids, which no client chooses directly); the
/// interning maps of dimension text keep the standard, DoS-resistant one.
#[derive(Default, Clone, Copy)]
struct IntHasher(u64);

impl std::hash::Hasher for IntHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        // splitmix64's finaliser: the multiply-rotate steps leave the low
        // bits (the table index) poorly mixed for keys like day starts in ms.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

type IntMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<IntHasher>>;

/// A 15-minute slot of UTC: every zone's offset and transitions fall on
/// quarter hours, so one slot lies in one local bucket.
const SLOT_MS: i64 = 15 * 60 * 1000;

impl Aggregator {
    /// An empty aggregator for `query`.
    pub fn new(query: &ReportQuery) -> Self {
        let measures = query.measures();
        let keep_values = measures
            .iter()
            .map(|m| {
                query.metrics.iter().any(|x| x.measure.as_ref() == Some(m) && matches!(x.agg, Agg::P50 | Agg::P90))
            })
            .collect();
        let metrics = query
            .metrics
            .iter()
            .map(|m| (m.agg, m.measure.as_ref().and_then(|x| measures.iter().position(|y| y == x))))
            .collect();
        Aggregator {
            bucket: query.bucket,
            tz: query.tz,
            dims: query.dimensions.len(),
            measures: measures.len(),
            keep_values,
            metrics,
            interned: vec![HashMap::new(); query.dimensions.len()],
            names: vec![Vec::new(); query.dimensions.len()],
            groups: IntMap::default(),
            slot_cache: IntMap::default(),
            rows: 0,
            kept: 0,
        }
    }

    /// The instant (Unix ms) a local bucket start stands for: the earliest
    /// such instant, or an hour later when that local time does not exist
    /// (a daylight-saving gap).
    fn local_start_ms(&self, local: NaiveDateTime) -> Option<i64> {
        self.tz
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| self.tz.from_local_datetime(&(local + chrono::TimeDelta::hours(1))).earliest())
            .map(|t| t.timestamp_millis())
    }

    /// The bucket start (Unix ms of its local start) of a time.
    fn bucket_of(&mut self, at_ms: i64) -> i64 {
        let Some(bucket) = self.bucket else { return 0 };
        let slot = at_ms.div_euclid(SLOT_MS);
        if let Some(start) = self.slot_cache.get(&slot) {
            return *start;
        }
        let utc = DateTime::from_timestamp_millis(slot * SLOT_MS).unwrap_or_default();
        let local = bucket.truncate(utc.with_timezone(&self.tz).naive_local());
        let start = self.local_start_ms(local).unwrap_or(slot * SLOT_MS);
        self.slot_cache.insert(slot, start);
        start
    }

    /// The group of a bucket and dimension values, created when new.
    fn group(&mut self, bucket: i64, dims: &[Option<&str>]) -> Result<&mut Acc, Error> {
        let mut key = [0u32; MAX_DIMENSIONS];
        for (i, slot) in key.iter_mut().enumerate().take(self.dims) {
            *slot = match dims.get(i).copied().flatten() {
                None => 0,
                Some(v) => match self.interned[i].get(v) {
                    Some(id) => *id,
                    None => {
                        self.names[i].push(v.to_string());
                        let id = self.names[i].len() as u32;
                        self.interned[i].insert(v.to_string(), id);
                        id
                    }
                },
            };
        }
        if self.groups.len() >= MAX_GROUPS && !self.groups.contains_key(&(bucket, key)) {
            return Err(Error::validation(
                "group_by",
                format!("this report has more than {MAX_GROUPS} groups; use a coarser bucket or fewer dimensions"),
            ));
        }
        let n = self.measures;
        Ok(self.groups.entry((bucket, key)).or_insert_with(|| Acc {
            count: 0,
            measures: vec![(0, 0.0, f64::INFINITY, f64::NEG_INFINITY, Vec::new()); n],
        }))
    }

    /// Adds one row: its time (Unix ms), its dimension values in the query's
    /// order and its measure values in [`ReportQuery::measures`] order.
    pub fn push(&mut self, at_ms: i64, dims: &[Option<&str>], values: &[Option<f64>]) -> Result<(), Error> {
        let bucket = self.bucket_of(at_ms);
        let keep = std::mem::take(&mut self.keep_values);
        let mut kept = 0;
        let acc = self.group(bucket, dims);
        let result = acc.map(|acc| {
            acc.count += 1;
            for (i, m) in acc.measures.iter_mut().enumerate() {
                if let Some(v) = values.get(i).copied().flatten().filter(|v| v.is_finite()) {
                    m.0 += 1;
                    m.1 += v;
                    m.2 = m.2.min(v);
                    m.3 = m.3.max(v);
                    if keep[i] {
                        m.4.push(v);
                        kept += 1;
                    }
                }
            }
        });
        self.keep_values = keep;
        self.rows += 1;
        self.kept += kept;
        if self.kept > MAX_KEPT_VALUES {
            return Err(Error::validation(
                "metrics",
                format!("percentiles over more than {MAX_KEPT_VALUES} values; use a shorter period or more filters"),
            ));
        }
        result
    }

    /// Adds the rows another aggregator of the same query folded (a store
    /// that scans parts of the period in parallel merges them here).
    pub fn merge(&mut self, other: Aggregator) -> Result<(), Error> {
        // The other side's interned ids, mapped to this side's.
        let mut remap: Vec<Vec<u32>> = Vec::with_capacity(self.dims);
        for (i, names) in other.names.into_iter().enumerate() {
            let mut ids = Vec::with_capacity(names.len());
            for name in names {
                let id = match self.interned[i].get(&name) {
                    Some(id) => *id,
                    None => {
                        self.names[i].push(name.clone());
                        let id = self.names[i].len() as u32;
                        self.interned[i].insert(name, id);
                        id
                    }
                };
                ids.push(id);
            }
            remap.push(ids);
        }
        for ((bucket, key), acc) in other.groups {
            let mut mapped = [0u32; MAX_DIMENSIONS];
            for i in 0..self.dims {
                mapped[i] = match key[i] {
                    0 => 0,
                    id => remap[i][id as usize - 1],
                };
            }
            match self.groups.get_mut(&(bucket, mapped)) {
                Some(mine) => {
                    mine.count += acc.count;
                    for (m, o) in mine.measures.iter_mut().zip(acc.measures) {
                        m.0 += o.0;
                        m.1 += o.1;
                        m.2 = m.2.min(o.2);
                        m.3 = m.3.max(o.3);
                        m.4.extend(o.4);
                    }
                }
                None => {
                    if self.groups.len() >= MAX_GROUPS {
                        return Err(Error::validation(
                            "group_by",
                            format!(
                                "this report has more than {MAX_GROUPS} groups; use a coarser bucket or fewer dimensions"
                            ),
                        ));
                    }
                    self.groups.insert((bucket, mapped), acc);
                }
            }
        }
        self.rows += other.rows;
        self.kept += other.kept;
        if self.kept > MAX_KEPT_VALUES {
            return Err(Error::validation(
                "metrics",
                format!("percentiles over more than {MAX_KEPT_VALUES} values; use a shorter period or more filters"),
            ));
        }
        Ok(())
    }

    /// The groups, ordered by bucket then dimension values.
    pub fn finish(self) -> ReportResult {
        let mut groups: Vec<ReportGroup> = Vec::with_capacity(self.groups.len());
        for ((bucket, key), mut acc) in self.groups {
            let dims = (0..self.dims)
                .map(|i| match key[i] {
                    0 => None,
                    id => self.names[i].get(id as usize - 1).cloned(),
                })
                .collect();
            let values = self
                .metrics
                .iter()
                .map(|(agg, measure)| {
                    let Some(i) = measure else { return Some(acc.count as f64) };
                    let (n, sum, min, max, values) = &mut acc.measures[*i];
                    if *n == 0 {
                        return if *agg == Agg::Sum { Some(0.0) } else { None };
                    }
                    Some(match agg {
                        Agg::Count => *n as f64,
                        Agg::Sum => *sum,
                        Agg::Avg => *sum / *n as f64,
                        Agg::Min => *min,
                        Agg::Max => *max,
                        Agg::P50 => percentile(values, 0.5),
                        Agg::P90 => percentile(values, 0.9),
                    })
                })
                .collect();
            let bucket = self.bucket.and_then(|_| {
                DateTime::from_timestamp_millis(bucket).map(|t| t.with_timezone(&self.tz).fixed_offset())
            });
            groups.push(ReportGroup { bucket, dims, values });
        }
        groups.sort_by(|a, b| a.bucket.cmp(&b.bucket).then_with(|| a.dims.cmp(&b.dims)));
        ReportResult { groups, rows: self.rows }
    }
}

/// The `p` quantile with linear interpolation between closest ranks (as
/// PostgreSQL's `percentile_cont`); sorts `values`.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let pos = p * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> HashMap<String, FieldType> {
        HashMap::from([("sentiment".to_string(), FieldType::Number), ("outcome".to_string(), FieldType::Text)])
    }

    fn ms(s: &str) -> i64 {
        crate::ids::parse_time(s).map(|t| t.timestamp_millis()).unwrap_or_default()
    }

    #[test]
    fn a_metric_named_twice_is_refused() {
        let f = fields();
        let mut q = ReportQuery::new(Source::Conversations);
        for m in ["count", "sum:duration", "count"] {
            q.metrics.push(Metric::parse(m, q.source, &f).unwrap());
        }
        let err = q.validate().unwrap_err();
        assert!(err.to_string().contains("'count' is named twice"), "{err}");
        q.metrics.pop();
        q.validate().unwrap();
    }

    #[test]
    fn merged_parts_give_the_same_report_as_one_pass() {
        let f = fields();
        let mut q = ReportQuery::new(Source::Conversations);
        q.group_by("rep_id", &f).unwrap();
        q.group_by("day", &f).unwrap();
        for m in ["count", "sum:duration", "min:duration", "max:duration", "p50:duration", "p90:duration"] {
            q.metrics.push(Metric::parse(m, q.source, &f).unwrap());
        }
        q.validate().unwrap();
        let reps = [Some("ann"), Some("bob"), None, Some("cyd")];
        let rows: Vec<(i64, Option<&str>, Option<f64>)> = (0..200)
            .map(|i| {
                (
                    ms("2026-01-01T00:00:00Z") + i * 3_600_000 * 7,
                    reps[(i % 4) as usize],
                    (i % 9 != 0).then_some(i as f64),
                )
            })
            .collect();
        let mut whole = Aggregator::new(&q);
        for (at, rep, d) in &rows {
            whole.push(*at, &[*rep], &[*d]).unwrap();
        }
        // The second part meets the reps in another order (other interned ids).
        let (mut first, mut second) = (Aggregator::new(&q), Aggregator::new(&q));
        for (at, rep, d) in &rows[..90] {
            first.push(*at, &[*rep], &[*d]).unwrap();
        }
        for (at, rep, d) in rows[90..].iter().rev() {
            second.push(*at, &[*rep], &[*d]).unwrap();
        }
        first.merge(second).unwrap();
        let (a, b) = (whole.finish(), first.finish());
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.groups.len(), b.groups.len());
        for (x, y) in a.groups.iter().zip(&b.groups) {
            assert_eq!((&x.bucket, &x.dims, &x.values), (&y.bucket, &y.dims, &y.values));
        }
    }

    #[test]
    fn groups_by_local_day_and_rep() {
        let f = fields();
        let mut q = ReportQuery::new(Source::Conversations);
        q.set_tz("Europe/Paris").unwrap();
        q.group_by("rep_id", &f).unwrap();
        q.group_by("day", &f).unwrap();
        for m in ["count", "sum:duration", "avg:duration", "p50:duration", "p90:duration", "max:sentiment"] {
            q.metrics.push(Metric::parse(m, q.source, &f).unwrap());
        }
        q.validate().unwrap();
        let mut agg = Aggregator::new(&q);
        // 23:30 UTC on Jan 1 is Jan 2 in Paris.
        agg.push(ms("2026-01-01T10:00:00Z"), &[Some("mila")], &[Some(10.0), Some(0.5)]).unwrap();
        agg.push(ms("2026-01-01T12:00:00Z"), &[Some("mila")], &[Some(20.0), None]).unwrap();
        agg.push(ms("2026-01-01T13:00:00Z"), &[Some("mila")], &[Some(60.0), None]).unwrap();
        agg.push(ms("2026-01-01T23:30:00Z"), &[Some("mila")], &[None, None]).unwrap();
        agg.push(ms("2026-01-01T11:00:00Z"), &[None], &[Some(5.0), None]).unwrap();
        let r = agg.finish();
        assert_eq!(r.rows, 5);
        let labels: Vec<_> =
            r.groups.iter().map(|g| (Bucket::Day.label(g.bucket.as_ref().unwrap()), g.dims[0].clone())).collect();
        assert_eq!(
            labels,
            vec![
                ("2026-01-01".to_string(), None),
                ("2026-01-01".to_string(), Some("mila".to_string())),
                ("2026-01-02".to_string(), Some("mila".to_string()))
            ]
        );
        let mila = &r.groups[1].values;
        assert_eq!(mila[0], Some(3.0));
        assert_eq!(mila[1], Some(90.0));
        assert_eq!(mila[2], Some(30.0));
        assert_eq!(mila[3], Some(20.0));
        assert_eq!(mila[4], Some(52.0)); // 20 + (60 - 20) * 0.8
        assert_eq!(mila[5], Some(0.5));
        assert_eq!(r.groups[2].values[..3], [Some(1.0), Some(0.0), None]);
        assert_eq!(r.groups[1].bucket.unwrap().to_rfc3339(), "2026-01-01T00:00:00+01:00");
    }

    #[test]
    fn weeks_start_monday_and_months_on_the_first_across_dst() {
        let mut q = ReportQuery::new(Source::Events);
        q.set_tz("America/New_York").unwrap();
        q.group_by("week", &HashMap::new()).unwrap();
        q.metrics.push(Metric::parse("count", q.source, &HashMap::new()).unwrap());
        let mut agg = Aggregator::new(&q);
        // Sunday 2026-03-08 (DST starts that day) and Monday 2026-03-09.
        agg.push(ms("2026-03-08T15:00:00Z"), &[], &[]).unwrap();
        agg.push(ms("2026-03-09T15:00:00Z"), &[], &[]).unwrap();
        let r = agg.finish();
        let starts: Vec<_> = r.groups.iter().map(|g| g.bucket.unwrap().to_rfc3339()).collect();
        assert_eq!(starts, vec!["2026-03-02T00:00:00-05:00", "2026-03-09T00:00:00-04:00"]);
        let mut m = ReportQuery::new(Source::Events);
        m.group_by("month", &HashMap::new()).unwrap();
        m.metrics.push(Metric::parse("count", m.source, &HashMap::new()).unwrap());
        let mut agg = Aggregator::new(&m);
        agg.push(ms("2026-02-28T23:59:59Z"), &[], &[]).unwrap();
        agg.push(ms("2026-03-01T00:00:00Z"), &[], &[]).unwrap();
        let r = agg.finish();
        assert_eq!(
            r.groups.iter().map(|g| Bucket::Month.label(g.bucket.as_ref().unwrap())).collect::<Vec<_>>(),
            ["2026-02", "2026-03"]
        );
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        let f = fields();
        let mut q = ReportQuery::new(Source::Conversations);
        assert_eq!(q.group_by("planet", &f).unwrap_err().field(), Some("planet"));
        assert!(q.group_by("outcome", &f).is_ok());
        assert_eq!(Metric::parse("avg:outcome", q.source, &f).unwrap_err().field(), Some("avg:outcome"));
        assert_eq!(Metric::parse("mode:duration", q.source, &f).unwrap_err().field(), Some("mode:duration"));
        assert!(q.validate().is_err(), "no metric");
        assert!(q.set_tz("Mars/Olympus").is_err());
    }

    #[test]
    fn percentiles_interpolate() {
        assert_eq!(percentile(&mut [3.0, 1.0, 2.0, 4.0], 0.5), 2.5);
        assert_eq!(percentile(&mut [7.0], 0.9), 7.0);
    }
}
