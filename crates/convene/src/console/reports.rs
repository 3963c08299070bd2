//! The reports dashboard: a period picker, summary cards and three charts
//! (conversations per day, conversations per rep, events by name) drawn as
//! SVG on the server, each with its numbers as a table and as a CSV
//! download.
//!
//! Every chart is a report query built exactly as `GET /v1/reports` builds
//! it ([`query_from_params`], [`Metric::parse`]), run by the same store
//! method: the dashboard shows the numbers the API gives. A page runs a
//! fixed number of queries (the three charts and one ungrouped summary),
//! concurrently.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{Days, Utc};
use convene_core::Error;
use convene_core::field::{Entity, FieldType};
use convene_core::report::{Metric, ReportQuery, Source};
use maud::{Markup, html};
use serde_json::{Map, Value};

use super::forms::query;
use super::layout::{Flash, Section, page};
use super::session::{Access, ConsoleError, ConsoleResult, ConsoleUser};
use super::svg::{self, ChartText, Unit};
use crate::api::reports::{field_types, query_from_params};
use crate::state::AppState;
use convene_core::csv_cell::csv_text;

/// Days of the default period (ending today, included).
const DEFAULT_DAYS: u64 = 30;
/// Longest period whose days without data are drawn as zero.
const MAX_FILLED_DAYS: usize = 3660;
/// Label of a group without a value for its dimension (no rep).
const NONE_LABEL: &str = "(none)";

/// The dashboard's charts, each also a CSV download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chart {
    PerDay,
    PerRep,
    EventsByName,
}

impl Chart {
    const ALL: [Chart; 3] = [Chart::PerDay, Chart::PerRep, Chart::EventsByName];

    /// The path segment (without `.csv`).
    fn name(self) -> &'static str {
        match self {
            Chart::PerDay => "conversations-per-day",
            Chart::PerRep => "conversations-per-rep",
            Chart::EventsByName => "events-by-name",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Chart::PerDay => "Conversations per day",
            Chart::PerRep => "Conversations per rep",
            Chart::EventsByName => "Events by name",
        }
    }

    fn source(self) -> Source {
        match self {
            Chart::PerDay | Chart::PerRep => Source::Conversations,
            Chart::EventsByName => Source::Events,
        }
    }

    fn group_by(self) -> &'static str {
        match self {
            Chart::PerDay => "day",
            Chart::PerRep => "rep",
            Chart::EventsByName => "event",
        }
    }

    fn metrics(self) -> &'static [&'static str] {
        match self {
            Chart::PerDay => &["count", "avg:duration"],
            Chart::PerRep => &["count", "sum:duration"],
            Chart::EventsByName => &["count"],
        }
    }

    /// Reads `<name>.csv`.
    fn from_file(file: &str) -> Option<Chart> {
        let name = file.strip_suffix(".csv")?;
        Chart::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The period asked for (as sent, defaults filled in).
#[derive(Debug, Clone)]
struct Period {
    from: String,
    to: String,
    tz: String,
}

impl Period {
    /// `from`, `to` (exclusive) and `tz` of the query; by default the last
    /// 30 days up to today (in `tz`, UTC by default), `to` being tomorrow.
    fn from_query(q: &HashMap<String, String>) -> Period {
        let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_string);
        let tz = get("tz").unwrap_or_else(|| "UTC".to_string());
        let mut zone = ReportQuery::new(Source::Conversations);
        let today = match zone.set_tz(&tz) {
            Ok(()) => Utc::now().with_timezone(&zone.tz).date_naive(),
            Err(_) => Utc::now().date_naive(),
        };
        let tomorrow = today.checked_add_days(Days::new(1)).unwrap_or(today);
        let start = tomorrow.checked_sub_days(Days::new(DEFAULT_DAYS)).unwrap_or(today);
        Period {
            from: get("from").unwrap_or_else(|| start.format("%Y-%m-%d").to_string()),
            to: get("to").unwrap_or_else(|| tomorrow.format("%Y-%m-%d").to_string()),
            tz,
        }
    }

    /// The query string of the period.
    fn query(&self) -> String {
        query(&[("from", &self.from), ("to", &self.to), ("tz", &self.tz)])
    }

    /// The local days of the period, in order (none when it is too long to draw).
    fn days(&self) -> Result<Vec<String>, Error> {
        let mut q = ReportQuery::new(Source::Conversations);
        q.set_tz(&self.tz)?;
        let (from, to) = (q.time_param(&self.from, "from")?, q.time_param(&self.to, "to")?);
        let first = from.with_timezone(&q.tz).date_naive();
        let last = (to - chrono::TimeDelta::milliseconds(1)).with_timezone(&q.tz).date_naive();
        let mut out = Vec::new();
        let mut day = first;
        while day <= last && out.len() <= MAX_FILLED_DAYS {
            out.push(day.format("%Y-%m-%d").to_string());
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        if out.len() > MAX_FILLED_DAYS {
            out.clear();
        }
        Ok(out)
    }
}

/// A report's answer: its column names (bucket, dimensions, metrics) and
/// one object per group.
struct Table {
    columns: Vec<String>,
    rows: Vec<Map<String, Value>>,
}

impl Table {
    fn num(row: &Map<String, Value>, key: &str) -> Option<f64> {
        row.get(key).and_then(Value::as_f64)
    }

    fn label(row: &Map<String, Value>, key: &str) -> String {
        match row.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => NONE_LABEL.to_string(),
            Some(other) => other.to_string(),
        }
    }

    /// (label of `key`, value of `metric`) per row.
    fn pairs(&self, key: &str, metric: &str) -> Vec<(String, f64)> {
        self.rows.iter().map(|r| (Table::label(r, key), Table::num(r, metric).unwrap_or(0.0))).collect()
    }

    fn total(&self, metric: &str) -> f64 {
        self.rows.iter().filter_map(|r| Table::num(r, metric)).sum()
    }
}

/// Runs a report over the period, built as `GET /v1/reports` builds it.
async fn run(
    state: &AppState,
    ws: &str,
    fields: &HashMap<String, FieldType>,
    period: &Period,
    source: Source,
    group_by: Option<&str>,
    metrics: &[&str],
) -> Result<Table, Error> {
    let none = HashMap::new();
    let fields = match source {
        Source::Conversations => fields,
        Source::Events => &none,
    };
    let mut params = HashMap::from([
        ("from".to_string(), period.from.clone()),
        ("to".to_string(), period.to.clone()),
        ("tz".to_string(), period.tz.clone()),
    ]);
    if let Some(g) = group_by {
        params.insert("group_by".to_string(), g.to_string());
    }
    let mut q = query_from_params(source, &params, &["source", "metrics"], fields)?;
    for spec in metrics {
        q.metrics.push(Metric::parse(spec, source, fields)?);
    }
    q.validate()?;
    let columns = q
        .bucket
        .map(|b| b.as_str().to_string())
        .into_iter()
        .chain(q.dimensions.iter().map(|d| d.key().to_string()))
        .chain(q.metrics.iter().map(|m| m.name.clone()))
        .collect();
    let result = state.store.report(ws, &q).await?;
    let rows = match serde_json::to_value(q.rows(result)) {
        Ok(Value::Array(rows)) => rows
            .into_iter()
            .filter_map(|r| match r {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect(),
        Ok(_) => Vec::new(),
        Err(e) => return Err(Error::Internal(format!("report rows: {e}"))),
    };
    Ok(Table { columns, rows })
}

/// Runs a chart's report.
async fn run_chart(
    state: &AppState,
    ws: &str,
    fields: &HashMap<String, FieldType>,
    period: &Period,
    chart: Chart,
) -> Result<Table, Error> {
    run(state, ws, fields, period, chart.source(), Some(chart.group_by()), chart.metrics()).await
}

/// The fields of conversations (for the query model's names).
async fn conversation_fields(state: &AppState, ws: &str) -> Result<HashMap<String, FieldType>, Error> {
    field_types(state, ws, Entity::Conversation).await
}

/// The dashboard's numbers.
struct Dashboard {
    summary: Table,
    per_day: Table,
    per_rep: Table,
    events: Table,
    days: Vec<String>,
}

async fn load(state: &AppState, ws: &str, period: &Period) -> Result<Dashboard, Error> {
    let days = period.days()?;
    let fields = conversation_fields(state, ws).await?;
    let (summary, per_day, per_rep, events) = tokio::try_join!(
        run(state, ws, &fields, period, Source::Conversations, None, &["count", "avg:duration"]),
        run_chart(state, ws, &fields, period, Chart::PerDay),
        run_chart(state, ws, &fields, period, Chart::PerRep),
        run_chart(state, ws, &fields, period, Chart::EventsByName),
    )?;
    Ok(Dashboard { summary, per_day, per_rep, events, days })
}

/// A column's name for people and how its values are written.
fn column_label(key: &str) -> (&str, Option<Unit>) {
    match key {
        "day" => ("Day", None),
        "rep_id" => ("Rep", None),
        "event" => ("Event", None),
        "count" => ("Count", Some(Unit::Count)),
        "avg_duration" => ("Average duration", Some(Unit::Seconds)),
        "sum_duration" => ("Total duration", Some(Unit::Seconds)),
        other => (other, None),
    }
}

/// The numbers of a chart as an accessible table, folded.
fn data_table(caption: &str, table: &Table) -> Markup {
    html! {
        details {
            summary { "Table" }
            div.table-wrap {
                table {
                    caption { (caption) }
                    thead { tr { @for c in &table.columns { th scope="col" { (column_label(c).0) } } } }
                    tbody {
                        @for row in &table.rows {
                            tr {
                                @for (i, c) in table.columns.iter().enumerate() {
                                    @let text = match (column_label(c).1, Table::num(row, c)) {
                                        (Some(unit), Some(v)) => unit.format(v),
                                        (Some(_), None) => "—".to_string(),
                                        (None, _) => Table::label(row, c),
                                    };
                                    @if i == 0 { th scope="row" { (text) } } @else { td { (text) } }
                                }
                            }
                        }
                        @if table.rows.is_empty() {
                            tr { td colspan=(table.columns.len().max(1)) { (svg::NO_DATA) } }
                        }
                    }
                }
            }
        }
    }
}

/// A chart's section: heading, CSV link, drawings, table.
fn section(chart: Chart, period: &Period, table: &Table, drawings: Markup) -> Markup {
    let id = format!("{}-heading", chart.name());
    html! {
        section aria-labelledby=(id) {
            h2 #(id) { (chart.title()) }
            p {
                a href=(format!("/console/reports/{}.csv{}", chart.name(), period.query())) download {
                    "Download CSV"
                }
            }
            div.chart { (drawings) }
            (data_table(chart.title(), table))
        }
    }
}

fn per_day_section(period: &Period, d: &Dashboard) -> Markup {
    let mut by_day: HashMap<String, (f64, Option<f64>)> = HashMap::new();
    for r in &d.per_day.rows {
        by_day.insert(Table::label(r, "day"), (Table::num(r, "count").unwrap_or(0.0), Table::num(r, "avg_duration")));
    }
    let mut days = d.days.clone();
    if days.is_empty() {
        days = d.per_day.rows.iter().map(|r| Table::label(r, "day")).collect();
    }
    let counts: Vec<(String, Option<f64>)> =
        days.iter().map(|day| (day.clone(), Some(by_day.get(day).map_or(0.0, |v| v.0)))).collect();
    let avgs: Vec<(String, Option<f64>)> =
        days.iter().map(|day| (day.clone(), by_day.get(day).and_then(|v| v.1))).collect();
    let drawings = html! {
        (svg::time_series(&ChartText {
            id: "chart-per-day-count",
            title: "Conversations per day",
            desc: &format!("Number of conversations each day from {} to {} ({}).", period.from, period.to, period.tz),
            value_axis: "Conversations",
            category_axis: "Day",
            unit: Unit::Count,
        }, &counts))
        (svg::time_series(&ChartText {
            id: "chart-per-day-avg",
            title: "Average duration per day",
            desc: "Average duration of the conversations with a duration, each day.",
            value_axis: "Average duration",
            category_axis: "Day",
            unit: Unit::Seconds,
        }, &avgs))
    };
    section(Chart::PerDay, period, &d.per_day, drawings)
}

fn per_rep_section(period: &Period, d: &Dashboard) -> Markup {
    let drawings = html! {
        (svg::bar_chart(&ChartText {
            id: "chart-per-rep-count",
            title: "Conversations per rep",
            desc: "Number of conversations of each rep in the period, largest first.",
            value_axis: "Conversations",
            category_axis: "Rep",
            unit: Unit::Count,
        }, &d.per_rep.pairs("rep_id", "count")))
        (svg::bar_chart(&ChartText {
            id: "chart-per-rep-duration",
            title: "Total duration per rep",
            desc: "Total duration of the conversations of each rep in the period, largest first.",
            value_axis: "Total duration",
            category_axis: "Rep",
            unit: Unit::Seconds,
        }, &d.per_rep.pairs("rep_id", "sum_duration")))
    };
    section(Chart::PerRep, period, &d.per_rep, drawings)
}

fn events_section(period: &Period, d: &Dashboard) -> Markup {
    let drawings = svg::bar_chart(
        &ChartText {
            id: "chart-events-count",
            title: "Events by name",
            desc: "Number of events of each name in the period, largest first.",
            value_axis: "Events",
            category_axis: "Event",
            unit: Unit::Count,
        },
        &d.events.pairs("event", "count"),
    );
    section(Chart::EventsByName, period, &d.events, drawings)
}

fn cards(d: &Dashboard) -> Markup {
    let total = d.summary.rows.first().and_then(|r| Table::num(r, "count")).unwrap_or(0.0);
    let avg = d.summary.rows.first().and_then(|r| Table::num(r, "avg_duration"));
    let events = d.events.total("count");
    html! {
        section aria-labelledby="summary-heading" {
            h2 #summary-heading { "Summary" }
            div.cards {
                div.card {
                    h3 { "Conversations" }
                    p { strong { (Unit::Count.format(total)) } }
                }
                div.card {
                    h3 { "Average duration" }
                    p {
                        @match avg {
                            Some(v) => strong { (Unit::Seconds.format(v)) },
                            None => span.muted { "—" },
                        }
                    }
                }
                div.card {
                    h3 { "Events" }
                    p { strong { (Unit::Count.format(events)) } }
                }
            }
        }
    }
}

fn picker(period: &Period) -> Markup {
    html! {
        form.filters method="get" action="/console/reports" aria-label="Period" {
            div {
                label for="report-from" { "From" }
                input #report-from type="date" name="from" value=(period.from) required;
            }
            div {
                label for="report-to" { "To " span.muted { "(exclusive)" } }
                input #report-to type="date" name="to" value=(period.to) required;
            }
            div {
                label for="report-tz" { "Time zone" }
                input #report-tz type="text" name="tz" value=(period.tz) autocomplete="off" spellcheck="false";
            }
            div { button type="submit" { "Show" } }
        }
    }
}

/// `GET /console/reports`: the dashboard for a period.
pub async fn dashboard(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    let period = Period::from_query(&q);
    let loaded = match load(&state, &user.ws, &period).await {
        Ok(d) => Ok(d),
        Err(e) if e.code().status() < 500 => Err(e.public_message()),
        Err(e) => return Err(ConsoleError::Core(e)),
    };
    let body = html! {
        h1 { "Reports" }
        (picker(&period))
        @match &loaded {
            Err(message) => p.error role="alert" { (message) },
            Ok(d) => {
                (cards(d))
                (per_day_section(&period, d))
                (per_rep_section(&period, d))
                (events_section(&period, d))
            }
        }
    };
    Ok(page(&user, Section::Reports, "Reports", &Flash::from_query(&q), body).into_response())
}

fn csv_cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::String(s)) => csv_text(s),
        Some(other) => csv_text(&other.to_string()),
    }
}

/// The table as CSV: a header row, one row per group, CRLF line ends.
fn to_csv(table: &Table) -> String {
    let mut out = String::new();
    let header: Vec<String> = table.columns.iter().map(|c| csv_text(c)).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for row in &table.rows {
        let cells: Vec<String> = table.columns.iter().map(|c| csv_cell(row.get(c))).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A period bound safe in a file name.
fn file_part(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(40).collect()
}

/// `GET /console/reports/{chart}`: a chart's data as CSV (`{chart}` is
/// `<name>.csv`).
pub async fn csv(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(chart): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ConsoleResult<Response> {
    user.require(Access::Read)?;
    let chart = Chart::from_file(&chart).ok_or(ConsoleError::Core(Error::NotFound { entity: "chart" }))?;
    let period = Period::from_query(&q);
    let fields = match chart.source() {
        Source::Conversations => conversation_fields(&state, &user.ws).await?,
        Source::Events => HashMap::new(),
    };
    let table = run_chart(&state, &user.ws, &fields, &period, chart).await?;
    let filename = format!("{}-{}-{}.csv", chart.name(), file_part(&period.from), file_part(&period.to));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
        ],
        to_csv(&table),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    #[test]
    fn csv_quotes_and_neutralises_formulas() {
        assert_eq!(csv_text("plain"), "plain");
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_text("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_text("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_text("+1"), "'+1");
        assert_eq!(csv_text("-x"), "'-x");
        assert_eq!(csv_text("@cmd"), "'@cmd");
        assert_eq!(csv_text("=HYPERLINK(\"x\",\"y\")"), "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\"");
        assert_eq!(csv_cell(Some(&serde_json::json!(-3.5))), "-3.5", "numbers stay numbers");
        assert_eq!(csv_cell(Some(&Value::Null)), "");
    }

    #[test]
    fn charts_are_named_with_csv() {
        assert_eq!(Chart::from_file("events-by-name.csv"), Some(Chart::EventsByName));
        assert_eq!(Chart::from_file("events-by-name"), None);
        assert_eq!(Chart::from_file("planets.csv"), None);
        assert_eq!(file_part("2026-01-01T00:00:00+01:00"), "2026-01-01T00_00_00_01_00");
    }

    #[test]
    fn the_default_period_is_thirty_days_to_tomorrow() {
        let before = Utc::now().date_naive();
        let p = Period::from_query(&HashMap::new());
        let after = Utc::now().date_naive();
        let from = NaiveDate::parse_from_str(&p.from, "%Y-%m-%d").unwrap();
        let to = NaiveDate::parse_from_str(&p.to, "%Y-%m-%d").unwrap();
        assert_eq!((to - from).num_days(), 30);
        assert!([before, after].iter().any(|d| d.succ_opt() == Some(to)), "{to}");
        assert_eq!(p.tz, "UTC");
        assert_eq!(p.days().unwrap().len(), 30);
    }
}
