//! Reports: the rows of a [`ReportQuery`]'s period and filters, streamed
//! from one statement (only the columns the query needs) into core's
//! [`Aggregator`], which does the grouping and the arithmetic.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use convene_core::report::{Aggregator, Dimension, MAX_DIMENSIONS, Measure, ReportQuery, ReportResult, Source};
use convene_core::{Error, Result};
use deadpool_postgres::{Object, Pool};
use futures::StreamExt;
use tokio_postgres::Row;

use crate::calls::ceil_ms;
use crate::db::{conn, query};
use crate::error::db;
use crate::rows::get;
use crate::stream::{Open, Param};

/// How a selected column is read.
#[derive(Clone, Copy)]
enum Read {
    /// Text, as is.
    Text,
    /// A rep id, read as its rep's department.
    Department,
    /// A float column.
    Float,
    /// Text parsed as a number (anything else: no value).
    Number,
    /// Nothing to read (the dimension or measure does not apply to the source).
    Absent,
}

/// A statement under construction: its parameters, numbered from `$2`
/// (`$1` is the workspace).
struct Sql {
    params: Vec<Param>,
}

impl Sql {
    fn bind(&mut self, value: Param) -> String {
        self.params.push(value);
        format!("${}", self.params.len() + 1)
    }

    /// The expression of a dimension over `source`, and how to read it.
    fn dimension(&mut self, source: Source, d: &Dimension) -> (String, Read) {
        let column = match (source, d) {
            (Source::Conversations, Dimension::Rep) => "rep_id",
            (Source::Conversations, Dimension::Department) => return ("rep_id".into(), Read::Department),
            (Source::Conversations, Dimension::Vendor) => "vendor",
            (Source::Conversations, Dimension::Campaign) => "campaign",
            (Source::Conversations, Dimension::Direction) => "direction",
            (Source::Conversations, Dimension::Status) => "status",
            (Source::Conversations, Dimension::Channel) => "channel",
            (Source::Events, Dimension::EventName) => "name",
            (Source::Conversations, Dimension::Field(name)) => {
                return (format!("(attributes ->> {}::text)", self.bind(Box::new(name.clone()))), Read::Text);
            }
            (Source::Events, Dimension::Field(name)) => {
                return (format!("(properties ->> {}::text)", self.bind(Box::new(name.clone()))), Read::Text);
            }
            _ => return ("NULL::text".into(), Read::Absent),
        };
        (column.into(), Read::Text)
    }

    /// The expression of a measure over `source`, and how to read it.
    fn measure(&mut self, source: Source, m: &Measure) -> (String, Read) {
        match (source, m) {
            (Source::Conversations, Measure::Duration) => ("duration".into(), Read::Float),
            (Source::Conversations, Measure::Field(name)) => {
                (format!("(attributes ->> {}::text)", self.bind(Box::new(name.clone()))), Read::Number)
            }
            (Source::Events, Measure::Field(name)) => {
                (format!("(properties ->> {}::text)", self.bind(Box::new(name.clone()))), Read::Number)
            }
            (Source::Events, Measure::Duration) => ("NULL::float8".into(), Read::Absent),
        }
    }

    /// The condition of a filter: the dimension's value is one of `values`.
    fn filter(&mut self, source: Source, d: &Dimension, values: &[String]) -> String {
        let list = self.bind(Box::new(values.to_vec()));
        match (source, d) {
            (Source::Conversations, Dimension::Department) => format!(
                "rep_id IN (SELECT r.rep_id FROM reps r WHERE r.workspace_id = $1 AND r.department = ANY({list}::text[]))"
            ),
            _ => {
                let (expr, _) = self.dimension(source, d);
                format!("{expr} = ANY({list}::text[])")
            }
        }
    }
}

/// Tables larger than this (8 KiB pages, so about 80 MB) are read in two
/// halves on two connections sharing one snapshot: PostgreSQL's two
/// backends then scan and send in parallel while this node aggregates.
/// `CONVENE_PG_REPORT_SPLIT_PAGES` changes it (tests set it low).
const SPLIT_PAGES: i64 = 10_000;

fn split_pages() -> i64 {
    std::env::var("CONVENE_PG_REPORT_SPLIT_PAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(SPLIT_PAGES)
}

/// The statement of a report (with `extra` as one more condition), its
/// parameters, and how to read each column after the time.
fn statement(ws: &str, q: &ReportQuery, extra: Option<String>) -> (String, Vec<Param>, Vec<Read>) {
    let mut sql = Sql { params: Vec::new() };
    let (table, time) = match q.source {
        Source::Conversations => ("conversations", "at_ms"),
        Source::Events => ("events", "timestamp"),
    };
    let mut columns = vec![time.to_string()];
    let mut reads = Vec::new();
    for d in &q.dimensions {
        let (expr, read) = sql.dimension(q.source, d);
        columns.push(expr);
        reads.push(read);
    }
    for m in &q.measures() {
        let (expr, read) = sql.measure(q.source, m);
        columns.push(expr);
        reads.push(read);
    }
    let mut conditions = vec!["workspace_id = $1".to_string()];
    for (bound, op) in [(q.from, ">="), (q.to, "<")] {
        if let Some(t) = bound {
            let p = match q.source {
                Source::Conversations => sql.bind(Box::new(ceil_ms(&t))),
                Source::Events => sql.bind(Box::new(t)),
            };
            conditions.push(format!("{time} {op} {p}"));
        }
    }
    for (d, values) in &q.filters {
        conditions.push(sql.filter(q.source, d, values));
    }
    conditions.extend(extra);
    let statement = format!("SELECT {} FROM {table} WHERE {}", columns.join(", "), conditions.join(" AND "));
    let mut params: Vec<Param> = vec![Box::new(ws.to_string())];
    params.extend(sql.params);
    (statement, params, reads)
}

/// Reads one row into the aggregator.
struct Feed<'a> {
    source: Source,
    reads: &'a [Read],
    dims: usize,
    departments: &'a HashMap<String, String>,
    values: Vec<Option<f64>>,
}

impl Feed<'_> {
    fn push(&mut self, aggregator: &mut Aggregator, row: &Row) -> Result<()> {
        let at_ms = match self.source {
            Source::Conversations => row.try_get::<_, i64>(0).map_err(db)?,
            Source::Events => row.try_get::<_, DateTime<Utc>>(0).map_err(db)?.timestamp_millis(),
        };
        let mut dim_values: [Option<&str>; MAX_DIMENSIONS] = [None; MAX_DIMENSIONS];
        for (i, slot) in dim_values.iter_mut().enumerate().take(self.dims) {
            *slot = match self.reads[i] {
                Read::Department => text(row, i + 1)?.and_then(|rep| self.departments.get(rep)).map(String::as_str),
                _ => text(row, i + 1)?,
            };
        }
        self.values.clear();
        for (j, read) in self.reads[self.dims..].iter().enumerate() {
            let column = self.dims + 1 + j;
            self.values.push(match read {
                Read::Float => row.try_get::<_, Option<f64>>(column).map_err(db)?,
                Read::Number => text(row, column)?.and_then(|s| s.trim().parse::<f64>().ok()),
                Read::Text | Read::Department | Read::Absent => None,
            });
        }
        aggregator.push(at_ms, &dim_values[..self.dims], &self.values)
    }
}

/// Runs `query` over the workspace's rows.
pub(crate) async fn run(pool: &Pool, ws: &str, q: &ReportQuery) -> Result<ReportResult> {
    if q.dimensions.len() > MAX_DIMENSIONS {
        return Err(Error::validation("group_by", format!("group by at most {MAX_DIMENSIONS} dimensions")));
    }
    let (sql, params, reads) = statement(ws, q, None);
    let departments =
        if reads.iter().any(|r| matches!(r, Read::Department)) { departments(pool, ws).await? } else { HashMap::new() };
    let mut aggregator = Aggregator::new(q);
    let dims = q.dimensions.len();
    let mut feed = Feed { source: q.source, reads: &reads, dims, departments: &departments, values: Vec::new() };
    let table = match q.source {
        Source::Conversations => "conversations",
        Source::Events => "events",
    };
    let pages = table_pages(pool, table).await?;
    if pages < split_pages() {
        let mut open = Open::start(pool, &sql, params).await?;
        while let Some(row) = open.next().await? {
            feed.push(&mut aggregator, &row)?;
        }
        return Ok(aggregator.finish());
    }
    let mid = pages / 2;
    let (a, b) = (conn(pool).await?, conn(pool).await?);
    let halves = [
        statement(ws, q, Some(format!("ctid < '({mid},0)'::tid"))),
        statement(ws, q, Some(format!("ctid >= '({mid},0)'::tid"))),
    ];
    match split_scan(&a, &b, halves, &mut feed, &mut aggregator).await {
        Ok(()) => Ok(aggregator.finish()),
        Err(e) => {
            // Possibly still in their transactions: closed, not pooled.
            drop(Object::take(a));
            drop(Object::take(b));
            Err(e)
        }
    }
}

/// The table's size in pages (0 where it has no local storage, e.g. a
/// distributed table's shell on a Citus coordinator).
async fn table_pages(pool: &Pool, table: &str) -> Result<i64> {
    let c = conn(pool).await?;
    let row = c
        .query_one(
            "SELECT (pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint)::bigint",
            &[&table],
        )
        .await
        .map_err(db)?;
    row.try_get::<_, i64>(0).map_err(db)
}

/// Reads the two halves concurrently in one exported snapshot (as
/// `pg_dump --jobs` does), feeding every row to the aggregator.
async fn split_scan(
    a: &Object,
    b: &Object,
    halves: [(String, Vec<Param>, Vec<Read>); 2],
    feed: &mut Feed<'_>,
    aggregator: &mut Aggregator,
) -> Result<()> {
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await.map_err(db)?;
    let snapshot: String = a.query_one("SELECT pg_export_snapshot()", &[]).await.map_err(db)?.try_get(0).map_err(db)?;
    if !snapshot.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::Internal(format!("unexpected snapshot id {snapshot}")));
    }
    b.batch_execute(&format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"))
        .await
        .map_err(db)?;
    let [(sql_a, params_a, _), (sql_b, params_b, _)] = halves;
    let (sa, sb) = (a.prepare(&sql_a).await.map_err(db)?, b.prepare(&sql_b).await.map_err(db)?);
    let (ra, rb) = (a.query_raw(&sa, params_a).await.map_err(db)?, b.query_raw(&sb, params_b).await.map_err(db)?);
    let mut rows = futures::stream::select(Box::pin(ra), Box::pin(rb));
    while let Some(row) = rows.next().await {
        feed.push(aggregator, &row.map_err(db)?)?;
    }
    a.batch_execute("COMMIT").await.map_err(db)?;
    b.batch_execute("COMMIT").await.map_err(db)?;
    Ok(())
}

fn text(row: &Row, column: usize) -> Result<Option<&str>> {
    row.try_get::<_, Option<&str>>(column).map_err(db)
}

/// The department of each rep that has one.
async fn departments(pool: &Pool, ws: &str) -> Result<HashMap<String, String>> {
    let c = conn(pool).await?;
    let rows =
        query(&c, "SELECT rep_id, department FROM reps WHERE workspace_id = $1 AND department IS NOT NULL", &[&ws])
            .await?;
    let mut map = HashMap::with_capacity(rows.len());
    for row in &rows {
        map.insert(get(row, "rep_id")?, get(row, "department")?);
    }
    Ok(map)
}
