//! Reports: the rows of a [`ReportQuery`]'s period and filters, streamed
//! from one statement (only the columns the query needs) into core's
//! [`Aggregator`], which does the grouping and the arithmetic.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use convene_core::report::{Aggregator, Dimension, MAX_DIMENSIONS, Measure, ReportQuery, ReportResult, Source};
use convene_core::{Error, Result};
use deadpool_postgres::Pool;
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

/// Runs `query` over the workspace's rows.
pub(crate) async fn run(pool: &Pool, ws: &str, q: &ReportQuery) -> Result<ReportResult> {
    if q.dimensions.len() > MAX_DIMENSIONS {
        return Err(Error::validation("group_by", format!("group by at most {MAX_DIMENSIONS} dimensions")));
    }
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
    let measures = q.measures();
    for m in &measures {
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
    let departments =
        if reads.iter().any(|r| matches!(r, Read::Department)) { departments(pool, ws).await? } else { HashMap::new() };
    let statement = format!("SELECT {} FROM {table} WHERE {}", columns.join(", "), conditions.join(" AND "));
    let mut params: Vec<Param> = vec![Box::new(ws.to_string())];
    params.extend(sql.params);

    let mut aggregator = Aggregator::new(q);
    let dims = q.dimensions.len();
    let mut values: Vec<Option<f64>> = Vec::with_capacity(measures.len());
    let mut open = Open::start(pool, &statement, params).await?;
    while let Some(row) = open.next().await? {
        let at_ms = match q.source {
            Source::Conversations => row.try_get::<_, i64>(0).map_err(db)?,
            Source::Events => row.try_get::<_, DateTime<Utc>>(0).map_err(db)?.timestamp_millis(),
        };
        let mut dim_values: [Option<&str>; MAX_DIMENSIONS] = [None; MAX_DIMENSIONS];
        for (i, slot) in dim_values.iter_mut().enumerate().take(dims) {
            *slot = match reads[i] {
                Read::Department => text(&row, i + 1)?.and_then(|rep| departments.get(rep)).map(String::as_str),
                _ => text(&row, i + 1)?,
            };
        }
        values.clear();
        for (j, read) in reads[dims..].iter().enumerate() {
            let column = dims + 1 + j;
            values.push(match read {
                Read::Float => row.try_get::<_, Option<f64>>(column).map_err(db)?,
                Read::Number => text(&row, column)?.and_then(|s| s.trim().parse::<f64>().ok()),
                Read::Text | Read::Department | Read::Absent => None,
            });
        }
        aggregator.push(at_ms, &dim_values[..dims], &values)?;
    }
    Ok(aggregator.finish())
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
