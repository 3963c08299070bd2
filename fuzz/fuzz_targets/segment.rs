//! Segment's tracking API (`/compat/segment`): arbitrary bodies on every route.
#![no_main]

use axum::http::Method;
use convene_fuzz::{Input::Body, Route, route, run};
use libfuzzer_sys::fuzz_target;

const ROUTES: [Route; 8] = [
    route(Method::POST, "/compat/segment/v1/identify", Body),
    route(Method::POST, "/compat/segment/v1/track", Body),
    route(Method::POST, "/compat/segment/v1/page", Body),
    route(Method::POST, "/compat/segment/v1/screen", Body),
    route(Method::POST, "/compat/segment/v1/group", Body),
    route(Method::POST, "/compat/segment/v1/alias", Body),
    route(Method::POST, "/compat/segment/v1/batch", Body),
    route(Method::POST, "/compat/segment/v1/import", Body),
];

fuzz_target!(|data: &[u8]| run(&ROUTES, data));
