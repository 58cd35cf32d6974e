//! An AuthZEN 1.0 walk-through of the OpenID interop "todo" scenario over HTTP, on the model
//! and data of `schema-examples/authzen-todo.{zed,yaml}` (loaded from those files): who may
//! read, create, update and delete which todo, asked the way an AuthZEN enforcement point asks
//! — with email ids, batch evaluations and their semantics, subject/resource/action searches
//! with page tokens, caveat context from properties, and the metadata document.

use serde_json::{Value, json};

use crate::http_support::*;

/// The model and relationships of the example files.
async fn todo_app() -> HttpTest {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema-examples");
    let schema = std::fs::read_to_string(dir.join("authzen-todo.zed")).unwrap();
    let validation: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("authzen-todo.yaml")).unwrap())
            .unwrap();
    let t = HttpTest::start().await;
    let r = t.post("/v1/schema/write", json!({"schema": schema})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let updates: Vec<Value> = validation["relationships"]
        .as_str()
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(|l| {
            let r = tessera::model::parse_relationship(l).unwrap();
            let wire = tessera::api::convert::relationship_to_proto(&r);
            json!({"operation": "OPERATION_TOUCH",
                   "relationship": tessera::http::json::encode(&wire).unwrap()})
        })
        .collect();
    let r = t
        .post("/v1/relationships/write", json!({"updates": updates}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    t
}

fn user(name: &str) -> Value {
    json!({"type": "user", "id": format!("{name}@citadel.example")})
}

fn todo(id: &str) -> Value {
    json!({"type": "todo", "id": id})
}

async fn decide(t: &HttpTest, subject: Value, action: &str, resource: Value) -> bool {
    let r = t
        .post(
            "/access/v1/evaluation",
            json!({"subject": subject, "action": {"name": action}, "resource": resource}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["decision"].as_bool().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_todo_scenario() {
    let t = todo_app().await;
    let app = json!({"type": "app", "id": "main"});

    // Everyone with a role reads users and todos; only admins and editors create todos.
    for name in ["rick", "morty", "summer", "beth", "jerry"] {
        assert!(
            decide(&t, user(name), "can_read_user", app.clone()).await,
            "{name}"
        );
        assert!(
            decide(&t, user(name), "can_read_todos", todo("t1")).await,
            "{name}"
        );
    }
    for (name, may) in [
        ("rick", true),
        ("morty", true),
        ("summer", true),
        ("beth", false),
        ("jerry", false),
    ] {
        assert_eq!(
            decide(&t, user(name), "can_create_todo", app.clone()).await,
            may,
            "{name}"
        );
    }
    // A stranger gets no role at all.
    assert!(!decide(&t, user("birdperson"), "can_read_todos", todo("t1")).await);

    // Editors update and delete their own todos; admins everyone's; viewers nobody's.
    let expected = [
        ("morty", "t1", true),
        ("morty", "t2", false),
        ("summer", "t2", true),
        ("summer", "t1", false),
        ("rick", "t1", true),
        ("rick", "t4", true),
        ("beth", "t4", false),
        ("jerry", "t3", false),
    ];
    for (name, id, may) in expected {
        for action in ["can_update_todo", "can_delete_todo"] {
            assert_eq!(
                decide(&t, user(name), action, todo(id)).await,
                may,
                "{name} {action} {id}"
            );
        }
    }

    // The same questions as one batch, with defaults.
    let r = t
        .post(
            "/access/v1/evaluations",
            json!({
                "subject": user("morty"),
                "action": {"name": "can_update_todo"},
                "evaluations": [
                    {"resource": todo("t1")},
                    {"resource": todo("t2")},
                    {"resource": todo("t3"), "subject": user("rick")},
                    {"resource": app, "action": {"name": "can_create_todo"}},
                    {"resource": {"type": "nope", "id": "x"}}
                ]
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let decisions: Vec<Value> = r.json()["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].clone())
        .collect();
    assert_eq!(
        decisions,
        [
            json!(true),
            json!(false),
            json!(true),
            json!(true),
            json!(false)
        ]
    );
    let failed = &r.json()["evaluations"][4]["context"]["error"];
    assert_eq!(failed["status"], 412, "{failed}");
    assert_eq!(failed["reason"], "ERROR_REASON_UNKNOWN_DEFINITION");

    // Short-circuit semantics.
    let batch = |semantic: &str| {
        json!({
            "subject": user("summer"),
            "action": {"name": "can_delete_todo"},
            "options": {"evaluations_semantic": semantic},
            "evaluations": [
                {"resource": todo("t2")},
                {"resource": todo("t1")},
                {"resource": todo("t2")}
            ]
        })
    };
    let count = |r: Reply| r.json()["evaluations"].as_array().unwrap().len();
    assert_eq!(
        count(t.post("/access/v1/evaluations", batch("execute_all")).await),
        3
    );
    assert_eq!(
        count(
            t.post("/access/v1/evaluations", batch("deny_on_first_deny"))
                .await
        ),
        2
    );
    assert_eq!(
        count(
            t.post("/access/v1/evaluations", batch("permit_on_first_permit"))
                .await
        ),
        1
    );
    let r = t.post("/access/v1/evaluations", batch("sometimes")).await;
    r.assert_error(400, 3, &["sometimes"]);
    // Without `evaluations`, a single decision.
    let r = t
        .post(
            "/access/v1/evaluations",
            json!({"subject": user("rick"), "action": {"name": "can_delete_todo"},
                   "resource": todo("t2")}),
        )
        .await;
    assert_eq!(r.json(), json!({"decision": true}));

    // Subject search: who may delete todo t1? Ids come back unescaped.
    let r = t
        .post(
            "/access/v1/search/subject",
            json!({"subject": {"type": "user"}, "action": {"name": "can_delete_todo"},
                   "resource": todo("t1")}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["results"], json!([user("morty"), user("rick")]));
    assert_eq!(r.json()["page"]["next_token"], "");

    // Paged: everyone who reads todos, two at a time.
    let mut seen = Vec::new();
    let mut token = Value::Null;
    for _ in 0..10 {
        let r = t
            .post(
                "/access/v1/search/subject",
                json!({"subject": {"type": "user"}, "action": {"name": "can_read_todos"},
                       "resource": todo("t1"), "page": {"limit": 2, "token": token}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let body = r.json();
        assert!(body["results"].as_array().unwrap().len() <= 2);
        seen.extend(
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].clone()),
        );
        token = body["page"]["next_token"].clone();
        if token == "" {
            break;
        }
    }
    assert_eq!(
        seen,
        ["beth", "jerry", "morty", "rick", "summer"].map(|n| json!(format!("{n}@citadel.example")))
    );

    // Resource search: which todos may summer update? And rick?
    let r = t
        .post(
            "/access/v1/search/resource",
            json!({"subject": user("summer"), "action": {"name": "can_update_todo"},
                   "resource": {"type": "todo"}}),
        )
        .await;
    assert_eq!(r.json()["results"], json!([todo("t2")]));
    let r = t
        .post(
            "/access/v1/search/resource",
            json!({"subject": user("rick"), "action": {"name": "can_update_todo"},
                   "resource": {"type": "todo"}, "page": {"limit": 3}}),
        )
        .await;
    assert_eq!(
        r.json()["results"],
        json!([todo("t1"), todo("t2"), todo("t3")])
    );
    let next = r.json()["page"]["next_token"].clone();
    assert_ne!(next, "");
    let r = t
        .post(
            "/access/v1/search/resource",
            json!({"subject": user("rick"), "action": {"name": "can_update_todo"},
                   "resource": {"type": "todo"}, "page": {"limit": 3, "token": next}}),
        )
        .await;
    assert_eq!(r.json()["results"], json!([todo("t4")]));
    assert_eq!(r.json()["page"]["next_token"], "");
    // A token belongs to its search.
    let r = t
        .post(
            "/access/v1/search/resource",
            json!({"subject": user("morty"), "action": {"name": "can_update_todo"},
                   "resource": {"type": "todo"}, "page": {"token": next}}),
        )
        .await;
    r.assert_error(412, 9, &["page.token"]);
    assert_eq!(r.reason(), "ERROR_REASON_INVALID_CURSOR");

    // Action search: what may morty do on t1, and on t2?
    let actions = |r: Reply| -> Vec<Value> {
        r.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].clone())
            .collect()
    };
    let r = t
        .post(
            "/access/v1/search/action",
            json!({"subject": user("morty"), "resource": todo("t1")}),
        )
        .await;
    assert_eq!(
        actions(r),
        [
            "can_delete_todo",
            "can_read_todos",
            "can_update_todo",
            "owner"
        ]
        .map(|a| json!(a))
    );
    let r = t
        .post(
            "/access/v1/search/action",
            json!({"subject": user("morty"), "resource": todo("t2")}),
        )
        .await;
    assert_eq!(actions(r), [json!("can_read_todos")]);
    let r = t
        .post(
            "/access/v1/search/action",
            json!({"subject": user("rick"), "resource": todo("t1"), "page": {"limit": 1}}),
        )
        .await;
    let token = r.json()["page"]["next_token"].clone();
    assert_eq!(actions(r), [json!("can_delete_todo")]);
    let r = t
        .post(
            "/access/v1/search/action",
            json!({"subject": user("rick"), "resource": todo("t1"), "page": {"limit": 5, "token": token}}),
        )
        .await;
    assert_eq!(
        actions(r),
        ["can_read_todos", "can_update_todo"].map(|a| json!(a))
    );

    // The contractor reads only from the office: subject properties become caveat context,
    // and without them the answer is a conditional "no".
    let squanchy = |props: Option<Value>| {
        let mut s = user("squanchy");
        if let Some(p) = props {
            s["properties"] = p;
        }
        json!({"subject": s, "action": {"name": "can_read_todos"}, "resource": todo("t2")})
    };
    let r = t
        .post(
            "/access/v1/evaluation",
            squanchy(Some(json!({"network": "office"}))),
        )
        .await;
    assert_eq!(r.json(), json!({"decision": true}));
    let r = t
        .post(
            "/access/v1/evaluation",
            squanchy(Some(json!({"network": "home"}))),
        )
        .await;
    assert_eq!(r.json(), json!({"decision": false}));
    let r = t.post("/access/v1/evaluation", squanchy(None)).await;
    assert_eq!(
        r.json(),
        json!({"decision": false, "context": {"conditional": true, "missing_context": ["subject_network"]}})
    );
    // The same parameter from `context` works too; given twice it is refused.
    let mut both = squanchy(Some(json!({"network": "office"})));
    both["context"] = json!({"subject_network": "office"});
    let r = t.post("/access/v1/evaluation", both).await;
    r.assert_error(400, 3, &["subject.properties.network"]);
    let mut in_context = squanchy(None);
    in_context["context"] = json!({"subject_network": "office"});
    assert_eq!(
        t.post("/access/v1/evaluation", in_context).await.json(),
        json!({"decision": true})
    );

    // Ids too long once escaped are refused.
    let r = t
        .post(
            "/access/v1/evaluation",
            json!({"subject": {"type": "user", "id": "@".repeat(400)},
                   "action": {"name": "can_read_todos"}, "resource": todo("t1")}),
        )
        .await;
    r.assert_error(400, 3, &["subject.id", "1200 bytes"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_document_names_every_endpoint() {
    let t = HttpTest::start().await;
    let r = t.get("/.well-known/authzen-configuration").await;
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_eq!(m["policy_decision_point"], t.base);
    for (key, path) in [
        ("access_evaluation_endpoint", "/access/v1/evaluation"),
        ("access_evaluations_endpoint", "/access/v1/evaluations"),
        ("search_subject_endpoint", "/access/v1/search/subject"),
        ("search_resource_endpoint", "/access/v1/search/resource"),
        ("search_action_endpoint", "/access/v1/search/action"),
    ] {
        assert_eq!(m[key], t.url(path), "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_exclusions_and_ids_without_an_authzen_spelling() {
    let t = HttpTest::start().await;
    let schema = "definition user {}\ndefinition doc {\n  relation viewer: user | user:*\n  relation banned: user\n  permission view = viewer - banned\n}";
    assert_eq!(
        t.post("/v1/schema/write", json!({"schema": schema}))
            .await
            .status,
        200
    );
    let touch = |id: &str, relation: &str, subject: &str| {
        json!({"operation": "OPERATION_TOUCH", "relationship": {
            "resource": {"objectType": "doc", "objectId": id}, "relation": relation,
            "subject": {"object": {"objectType": "user", "objectId": subject}}}})
    };
    let r = t
        .post(
            "/v1/relationships/write",
            json!({"updates": [
                touch("pub", "viewer", "*"),
                touch("pub", "banned", "eve=40x=2Eorg"),
                // Written natively with a raw `=`: no AuthZEN spelling, shown as stored.
                touch("pub", "viewer", "abc=="),
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t
        .post(
            "/access/v1/search/subject",
            json!({"subject": {"type": "user"}, "action": {"name": "view"},
                   "resource": {"type": "doc", "id": "pub"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["results"],
        json!([
            {"type": "user", "id": "*", "properties": {"excluded": ["eve@x.org"]}},
            {"type": "user", "id": "abc=="}
        ])
    );
    // The banned user, named as AuthZEN names her, is denied; anyone else is allowed.
    let decide = |id: &str| {
        json!({"subject": {"type": "user", "id": id}, "action": {"name": "view"},
               "resource": {"type": "doc", "id": "pub"}})
    };
    let r = t.post("/access/v1/evaluation", decide("eve@x.org")).await;
    assert_eq!(r.json(), json!({"decision": false}));
    let r = t
        .post("/access/v1/evaluation", decide("anyone@x.org"))
        .await;
    assert_eq!(r.json(), json!({"decision": true}));
    // `*` as an AuthZEN id is an ordinary id (escaped), never the wildcard.
    let r = t.post("/access/v1/evaluation", decide("*")).await;
    assert_eq!(r.json(), json!({"decision": true}));
    let r = t
        .post(
            "/access/v1/search/resource",
            json!({"subject": {"type": "user", "id": "eve@x.org"}, "action": {"name": "view"},
                   "resource": {"type": "doc"}}),
        )
        .await;
    assert_eq!(r.json()["results"], json!([]));
}
