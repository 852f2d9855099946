//! End to end: the demo workshop in headless Chromium logs through the wasm client into the real
//! server, and an instructor reads the events back.

use serde_json::Value;
use session_log_e2e::{Browser, Server};

fn of_type<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event_type"] == event_type).collect()
}

// A student clicks through every step of the demo; the instructor finds each event type with the
// reference's fields, the context fields, the student's identity and unique ids in logged order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicking_through_the_demo_delivers_every_event_type() {
    let server = Server::start();
    let browser = Browser::start().await;
    browser
        .client
        .goto(&format!("{}/?email=ada@example.com&name=Ada%20Lovelace", server.url))
        .await
        .expect("open the demo");
    let token = browser.wait_for_text("#session-token", |t| t.starts_with("ws_")).await;
    assert_eq!(token.len(), 3 + 32, "ws_ and 128 bits in hex: {token}");

    session_log_e2e::demo_first_steps(&browser).await;
    session_log_e2e::demo_last_steps(&browser).await;
    browser.close().await;

    let answer = server.events(&format!("sessionToken={token}&limit=1000"));
    assert_eq!(answer["success"], true);
    let mut events: Vec<Value> = answer["events"].as_array().expect("events").clone();
    assert_eq!(answer["count"], events.len());
    events.reverse(); // the API answers newest first
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, session_log_e2e::DEMO_EVENT_TYPES, "every event, in the order the student caused them");

    // Context fields and identity on every event.
    for (i, event) in events.iter().enumerate() {
        let data = &event["event_data"];
        assert_eq!(event["session_token"], token.as_str());
        assert_eq!(event["student_email"], "ada@example.com");
        assert_eq!(event["student_name"], "Ada Lovelace");
        assert!(data["currentStep"].is_u64(), "{data}");
        assert!(data["stepName"].is_string(), "{data}");
        assert_eq!(data["demoMode"], false);
        assert!(data["userAgent"].as_str().unwrap().contains("Chrome"), "{data}");
        let ts = data["timestamp"].as_str().unwrap();
        assert!(ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "ISO 8601 with ms: {ts}");
        assert_eq!(event["seq"], i as u64, "seq counts events in logged order");
    }
    let mut uuids: Vec<&str> = events.iter().map(|e| e["event_uuid"].as_str().unwrap()).collect();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), events.len(), "every event has its own id");

    // Each type's own fields, as the reference shows them.
    let navigation = of_type(&events, "navigation");
    let first = &navigation[0]["event_data"];
    assert_eq!((first["from"].as_u64(), first["to"].as_u64()), (Some(0), Some(1)));
    assert_eq!(first["fromStepName"], "Connect Accounts");
    assert_eq!(first["toStepName"], "Choose Use Case");
    assert_eq!(first["currentStep"], 1, "navigation moves the current step");
    assert_eq!(first["stepName"], "Choose Use Case");

    let errors = of_type(&events, "error");
    let refused = &errors[0]["event_data"];
    assert_eq!(refused["errorType"], "openai_validation_failed");
    assert_eq!(refused["errorMessage"], "Incorrect API key provided");
    assert_eq!(refused["statusCode"], 401);
    assert_eq!(refused["stepName"], "Connect Accounts");
    let deploy = &errors[1]["event_data"];
    assert_eq!(deploy["errorType"], "function_deploy_failed");
    assert_eq!(deploy["statusCode"], 404);
    assert_eq!(deploy["currentStep"], 3);
    assert_eq!(deploy["stepName"], "Deploy");

    let actions = of_type(&events, "action");
    assert_eq!(actions[0]["event_data"]["actionName"], "openai_connected");
    assert_eq!(actions[0]["event_data"]["validated"], true);
    assert_eq!(actions[1]["event_data"]["actionName"], "use_case_selected");
    assert_eq!(actions[1]["event_data"]["useCase"], "support");

    let calls = of_type(&events, "api_call");
    let health = &calls[0]["event_data"];
    assert_eq!((health["endpoint"].as_str(), health["method"].as_str()), (Some("/healthz"), Some("GET")));
    assert_eq!((health["status"].as_u64(), health["success"].as_bool()), (Some(200), Some(true)));
    assert!(health["duration"].is_number());
    let deploy_call = &calls[1]["event_data"];
    assert_eq!(deploy_call["endpoint"], "/api/deploy-function");
    assert_eq!(deploy_call["method"], "POST");
    assert_eq!((deploy_call["status"].as_u64(), deploy_call["success"].as_bool()), (Some(404), Some(false)));

    let changes = of_type(&events, "state_change");
    assert_eq!(changes[0]["event_data"]["stateName"], "openaiConnected");
    let voice = &changes[1]["event_data"];
    assert_eq!(voice["stateName"], "voiceEnabled");
    assert_eq!((voice["oldValue"].as_bool(), voice["newValue"].as_bool()), (Some(false), Some(true)));

    let done = &of_type(&events, "workshop_completed")[0]["event_data"];
    assert_eq!(done["stepsCompleted"], 5);
    assert_eq!(done["stepName"], "Test");
}

// The demo's "Ask for help" button sends requestHelp(message): the page says the student is
// next in line, and the instructors see a help_request alert with the student's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_help_opens_an_alert() {
    let server = Server::start();
    let browser = Browser::start().await;
    browser.client.goto(&format!("{}/?email=ada@example.com", server.url)).await.expect("open the demo");
    browser.wait_for_text("#session-token", |t| t.starts_with("ws_")).await;
    browser.type_into("#help-message", "The deploy button does nothing").await;
    browser.click("#ask-help").await;
    browser.wait_for_text("#help-status", |t| t == "You are next in line.").await;
    browser.close().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let alerts = server.get_as(session_log_e2e::INSTRUCTOR_TOKEN, "/api/alerts");
        if let Some(help) = alerts["alerts"].as_array().unwrap().iter().find(|a| a["rule"] == "help_request") {
            assert_eq!(help["message"], "The deploy button does nothing");
            assert_eq!(help["studentEmails"], serde_json::json!(["ada@example.com"]));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no help_request alert within 10 s: {alerts}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
