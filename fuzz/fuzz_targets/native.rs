//! The native API's request parsers: JSON bodies (depth, size, trait
//! operations), ingest batches, imports, and the query strings of lists
//! and reports.
#![no_main]

use axum::http::Method;
use convene_fuzz::Input::{Body, Query};
use convene_fuzz::{Route, route, run};
use libfuzzer_sys::fuzz_target;

const ROUTES: [Route; 14] = [
    route(Method::POST, "/v1/contacts", Body),
    route(Method::PATCH, "/v1/contacts/1", Body),
    route(Method::POST, "/v1/contacts/batch", Body),
    route(Method::POST, "/v1/companies/batch", Body),
    route(Method::POST, "/v1/identify", Body),
    route(Method::POST, "/v1/track", Body),
    route(Method::POST, "/v1/batch", Body),
    route(Method::POST, "/v1/conversations/{conversation}/messages", Body),
    route(Method::POST, "/v1/reps", Body),
    route(Method::GET, "/v1/contacts", Query),
    route(Method::GET, "/v1/events", Query),
    route(Method::GET, "/v1/reports", Query),
    route(Method::GET, "/v1/conversations", Query),
    route(Method::GET, "/v1/exports/contacts", Query),
];

fuzz_target!(|data: &[u8]| run(&ROUTES, data));
