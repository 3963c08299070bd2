//! ConveYour's analytics API (`/compat/conveyour`): arbitrary bodies.
#![no_main]

use axum::http::Method;
use convene_fuzz::{Input::Body, Route, route, run};
use libfuzzer_sys::fuzz_target;

const ROUTES: [Route; 2] = [
    route(Method::POST, "/compat/conveyour/api/analytics/identify", Body),
    route(Method::POST, "/compat/conveyour/api/analytics/track", Body),
];

fuzz_target!(|data: &[u8]| run(&ROUTES, data));
