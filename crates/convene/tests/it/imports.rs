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

    // The same file again changes no value.
    let before = all_contacts(&app, &token).await;
    let again = import_job(&app, &token, "entity=contacts&id_column=email", "text/csv", csv).await;
    assert_eq!(error_rows(&again), error_rows(&job));
    assert_eq!(without_updated_at(all_contacts(&app, &token).await), without_updated_at(before));
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
        ("entity=reps", "entity"),
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

fn without_updated_at(mut contacts: Vec<Value>) -> Vec<Value> {
    for c in &mut contacts {
        if let Some(o) = c.as_object_mut() {
            o.remove("updated_at");
        }
    }
    contacts
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

    // Again: nothing changes but `updated_at` (the stores stamp every
    // write, even one that changes no value).
    let before = all_contacts(&app, &token).await;
    let again = import_via(&app, &token, "contacts", &file, &[]).await;
    assert_eq!(code(&again), 2, "{again:?}");
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 created, 3 updated"), "{again:?}");
    assert_eq!(rejects(&reject_file).len(), 3);
    let after = all_contacts(&app, &token).await;
    assert_eq!(after.len(), before.len());
    assert_eq!(without_updated_at(after), without_updated_at(before));

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
