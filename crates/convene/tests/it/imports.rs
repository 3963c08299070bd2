//! Roster import: `POST /v1/imports` (CSV and NDJSON queued as a job with
//! per-row errors, limits) and the `convene import` command against a
//! running server and straight into a data directory.

use std::path::{Path, PathBuf};
use std::process::Output;

use reqwest::Method;
use serde_json::{Value, json};

use crate::ingest_support::{all_contacts, all_pages, contact_by, find_contact, wait_job};
use crate::support::{TestApp, assert_error, body, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_convene");

/// `POST /v1/imports?<query>` with a raw body of `content_type`.
async fn post_import(app: &TestApp, token: &str, query: &str, content_type: &str, data: String) -> (u16, Value) {
    let r = app
        .with_token(Method::POST, &format!("/v1/imports?{query}"), token)
        .header("content-type", content_type)
        .body(data)
        .send()
        .await
        .unwrap();
    body(r).await
}

/// Posts an import, asserts 202, waits for the job and returns it.
async fn import_job(app: &TestApp, token: &str, query: &str, content_type: &str, data: &str) -> Value {
    let (status, answer) = post_import(app, token, query, content_type, data.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    wait_job(app, token, answer["job_id"].as_str().unwrap()).await
}

/// A job's errors as (row, field).
fn error_rows(job: &Value) -> Vec<(u64, String)> {
    let mut rows: Vec<(u64, String)> = job["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["field"].as_str().unwrap_or("").to_string()))
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn imports_a_csv_as_a_job_with_per_row_errors() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, f) = app.post("/v1/fields", &token, json!({"name": "score", "type": "number"})).await;
    assert_eq!(status, 201, "{f}");
    app.contact(&token, json!({"email": "old@x.io", "traits": {"tags": ["stale", "keep"]}})).await;
    let csv = "email,first_name,score,tags+,tags-,note\n\
               ann@x.io,Ann,500,vip;new,,\"two\nlines\"\n\
               not-an-email,Bob,1,,,\n\
               cy@x.io,Cy,lots,,,\n\
               ,Dee,2,,,\n\
               old@x.io,Old,3,fresh,stale,\n";
    let job = import_job(&app, &token, "entity=contacts&id_column=email", "text/csv", csv).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!((job["total"].as_u64(), job["applied"].as_u64(), job["failed"].as_u64()), (Some(5), Some(2), Some(3)));
    assert_eq!(
        error_rows(&job),
        vec![(1, "email".to_string()), (2, "score".to_string()), (3, "email".to_string())],
        "{job}"
    );
    let ann = contact_by(&app, &token, "email", "ann@x.io").await;
    assert_eq!(ann["traits"]["score"], 500, "the number field's coercion applies: {ann}");
    assert_eq!(ann["traits"]["tags"], json!(["vip", "new"]));
    assert_eq!(ann["traits"]["note"], "two\nlines");
    let old = contact_by(&app, &token, "email", "old@x.io").await;
    assert_eq!(old["traits"]["tags"], json!(["keep", "fresh"]), "{old}");
    assert!(find_contact(&app, &token, "email", "cy@x.io").await.is_none(), "a failed row writes nothing");

    // The same file again changes nothing: every row, `updated_at` included, is as it was.
    let before = all_contacts(&app, &token).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = import_job(&app, &token, "entity=contacts&id_column=email", "text/csv", csv).await;
    assert_eq!(error_rows(&again), error_rows(&job));
    assert_eq!(all_contacts(&app, &token).await, before);
}

#[tokio::test]
async fn imports_ndjson_and_json_arrays() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let ndjson = "{\"external_id\": \"u-1\", \"email\": \"u1@x.io\", \"traits\": {\"plan\": \"pro\"}, \"tags+\": [\"a\"]}\n\
                  \n\
                  not json\n\
                  {\"external_id\": \"u-2\", \"age\": 41, \"vip\": true}\n\
                  {\"email\": \"nobody@x.io\"}\n";
    let job = import_job(&app, &token, "entity=contacts&id_column=external_id", "application/x-ndjson", ndjson).await;
    assert_eq!(job["total"], 4, "blank lines are not rows: {job}");
    assert_eq!(error_rows(&job), vec![(1, String::new()), (3, "external_id".to_string())], "{job}");
    let u1 = contact_by(&app, &token, "external_id", "u-1").await;
    assert_eq!(
        (&u1["email"], &u1["traits"]["plan"], &u1["traits"]["tags"]),
        (&json!("u1@x.io"), &json!("pro"), &json!(["a"]))
    );
    let u2 = contact_by(&app, &token, "external_id", "u-2").await;
    assert_eq!((&u2["traits"]["age"], &u2["traits"]["vip"]), (&json!(41), &json!(true)));

    let array = json!([{"email": "arr@x.io", "city": "Lyon"}]).to_string();
    let job = import_job(&app, &token, "entity=contacts", "application/json", &array).await;
    assert_eq!(job["status"], "applied", "{job}");
    assert_eq!(contact_by(&app, &token, "email", "arr@x.io").await["traits"]["city"], "Lyon");
}

#[tokio::test]
async fn import_limits_and_parameters_are_named() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let csv = "email\na@x.io\n".to_string();
    for (query, field) in [
        ("entity=people", "entity"),
        ("id_column=email", "entity"),
        ("entity=reps&id_column=email", "id_column"),
        ("entity=companies&id_column=domain", "id_column"),
        ("entity=contacts&id_column=name", "id_column"),
    ] {
        let (status, err) = post_import(&app, &token, query, "text/csv", csv.clone()).await;
        let err = assert_error(status, &err, 400, "validation_error");
        assert_eq!(err["field"], field, "{query}: {err}");
    }
    let (status, err) = post_import(&app, &token, "entity=contacts", "text/plain", csv.clone()).await;
    assert_error(status, &err, 415, "unsupported_media_type");
    let (status, err) = post_import(&app, &token, "entity=contacts&id_column=mobile", "text/csv", csv.clone()).await;
    let err = assert_error(status, &err, 400, "validation_error");
    assert_eq!(err["field"], "mobile", "the id column must be in the header: {err}");

    let big = format!("email,pad\n{}", format!("a@x.io,{}\n", "x".repeat(1000)).repeat(33 * 1024));
    let (status, err) = post_import(&app, &token, "entity=contacts", "text/csv", big).await;
    let err = assert_error(status, &err, 413, "payload_too_large");
    assert!(err["message"].as_str().unwrap().contains(&(32 * 1024 * 1024).to_string()), "{err}");

    let mut many = String::from("email\n");
    for i in 0..100_001 {
        many.push_str(&format!("u{i}@x.io\n"));
    }
    let (status, err) = post_import(&app, &token, "entity=contacts", "text/csv", many).await;
    let err = assert_error(status, &err, 413, "payload_too_large");
    assert!(err["message"].as_str().unwrap().contains("100000"), "{err}");

    let reader = app.key_with_scopes(&app.workspace("other").await, &["contacts:read"]).await;
    let (status, err) = post_import(&app, &reader, "entity=contacts", "text/csv", csv).await;
    assert_error(status, &err, 403, "forbidden");
}

/// Posts an import of companies or reps, asserts 200 and returns the report.
async fn import_now(app: &TestApp, token: &str, query: &str, content_type: &str, data: &str) -> Value {
    let (status, report) = post_import(app, token, query, content_type, data.to_string()).await;
    assert_eq!(status, 200, "{report}");
    report
}

/// A synchronous import's results as (row, line, status, field at fault).
fn results(report: &Value) -> Vec<(u64, u64, String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["line"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
                r["error"]["field"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn result(row: u64, line: u64, status: &str, field: &str) -> (u64, u64, String, String) {
    (row, line, status.to_string(), field.to_string())
}

/// (created, updated, unchanged, failed) of a report.
fn counts(report: &Value) -> [u64; 4] {
    ["created", "updated", "unchanged", "failed"].map(|k| report[k].as_u64().unwrap())
}

#[tokio::test]
async fn imports_companies_with_a_result_per_row_and_again_changes_nothing() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, old) =
        app.post("/v1/companies", &token, json!({"external_id": "old", "traits": {"size": "1-10"}})).await;
    assert_eq!(status, 201, "{old}");
    let csv = "external_id,domain,seats,industries+,note\n\
               acme,https://Acme.com/,50,saas;b2b,\n\
               bad,not a domain,1,,\n\
               ,nobody.io,2,,\n\
               old,old.io,7,,\"two\nlines\"\n\
               acme,,,b2c,\n";
    let report = import_now(&app, &token, "entity=companies", "text/csv", csv).await;
    assert_eq!((report["entity"].as_str(), report["rows"].as_u64()), (Some("companies"), Some(5)), "{report}");
    assert_eq!(counts(&report), [1, 2, 0, 2], "{report}");
    assert_eq!(
        results(&report),
        vec![
            result(0, 2, "created", ""),
            result(1, 3, "failed", "domain"),
            result(2, 4, "failed", "external_id"),
            result(3, 5, "updated", ""),
            result(4, 7, "updated", ""),
        ],
        "{report}"
    );
    let reason = report["results"][1]["error"]["message"].as_str().unwrap();
    assert!(reason.contains("domain"), "the reason is given: {report}");
    assert_eq!(report["results"][1]["error"]["code"], "validation_error", "{report}");
    let (_, list) = app.get("/v1/companies?external_id=acme", &token).await;
    let acme = &list["data"][0];
    assert_eq!((&acme["domain"], &acme["traits"]["seats"]), (&json!("acme.com"), &json!(50)), "{acme}");
    assert_eq!(acme["traits"]["industries"], json!(["saas", "b2b", "b2c"]), "a later row applies after: {acme}");
    let (_, list) = app.get("/v1/companies?external_id=old", &token).await;
    let old = &list["data"][0];
    assert_eq!(
        (&old["domain"], &old["traits"]["size"], &old["traits"]["note"]),
        (&json!("old.io"), &json!("1-10"), &json!("two\nlines")),
        "{old}"
    );
    assert!(app.get("/v1/companies?external_id=bad", &token).await.1["data"].as_array().unwrap().is_empty());

    // The same file again: every good row is unchanged, every company as it was (updated_at too).
    let before = all_pages(&app, &token, "/v1/companies").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = import_now(&app, &token, "entity=companies&results=failed", "text/csv", csv).await;
    assert_eq!(counts(&again), [0, 0, 3, 2], "{again}");
    let failed: Vec<u64> = results(&again).iter().map(|r| r.0).collect();
    assert_eq!(failed, vec![1, 2], "results=failed lists the failed rows only: {again}");
    assert_eq!(all_pages(&app, &token, "/v1/companies").await, before);
}

#[tokio::test]
async fn imports_reps_with_a_result_per_row_and_again_changes_nothing() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let csv = "rep_id,name,email,department,active,level\n\
               mila,Mila,Mila@X.io,sales,1,3\n\
               bob,Bob,bob@x.io,support,2,1\n\
               zoe,Zoe,,sales,0,high\n\
               ann,Ann,,sales,,4\n\
               mila,,,sales,1,\n";
    let report = import_now(&app, &token, "entity=reps", "text/csv", csv).await;
    assert_eq!(counts(&report), [2, 0, 1, 2], "{report}");
    assert_eq!(
        results(&report),
        vec![
            result(0, 2, "created", ""),
            result(1, 3, "failed", "active"),
            result(2, 4, "failed", "level"),
            result(3, 5, "created", ""),
            result(4, 6, "unchanged", ""),
        ],
        "{report}"
    );
    assert_eq!(report["results"][2]["error"]["code"], "invalid_value", "{report}");
    let (status, mila) = app.get("/v1/reps/mila", &token).await;
    assert_eq!(status, 200, "{mila}");
    assert_eq!((&mila["email"], &mila["attributes"]["level"]), (&json!("mila@x.io"), &json!(3)), "{mila}");
    assert_eq!(app.get("/v1/reps/zoe", &token).await.0, 404, "a failed row writes nothing");
    assert_eq!(app.get("/v1/reps/bob", &token).await.0, 404);

    // The same file again changes nothing, updated_at included.
    let before = all_pages(&app, &token, "/v1/reps").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = import_now(&app, &token, "entity=reps", "text/csv", csv).await;
    assert_eq!(counts(&again), [0, 0, 3, 2], "{again}");
    assert_eq!(all_pages(&app, &token, "/v1/reps").await, before);

    // NDJSON, with a change: only the changed rep moves.
    let ndjson = "{\"rep_id\": \"ann\", \"attributes\": {\"level\": 5}}\n\
                  {\"rep_id\": \"mila\", \"name\": \"Mila\"}\n\
                  {\"rep_id\": \"liam\", \"active\": false}\n";
    let report = import_now(&app, &token, "entity=reps", "application/x-ndjson", ndjson).await;
    assert_eq!(
        results(&report),
        vec![result(0, 1, "updated", ""), result(1, 2, "unchanged", ""), result(2, 3, "created", "")],
        "{report}"
    );
    let (_, ann) = app.get("/v1/reps/ann", &token).await;
    assert_eq!(ann["attributes"]["level"], 5);
    let (_, mila_now) = app.get("/v1/reps/mila", &token).await;
    assert_eq!(mila_now, mila, "an unchanged rep keeps updated_at");
}

#[tokio::test]
async fn importing_companies_or_reps_needs_their_write_scope() {
    let app = spawn_app().await;
    let ws = app.workspace("w").await;
    let contacts = app.key_with_scopes(&ws, &["contacts:write", "companies:read", "reps:read"]).await;
    let companies = app.key_with_scopes(&ws, &["companies:write"]).await;
    let reps = app.key_with_scopes(&ws, &["reps:write"]).await;
    let (company, rep, contact) = ("external_id\nacme\n", "rep_id\nmila\n", "email\na@x.io\n");
    for (token, query, data, scope) in [
        (&contacts, "entity=companies", company, "companies:write"),
        (&contacts, "entity=reps", rep, "reps:write"),
        (&reps, "entity=companies", company, "companies:write"),
        (&companies, "entity=reps", rep, "reps:write"),
        (&companies, "entity=contacts", contact, "contacts:write"),
    ] {
        let (status, err) = post_import(&app, token, query, "text/csv", data.to_string()).await;
        let err = assert_error(status, &err, 403, "forbidden");
        assert!(err["message"].as_str().unwrap().contains(scope), "{query}: {err}");
    }
    let (_, listed) = app.get("/v1/companies", &contacts).await;
    assert_eq!(listed["data"], json!([]), "a refused import writes nothing");
    assert_eq!(app.get("/v1/reps", &contacts).await.1["data"], json!([]));
    assert_eq!(counts(&import_now(&app, &companies, "entity=companies", "text/csv", company).await), [1, 0, 0, 0]);
    assert_eq!(counts(&import_now(&app, &reps, "entity=reps", "text/csv", rep).await), [1, 0, 0, 0]);
}

#[tokio::test]
async fn the_openapi_document_describes_both_import_answers() {
    let app = spawn_app().await;
    let doc: Value = app.req(Method::GET, "/openapi.json").send().await.unwrap().json().await.unwrap();
    let op = &doc["paths"]["/v1/imports"]["post"];
    let responses = op["responses"].as_object().unwrap();
    for status in ["200", "202", "400", "403", "413", "415"] {
        assert!(responses.contains_key(status), "POST /v1/imports documents no {status}: {op}");
    }
    assert!(op["responses"]["200"].to_string().contains("ImportOut"), "{op}");
    for scope in ["contacts:write", "companies:write", "reps:write"] {
        assert!(op["security"].to_string().contains(scope), "{scope}: {op}");
    }
    let row = &doc["components"]["schemas"]["ImportRowOut"]["properties"];
    for field in ["row", "line", "status", "error"] {
        assert!(row.get(field).is_some(), "{field}: {row}");
    }
}

#[tokio::test]
async fn company_and_rep_imports_keep_the_limits() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let mut many = String::from("rep_id\n");
    for i in 0..100_001 {
        many.push_str(&format!("r{i}\n"));
    }
    let (status, err) = post_import(&app, &token, "entity=reps", "text/csv", many).await;
    let err = assert_error(status, &err, 413, "payload_too_large");
    assert!(err["message"].as_str().unwrap().contains("100000"), "{err}");
    assert_eq!(app.get("/v1/reps", &token).await.1["data"], json!([]), "nothing is written");
    let big = format!("external_id,pad\n{}", format!("acme,{}\n", "x".repeat(1000)).repeat(33 * 1024));
    let (status, err) = post_import(&app, &token, "entity=companies", "text/csv", big).await;
    assert_error(status, &err, 413, "payload_too_large");
    let (status, err) = post_import(&app, &token, "entity=companies", "text/csv", "external_id\n".into()).await;
    assert_error(status, &err, 400, "validation_error");
    // More rows than one transaction takes: written in chunks, all reported.
    let mut rows = String::from("{\"rep_id\": \"dup\", \"n\": 0}\n");
    for i in 0..2500 {
        rows.push_str(&format!("{{\"rep_id\": \"r{i}\", \"n\": {i}}}\n"));
    }
    rows.push_str("{\"rep_id\": \"dup\", \"n\": 1}\n");
    let report = import_now(&app, &token, "entity=reps", "application/json", &rows).await;
    assert_eq!(counts(&report), [2501, 1, 0, 0], "{}", report["rows"]);
    assert_eq!(report["results"][2501]["status"], "updated");
    assert_eq!(app.get("/v1/reps/dup", &token).await.1["attributes"]["n"], 1, "the last row of the file wins");
}

#[tokio::test]
async fn cli_imports_an_export_back_into_another_workspace() {
    let app = spawn_app().await;
    let (_, from) = app.full_key().await;
    let (_, into) = app.full_key().await;
    for token in [&from, &into] {
        let (status, f) = app.post("/v1/fields", token, json!({"name": "meta", "type": "json"})).await;
        assert_eq!(status, 201, "{f}");
    }
    app.contact(
        &from,
        json!({"email": "a@x.io", "mobile": "+1 555 000 1111", "external_id": "=x",
        "traits": {"plan": "-pro", "seats": 3, "vip": true, "tags": ["a", "b;c"], "meta": {"k": [1]},
        "note": "two, \"quoted\"\nlines"}}),
    )
    .await;
    app.contact(&from, json!({"email": "b@x.io", "subscription_status": "UNSUBSCRIBED"})).await;
    let dir = tempfile::tempdir().unwrap();
    for format in ["csv", "ndjson"] {
        let r =
            app.with_token(Method::GET, &format!("/v1/exports/contacts?format={format}"), &from).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let file = write(dir.path(), &format!("export.{format}"), &r.text().await.unwrap());
        let out = import_via(&app, &into, "contacts", &file, &[]).await;
        assert_eq!(code(&out), 0, "{format}: {out:?}");
        let strip = |contacts: Vec<Value>| -> Vec<Value> {
            contacts
                .into_iter()
                .map(|c| json!([c["email"], c["mobile"], c["external_id"], c["subscription_status"], c["traits"]]))
                .collect()
        };
        assert_eq!(strip(all_contacts(&app, &into).await), strip(all_contacts(&app, &from).await), "{format}");
    }
}

#[tokio::test]
async fn batch_reports_can_list_failed_rows_only_and_find_by_one_identity() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    app.contact(&token, json!({"email": "a@x.io", "external_id": "e-1"})).await;
    let rows = json!({"contacts": [
        {"email": "b@x.io", "external_id": "e-1"},
        {"email": "c@x.io", "traits": {"n": 1}},
        {"external_id": "e-9"},
    ]});
    let (status, report) = app.post("/v1/contacts/batch?results=failed&id_column=email", &token, rows).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!((report["created"].as_u64(), report["failed"].as_u64()), (Some(1), Some(2)), "{report}");
    let listed: Vec<(u64, &str)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["row"].as_u64().unwrap(), r["error"]["field"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, vec![(0, "external_id"), (2, "email")], "{report}");
    let (status, err) = app.post("/v1/contacts/batch?id_column=nickname", &token, json!({"contacts": [{}]})).await;
    assert_eq!(assert_error(status, &err, 400, "validation_error")["field"], "id_column");
    let (status, report) =
        app.post("/v1/companies/batch?results=failed", &token, json!({"companies": [{"external_id": "co"}]})).await;
    assert_eq!((status, report["created"].as_u64(), report["results"].clone()), (200, Some(1), json!([])));
}

/// Runs `convene import ARGS` as a child process (without blocking the
/// in-process server).
async fn convene_import(args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .arg("import")
        .args(args)
        .env_remove("CONVENE_URL")
        .env_remove("CONVENE_TOKEN")
        .env_remove("CONVENE_DATA_DIR")
        .env_remove("CONVENE_DATABASE_URL")
        .output()
        .await
        .expect("run convene import")
}

/// `convene import ENTITY FILE --url … --token … EXTRA`.
async fn import_via(app: &TestApp, token: &str, entity: &str, file: &Path, extra: &[&str]) -> Output {
    let url = app.url("");
    let mut args = vec![entity, file.to_str().unwrap(), "--url", &url, "--token", token];
    args.extend(extra);
    convene_import(&args).await
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The reject file's rows: (row, field, reason, rest of the record).
fn rejects(path: &Path) -> Vec<(u64, String, String, Vec<String>)> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let rest = r.iter().skip(3).map(str::to_string).collect();
            (r[0].parse().unwrap(), r[1].to_string(), r[2].to_string(), rest)
        })
        .collect()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[tokio::test]
async fn cli_import_reports_rejects_and_a_second_run_changes_nothing() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, f) = app.post("/v1/fields", &token, json!({"name": "score", "type": "number"})).await;
    assert_eq!(status, 201, "{f}");
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "people.csv",
        "email,name,score,note\n\
         ann@x.io,Ann,500,\"first\nsecond\"\n\
         bad-email,Bob,1,\n\
         cy@x.io,Cy,lots,\n\
         dee@x.io,Dee,7,\"a\n\nb\"\n\
         ,Eve,8,\n\
         fay@x.io,Fay,9,\n",
    );
    let out = import_via(&app, &token, "contacts", &file, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 2, "some rows were rejected: {out:?}");
    assert!(stdout.contains("6 rows") && stdout.contains("3 created") && stdout.contains("3 rejected"), "{stdout}");
    let reject_file = dir.path().join("people.csv.rejects.csv");
    let refused = rejects(&reject_file);
    let lines: Vec<(u64, &str)> = refused.iter().map(|(l, f, _, _)| (*l, f.as_str())).collect();
    assert_eq!(lines, vec![(4, "email"), (5, "score"), (9, "email")], "{refused:?}");
    assert!(refused[0].2.contains("not a valid email"), "{refused:?}");
    assert!(refused[1].2.contains("number"), "{refused:?}");
    assert!(refused[2].2.contains("id column"), "{refused:?}");
    assert_eq!(refused[1].3, vec!["cy@x.io", "Cy", "lots", ""], "the row as read follows the reason");
    let header = std::fs::read_to_string(&reject_file).unwrap();
    assert!(header.starts_with("row,field,reason,email,name,score,note"), "{header}");
    let ann = contact_by(&app, &token, "email", "ann@x.io").await;
    assert_eq!((&ann["traits"]["score"], &ann["traits"]["note"]), (&json!(500), &json!("first\nsecond")));
    contact_by(&app, &token, "email", "dee@x.io").await;
    contact_by(&app, &token, "email", "fay@x.io").await;

    // Again: nothing changes, `updated_at` included (a row that leaves its
    // contact as it was is not written).
    let before = all_contacts(&app, &token).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = import_via(&app, &token, "contacts", &file, &[]).await;
    assert_eq!(code(&again), 2, "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 created, 0 updated, 3 unchanged"), "{again:?}");
    assert_eq!(rejects(&reject_file).len(), 3);
    assert_eq!(all_contacts(&app, &token).await, before);

    // All good: exit 0, and an explicit reject file holds the header only.
    let good = write(dir.path(), "good.csv", "email,score\nann@x.io,501\n");
    let elsewhere = dir.path().join("refused.csv");
    let out = import_via(&app, &token, "contacts", &good, &["--rejects", elsewhere.to_str().unwrap()]).await;
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(rejects(&elsewhere).is_empty());
    assert_eq!(contact_by(&app, &token, "email", "ann@x.io").await["traits"]["score"], 501);
}

#[tokio::test]
async fn cli_import_maps_columns_and_edits_lists() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    app.contact(&token, json!({"external_id": "c-1", "traits": {"tags": ["old", "keep"]}})).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "crm.csv",
        "Customer ID,E-Mail,Add Tags,Drop Tags,Internal\n\
         c-1,one@x.io,new; vip,old,x\n\
         c-2,two@x.io,a;b;,,y\n",
    );
    let maps = ["--map", "Customer ID=external_id", "--map", "E-Mail=email", "--map", "Add Tags=tags+"];
    let mut extra = vec!["--id-column", "external_id"];
    extra.extend(maps);
    extra.extend(["--map", "Drop Tags=tags-", "--map", "Internal="]);
    let out = import_via(&app, &token, "contacts", &file, &extra).await;
    assert_eq!(code(&out), 0, "{out:?}");
    let one = contact_by(&app, &token, "external_id", "c-1").await;
    assert_eq!(one["email"], "one@x.io");
    assert_eq!(one["traits"]["tags"], json!(["keep", "new", "vip"]), "{one}");
    assert!(one["traits"].get("Internal").is_none(), "an empty --map target drops the column: {one}");
    let two = contact_by(&app, &token, "external_id", "c-2").await;
    assert_eq!(two["traits"]["tags"], json!(["a", "b"]));

    // The id column alone finds the contact: a row whose email is new but
    // whose external id another contact holds is refused, not merged.
    let strict = write(dir.path(), "strict.csv", "email,external_id\nother@x.io,c-1\n");
    let out = import_via(&app, &token, "contacts", &strict, &["--id-column", "email"]).await;
    assert_eq!(code(&out), 2, "{out:?}");
    let refused = rejects(&dir.path().join("strict.csv.rejects.csv"));
    assert_eq!((refused[0].0, refused[0].1.as_str()), (2, "external_id"), "{refused:?}");
    assert_eq!(contact_by(&app, &token, "external_id", "c-1").await["email"], "one@x.io");

    // A --map naming no column, or a missing id column, fails the import (exit 1).
    let out = import_via(&app, &token, "contacts", &file, &["--map", "Mail=email"]).await;
    assert_eq!(code(&out), 1, "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("'Mail'"), "{out:?}");
    let out = import_via(&app, &token, "contacts", &file, &[]).await;
    assert_eq!(code(&out), 1, "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("id column 'email'"), "{out:?}");
}

#[tokio::test]
async fn cli_imports_reps_companies_and_ndjson() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let dir = tempfile::tempdir().unwrap();
    let reps = write(
        dir.path(),
        "reps.csv",
        "rep_id,name,email,department,active,level\n\
         mila,Mila,Mila@X.io,sales,1,3\n\
         bob,Bob,bob@x.io,support,2,1\n\
         zoe/2,Zoe,,sales,0,high\n\
         ann,Ann,,sales,,4\n",
    );
    let out = import_via(&app, &token, "reps", &reps, &[]).await;
    assert_eq!(code(&out), 2, "{out:?}");
    let refused = rejects(&dir.path().join("reps.csv.rejects.csv"));
    let lines: Vec<(u64, &str)> = refused.iter().map(|(l, f, _, _)| (*l, f.as_str())).collect();
    assert_eq!(lines, vec![(3, "active"), (4, "level")], "{refused:?}");
    let (status, mila) = app.get("/v1/reps/mila", &token).await;
    assert_eq!(status, 200, "{mila}");
    assert_eq!((&mila["email"], &mila["attributes"]["level"]), (&json!("mila@x.io"), &json!(3)));
    let (status, _) = app.get("/v1/reps/ann", &token).await;
    assert_eq!(status, 200);
    // Again: the reps exist and are updated.
    let again = import_via(&app, &token, "reps", &reps, &[]).await;
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 created, 2 updated"), "{again:?}");

    let companies = write(
        dir.path(),
        "companies.csv",
        "external_id,domain,size,industries+\nacme,https://Acme.com/,50,saas;b2b\nbad,not a domain,1,\n",
    );
    let out = import_via(&app, &token, "companies", &companies, &[]).await;
    assert_eq!(code(&out), 2, "{out:?}");
    let refused = rejects(&dir.path().join("companies.csv.rejects.csv"));
    assert_eq!((refused[0].0, refused[0].1.as_str()), (3, "domain"), "{refused:?}");
    let (_, list) = app.get("/v1/companies?external_id=acme", &token).await;
    let acme = &list["data"][0];
    assert_eq!((&acme["domain"], &acme["traits"]["size"]), (&json!("acme.com"), &json!(50)));
    assert_eq!(acme["traits"]["industries"], json!(["saas", "b2b"]));

    let ndjson = write(
        dir.path(),
        "people.ndjson",
        "{\"email\": \"n1@x.io\", \"traits\": {\"plan\": \"pro\"}}\n\
         \n\
         {\"email\": \"n2@x.io\", \"plan\": null, \"tags+\": \"a;b\"}\n\
         [1, 2]\n\
         {\"email\": \"bad\"}\n",
    );
    let out = import_via(&app, &token, "contacts", &ndjson, &[]).await;
    assert_eq!(code(&out), 2, "{out:?}");
    let refused = rejects(&dir.path().join("people.ndjson.rejects.csv"));
    let lines: Vec<u64> = refused.iter().map(|r| r.0).collect();
    assert_eq!(lines, vec![4, 5], "{refused:?}");
    assert_eq!(refused[0].3, vec!["[1, 2]"], "the line as read");
    assert_eq!(contact_by(&app, &token, "email", "n1@x.io").await["traits"]["plan"], "pro");
    assert_eq!(contact_by(&app, &token, "email", "n2@x.io").await["traits"]["tags"], json!(["a", "b"]));
}

#[tokio::test]
async fn cli_imports_into_a_data_directory_with_the_server_stopped() {
    let mut app = spawn_app().await;
    let (ws, token) = app.full_key().await;
    app.contact(&token, json!({"email": "kept@x.io", "traits": {"plan": "free"}})).await;
    app.shutdown().await.unwrap();

    let files = tempfile::tempdir().unwrap();
    let people = write(files.path(), "people.csv", "email,plan,tags+\nkept@x.io,pro,a\nnew@x.io,free,\nnope,x,\n");
    let reps =
        write(files.path(), "reps.csv", "rep_id,name,active,level\nmila,Mila,1,3\nbob,Bob,1,high\nann,Ann,0,2\n");
    let data_dir = app.dir.path().to_str().unwrap().to_string();
    let mut place = vec!["--data-dir".to_string(), data_dir, "--workspace".to_string(), ws.clone()];
    if let convene::config::Database::Postgres(url) = &app.database {
        place.extend(["--database".to_string(), url.expose().to_string()]);
    }
    let place: Vec<&str> = place.iter().map(String::as_str).collect();
    let mut args = vec!["contacts", people.to_str().unwrap()];
    args.extend(&place);
    let out = convene_import(&args).await;
    assert_eq!(code(&out), 2, "{out:?}");
    assert_eq!(rejects(&files.path().join("people.csv.rejects.csv")).iter().map(|r| r.0).collect::<Vec<_>>(), vec![4]);
    let mut args = vec!["reps", reps.to_str().unwrap()];
    args.extend(&place);
    let out = convene_import(&args).await;
    assert_eq!(code(&out), 2, "{out:?}");
    let refused = rejects(&files.path().join("reps.csv.rejects.csv"));
    assert_eq!((refused[0].0, refused[0].1.as_str()), (3, "level"), "{refused:?}");
    // Without a place to import to, or a workspace, the command fails.
    let out = convene_import(&["contacts", people.to_str().unwrap()]).await;
    assert_eq!(code(&out), 1, "{out:?}");

    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    let mut config = convene::config::ServeConfig::for_tests(dir.path(), crate::support::MASTER);
    config.database = app.database.clone();
    let app = crate::support::spawn_app_with(config, dir).await;
    let kept = contact_by(&app, &token, "email", "kept@x.io").await;
    assert_eq!((&kept["traits"]["plan"], &kept["traits"]["tags"]), (&json!("pro"), &json!(["a"])));
    contact_by(&app, &token, "email", "new@x.io").await;
    let reps = all_pages(&app, &token, "/v1/reps").await;
    let ids: Vec<&str> = reps.iter().map(|r| r["rep_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["mila", "ann"], "the good reps are in, the bad one is not");
}
