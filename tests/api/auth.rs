//! Bearer tokens and viewers, over the GraphQL path and over a real socket.

use std::time::Duration;

use crate::helpers::{SECRET, TestApp, both_backends, error_code};
use entity::{types::Role, user};
use jsonwebtoken::{EncodingKey, Header};
use roster::identity::tokens::TokenKeys;
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use serde_json::{Value, json};
use uuid::Uuid;

async fn anonymous_may_browse_but_not_ask_personal_questions(app: TestApp) {
    let browse = app
        .gql(None, "{ courses { totalCount } me { id } }", json!({}))
        .await;
    assert!(browse.get("errors").is_none(), "{browse}");
    assert_eq!(browse["data"]["me"], Value::Null);
    let personal = app.gql(None, "{ myEnrollments { id } }", json!({})).await;
    assert_eq!(error_code(&personal), "UNAUTHENTICATED");
    let certifications = app
        .gql(None, "{ myCertifications { id } }", json!({}))
        .await;
    assert_eq!(error_code(&certifications), "UNAUTHENTICATED");
}

async fn a_bad_token_is_unauthenticated_even_for_discovery(app: TestApp) {
    let student = app.user(Role::Student, None).await;
    let other_keys = TokenKeys::new(b"some-other-secret-some-other-secret").unwrap();
    let forged = other_keys
        .issue(student.id, Duration::from_secs(60))
        .unwrap();
    let unknown_user = app.token(Uuid::new_v4());
    let expired = jsonwebtoken::encode(
        &Header::default(),
        &json!({ "sub": student.id, "exp": chrono::Utc::now().timestamp() - 600 }),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let no_sub = jsonwebtoken::encode(
        &Header::default(),
        &json!({ "exp": chrono::Utc::now().timestamp() + 600 }),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let soon = chrono::Utc::now().timestamp() + 600;
    let not_yet = jsonwebtoken::encode(
        &Header::default(),
        &json!({ "sub": student.id, "exp": soon + 600, "nbf": soon }),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let other_algorithm = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS512),
        &json!({ "sub": student.id, "exp": soon }),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    // `alg: none`: a header and claims with an empty signature.
    let b64 = |v: Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    let unsigned = format!(
        "{}.{}.",
        b64(json!({ "alg": "none", "typ": "JWT" })),
        b64(json!({ "sub": student.id, "exp": soon }))
    );
    // A valid token whose signature was tampered with.
    let valid = app.token(student.id);
    let tampered = format!("{}x", &valid[..valid.len() - 1]);
    // A user deleted after the token was issued.
    let gone = app.user(Role::Student, None).await;
    let gone_token = app.token(gone.id);
    <user::Entity as sea_orm::EntityTrait>::delete_by_id(gone.id)
        .exec(&app.db)
        .await
        .unwrap();
    for header in [
        format!("Bearer {forged}"),
        format!("Bearer {unknown_user}"),
        format!("Bearer {expired}"),
        format!("Bearer {no_sub}"),
        format!("Bearer {not_yet}"),
        format!("Bearer {other_algorithm}"),
        format!("Bearer {unsigned}"),
        format!("Bearer {tampered}"),
        format!("Bearer {gone_token}"),
        "Bearer not.a.jwt".to_owned(),
        format!("Token {}", app.token(student.id)),
    ] {
        let response = app
            .gql_with_header(Some(&header), "{ courses { totalCount } }", json!({}))
            .await;
        assert_eq!(error_code(&response), "UNAUTHENTICATED", "{header}");
        assert_eq!(response["data"], Value::Null);
    }
}

async fn role_and_organization_come_from_the_database_not_the_token(app: TestApp) {
    let org = app.organization("Org").await;
    let person = app.user(Role::Student, Some(org.id)).await;
    let token = app.token(person.id);
    let me = "{ me { id role organization { name } } }";
    let data = app.ok(Some(&token), me, json!({})).await;
    assert_eq!(data["me"]["role"], "STUDENT");
    assert_eq!(data["me"]["organization"]["name"], "Org");

    let mut model: user::ActiveModel = person.clone().into_active_model();
    model.role = Set(Role::Teacher);
    model.update(&app.db).await.unwrap();
    let data = app.ok(Some(&token), me, json!({})).await;
    assert_eq!(
        data["me"]["role"], "TEACHER",
        "the same token now acts as a teacher"
    );
}

async fn student_emails_are_private_and_staff_emails_public(app: TestApp) {
    let org = app.organization("Org").await;
    let student = app.user(Role::Student, Some(org.id)).await;
    let classmate = app.user(Role::Student, Some(org.id)).await;
    let teacher = app.user(Role::Teacher, Some(org.id)).await;
    let coordinator = app.user(Role::Coordinator, Some(org.id)).await;
    let query = "query($id: UUID!) { user(id: $id) { name email } }";
    let as_classmate = app
        .ok(
            Some(&app.token(classmate.id)),
            query,
            json!({ "id": student.id }),
        )
        .await;
    assert_eq!(as_classmate["user"]["email"], Value::Null);
    let as_self = app
        .ok(
            Some(&app.token(student.id)),
            query,
            json!({ "id": student.id }),
        )
        .await;
    assert_eq!(as_self["user"]["email"], student.email);
    let as_coordinator = app
        .ok(
            Some(&app.token(coordinator.id)),
            query,
            json!({ "id": student.id }),
        )
        .await;
    assert_eq!(as_coordinator["user"]["email"], student.email);
    let teacher_seen = app
        .ok(
            Some(&app.token(student.id)),
            query,
            json!({ "id": teacher.id }),
        )
        .await;
    assert_eq!(teacher_seen["user"]["email"], teacher.email);
}

async fn http_serves_graphql_graphiql_and_health(app: TestApp) {
    let address = app.serve().await;
    let client = reqwest::Client::new();
    let base = format!("http://{address}");

    let response = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": "{ courses(first: 1) { totalCount } }" }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["courses"]["totalCount"], 0);

    let response = client
        .get(format!(
            "{base}/graphql?query=%7B%20me%20%7B%20id%20%7D%20%7D"
        ))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["me"], Value::Null);

    let response = client
        .post(format!("{base}/graphql"))
        .header("authorization", "Bearer nope")
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "UNAUTHENTICATED");

    let page = client
        .get(format!("{base}/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("graphiql"));

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // Closing the pool makes the database unreachable: readiness must say so.
    app.db.clone().close().await.unwrap();
    let not_ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(not_ready.status(), 503);
}

both_backends!(
    anonymous_may_browse_but_not_ask_personal_questions,
    a_bad_token_is_unauthenticated_even_for_discovery,
    role_and_organization_come_from_the_database_not_the_token,
    student_emails_are_private_and_staff_emails_public,
    http_serves_graphql_graphiql_and_health
);

/// An OpenID provider that accepts connections and never answers: a request bearing one of its
/// tokens is answered `UNAVAILABLE` naming the identity provider, within a few seconds, not
/// after the request's time limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_hangs_is_unavailable_within_seconds() {
    use base64::Engine as _;
    use roster::{domain::identity::OidcConfig, identity::oidc::Oidc};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let issuer = format!("http://{address}/realms/campus");
    let app = TestApp::new(crate::helpers::Backend::Sqlite).await;
    let oidc = Oidc::new(OidcConfig {
        issuer: issuer.clone(),
        audience: "roster".into(),
        allow_http: true,
        ..OidcConfig::default()
    })
    .expect("the provider's settings");
    let state = app
        .state_with(|s| {
            s.keys = TokenKeys::new(SECRET)
                .unwrap()
                .with_oidc(std::sync::Arc::new(oidc));
        })
        .await;
    let part = |json: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let expires = chrono::Utc::now().timestamp() + 600;
    let token = format!(
        "{}.{}.c2lnbmF0dXJl",
        part(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#.into()),
        part(format!(
            r#"{{"iss":"{issuer}","sub":"ada","aud":"roster","exp":{expires}}}"#
        )),
    );
    let started = std::time::Instant::now();
    let response = state
        .execute(
            async_graphql::BatchRequest::Single("{ me { id } }".into()),
            Some(&format!("Bearer {token}")),
        )
        .await;
    let took = started.elapsed();
    let response = serde_json::to_value(response).unwrap();
    assert_eq!(error_code(&response), "UNAVAILABLE", "{response}");
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("identity provider"), "{message}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
}
