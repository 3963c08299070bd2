//! Reports: the rows of a [`ReportQuery`]'s period and filters, streamed
//! from PostgreSQL (only the columns the query needs) into core's
//! [`Aggregator`], which does the grouping and the arithmetic.
//!
//! Decoding and aggregating the rows on this node (about 1 µs a row) costs
//! more than PostgreSQL's scan, so a large table is read in two halves
//! (ctid ranges) on two connections sharing one exported snapshot, each
//! half folded into its own aggregator on its own task (two cores), and the
//! two aggregators are merged ([`Aggregator::merge`]: the same result as
//! one pass). Smaller tables are read by one statement.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use convene_core::report::{Aggregator, Dimension, MAX_DIMENSIONS, Measure, ReportQuery, ReportResult, Source};
use convene_core::{Error, Result};
use deadpool_postgres::{ClientWrapper, Pool};
use futures::StreamExt;
use tokio::task::JoinSet;
use tokio_postgres::Row;

use crate::calls::ceil_ms;
use crate::db::{Tx, conn, query, query_one};
use crate::error::db;
use crate::rows::get;
use crate::stream::{Open, Param};

/// Tables of at least this many pages (8 KiB each, so about 80 MB) are read
/// in two halves; `CONVENE_PG_REPORT_SPLIT_PAGES` changes it (tests set it
/// low or high to compare both paths).
const SPLIT_PAGES: i64 = 10_000;

/// The page count from which a table is read in two halves.
fn split_pages() -> i64 {
    std::env::var("CONVENE_PG_REPORT_SPLIT_PAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(SPLIT_PAGES)
}

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

/// The rows of the table a statement reads.
#[derive(Clone, Copy)]
enum Part {
    /// Every row.
    All,
    /// The rows in pages before this one.
    Before(i64),
    /// The rows in this page and after.
    From(i64),
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

/// The table a source reads.
fn table(source: Source) -> &'static str {
    match source {
        Source::Conversations => "conversations",
        Source::Events => "events",
    }
}

/// A report's statement, owned (each half of a split scan moves its own
/// into its task).
struct Statement {
    /// The text.
    sql: String,
    /// Its parameters, the workspace first.
    params: Vec<Param>,
    /// How each column after the time is read: the dimensions, then the
    /// measures in [`ReportQuery::measures`] order.
    reads: Vec<Read>,
}

/// The statement reading `part` of the rows of `q`'s period and filters:
/// the time, then one column per dimension and per measure.
fn statement(ws: &str, q: &ReportQuery, part: Part) -> Statement {
    let mut sql = Sql { params: Vec::new() };
    let time = match q.source {
        Source::Conversations => "at_ms",
        Source::Events => "timestamp",
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
    // A literal page (a number computed here), so that each half's plan is a
    // TID range scan whatever a generic plan would estimate.
    match part {
        Part::All => {}
        Part::Before(page) => conditions.push(format!("ctid < '({page},0)'::tid")),
        Part::From(page) => conditions.push(format!("ctid >= '({page},0)'::tid")),
    }
    let sql_text = format!("SELECT {} FROM {} WHERE {}", columns.join(", "), table(q.source), conditions.join(" AND "));
    let mut params: Vec<Param> = vec![Box::new(ws.to_string())];
    params.extend(sql.params);
    Statement { sql: sql_text, params, reads }
}

/// Reads rows into an aggregator of its own.
struct Feed {
    source: Source,
    dims: usize,
    reads: Vec<Read>,
    departments: Arc<HashMap<String, String>>,
    /// The current row's measure values (kept to reuse its allocation).
    values: Vec<Option<f64>>,
    aggregator: Aggregator,
}

impl Feed {
    fn new(q: &ReportQuery, reads: Vec<Read>, departments: Arc<HashMap<String, String>>) -> Feed {
        let values = Vec::with_capacity(reads.len());
        Feed { source: q.source, dims: q.dimensions.len(), reads, departments, values, aggregator: Aggregator::new(q) }
    }

    /// Adds one row of the statement.
    fn push(&mut self, row: &Row) -> Result<()> {
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
        self.aggregator.push(at_ms, &dim_values[..self.dims], &self.values)
    }
}

fn text(row: &Row, column: usize) -> Result<Option<&str>> {
    row.try_get::<_, Option<&str>>(column).map_err(db)
}

/// Runs `query` over the workspace's rows.
pub(crate) async fn run(pool: &Pool, ws: &str, q: &ReportQuery) -> Result<ReportResult> {
    if q.dimensions.len() > MAX_DIMENSIONS {
        return Err(Error::validation("group_by", format!("group by at most {MAX_DIMENSIONS} dimensions")));
    }
    let pages = table_pages(pool, table(q.source)).await?;
    if pages >= split_pages() {
        return split_scan(pool, ws, q, pages / 2).await;
    }
    let s = statement(ws, q, Part::All);
    let departments = if needs_departments(&s.reads) {
        let c = conn(pool).await?;
        departments(&c, ws).await?
    } else {
        HashMap::new()
    };
    let mut feed = Feed::new(q, s.reads, Arc::new(departments));
    let mut open = Open::start(pool, &s.sql, s.params).await?;
    while let Some(row) = open.next().await? {
        feed.push(&row)?;
    }
    Ok(feed.aggregator.finish())
}

/// Reads the rows before page `mid` and from it concurrently, each half on
/// its own connection and task into its own aggregator, in one snapshot
/// exported by the first connection and imported by the second (as
/// `pg_dump --jobs` does); merges the two.
///
/// Both connections are in a transaction until their half is read: on an
/// error, a panic or a cancelled request they are closed rather than
/// returned to the pool ([`Tx`]), and the other half's task is aborted.
/// When no second connection is free, the first reads the whole table.
async fn split_scan(pool: &Pool, ws: &str, q: &ReportQuery, mid: i64) -> Result<ReportResult> {
    let first = Tx::begin_snapshot(pool).await?;
    let second = Tx::try_begin_snapshot(pool).await?;
    let all = statement(ws, q, Part::All);
    let departments = if needs_departments(&all.reads) { departments(first.c(), ws).await? } else { HashMap::new() };
    let departments = Arc::new(departments);
    let Some(second) = second else {
        // No other connection free: the whole table on this one, rather
        // than wait for another while holding it (many such reports at
        // once would hold the whole pool).
        let feed = Feed::new(q, all.reads, departments);
        return Ok(scan(first, all.sql, all.params, feed).await?.finish());
    };
    let row = query_one(first.c(), "SELECT pg_export_snapshot()", &[]).await?;
    let snapshot: String = row.try_get(0).map_err(db)?;
    if !snapshot.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::Internal(format!("unexpected snapshot id {snapshot}")));
    }
    second.c().batch_execute(&format!("SET TRANSACTION SNAPSHOT '{snapshot}'")).await.map_err(db)?;

    let halves = [(first, statement(ws, q, Part::Before(mid))), (second, statement(ws, q, Part::From(mid)))];
    let mut tasks = JoinSet::new();
    for (i, (tx, s)) in halves.into_iter().enumerate() {
        let feed = Feed::new(q, s.reads, Arc::clone(&departments));
        tasks.spawn(async move { scan(tx, s.sql, s.params, feed).await.map(|aggregator| (i, aggregator)) });
    }
    let mut halves: [Option<Aggregator>; 2] = [None, None];
    // An early return drops `tasks`, which aborts the task still running.
    while let Some(done) = tasks.join_next().await {
        let (i, aggregator) = done.map_err(|e| Error::Internal(format!("a report scan task failed: {e}")))??;
        halves[i] = Some(aggregator);
    }
    let [Some(mut aggregator), Some(second)] = halves else {
        return Err(Error::Internal("a report scan task ended without its half".into()));
    };
    aggregator.merge(second)?;
    Ok(aggregator.finish())
}

/// Reads a statement's rows on its transaction's connection into `feed`'s
/// aggregator, then commits (the connection then returns to the pool).
async fn scan(tx: Tx, sql: String, params: Vec<Param>, mut feed: Feed) -> Result<Aggregator> {
    {
        // Not cached: the text of a half names a page, which moves as the table grows.
        let stmt = tx.c().prepare(&sql).await.map_err(db)?;
        let mut rows = pin!(tx.c().query_raw(&stmt, params).await.map_err(db)?);
        while let Some(row) = rows.next().await {
            feed.push(&row.map_err(db)?)?;
        }
    }
    tx.commit().await?;
    Ok(feed.aggregator)
}

/// The table's size in pages (0 where it has no local storage, e.g. a
/// distributed table's shell on a Citus coordinator: never split).
async fn table_pages(pool: &Pool, table: &str) -> Result<i64> {
    let c = conn(pool).await?;
    let row = query_one(
        &c,
        "SELECT (pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint)::bigint",
        &[&table],
    )
    .await?;
    row.try_get::<_, i64>(0).map_err(db)
}

fn needs_departments(reads: &[Read]) -> bool {
    reads.iter().any(|r| matches!(r, Read::Department))
}

/// The department of each rep that has one.
async fn departments(c: &ClientWrapper, ws: &str) -> Result<HashMap<String, String>> {
    let rows =
        query(c, "SELECT rep_id, department FROM reps WHERE workspace_id = $1 AND department IS NOT NULL", &[&ws])
            .await?;
    let mut map = HashMap::with_capacity(rows.len());
    for row in &rows {
        map.insert(get(row, "rep_id")?, get(row, "department")?);
    }
    Ok(map)
}
