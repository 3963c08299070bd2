//! Native reps (`/v1/reps`) and reports (`/v1/reports`).

use serde_json::{Value, json};

use crate::support::{assert_error, spawn_app};

#[tokio::test]
async fn reps_crud_filters_and_cursor_paging() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let (status, rep) = app
        .post(
            "/v1/reps",
            &token,
            json!({"rep_id": "mila", "name": "Mila", "email": "Mila@X.io", "department": "sales", "attributes": {"seniority": 3}}),
        )
        .await;
    assert_eq!(status, 201, "{rep}");
    assert_eq!(
        (rep["email"].clone(), rep["active"].clone(), rep["attributes"]["seniority"].clone()),
        (json!("mila@x.io"), json!(true), json!(3))
    );
    let (status, body) = app.post("/v1/reps", &token, json!({"rep_id": "mila"})).await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = app.post("/v1/reps", &token, json!({"rep_id": "x", "gender": "f"})).await;
    assert_eq!(assert_error(status, &body, 400, "validation_error")["field"], "gender");
    // The attribute's type is now number: text that is not a number is refused.
    let (status, body) = app.patch("/v1/reps/mila", &token, json!({"attributes": {"seniority": "senior"}})).await;
    assert_error(status, &body, 422, "invalid_value");
    let (status, rep) = app
        .patch("/v1/reps/mila", &token, json!({"active": false, "name": null, "attributes": {"seniority": "4"}}))
        .await;
    assert_eq!(status, 200, "{rep}");
    assert_eq!(
        (rep["active"].clone(), rep["name"].clone(), rep["attributes"]["seniority"].clone()),
        (json!(false), Value::Null, json!(4))
    );
    let (status, body) = app.patch("/v1/reps/nobody", &token, json!({"name": "N"})).await;
    assert_error(status, &body, 404, "not_found");
    for i in 0..5 {
        app.post(
            "/v1/reps",
            &token,
            json!({"rep_id": format!("r{i}"), "department": if i % 2 == 0 { "support" } else { "sales" }}),
        )
        .await;
    }
    let (_, page) = app.get("/v1/reps?limit=4", &token).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 4);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app.get(&format!("/v1/reps?limit=4&cursor={cursor}"), &token).await;
    assert_eq!((rest["data"].as_array().unwrap().len(), rest["next_cursor"].clone()), (2, Value::Null));
    let (_, support) = app.get("/v1/reps?department=support", &token).await;
    assert_eq!(support["data"].as_array().unwrap().len(), 3);
    let (_, inactive) = app.get("/v1/reps?active=false", &token).await;
    assert_eq!(inactive["data"][0]["rep_id"], "mila");
    assert_eq!(app.delete("/v1/reps/mila", &token).await.0, 204);
    assert_error(app.get("/v1/reps/mila", &token).await.0, &app.get("/v1/reps/mila", &token).await.1, 404, "not_found");
    // Another workspace sees none of them.
    let (_, other) = app.full_key().await;
    let (_, list) = app.get("/v1/reps", &other).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn reports_over_events_by_name_and_day() {
    let app = spawn_app().await;
    let (_, token) = app.full_key().await;
    let mut batch = Vec::new();
    for i in 0..30 {
        batch.push(json!({"type": "track", "external_id": format!("u{}", i % 4), "event": if i % 3 == 0 { "Signed Up" } else { "Paid" },
            "properties": {"amount": i}, "timestamp": format!("2026-02-{:02}T12:00:00Z", 1 + i % 2)}));
    }
    let (status, job) = app.post("/v1/batch", &token, json!({ "batch": batch })).await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["job_id"].as_str().unwrap();
    for _ in 0..200 {
        if app.get(&format!("/v1/jobs/{job_id}"), &token).await.1["status"] == "applied" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let (status, r) = app
        .get("/v1/reports?source=events&group_by=event,day&metrics=count,sum:amount,max:amount,p50:amount", &token)
        .await;
    assert_eq!(status, 200, "{r}");
    let mut want: std::collections::BTreeMap<(String, String), Vec<f64>> = Default::default();
    for i in 0..30 {
        let name = if i % 3 == 0 { "Signed Up" } else { "Paid" };
        want.entry((name.to_string(), format!("2026-02-{:02}", 1 + i % 2))).or_default().push(f64::from(i));
    }
    assert_eq!(r["data"].as_array().unwrap().len(), want.len(), "{r}");
    for row in r["data"].as_array().unwrap() {
        let mut v =
            want[&(row["event"].as_str().unwrap().to_string(), row["day"].as_str().unwrap().to_string())].clone();
        v.sort_by(f64::total_cmp);
        assert_eq!(row["count"].as_u64().unwrap() as usize, v.len(), "{row}");
        assert_eq!(row["sum_amount"].as_f64().unwrap(), v.iter().sum::<f64>(), "{row}");
        assert_eq!(row["max_amount"].as_f64().unwrap(), *v.last().unwrap(), "{row}");
        let pos = 0.5 * (v.len() - 1) as f64;
        let median = v[pos.floor() as usize] + (v[pos.ceil() as usize] - v[pos.floor() as usize]) * pos.fract();
        assert_eq!(row["p50_amount"].as_f64().unwrap(), median, "{row}");
    }
    assert_eq!(r["rows"], 30);
    let (_, paid) = app.get("/v1/reports?source=events&event=Paid&metrics=count&from=2026-02-02", &token).await;
    assert_eq!(paid["data"][0]["count"], 10, "{paid}");
    let (status, body) = app.get("/v1/reports?metrics=avg:nothing", &token).await;
    assert_eq!(assert_error(status, &body, 400, "validation_error")["field"], "avg:nothing");
    let (status, body) = app.get("/v1/reports?source=events&metrics=count&from=2026-02-03&to=2026-02-01", &token).await;
    assert_eq!(assert_error(status, &body, 400, "validation_error")["field"], "to");
}
