//! Prometheus metrics: requests by route and status, and a latency
//! histogram by route. Rendered at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;

use parking_lot::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        self.count += 1;
        self.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
    }

    /// Writes the buckets, sum and count; `labels` is `k="v",…` or empty.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Counters and histograms of the HTTP traffic and the ingest pipeline.
#[derive(Default)]
pub struct Metrics {
    /// By route: one lock and, once a route has been seen, no allocation per request.
    routes: Mutex<BTreeMap<String, RouteStats>>,
    ingest: Mutex<IngestCounters>,
}

/// One route's latency histogram and request counts.
#[derive(Default)]
struct RouteStats {
    latency: Histogram,
    /// (method, status, requests): a handful per route.
    requests: Vec<(String, u16, u64)>,
}

#[derive(Default)]
struct IngestCounters {
    accepted: u64,
    applied: u64,
    lag: Histogram,
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut routes = self.routes.lock();
        let stats = match routes.get_mut(route) {
            Some(stats) => stats,
            None => routes.entry(route.to_string()).or_default(),
        };
        stats.latency.observe(seconds);
        match stats.requests.iter_mut().find(|(m, s, _)| *s == status && m == method) {
            Some((_, _, n)) => *n += 1,
            None => stats.requests.push((method.to_string(), status, 1)),
        }
    }

    /// Records items accepted into the inbox.
    pub fn observe_accepted(&self, items: usize) {
        self.ingest.lock().accepted += items as u64;
    }

    /// Records an applier step: items processed and, per job, the seconds
    /// from acknowledgement to readable.
    pub fn observe_applied(&self, items: usize, lags: impl Iterator<Item = f64>) {
        let mut ingest = self.ingest.lock();
        ingest.applied += items as u64;
        for lag in lags {
            ingest.lag.observe(lag);
        }
    }

    /// The Prometheus text exposition; `backlog` is the store's current
    /// count of unapplied items.
    pub fn render(&self, backlog: u64) -> String {
        let mut out = String::new();
        {
            let ingest = self.ingest.lock();
            out.push_str("# HELP convene_ingest_backlog Items acknowledged and not yet applied.\n");
            out.push_str("# TYPE convene_ingest_backlog gauge\n");
            let _ = writeln!(out, "convene_ingest_backlog {backlog}");
            out.push_str("# HELP convene_ingest_accepted_total Items acknowledged into the inbox.\n");
            out.push_str("# TYPE convene_ingest_accepted_total counter\n");
            let _ = writeln!(out, "convene_ingest_accepted_total {}", ingest.accepted);
            out.push_str("# HELP convene_ingest_applied_total Items applied (including duplicates and failed rows).\n");
            out.push_str("# TYPE convene_ingest_applied_total counter\n");
            let _ = writeln!(out, "convene_ingest_applied_total {}", ingest.applied);
            out.push_str("# HELP convene_ingest_apply_lag_seconds Time from acknowledgement to applied, per job.\n");
            out.push_str("# TYPE convene_ingest_apply_lag_seconds histogram\n");
            ingest.lag.render(&mut out, "convene_ingest_apply_lag_seconds", "");
        }
        out.push_str("# HELP convene_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE convene_http_requests_total counter\n");
        let routes = self.routes.lock();
        for (route, stats) in routes.iter() {
            let mut requests = stats.requests.clone();
            requests.sort();
            for (method, status, n) in requests {
                let _ = writeln!(
                    out,
                    "convene_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str("# HELP convene_http_request_duration_seconds HTTP request latency by route.\n");
        out.push_str("# TYPE convene_http_request_duration_seconds histogram\n");
        for (route, stats) in routes.iter() {
            let h = &stats.latency;
            let route = escape(route);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "convene_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "convene_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "convene_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "convene_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
