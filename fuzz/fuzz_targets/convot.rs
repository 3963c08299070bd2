//! The Convot dialect (`/compat/convot/v1`): arbitrary bodies, queries and ids.
#![no_main]

use axum::http::Method;
use convene_fuzz::Input::{Body, Query, Segment};
use convene_fuzz::{Route, route, run};
use libfuzzer_sys::fuzz_target;

const ROUTES: [Route; 9] = [
    route(Method::POST, "/compat/convot/v1/contacts", Body),
    route(Method::GET, "/compat/convot/v1/conversations", Query),
    route(Method::POST, "/compat/convot/v1/conversations", Body),
    route(Method::GET, "/compat/convot/v1/conversations/{}", Segment),
    route(Method::PATCH, "/compat/convot/v1/conversations/{conversation}", Body),
    route(Method::GET, "/compat/convot/v1/conversations/{conversation}/messages", Query),
    route(Method::POST, "/compat/convot/v1/conversations/{conversation}/messages", Body),
    route(Method::GET, "/compat/convot/v1/conversations/{}/messages", Segment),
    route(Method::POST, "/compat/convot/v1/conversations/{}/messages", Segment),
];

fuzz_target!(|data: &[u8]| run(&ROUTES, data));
