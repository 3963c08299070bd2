//! The Converz dialect (`/compat/converz/api/v1`): arbitrary table bodies
//! and arbitrary list and report queries.
#![no_main]

use axum::http::Method;
use convene_fuzz::Input::{Body, Query};
use convene_fuzz::{Route, route, run};
use libfuzzer_sys::fuzz_target;

const ROUTES: [Route; 5] = [
    route(Method::POST, "/compat/converz/api/v1/reps", Body),
    route(Method::POST, "/compat/converz/api/v1/calls", Body),
    route(Method::GET, "/compat/converz/api/v1/reps", Query),
    route(Method::GET, "/compat/converz/api/v1/calls", Query),
    route(Method::GET, "/compat/converz/api/v1/report", Query),
];

fuzz_target!(|data: &[u8]| run(&ROUTES, data));
