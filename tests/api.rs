//! The HTTP API (`/api/v1`) over a real socket: authentication (bearer tokens only, cookies
//! ignored), status codes, validation shared with the CSV importer, all-or-nothing arrays,
//! audit rows, RMA labels and the OpenAPI document. Runs on SQLite, and on PostgreSQL when
//! `TRIALDESK_TEST_PG_URL` is set.

mod api_support;
mod common;
mod review_support;

use api_support::{request, serve, token, Api};
use common::TestEnv;
use serde_json::json;
use trialdesk::store::AuditFilter;

async fn audit_of(env: &TestEnv, actor: &str) -> Vec<trialdesk::store::AuditEntry> {
    env.app
        .store
        .audit_entries(&AuditFilter {
            actor: Some(actor.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
}

fn shipment_body() -> serde_json::Value {
    json!({
        "partner_id": "P01",
        "customer": "苏州工业园管委会",
        "status": "shipped",
        "carrier": "SF Express",
        "tracking_number": "SF1402874471",
        "shipped_on": "2026-11-14",
        "eta": "2026-11-20",
        "delivered_on": null,
        "items": ["Webex Room Kit Mini", "Webex Desk Pro"]
    })
}

#[tokio::test]
async fn only_bearer_tokens_open_the_api_and_read_only_tokens_cannot_write() {
    let env = TestEnv::new("").await;
    let addr = serve(&env).await;
    let rw = token(&env, "erp", false).await;
    let ro = token(&env, "viewer", true).await;
    let path = "/api/v1/shipments/D20261001";

    let anonymous = Api::new(addr, None).get(path).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert!(anonymous
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    assert_eq!(
        Api::new(addr, Some("td_not-a-token"))
            .get(path)
            .await
            .status,
        401
    );
    // Not a bearer scheme.
    let basic = request(
        addr,
        "GET",
        path,
        &[("Authorization", &format!("Basic {rw}"))],
        b"",
    )
    .await;
    assert_eq!(basic.status, 401);

    assert_eq!(Api::new(addr, Some(&rw)).get(path).await.status, 200);
    assert_eq!(Api::new(addr, Some(&ro)).get(path).await.status, 200);
    let refused = Api::new(addr, Some(&ro)).put(path, &shipment_body()).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    let refused = Api::new(addr, Some(&ro))
        .post("/api/v1/shipments", &json!([]))
        .await;
    assert_eq!(refused.status, 403);

    // A staff session cookie is no way in: cookies are ignored on /api.
    review_support::add_user(&env, "staff").await;
    let mut browser = review_support::Browser::new(&env);
    let login = browser.login("staff", review_support::PASSWORD).await;
    assert_eq!(login.status.as_u16(), 303, "{}", login.body);
    let jar: Vec<String> = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(!jar.is_empty());
    let mut with_cookie = Api::new(addr, None);
    with_cookie.cookie = Some(jar.join("; "));
    assert_eq!(with_cookie.get(path).await.status, 401);
    assert_eq!(with_cookie.put(path, &shipment_body()).await.status, 401);
    with_cookie.token = Some(ro.clone());
    assert_eq!(with_cookie.put(path, &shipment_body()).await.status, 403);

    // Revoked: refused from then on.
    assert!(env.app.store.revoke_api_token("erp", 1).await.unwrap());
    assert_eq!(Api::new(addr, Some(&rw)).get(path).await.status, 401);
    assert!(
        audit_of(&env, "token:viewer").await.is_empty(),
        "nothing was changed"
    );
}

#[tokio::test]
async fn put_creates_then_updates_and_get_returns_the_stored_shipment() {
    let env = TestEnv::new("").await;
    let addr = serve(&env).await;
    let api = Api::new(addr, Some(&token(&env, "erp", false).await));

    assert_eq!(api.get("/api/v1/shipments/D20269001").await.status, 404);
    let created = api
        .put("/api/v1/shipments/D20269001", &shipment_body())
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let mut want = shipment_body();
    want["loan_number"] = json!("D20269001");
    want["rma_number"] = json!(null);
    assert_eq!(created.json(), want);
    assert_eq!(api.get("/api/v1/shipments/D20269001").await.json(), want);

    // Fields that may be empty in the CSV may be omitted or null; a lower-case number in the
    // URL is the same loan.
    let update = json!({
        "partner_id": "P01", "customer": "苏州工业园管委会", "status": "return_requested",
        "carrier": null, "items": [], "rma_number": "RMA-4711"
    });
    let updated = api.put("/api/v1/shipments/d20269001", &update).await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    let body = updated.json();
    assert_eq!(body["loan_number"], "D20269001");
    assert_eq!(body["status"], "return_requested");
    assert_eq!(body["carrier"], json!(null));
    assert_eq!(body["shipped_on"], json!(null));
    assert_eq!(body["items"], json!([]));
    assert_eq!(body["rma_number"], "RMA-4711");
    let stored = env
        .app
        .store
        .shipments_by_loan(&[trialdesk::domain::LoanNumber::from_normalized(
            "D20269001".into(),
        )])
        .await
        .unwrap();
    assert_eq!(stored[0].rma_number.as_deref(), Some("RMA-4711"));

    // The id may be repeated in the body, but must match.
    let mut same = shipment_body();
    same["loan_number"] = json!("D20269001");
    assert_eq!(
        api.put("/api/v1/shipments/D20269001", &same).await.status,
        200
    );
    same["loan_number"] = json!("d20269001");
    assert_eq!(
        api.put("/api/v1/shipments/D20269001", &same).await.status,
        200
    );
    same["loan_number"] = json!("D20269002");
    let mismatch = api.put("/api/v1/shipments/D20269001", &same).await;
    assert_eq!(mismatch.status, 422);
    assert_eq!(mismatch.json()["errors"][0]["field"], "loan_number");

    // Every change is audited with the token's name; the audit page shows it.
    let audit = audit_of(&env, "token:erp").await;
    assert_eq!(audit.len(), 4, "{audit:?}");
    assert!(audit
        .iter()
        .all(|a| a.via == "api" && a.detail.contains("D20269001")));
    review_support::add_user(&env, "staff").await;
    let mut browser = review_support::Browser::new(&env);
    browser.login("staff", review_support::PASSWORD).await;
    let page = browser.get("/audit?actor=token%3Aerp").await;
    assert_eq!(page.status.as_u16(), 200);
    assert!(page.body.contains("token:erp") && page.body.contains("D20269001"));
}

#[tokio::test]
async fn validation_is_the_csv_importers_with_fields_named() {
    let env = TestEnv::new("").await;
    let addr = serve(&env).await;
    let api = Api::new(addr, Some(&token(&env, "erp", false).await));
    let path = "/api/v1/shipments/D20269001";
    let with = |k: &str, v: serde_json::Value| {
        let mut b = shipment_body();
        b[k] = v;
        b
    };
    let cases: Vec<(&str, serde_json::Value, &str, &str)> = vec![
        (
            "bad status",
            with("status", json!("shipping")),
            "status",
            "unknown status",
        ),
        (
            "bad date",
            with("eta", json!("2026/11/20")),
            "eta",
            "YYYY-MM-DD",
        ),
        (
            "no customer",
            with("customer", json!(null)),
            "customer",
            "must not be empty",
        ),
        (
            "unknown partner",
            with("partner_id", json!("P99")),
            "partner_id",
            "unknown partner",
        ),
        (
            "unknown field",
            with("colour", json!("red")),
            "colour",
            "unknown field",
        ),
        (
            "items not a list",
            with("items", json!("a;b")),
            "items",
            "wrong type",
        ),
        (
            "number as text",
            with("customer", json!(12)),
            "customer",
            "wrong type",
        ),
        (
            "; inside an item",
            with("items", json!(["a;b"])),
            "items",
            "';'",
        ),
    ];
    for (name, body, field, message) in cases {
        let res = api.put(path, &body).await;
        assert_eq!(res.status, 422, "{name}: {}", res.text());
        let errors = res.json()["errors"].clone();
        let e = &errors[0];
        assert_eq!(e["field"], field, "{name}: {errors}");
        assert!(
            e["message"].as_str().unwrap().contains(message),
            "{name}: {errors}"
        );
        assert!(e.get("index").is_none(), "{name}: no index outside arrays");
    }
    // A loan number the rules could never find in a mail is refused, as in the CSV.
    let res = api.put("/api/v1/shipments/X1", &shipment_body()).await;
    assert_eq!(res.status, 422);
    assert_eq!(res.json()["errors"][0]["field"], "loan_number");
    // Not JSON, not an object, too large.
    let res = api
        .send("PUT", path, "application/json", b"{not json")
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(api.put(path, &json!(["x"])).await.status, 422);
    let huge = format!("{{\"customer\":\"{}\"}}", "x".repeat(5 << 20));
    assert_eq!(
        api.send("PUT", path, "application/json", huge.as_bytes())
            .await
            .status,
        413
    );
    assert_eq!(
        env.app.store.shipment_count().await.unwrap(),
        fixture_count(&env).await
    );
    assert!(audit_of(&env, "token:erp").await.is_empty());
}

async fn fixture_count(_env: &TestEnv) -> i64 {
    let text = std::fs::read_to_string(format!("{}/data/shipments.csv", common::FIXTURES)).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count() as i64
}

#[tokio::test]
async fn post_arrays_are_all_or_nothing_with_indexed_errors() {
    let env = TestEnv::new("").await;
    let addr = serve(&env).await;
    let api = Api::new(addr, Some(&token(&env, "erp", false).await));
    let before = env.app.store.shipment_count().await.unwrap();
    let good = |n: &str| {
        let mut b = shipment_body();
        b["loan_number"] = json!(n);
        b
    };
    let mut bad = good("D20269003");
    bad["status"] = json!("lost");
    let mut other = good("D20269004");
    other["extra"] = json!(1);
    let res = api
        .post(
            "/api/v1/shipments",
            &json!([good("D20269001"), good("D20269002"), bad, good("D20269001")]),
        )
        .await;
    assert_eq!(res.status, 422, "{}", res.text());
    let errors = res.json()["errors"].as_array().unwrap().clone();
    assert!(
        errors
            .iter()
            .any(|e| e["index"] == 2 && e["field"] == "status"),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e["index"] == 3 && e["field"] == "loan_number"),
        "a duplicate is named on the second occurrence: {errors:?}"
    );
    let res = api
        .post("/api/v1/shipments", &json!([good("D20269001"), other]))
        .await;
    assert_eq!(res.status, 422);
    assert_eq!(res.json()["errors"][0]["index"], 1);
    assert_eq!(res.json()["errors"][0]["field"], "extra");
    assert_eq!(
        env.app.store.shipment_count().await.unwrap(),
        before,
        "nothing stored"
    );
    assert!(audit_of(&env, "token:erp").await.is_empty());
    assert_eq!(
        api.post("/api/v1/shipments", &json!({"loan_number": "D20269001"}))
            .await
            .status,
        422,
        "an object is not an array"
    );

    let res = api
        .post(
            "/api/v1/shipments",
            &json!([good("D20269001"), good("d20269002")]),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let stored = res.json();
    assert_eq!(stored.as_array().unwrap().len(), 2);
    assert_eq!(stored[1]["loan_number"], "D20269002");
    assert_eq!(env.app.store.shipment_count().await.unwrap(), before + 2);
    assert_eq!(audit_of(&env, "token:erp").await.len(), 2);
}

#[tokio::test]
async fn trials_and_partners_speak_json_lists_and_booleans() {
    let env = TestEnv::new("").await;
    let addr = serve(&env).await;
    let api = Api::new(addr, Some(&token(&env, "erp", false).await));

    let partner = json!({
        "name": "Sakura Systems", "domains": ["sakura.example.jp", "SAKURA-sys.example.jp"],
        "admin_emails": ["it@sakura.example.jp"], "language": "ja"
    });
    let res = api.put("/api/v1/partners/P07", &partner).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let body = res.json();
    assert_eq!(body["partner_id"], "P07");
    assert_eq!(
        body["domains"],
        json!(["sakura-sys.example.jp", "sakura.example.jp"])
    );
    assert_eq!(api.put("/api/v1/partners/P07", &partner).await.status, 200);
    assert_eq!(api.get("/api/v1/partners/P07").await.json(), body);
    assert_eq!(api.get("/api/v1/partners/P99").await.status, 404);
    // A domain of another partner stays with it (the importer's rule).
    let mut stolen = partner.clone();
    stolen["domains"] = json!(["huadong.example.cn"]);
    let res = api.put("/api/v1/partners/P08", &stolen).await;
    assert_eq!(res.status, 422);
    assert_eq!(res.json()["errors"][0]["field"], "domains");

    let trial = json!({
        "partner_id": "P07", "customer": "Tokyo Clinic",
        "customer_admin_emails": ["admin@clinic.example.jp"],
        "services": ["meeting", "calling"], "starts_on": "2026-11-01",
        "expires_on": "2026-12-01", "extended": false, "converted": true,
        "timezone": "Asia/Tokyo", "language": "ja"
    });
    let res = api.put("/api/v1/trials/T-7001", &trial).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let body = res.json();
    assert_eq!(body["converted"], json!(true));
    assert_eq!(body["extended"], json!(false));
    assert_eq!(body["services"], json!(["meeting", "calling"]));
    assert_eq!(api.get("/api/v1/trials/T-7001").await.json(), body);
    let mut bad = trial.clone();
    bad["timezone"] = json!("Mars/Olympus");
    bad["extended"] = json!(false);
    let res = api.put("/api/v1/trials/T-7001", &bad).await;
    assert_eq!(res.status, 422);
    assert_eq!(res.json()["errors"][0]["field"], "timezone");
    bad["extended"] = json!("no");
    let res = api.put("/api/v1/trials/T-7001", &bad).await;
    assert_eq!(
        res.json()["errors"][0]["field"],
        "extended",
        "a boolean is a JSON boolean"
    );

    let mut t2 = trial.clone();
    t2["trial_id"] = json!("T-7002");
    let mut t3 = trial.clone();
    t3["trial_id"] = json!("T-7003");
    t3["services"] = json!(["fax"]);
    let res = api.post("/api/v1/trials", &json!([t2.clone(), t3])).await;
    assert_eq!(res.status, 422);
    assert_eq!(res.json()["errors"][0]["index"], 1);
    assert_eq!(api.get("/api/v1/trials/T-7002").await.status, 404);
    let res = api.post("/api/v1/trials", &json!([t2])).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = api
        .post("/api/v1/partners", &json!([{"partner_id": "P09", "name": "N", "domains": ["n.example.de"], "admin_emails": ["a@n.example.de"], "language": "de"}]))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let actions: Vec<String> = audit_of(&env, "token:erp")
        .await
        .iter()
        .map(|a| a.detail.clone())
        .collect();
    assert_eq!(actions.len(), 5, "{actions:?}");
}

#[tokio::test]
async fn rma_labels_are_stored_per_loan_as_pdf_files() {
    let env = TestEnv::new("").await;
    let addr = serve(&env).await;
    let api = Api::new(addr, Some(&token(&env, "erp", false).await));
    let ro = Api::new(addr, Some(&token(&env, "viewer", true).await));
    let path = "/api/v1/shipments/D20261001/rma-label";
    let pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n";

    assert_eq!(api.get(path).await.status, 404);
    assert_eq!(
        ro.send("PUT", path, "application/pdf", pdf).await.status,
        403
    );
    assert_eq!(api.send("PUT", path, "text/plain", pdf).await.status, 415);
    assert_eq!(
        api.send("PUT", path, "application/pdf", b"hello")
            .await
            .status,
        422
    );
    let big = [&b"%PDF-1.4\n"[..], &vec![b'x'; 6 << 20]].concat();
    assert_eq!(
        api.send("PUT", path, "application/pdf", &big).await.status,
        413
    );
    assert_eq!(
        api.send(
            "PUT",
            "/api/v1/shipments/D20269999/rma-label",
            "application/pdf",
            pdf
        )
        .await
        .status,
        404
    );
    let res = api.send("PUT", path, "application/pdf", pdf).await;
    assert_eq!(res.status, 201, "{}", res.text());
    assert_eq!(
        api.send("PUT", path, "application/pdf", pdf).await.status,
        200
    );
    let got = ro.get(path).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("application/pdf"));
    assert_eq!(got.body, pdf);
    let file = env.dir.path().join("rma-labels").join("D20261001.pdf");
    assert_eq!(std::fs::read(&file).unwrap(), pdf);
    // The mail side reads the same file.
    let label = trialdesk::store::rma::rma_label(
        Some(&env.dir.path().join("rma-labels")),
        &trialdesk::domain::LoanNumber::from_normalized("D20261001".into()),
        env.app.config.rma.max_label_bytes,
    )
    .unwrap();
    assert_eq!(
        (label.file_name.as_str(), &label.bytes[..]),
        ("D20261001.pdf", &pdf[..])
    );
    let audit = audit_of(&env, "token:erp").await;
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|a| a.action == "rma_label"));
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_every_path() {
    let env = TestEnv::new("").await;
    let addr = serve(&env).await;
    let res = Api::new(addr, None).get("/api/v1/openapi.json").await;
    assert_eq!(res.status, 200);
    assert!(res
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let doc = res.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for (path, methods) in [
        ("/api/v1/shipments", &["post"][..]),
        ("/api/v1/shipments/{loan_number}", &["get", "put"][..]),
        (
            "/api/v1/shipments/{loan_number}/rma-label",
            &["get", "put"][..],
        ),
        ("/api/v1/trials", &["post"][..]),
        ("/api/v1/trials/{trial_id}", &["get", "put"][..]),
        ("/api/v1/partners", &["post"][..]),
        ("/api/v1/partners/{partner_id}", &["get", "put"][..]),
    ] {
        for m in methods {
            assert!(doc["paths"][path][m].is_object(), "{m} {path} missing");
        }
    }
    let shipment = &doc["components"]["schemas"]["ShipmentFields"]["properties"];
    for field in ["partner_id", "status", "items", "eta", "rma_number"] {
        assert!(shipment[field].is_object(), "ShipmentFields.{field}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
