//! The Conversion.ai dialect (`/compat/conversion/api/v1`): arbitrary bodies
//! on the batches, arbitrary path segments on the lookups.
#![no_main]

use axum::http::Method;
use convene_fuzz::Input::{Body, Segment};
use convene_fuzz::{Route, route, run};
use libfuzzer_sys::fuzz_target;

const ROUTES: [Route; 9] = [
    route(Method::POST, "/compat/conversion/api/v1/contacts/batch", Body),
    route(Method::POST, "/compat/conversion/api/v1/contacts/batch-subscription", Body),
    route(Method::POST, "/compat/conversion/api/v1/contacts/engagements", Body),
    route(Method::POST, "/compat/conversion/api/v1/companies/batch", Body),
    route(Method::GET, "/compat/conversion/api/v1/contacts/by-email/{}", Segment),
    route(Method::DELETE, "/compat/conversion/api/v1/contacts/by-email/{}", Segment),
    route(Method::GET, "/compat/conversion/api/v1/companies/by-external-id/{}", Segment),
    route(Method::DELETE, "/compat/conversion/api/v1/companies/by-external-id/{}", Segment),
    route(Method::POST, "/compat/conversion/api/v1/contacts/batch?dry_run=true", Body),
];

fuzz_target!(|data: &[u8]| run(&ROUTES, data));
