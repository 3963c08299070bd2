//! Reports: selects the rows of a query's period and filters in one pass
//! and feeds them to core's [`Aggregator`], which groups and computes.

use std::collections::HashMap;

use convene_core::ids::parse_time;
use convene_core::report::{Aggregator, Dimension, MAX_DIMENSIONS, Measure, ReportQuery, ReportResult, Source};
use convene_core::{Error, Result};
use rusqlite::Connection;
use rusqlite::types::{Value as SqlValue, ValueRef};

use crate::conn::storage;
use crate::rows::t;

/// A JSON path for one key of an attributes/properties object.
fn json_path(name: &str) -> Result<String> {
    if name.contains('"') || name.contains('\\') {
        return Err(Error::validation(name, format!("'{name}' cannot be reported on (it contains a quote)")));
    }
    Ok(format!("$.\"{name}\""))
}

/// Builds the SELECT of a report: time (ms or text), dimensions, measures.
struct Plan {
    sql: String,
    args: Vec<SqlValue>,
    /// Dimensions whose value is the rep's department (column holds rep_id).
    department: Vec<bool>,
}

fn column_of(dim: &Dimension, source: Source, json: &str, args: &mut Vec<SqlValue>) -> Result<String> {
    Ok(match (source, dim) {
        (_, Dimension::Rep | Dimension::Department) => "rep_id".into(),
        (_, Dimension::Vendor) => "vendor".into(),
        (_, Dimension::Campaign) => "campaign".into(),
        (_, Dimension::Direction) => "direction".into(),
        (_, Dimension::Status) => "status".into(),
        (_, Dimension::Channel) => "channel".into(),
        (_, Dimension::EventName) => "name".into(),
        (_, Dimension::Field(name)) => {
            // As PostgreSQL's `->>` renders it: booleans as true/false, numbers and text as text.
            args.push(json_path(name)?.into());
            let p = args.len();
            format!(
                "CASE json_type({json}, ?{p}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                 ELSE CAST(json_extract({json}, ?{p}) AS TEXT) END"
            )
        }
    })
}

fn plan(ws: &str, q: &ReportQuery) -> Result<Plan> {
    let (table, time, json) = match q.source {
        Source::Conversations => ("conversations", "at_ms", "attributes"),
        Source::Events => ("events", "timestamp", "properties"),
    };
    let mut args: Vec<SqlValue> = vec![ws.to_string().into()];
    let mut cols = vec![time.to_string()];
    let mut department = Vec::new();
    for d in &q.dimensions {
        cols.push(column_of(d, q.source, json, &mut args)?);
        department.push(*d == Dimension::Department);
    }
    for m in q.measures() {
        cols.push(match m {
            Measure::Duration => "duration".into(),
            Measure::Field(name) => {
                // Numbers, and text holding one; booleans and the rest are no value.
                args.push(json_path(&name)?.into());
                let p = args.len();
                format!("CASE WHEN json_type({json}, ?{p}) IN ('integer', 'real', 'text') THEN json_extract({json}, ?{p}) END")
            }
        });
    }
    let mut cond = "workspace_id = ?1".to_string();
    let bound = |v: Option<chrono::DateTime<chrono::Utc>>| -> Option<SqlValue> {
        v.map(|v| match q.source {
            Source::Conversations => SqlValue::from(v.timestamp_millis()),
            Source::Events => SqlValue::from(t(&v)),
        })
    };
    if let Some(from) = bound(q.from) {
        args.push(from);
        cond.push_str(&format!(" AND {time} >= ?{}", args.len()));
    }
    if let Some(to) = bound(q.to) {
        args.push(to);
        cond.push_str(&format!(" AND {time} < ?{}", args.len()));
    }
    for (d, values) in &q.filters {
        let col = column_of(d, q.source, json, &mut args)?;
        let marks: Vec<String> = values
            .iter()
            .map(|v| {
                args.push(v.clone().into());
                format!("?{}", args.len())
            })
            .collect();
        let list = marks.join(", ");
        cond.push_str(&match d {
            Dimension::Department => {
                format!(" AND rep_id IN (SELECT rep_id FROM reps WHERE workspace_id = ?1 AND department IN ({list}))")
            }
            _ => format!(" AND {col} IN ({list})"),
        });
    }
    Ok(Plan { sql: format!("SELECT {} FROM {table}{{scan}} WHERE {cond}", cols.join(", ")), args, department })
}

/// A dimension value as text (numbers and booleans of JSON fields too).
fn text_of(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(s) | ValueRef::Blob(s) => Some(String::from_utf8_lossy(s).into_owned()),
    }
}

/// A measure value: numbers, and text that is a number.
fn number_of(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// The departments of the reps a report's rows name, read as the rows
/// meet them (one lookup per distinct rep), so a report costs nothing per
/// rep it never meets: a workspace may hold far more reps than have calls.
struct Departments<'c> {
    conn: &'c Connection,
    ws: &'c str,
    known: HashMap<String, Option<String>>,
}

impl<'c> Departments<'c> {
    fn new(conn: &'c Connection, ws: &'c str) -> Self {
        Departments { conn, ws, known: HashMap::new() }
    }

    /// Reads `rep`'s department unless it is known already.
    fn load(&mut self, rep: &str) -> Result<()> {
        if self.known.contains_key(rep) {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT department FROM reps WHERE workspace_id = ?1 AND rep_id = ?2")
            .map_err(storage)?;
        let department =
            crate::rows::one(stmt.query_row(rusqlite::params![self.ws, rep], |r| r.get::<_, Option<String>>(0)))?
                .flatten();
        self.known.insert(rep.to_string(), department);
        Ok(())
    }

    /// `rep`'s department, once [`Departments::load`]ed.
    fn of(&self, rep: &str) -> Option<&str> {
        self.known.get(rep).and_then(|d| d.as_deref())
    }
}

/// Whether to read the whole table in row order rather than through an
/// index: an index walk fetches each row at random, several times slower
/// per row, so it pays only when it skips most rows. Unfiltered reports and
/// periods holding more than a fifth of the workspace's rows scan.
fn full_scan(conn: &Connection, ws: &str, q: &ReportQuery) -> Result<bool> {
    if !q.filters.is_empty() {
        return Ok(false);
    }
    let (table, time) = match q.source {
        Source::Conversations => ("conversations", "at_ms"),
        Source::Events => ("events", "timestamp"),
    };
    let bound = |v: Option<chrono::DateTime<chrono::Utc>>, none: SqlValue| -> SqlValue {
        match (v, q.source) {
            (None, _) => none,
            (Some(v), Source::Conversations) => v.timestamp_millis().into(),
            (Some(v), Source::Events) => t(&v).into(),
        }
    };
    if q.from.is_none() && q.to.is_none() {
        return Ok(true);
    }
    let (from, to) = match q.source {
        Source::Conversations => (bound(q.from, i64::MIN.into()), bound(q.to, i64::MAX.into())),
        Source::Events => (bound(q.from, String::new().into()), bound(q.to, "~".to_string().into())),
    };
    let count = |sql: &str, args: Vec<SqlValue>| -> Result<i64> {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.query_row(rusqlite::params_from_iter(args), |r| r.get(0)))
            .map_err(storage)
    };
    let in_range = count(
        &format!("SELECT count(*) FROM {table} WHERE workspace_id = ?1 AND {time} >= ?2 AND {time} < ?3"),
        vec![ws.to_string().into(), from, to],
    )?;
    let total = count(&format!("SELECT count(*) FROM {table} WHERE workspace_id = ?1"), vec![ws.to_string().into()])?;
    Ok(in_range * 5 > total)
}

/// Whether every column a conversations report reads is in the covering
/// index `conversations_report` (time, rep, duration, vendor, campaign,
/// direction, status, channel): then one index-only scan in time order
/// answers it, whatever the period.
fn covered(q: &ReportQuery) -> bool {
    let dim = |d: &Dimension| {
        matches!(
            d,
            Dimension::Rep
                | Dimension::Department
                | Dimension::Vendor
                | Dimension::Campaign
                | Dimension::Direction
                | Dimension::Status
                | Dimension::Channel
        )
    };
    q.source == Source::Conversations
        && q.dimensions.iter().all(dim)
        && q.filters.iter().all(|(d, _)| dim(d))
        && q.measures().iter().all(|m| *m == Measure::Duration)
}

/// Runs a report on a read connection.
pub(crate) fn run(conn: &Connection, ws: &str, q: &ReportQuery) -> Result<ReportResult> {
    Ok(partial(conn, ws, q)?.finish())
}

/// Where to cut a report that reads the covering index into two halves of
/// its period (two readers scan them at once, on two cores), or `None`
/// when it does not read that index or holds too few rows to gain.
pub(crate) fn split_point(conn: &Connection, ws: &str, q: &ReportQuery) -> Result<Option<i64>> {
    if !covered(q) {
        return Ok(None);
    }
    let (from, to) =
        (q.from.map_or(i64::MIN, |t| t.timestamp_millis()), q.to.map_or(i64::MAX, |t| t.timestamp_millis()));
    let (lo, hi, n): (Option<i64>, Option<i64>, i64) = conn
        .prepare_cached(
            "SELECT min(at_ms), max(at_ms), count(*) FROM (SELECT at_ms FROM conversations INDEXED BY conversations_report
             WHERE workspace_id = ?1 AND at_ms >= ?2 AND at_ms < ?3 LIMIT 20000)",
        )
        .and_then(|mut s| s.query_row(rusqlite::params![ws, from, to], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
        .map_err(storage)?;
    if n < 20_000 {
        return Ok(None);
    }
    // The period's true last row (the sample above stops early).
    let last: Option<i64> = conn
        .prepare_cached(
            "SELECT max(at_ms) FROM conversations INDEXED BY conversations_report
             WHERE workspace_id = ?1 AND at_ms >= ?2 AND at_ms < ?3",
        )
        .and_then(|mut s| s.query_row(rusqlite::params![ws, from, to], |r| r.get(0)))
        .map_err(storage)?;
    Ok(match (lo, last.or(hi)) {
        (Some(lo), Some(hi)) if hi > lo => Some(lo + (hi - lo) / 2),
        _ => None,
    })
}

/// Folds a report's rows into an aggregator (not yet finished: parts of a
/// split period are merged first).
pub(crate) fn partial(conn: &Connection, ws: &str, q: &ReportQuery) -> Result<Aggregator> {
    let mut plan = plan(ws, q)?;
    let scan = if covered(q) {
        " INDEXED BY conversations_report"
    } else if full_scan(conn, ws, q)? {
        " NOT INDEXED"
    } else {
        ""
    };
    plan.sql = plan.sql.replace("{scan}", scan);
    let mut depts = Departments::new(conn, ws);
    let mut agg = Aggregator::new(q);
    let (n_dims, n_measures) = (q.dimensions.len(), q.measures().len());
    let mut stmt = conn.prepare(&plan.sql).map_err(storage)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(plan.args)).map_err(storage)?;
    let mut values: Vec<Option<f64>> = Vec::with_capacity(n_measures);
    while let Some(row) = rows.next().map_err(storage)? {
        let at_ms = match row.get_ref(0).map_err(storage)? {
            ValueRef::Integer(ms) => ms,
            ValueRef::Text(s) => match std::str::from_utf8(s).ok().and_then(parse_time) {
                Some(t) => t.timestamp_millis(),
                None => continue,
            },
            _ => continue,
        };
        // Text is read in place; only other values are turned into text.
        let mut owned: [Option<String>; MAX_DIMENSIONS] = Default::default();
        let mut refs: [ValueRef<'_>; MAX_DIMENSIONS] = [ValueRef::Null; MAX_DIMENSIONS];
        for i in 0..n_dims {
            refs[i] = row.get_ref(1 + i).map_err(storage)?;
            if !matches!(refs[i], ValueRef::Text(_) | ValueRef::Null) {
                owned[i] = text_of(refs[i]);
            }
        }
        let mut dims: [Option<&str>; MAX_DIMENSIONS] = [None; MAX_DIMENSIONS];
        for i in 0..n_dims {
            dims[i] = match refs[i] {
                ValueRef::Text(s) => std::str::from_utf8(s).ok(),
                _ => owned[i].as_deref(),
            };
            if plan.department[i]
                && let Some(rep) = dims[i]
            {
                depts.load(rep)?;
            }
        }
        for i in (0..n_dims).filter(|i| plan.department[*i]) {
            dims[i] = dims[i].and_then(|rep| depts.of(rep));
        }
        values.clear();
        for i in 0..n_measures {
            values.push(number_of(row.get_ref(1 + n_dims + i).map_err(storage)?));
        }
        agg.push(at_ms, &dims[..n_dims], &values)?;
    }
    Ok(agg)
}
