//! Charts drawn on the server as inline SVG: a horizontal bar chart
//! (categories → value) and a time series (one bar per day).
//!
//! Pure functions returning markup. Every chart is an
//! `<svg role="img">` labelled by its `<title>` and `<desc>`, each bar
//! carries a `<title>` tooltip and a value label, and only presentation
//! attributes are used (the console's CSP allows no inline style). maud
//! escapes every text.

use maud::{Markup, html};

/// Most categories a bar chart draws; the rest are summed as "Other".
pub const MAX_CATEGORIES: usize = 20;
/// Most days a time series draws (the last ones).
pub const MAX_DAYS: usize = 60;
/// The text of a chart without data.
pub const NO_DATA: &str = "No data in this period";

const WIDTH: f64 = 640.0;
const BAR: &str = "#0b57d0";
const TEXT: &str = "#1b1f24";
const MUTED: &str = "#57606a";
const GRID: &str = "#d0d7de";
const FONT: &str = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif";

/// What the values are, for their labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A number of things: integers.
    Count,
    /// Seconds: shown as `42 s`, `3m 20s`, `1h 05m`.
    Seconds,
}

impl Unit {
    /// A value for people.
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Count => number(v),
            Unit::Seconds => duration(v),
        }
    }
}

/// The labels of a chart.
#[derive(Debug, Clone, Copy)]
pub struct ChartText<'a> {
    /// Unique within the page: prefixes the ids of `<title>` and `<desc>`.
    pub id: &'a str,
    /// The chart's title.
    pub title: &'a str,
    /// A sentence describing the chart.
    pub desc: &'a str,
    /// The value axis's label ("Conversations", "Duration (seconds)").
    pub value_axis: &'a str,
    /// The category axis's label ("Rep", "Day").
    pub category_axis: &'a str,
    /// How values are written.
    pub unit: Unit,
}

/// A number without needless decimals: `12`, `12.5`, `0.25`.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if (v - v.round()).abs() < 1e-9 {
        return format!("{}", v.round() as i64);
    }
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Seconds for people: `42 s`, `3m 20s`, `1h 05m`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "—".into();
    }
    let total = secs.round().max(0.0) as u64;
    match total {
        0..60 => format!("{} s", number(secs.max(0.0))),
        60..3600 => format!("{}m {:02}s", total / 60, total % 60),
        _ => format!("{}h {:02}m", total / 3600, (total % 3600) / 60),
    }
}

/// A round scale for values up to `max`: (top of the axis, tick step),
/// steps of 1, 2 or 5 times a power of ten, at most five of them, integers
/// for counts.
pub fn nice_scale(max: f64, unit: Unit) -> (f64, f64) {
    if !max.is_finite() || max <= 0.0 {
        return (1.0, 1.0);
    }
    let raw = max / 5.0;
    let step = match unit {
        Unit::Count => nice_step(raw).max(1.0).round(),
        // Durations step by round clock amounts (30 s, 1 min, 5 min, 1 h…).
        Unit::Seconds if raw > 10.0 => {
            const CLOCK: [f64; 10] = [15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0];
            CLOCK.iter().copied().find(|s| *s >= raw).unwrap_or_else(|| 3600.0 * nice_step(raw / 3600.0))
        }
        Unit::Seconds => nice_step(raw),
    };
    let top = (max / step).ceil() * step;
    (top.max(step), step)
}

/// The smallest of 1, 2, 5 times a power of ten that is at least `raw` (> 0).
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude)
}

/// Keeps the `max - 1` largest categories (largest first) and sums the
/// others as "Other" when there are more than `max`.
pub fn top_categories(data: &[(String, f64)], max: usize) -> Vec<(String, f64)> {
    let mut sorted: Vec<(String, f64)> = data.iter().filter(|(_, v)| v.is_finite()).cloned().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if sorted.len() <= max.max(1) {
        return sorted;
    }
    let rest: f64 = sorted[max.max(1) - 1..].iter().map(|(_, v)| v).sum();
    sorted.truncate(max.max(1) - 1);
    sorted.push(("Other".to_string(), rest));
    sorted
}

/// Coordinates with one decimal at most.
fn c(v: f64) -> String {
    number((v * 10.0).round() / 10.0)
}

/// Text cut to `max` characters (with `…`).
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// The `<svg>` frame: role, labels, title and description.
fn frame(t: &ChartText, height: f64, content: Markup) -> Markup {
    let title_id = format!("{}-title", t.id);
    let desc_id = format!("{}-desc", t.id);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby=(format!("{title_id} {desc_id}"))
            viewBox=(format!("0 0 {} {}", c(WIDTH), c(height))) width=(c(WIDTH)) height=(c(height))
            font-family=(FONT) font-size="12" fill=(TEXT) {
            title id=(title_id) { (t.title) }
            desc id=(desc_id) { (t.desc) }
            (content)
        }
    }
}

fn empty(t: &ChartText) -> Markup {
    frame(
        t,
        80.0,
        html! {
            rect x="0.5" y="0.5" width=(c(WIDTH - 1.0)) height="79" fill="none" stroke=(GRID) {}
            text x=(c(WIDTH / 2.0)) y="45" text-anchor="middle" fill=(MUTED) font-size="14" { (NO_DATA) }
        },
    )
}

/// A horizontal bar chart of categories (at most [`MAX_CATEGORIES`],
/// largest first, the rest summed as "Other").
pub fn bar_chart(t: &ChartText, data: &[(String, f64)]) -> Markup {
    let bars = top_categories(data, MAX_CATEGORIES);
    if bars.is_empty() {
        return empty(t);
    }
    let (left, right, top, row) = (170.0, 90.0, 8.0, 26.0);
    let plot_w = WIDTH - left - right;
    let plot_h = row * bars.len() as f64;
    let height = top + plot_h + 48.0;
    let max = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let (scale_top, step) = nice_scale(max, t.unit);
    let x = |v: f64| left + plot_w * (v.max(0.0) / scale_top);
    let ticks: Vec<f64> = (0..=((scale_top / step).round() as usize)).map(|i| i as f64 * step).collect();
    let axis_y = top + plot_h;
    frame(
        t,
        height,
        html! {
            g aria-hidden="true" {
                @for tick in &ticks {
                    line x1=(c(x(*tick))) x2=(c(x(*tick))) y1=(c(top)) y2=(c(axis_y)) stroke=(GRID) {}
                    text x=(c(x(*tick))) y=(c(axis_y + 16.0)) text-anchor="middle" fill=(MUTED) { (t.unit.format(*tick)) }
                }
                line x1=(c(left)) x2=(c(left)) y1=(c(top)) y2=(c(axis_y)) stroke=(TEXT) {}
                text x=(c(left + plot_w / 2.0)) y=(c(axis_y + 38.0)) text-anchor="middle" font-weight="600" { (t.value_axis) }
                text x="4" y=(c(axis_y + 38.0)) font-weight="600" { (t.category_axis) }
            }
            @for (i, (label, value)) in bars.iter().enumerate() {
                @let y = top + row * i as f64;
                @let text = t.unit.format(*value);
                g {
                    title { (label) ": " (text) }
                    text x=(c(left - 6.0)) y=(c(y + row / 2.0 + 4.0)) text-anchor="end" { (clip(label, 24)) }
                    rect x=(c(left)) y=(c(y + 4.0)) width=(c((x(*value) - left).max(1.0))) height=(c(row - 8.0)) fill=(BAR) {}
                    text x=(c(x(*value) + 4.0)) y=(c(y + row / 2.0 + 4.0)) { (text) }
                }
            }
        },
    )
}

/// A time series: one bar per day (label `YYYY-MM-DD`, value or none), in
/// order; the last [`MAX_DAYS`] are drawn.
pub fn time_series(t: &ChartText, data: &[(String, Option<f64>)]) -> Markup {
    let days = &data[data.len().saturating_sub(MAX_DAYS)..];
    if days.iter().all(|(_, v)| v.is_none_or(|v| !v.is_finite())) {
        return empty(t);
    }
    let (left, right, top, bottom) = (64.0, 16.0, 12.0, 78.0);
    let plot_h = 180.0;
    let height = top + plot_h + bottom;
    let plot_w = WIDTH - left - right;
    let slot = plot_w / days.len() as f64;
    let bar_w = (slot * 0.8).max(1.0);
    let max = days.iter().filter_map(|(_, v)| *v).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let (scale_top, step) = nice_scale(max, t.unit);
    let y = |v: f64| top + plot_h - plot_h * (v.max(0.0) / scale_top);
    let ticks: Vec<f64> = (0..=((scale_top / step).round() as usize)).map(|i| i as f64 * step).collect();
    let label_every = days.len().div_ceil(12).max(1);
    let axis_y = top + plot_h;
    let show_values = days.len() <= 16;
    frame(
        t,
        height,
        html! {
            g aria-hidden="true" {
                @for tick in &ticks {
                    line x1=(c(left)) x2=(c(left + plot_w)) y1=(c(y(*tick))) y2=(c(y(*tick))) stroke=(GRID) {}
                    text x=(c(left - 6.0)) y=(c(y(*tick) + 4.0)) text-anchor="end" fill=(MUTED) { (t.unit.format(*tick)) }
                }
                line x1=(c(left)) x2=(c(left + plot_w)) y1=(c(axis_y)) y2=(c(axis_y)) stroke=(TEXT) {}
                @for (i, (label, _)) in days.iter().enumerate() {
                    @if (days.len() - 1 - i).is_multiple_of(label_every) {
                        @let lx = left + slot * (i as f64 + 0.5);
                        text x=(c(lx)) y=(c(axis_y + 14.0)) text-anchor="end"
                            transform=(format!("rotate(-40 {} {})", c(lx), c(axis_y + 14.0))) fill=(MUTED) { (label) }
                    }
                }
                text x=(c(left + plot_w / 2.0)) y=(c(height - 6.0)) text-anchor="middle" font-weight="600" { (t.category_axis) }
                text x="14" y=(c(top + plot_h / 2.0)) text-anchor="middle" font-weight="600"
                    transform=(format!("rotate(-90 14 {})", c(top + plot_h / 2.0))) { (t.value_axis) }
            }
            @for (i, (label, value)) in days.iter().enumerate() {
                @if let Some(v) = value.filter(|v| v.is_finite()) {
                    @let bx = left + slot * i as f64 + (slot - bar_w) / 2.0;
                    @let text = t.unit.format(v);
                    g {
                        title { (label) ": " (text) }
                        rect x=(c(bx)) y=(c(y(v))) width=(c(bar_w)) height=(c((axis_y - y(v)).max(1.0))) fill=(BAR) {}
                        @if show_values {
                            text x=(c(bx + bar_w / 2.0)) y=(c(y(v) - 4.0)) text-anchor="middle" font-size="11" { (text) }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(unit: Unit) -> ChartText<'static> {
        ChartText {
            id: "c1",
            title: "Conversations per rep",
            desc: "How many conversations each rep had",
            value_axis: "Conversations",
            category_axis: "Rep",
            unit,
        }
    }

    #[test]
    fn bars_hold_labels_values_and_no_inline_style() {
        let data = vec![("mila".to_string(), 12.0), ("<liam & co>".to_string(), 3.0)];
        let svg = bar_chart(&text(Unit::Count), &data).into_string();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains(r#"role="img""#) && svg.contains(r#"aria-labelledby="c1-title c1-desc""#), "{svg}");
        assert!(svg.contains(r#"<title id="c1-title">Conversations per rep</title>"#), "{svg}");
        assert!(svg.contains("<desc id=\"c1-desc\">"), "{svg}");
        assert!(svg.contains(">mila<") && svg.contains(">12<") && svg.contains("<title>mila: 12</title>"), "{svg}");
        assert!(svg.contains("&lt;liam &amp; co&gt;") && !svg.contains("<liam"), "escaped: {svg}");
        assert!(svg.contains(">Conversations<") && svg.contains(">Rep<"), "axis labels: {svg}");
        assert!(!svg.contains("style="), "{svg}");
        assert!(!svg.contains(NO_DATA));
    }

    #[test]
    fn time_series_draws_days_and_skips_missing_values() {
        let data = vec![
            ("2026-01-01".to_string(), Some(90.0)),
            ("2026-01-02".to_string(), None),
            ("2026-01-03".to_string(), Some(200.0)),
        ];
        let svg = time_series(&text(Unit::Seconds), &data).into_string();
        assert!(svg.contains("<title>2026-01-01: 1m 30s</title>"), "{svg}");
        assert!(svg.contains("<title>2026-01-03: 3m 20s</title>"), "{svg}");
        assert!(!svg.contains("<title>2026-01-02:"), "{svg}");
        assert!(svg.contains(">2026-01-02<"), "every day is on the axis: {svg}");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(!svg.contains("style="), "{svg}");
        // At most MAX_DAYS drawn: the last ones.
        let long: Vec<_> = (0..100).map(|i| (format!("d{i:03}"), Some(f64::from(i)))).collect();
        let svg = time_series(&text(Unit::Count), &long).into_string();
        assert_eq!(svg.matches("<rect").count(), MAX_DAYS);
        assert!(svg.contains("<title>d099: 99</title>") && !svg.contains("<title>d039: 39</title>"));
    }

    #[test]
    fn empty_data_says_so() {
        for svg in [
            bar_chart(&text(Unit::Count), &[]).into_string(),
            time_series(&text(Unit::Count), &[]).into_string(),
            time_series(&text(Unit::Count), &[("2026-01-01".into(), None)]).into_string(),
        ] {
            assert!(svg.contains(NO_DATA) && svg.contains(r#"role="img""#) && svg.contains("<desc"), "{svg}");
            assert!(!svg.contains("style="), "{svg}");
        }
    }

    #[test]
    fn many_categories_fold_into_other() {
        let data: Vec<_> = (0..30).map(|i| (format!("rep{i:02}"), f64::from(i))).collect();
        let top = top_categories(&data, MAX_CATEGORIES);
        assert_eq!(top.len(), MAX_CATEGORIES);
        assert_eq!(top[0], ("rep29".to_string(), 29.0));
        // rep00..=rep10 are summed: 0 + 1 + … + 10.
        assert_eq!(top[MAX_CATEGORIES - 1], ("Other".to_string(), 55.0));
        let svg = bar_chart(&text(Unit::Count), &data).into_string();
        assert_eq!(svg.matches("<rect").count(), MAX_CATEGORIES);
        assert!(svg.contains("<title>Other: 55</title>"), "{svg}");
    }

    #[test]
    fn scales_are_round() {
        assert_eq!(nice_scale(3.0, Unit::Count), (3.0, 1.0));
        assert_eq!(nice_scale(87.0, Unit::Count), (100.0, 20.0));
        assert_eq!(nice_scale(0.0, Unit::Count), (1.0, 1.0));
        assert_eq!(nice_scale(1234.0, Unit::Seconds), (1500.0, 300.0));
        assert_eq!(nice_scale(195.0, Unit::Seconds), (240.0, 60.0));
        assert_eq!(nice_scale(8.0, Unit::Seconds), (8.0, 2.0));
        assert_eq!(nice_scale(40_000.0, Unit::Seconds), (54_000.0, 18_000.0));
        assert_eq!(nice_scale(200_000.0, Unit::Seconds), (216_000.0, 72_000.0));
        let (top, step) = nice_scale(0.3, Unit::Seconds);
        assert!((top - 0.3).abs() < 1e-9 && (step - 0.1).abs() < 1e-9, "{top} {step}");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(duration(3725.0), "1h 02m");
    }
}
