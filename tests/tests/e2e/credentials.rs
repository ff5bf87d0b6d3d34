//! The credentials a deployment gets: on ECS (the worker) the task role's come from the
//! container credentials endpoint, which the AWS SDK reads only when its HTTP client and the
//! provider are compiled in (aws-config without its default features).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use roomrec_tests::{stack_env, unique};
use serde_json::json;

/// What ECS sets in a task's environment for the SDK (`AWS_CONTAINER_AUTHORIZATION_TOKEN` is
/// the EKS Pod Identity / general HTTP form, checked by the SDK on every request).
const TOKEN: &str = "task-credentials-token";

/// Serves the stack's own keys as a container credentials endpoint would, on loopback, and
/// records the Authorization header of every request.
fn credentials_endpoint() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v2/credentials/task-role", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let body = json!({
        "AccessKeyId": stack_env("AWS_ACCESS_KEY_ID"),
        "SecretAccessKey": stack_env("AWS_SECRET_ACCESS_KEY"),
        "Token": std::env::var("AWS_SESSION_TOKEN").unwrap_or_else(|_| "session".to_owned()),
        "Expiration": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
    .to_string();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("authorization") {
                        record.lock().unwrap().push(value.trim().to_owned());
                    }
                }
                line.clear();
            }
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n", body.len());
            stream.write_all(format!("{head}connection: close\r\n\r\n{body}").as_bytes()).unwrap();
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_process_with_no_keys_of_its_own_signs_with_the_container_credentials() {
    let (url, seen) = credentials_endpoint();
    let account = unique("ecs-");
    let out = tokio::process::Command::new(format!("{}/../target/debug/roomrec-admin", env!("CARGO_MANIFEST_DIR")))
        .args(["create-credential", "--account", &account])
        // Nothing else in the chain may answer first: no keys, no profile files, no instance
        // metadata.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "roomrec-admin failed with container credentials:\n{stderr}");
    let issued: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert!(issued["key_id"].as_str().is_some_and(|k| !k.is_empty()), "{issued}");
    assert_eq!(*seen.lock().unwrap(), [TOKEN], "the endpoint was asked once, with the task's token");
}
