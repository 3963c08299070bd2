//! `GET /v1/exports/{entity}` and `convene export`: every entity as the
//! native objects (NDJSON) and as CSV, `since`, resuming by cursor, scopes
//! and workspaces, refusals; the CLI writing a file and resuming it.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::ingest_support::{all_pages, ingest, urlencode};
use crate::support::{TestApp, assert_error, spawn_app};

const ENTITIES: [&str; 6] = ["contacts", "events", "conversations", "messages", "reps", "companies"];

/// `GET path` with `token`: status, content type and body text.
async fn fetch(app: &TestApp, path: &str, token: &str) -> (u16, String, String) {
    let r = app.with_token(reqwest::Method::GET, path, token).send().await.expect("answered");
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (status, content_type, r.text().await.expect("the whole body"))
}

/// The NDJSON export of `entity` with extra query parameters.
async fn ndjson(app: &TestApp, token: &str, entity: &str, query: &str) -> Vec<Value> {
    let (status, content_type, text) = fetch(app, &format!("/v1/exports/{entity}?format=ndjson{query}"), token).await;
    assert_eq!(status, 200, "{entity}{query}: {text}");
    assert_eq!(content_type, "application/x-ndjson");
    assert!(text.is_empty() || text.ends_with('\n'), "every row ends with a newline");
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// The CSV export of `entity`: header and records.
async fn csv_rows(app: &TestApp, token: &str, entity: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let (status, content_type, text) = fetch(app, &format!("/v1/exports/{entity}?format=csv"), token).await;
    assert_eq!(status, 200, "{entity}: {text}");
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let records = reader
        .records()
        .map(|r| r.unwrap_or_else(|e| panic!("{entity}: {e}")).iter().map(str::to_string).collect())
        .collect();
    (header, records)
}

/// A workspace with a bit of everything; returns its full key.
async fn seed(app: &TestApp, tag: &str) -> (String, String) {
    let (ws, token) = app.full_key().await;
    let (status, acme) = app
        .post(
            "/v1/companies",
            &token,
            json!({"external_id": format!("acme-{tag}"), "domain": "acme.com", "traits": {"size": 5}}),
        )
        .await;
    assert_eq!(status, 201, "{acme}");
    let (status, _) = app.post("/v1/companies", &token, json!({"external_id": format!("beta-{tag}")})).await;
    assert_eq!(status, 201);
    let ann = app
        .contact(
            &token,
            json!({"email": format!("ann-{tag}@example.com"), "external_id": format!("ann-{tag}"), "company_id": acme["id"],
                   "traits": {"plan": "pro", "note": "a, \"b\"\nc", "formula": "=1+2", "tags": ["x", "y"], "seats": 3}}),
        )
        .await;
    app.contact(&token, json!({"email": format!("bob-{tag}@example.com"), "traits": {"plan": "free"}})).await;
    app.contact(&token, json!({"mobile": "+15550100001"})).await;
    for event in ["Signed Up", "Upgraded"] {
        let body =
            json!({"email": format!("ann-{tag}@example.com"), "event": event, "properties": {"via": "web, app"}});
        ingest(app, &token, "/v1/track", body).await;
    }
    let (status, user) =
        app.post("/v1/users", &token, json!({"name": "Agent", "email": format!("agent-{tag}@example.com")})).await;
    assert_eq!(status, 201, "{user}");
    for subject in ["Refund", "Question"] {
        let body = json!({"contact_id": ann["id"], "subject": subject, "labels": ["vip", "billing"],
                          "message": {"content": format!("Hello about {subject}")}});
        let (status, conv) = app.post("/v1/conversations", &token, body).await;
        assert_eq!(status, 201, "{conv}");
        let id = conv["id"].as_str().unwrap();
        let body = json!({"content": "Thanks,\n\"really\"", "type": "incoming"});
        let (status, msg) = app.post(&format!("/v1/conversations/{id}/messages"), &token, body).await;
        assert_eq!(status, 201, "{msg}");
        let body = json!({"content": "A note", "type": "note", "operator_id": user["id"]});
        assert_eq!(app.post(&format!("/v1/conversations/{id}/messages"), &token, body).await.0, 201);
        let (status, _) = app.patch(&format!("/v1/conversations/{id}"), &token, json!({"status": "resolved"})).await;
        assert_eq!(status, 200);
    }
    for (rep, body) in [
        ("zoe", json!({"name": "Zoe", "department": "sales", "attributes": {"level": 3}})),
        ("adam", json!({"email": "Adam@Example.com", "active": false})),
        ("=mila", json!({"attributes": {"region": "emea"}})),
    ] {
        let mut body = body;
        body["rep_id"] = json!(rep);
        let (status, r) = app.post("/v1/reps", &token, body).await;
        assert_eq!(status, 201, "{r}");
    }
    (ws, token)
}

/// The native API's objects of an entity, in export order.
async fn native(app: &TestApp, token: &str, entity: &str) -> Vec<Value> {
    if entity != "messages" {
        return all_pages(app, token, &format!("/v1/{entity}")).await;
    }
    let mut messages = Vec::new();
    for conv in all_pages(app, token, "/v1/conversations").await {
        let id = conv["id"].as_str().unwrap();
        messages.extend(all_pages(app, token, &format!("/v1/conversations/{id}/messages")).await);
    }
    messages.sort_by_key(|m| m["id"].as_i64());
    messages
}

#[tokio::test]
async fn every_entity_exports_as_its_native_objects() {
    let app = spawn_app().await;
    let (_, token) = seed(&app, "a").await;
    for entity in ENTITIES {
        let expected = native(&app, &token, entity).await;
        assert!(expected.len() >= 2, "{entity}: the seed has rows");
        assert_eq!(ndjson(&app, &token, entity, "").await, expected, "{entity}");
    }
    // The default format is NDJSON, the file name is the entity's.
    let r = app.with_token(reqwest::Method::GET, "/v1/exports/reps", &token).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    assert_eq!(r.headers()["content-disposition"], "attachment; filename=\"reps.ndjson\"");
    assert_eq!(r.text().await.unwrap().lines().count(), 3);
}

#[tokio::test]
async fn every_entity_exports_as_csv_with_fields_in_columns() {
    let app = spawn_app().await;
    let (_, token) = seed(&app, "a").await;
    for entity in ENTITIES {
        let (header, records) = csv_rows(&app, &token, entity).await;
        let objects = ndjson(&app, &token, entity, "").await;
        assert_eq!(records.len(), objects.len(), "{entity}");
        for record in &records {
            assert_eq!(record.len(), header.len(), "{entity}: {record:?}");
        }
        // The first column is the key, in the same order as NDJSON.
        let key = if entity == "reps" { "rep_id" } else { "id" };
        assert_eq!(header[0], key);
        let keys: Vec<String> =
            objects.iter().map(|o| o[key].as_str().map_or_else(|| o[key].to_string(), str::to_string)).collect();
        let csv_keys: Vec<String> = records.iter().map(|r| r[0].trim_start_matches('\'').to_string()).collect();
        assert_eq!(csv_keys, keys, "{entity}");
    }

    let (header, records) = csv_rows(&app, &token, "contacts").await;
    let expected_header = "id,email,mobile,external_id,anonymous_id,traits.formula,traits.note,traits.plan,traits.seats,\
                           traits.tags,subscription_status,company_id,created_at,updated_at";
    assert_eq!(header.join(","), expected_header);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let ann = &records[0];
    assert_eq!(ann[col("traits.formula")], "'=1+2", "formulas are neutralised");
    assert_eq!(ann[col("traits.note")], "a, \"b\"\nc", "quoted per RFC 4180");
    assert_eq!(ann[col("traits.tags")], "[\"x\",\"y\"]", "lists are JSON");
    assert_eq!((ann[col("traits.seats")].as_str(), ann[col("traits.plan")].as_str()), ("3", "pro"));
    assert_eq!(records[2][col("traits.plan")], "", "a missing field is empty");
    assert!(!ann[col("created_at")].is_empty());

    let (header, records) = csv_rows(&app, &token, "messages").await;
    assert_eq!(header, ["id", "conversation_id", "type", "content", "sender.type", "sender.id", "created_at"]);
    assert!(records.iter().any(|r| r[3] == "Thanks,\n\"really\"" && r[4] == "contact"));
    let (header, records) = csv_rows(&app, &token, "reps").await;
    assert_eq!(
        header.join(","),
        "rep_id,name,email,department,active,attributes.level,attributes.region,created_at,updated_at"
    );
    assert_eq!(records[2][0], "'=mila");
    let (header, records) = csv_rows(&app, &token, "events").await;
    assert_eq!(header[4], "properties", "free-form properties stay one JSON column");
    assert_eq!(records[0][4], "{\"via\":\"web, app\"}");
    let (header, records) = csv_rows(&app, &token, "conversations").await;
    assert_eq!(records[0][header.iter().position(|h| h == "labels").unwrap()], "[\"billing\",\"vip\"]");
}

#[tokio::test]
async fn thousands_of_rows_stream_resume_by_cursor_and_filter_by_since() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    for batch in 0..3 {
        let contacts: Vec<Value> = (0..1000)
            .map(|i| json!({"email": format!("p{batch}-{i}@example.com"), "traits": {"n": i, "about": "x".repeat(40)}}))
            .collect();
        let (status, answer) = app.post("/v1/contacts/batch", &token, json!({"contacts": contacts})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["created"], 1000);
    }
    let (_, _, text) = fetch(&app, "/v1/exports/contacts", &token).await;
    assert!(text.len() > 4 * 64 * 1024, "several chunks: {} bytes", text.len());
    let all = ndjson(&app, &token, "contacts", "").await;
    assert_eq!(all.len(), 3000);
    let ids: Vec<i64> = all.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "by id, each once");
    assert_eq!(all, all_pages(&app, &token, "/v1/contacts").await);

    // Resuming after any row gives exactly the rows after it.
    for at in [0, 1234, 2998, 2999] {
        let rest = ndjson(&app, &token, "contacts", &format!("&cursor={}", ids[at])).await;
        assert_eq!(rest, all[at + 1..], "after row {at}");
    }

    // `since`: the rows changed at or after the time, by id.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for at in [2500, 7, 1500] {
        let (status, _) = app.patch(&format!("/v1/contacts/{}", ids[at]), &token, json!({"traits": {"n": -1}})).await;
        assert_eq!(status, 200);
    }
    let changed = ndjson(&app, &token, "contacts", &format!("&since={}", urlencode(&since))).await;
    let changed_ids: Vec<i64> = changed.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(changed_ids, [ids[7], ids[1500], ids[2500]]);
    assert!(changed.iter().all(|c| c["traits"]["n"] == -1));
    let after = ndjson(&app, &token, "contacts", &format!("&since={}&cursor={}", urlencode(&since), ids[7])).await;
    assert_eq!(after, changed[1..]);
    assert_eq!(ndjson(&app, &token, "contacts", "&since=2000-01-01").await.len(), 3000, "a date is its midnight");
    assert_eq!(ndjson(&app, &token, "contacts", "&since=2999-01-01").await, Vec::<Value>::new());
}

#[tokio::test]
async fn text_cursors_resume_reps_and_conversations_in_creation_order() {
    let app = spawn_app().await;
    let (_, token) = seed(&app, "a").await;
    for (entity, key) in [("reps", "rep_id"), ("conversations", "id")] {
        let all = ndjson(&app, &token, entity, "").await;
        for (i, row) in all.iter().enumerate() {
            let cursor = urlencode(row[key].as_str().unwrap());
            assert_eq!(ndjson(&app, &token, entity, &format!("&cursor={cursor}")).await, all[i + 1..], "{entity}");
        }
        let (status, _, body) = fetch(&app, &format!("/v1/exports/{entity}?cursor=gone"), &token).await;
        let error = assert_error(status, &serde_json::from_str(&body).unwrap(), 400, "validation_error");
        assert_eq!(error["field"], "cursor", "{error}");
    }
    // Events since a time: those received at or after it.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    ingest(&app, &token, "/v1/track", json!({"email": "ann-a@example.com", "event": "Later"})).await;
    let events = ndjson(&app, &token, "events", &format!("&since={}", urlencode(&since))).await;
    assert_eq!(events.iter().map(|e| e["event"].clone()).collect::<Vec<_>>(), [json!("Later")]);
}

#[tokio::test]
async fn each_entity_needs_its_read_scope_and_sees_its_workspace_only() {
    let app = spawn_app().await;
    let (ws_a, _) = seed(&app, "a").await;
    let (_, token_b) = seed(&app, "b").await;
    let scopes = [
        ("contacts", "contacts:read"),
        ("events", "events:read"),
        ("conversations", "conversations:read"),
        ("messages", "conversations:read"),
        ("reps", "reps:read"),
        ("companies", "companies:read"),
    ];
    let all_scopes = ["contacts:read", "events:read", "conversations:read", "reps:read", "companies:read", "admin"];
    for (entity, scope) in scopes {
        let others: Vec<&str> = all_scopes.iter().copied().filter(|s| *s != scope).collect();
        let lacking = app.key_with_scopes(&ws_a, &others).await;
        let (status, _, body) = fetch(&app, &format!("/v1/exports/{entity}"), &lacking).await;
        let error = assert_error(status, &serde_json::from_str(&body).unwrap(), 403, "forbidden");
        assert!(error["message"].as_str().unwrap().contains(scope), "{entity}: {error}");
        let exact = app.key_with_scopes(&ws_a, &[scope]).await;
        for format in ["ndjson", "csv"] {
            let (status, _, body) = fetch(&app, &format!("/v1/exports/{entity}?format={format}"), &exact).await;
            assert_eq!(status, 200, "{entity} with {scope}: {body}");
            assert!(!body.contains("-b@example.com") && !body.contains("beta-b"), "{entity}: B's rows in A's export");
        }
    }
    // B's exports hold B's rows only.
    let contacts = ndjson(&app, &token_b, "contacts", "").await;
    assert_eq!(contacts.len(), 3);
    assert!(contacts.iter().all(|c| !c.to_string().contains("-a@example.com")));
    let companies = ndjson(&app, &token_b, "companies", "").await;
    let names: HashSet<&str> = companies.iter().map(|c| c["external_id"].as_str().unwrap()).collect();
    assert_eq!(names, HashSet::from(["acme-b", "beta-b"]));
    let events = ndjson(&app, &token_b, "events", "").await;
    assert!(events.iter().all(|e| contacts.iter().any(|c| c["id"] == e["contact_id"])));
    let messages = ndjson(&app, &token_b, "messages", "").await;
    let convs = ndjson(&app, &token_b, "conversations", "").await;
    assert_eq!((convs.len(), messages.len()), (2, 8));
    assert!(messages.iter().all(|m| convs.iter().any(|c| c["id"] == m["conversation_id"])));
}

#[tokio::test]
async fn unknown_entities_formats_and_bad_parameters_are_refused_before_streaming() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    for (path, status, code, field) in [
        ("/v1/exports/people", 400, "validation_error", Some("entity")),
        ("/v1/exports/contacts?format=xml", 400, "validation_error", Some("format")),
        ("/v1/exports/contacts?since=last+week", 400, "validation_error", Some("since")),
        ("/v1/exports/contacts?cursor=abc", 400, "validation_error", Some("cursor")),
        ("/v1/exports/reps?cursor=nobody", 400, "validation_error", Some("cursor")),
    ] {
        let (got, content_type, body) = fetch(&app, path, &token).await;
        assert_eq!(content_type, "application/json", "{path}");
        let error = assert_error(got, &serde_json::from_str(&body).unwrap(), status, code);
        assert_eq!(error["field"].as_str(), field, "{path}: {error}");
        assert!(error["message"].as_str().unwrap().contains(field.unwrap()), "{path}: {error}");
    }
    let (status, body) = app.call(reqwest::Method::GET, "/v1/exports/contacts", None, None).await;
    assert_error(status, &body, 401, "unauthenticated");
    // An empty export is an empty body (CSV: the header alone).
    let (status, _, body) = fetch(&app, "/v1/exports/companies", &token).await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, _, body) = fetch(&app, "/v1/exports/companies?format=csv", &token).await;
    assert_eq!((status, body.as_str()), (200, "id,external_id,domain,created_at,updated_at\r\n"));
}

/// Runs `convene export …` against the test server; returns (success, stderr).
async fn cli(app: &TestApp, token: &str, args: &[&str]) -> (bool, String, Vec<u8>) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_convene"))
        .arg("export")
        .args(args)
        .env("CONVENE_URL", format!("http://{}", app.addr))
        .env("CONVENE_TOKEN", token)
        .output()
        .await
        .expect("run convene export");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), out.stdout)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn the_cli_exports_to_a_file_and_resumes_an_interrupted_export() {
    let app = spawn_app().await;
    let (_, token) = seed(&app, "a").await;
    let contacts: Vec<Value> = (0..2000).map(|i| json!({"email": format!("bulk{i}@example.com")})).collect();
    for chunk in contacts.chunks(1000) {
        let (status, _) = app.post("/v1/contacts/batch", &token, json!({"contacts": chunk})).await;
        assert_eq!(status, 200);
    }
    let dir = tempfile::tempdir().unwrap();
    for format in ["ndjson", "csv"] {
        let (_, _, served) = fetch(&app, &format!("/v1/exports/contacts?format={format}"), &token).await;
        let file = dir.path().join(format!("contacts.{format}"));
        let f = file.to_str().unwrap();
        let state = dir.path().join(format!("contacts.{format}.export-state"));

        // A whole export.
        let (ok, stderr, _) = cli(&app, &token, &["contacts", "--format", format, "--output", f]).await;
        assert!(ok, "{stderr}");
        assert!(stderr.contains("2003 contacts rows written"), "{stderr}");
        assert_eq!(read(&file), served, "{format}");
        assert!(!state.exists(), "no state is left once complete");

        // Interrupted: the file holds more rows than the state saved (it is
        // saved every second) and half a row; resuming truncates to the
        // saved length and continues after the saved row.
        let (head, rows): (&str, Vec<&str>) = match format {
            "csv" => {
                let (head, rest) = served.split_once("\r\n").unwrap();
                (head, rest.split_inclusive("\r\n").collect())
            }
            _ => ("", served.split_inclusive('\n').collect()),
        };
        let header = if head.is_empty() { String::new() } else { format!("{head}\r\n") };
        let saved: String = header.clone() + &rows[..700].concat();
        let written = saved.clone() + &rows[700..760].concat() + &rows[760][..10];
        std::fs::write(&file, &written).unwrap();
        let key = match format {
            "csv" => rows[699].split(',').next().unwrap().to_string(),
            _ => serde_json::from_str::<Value>(rows[699]).unwrap()["id"].to_string(),
        };
        let saved_state = json!({"entity": "contacts", "format": format, "since": null, "cursor": key,
            "bytes": saved.len(), "rows": 700, "header": if head.is_empty() { Value::Null } else { json!(header) }});
        std::fs::write(&state, saved_state.to_string()).unwrap();
        let (ok, stderr, _) = cli(&app, &token, &["contacts", "--format", format, "--output", f, "--resume"]).await;
        assert!(ok, "{stderr}");
        assert!(stderr.contains("2003 contacts rows written") && stderr.contains("(1303 in this run)"), "{stderr}");
        assert_eq!(read(&file), served, "{format}: each row exactly once");
        assert!(!state.exists());

        // A finished file is not resumed by accident; another command is refused.
        let (ok, stderr, _) = cli(&app, &token, &["contacts", "--format", format, "--output", f, "--resume"]).await;
        assert!(!ok && stderr.contains("no export into it is in progress"), "{stderr}");
        std::fs::write(&state, saved_state.to_string()).unwrap();
        let (ok, stderr, _) = cli(&app, &token, &["reps", "--format", format, "--output", f, "--resume"]).await;
        assert!(!ok && stderr.contains("run that same command"), "{stderr}");
        std::fs::remove_file(&state).unwrap();
    }

    // With no saved state, --resume starts; to stdout, --cursor continues.
    let file = dir.path().join("reps.ndjson");
    let (ok, stderr, _) = cli(&app, &token, &["reps", "-o", file.to_str().unwrap(), "--resume"]).await;
    assert!(ok, "{stderr}");
    let reps: Vec<Value> = read(&file).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(reps.len(), 3);
    let (ok, stderr, stdout) = cli(&app, &token, &["reps", "--cursor", "zoe", "--quiet"]).await;
    assert!(ok && stderr.is_empty(), "{stderr}");
    let rest: Vec<Value> =
        String::from_utf8(stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rest, reps[1..]);

    // The server's refusal is reported with its field.
    let (ok, stderr, _) = cli(&app, &token, &["reps", "--cursor", "nobody"]).await;
    assert!(!ok && stderr.contains("400") && stderr.contains("cursor"), "{stderr}");
    let (ok, stderr, _) = cli(&app, "cvn_wrong", &["contacts"]).await;
    assert!(!ok && stderr.contains("401"), "{stderr}");
}
