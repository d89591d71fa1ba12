//! Secrets never printed: `courier-worker run` delivers with every auth method against a
//! partner simulator that demands it, logging at `RUST_LOG=trace`, and no secret value — nor
//! its base64 form, nor an OAuth2 token the simulator issued — appears in any line it printed.
//! (The operator keeps only the key names of the Secrets it fetches; its trace log is not checked here.)

use crate::run_support::*;
use base64::Engine as _;
use courier_e2e::fixtures::{FixtureSet, Format};
use courier_e2e::sim::{Auth, SimConfig, Simulator};

const RECORDS: usize = 30;

struct Method {
    name: &'static str,
    sim: Auth,
    /// The Destination's `auth` block.
    auth_yaml: String,
    /// The Secret's `stringData`.
    secret: Vec<(&'static str, &'static str)>,
    /// Values that must never be printed.
    secrets: Vec<String>,
}

fn methods(sim_url: &str) -> Vec<Method> {
    let basic = base64::engine::general_purpose::STANDARD.encode("courier:pa55-BASIC-secret");
    vec![
        Method {
            name: "bearer",
            sim: Auth::Bearer { token: "tok-BEARER-secret-1".into() },
            auth_yaml: "  auth: { bearer: { secretRef: { name: creds, key: token } } }\n".into(),
            secret: vec![("token", "tok-BEARER-secret-1")],
            secrets: vec!["tok-BEARER-secret-1".into()],
        },
        Method {
            name: "basic",
            sim: Auth::Basic { user: "courier".into(), password: "pa55-BASIC-secret".into() },
            auth_yaml: "  auth: { basic: { secretRef: { name: creds } } }\n".into(),
            secret: vec![("username", "courier"), ("password", "pa55-BASIC-secret")],
            secrets: vec!["pa55-BASIC-secret".into(), basic],
        },
        Method {
            name: "header",
            sim: Auth::Header { name: "X-Api-Key".into(), value: "key-HEADER-secret-3".into() },
            auth_yaml: "  auth: { header: { name: X-Api-Key, secretRef: { name: creds, key: apiKey } } }\n".into(),
            secret: vec![("apiKey", "key-HEADER-secret-3")],
            secrets: vec!["key-HEADER-secret-3".into()],
        },
        Method {
            name: "oauth2",
            sim: Auth::Oauth2 {
                client_id: "courier-client".into(),
                client_secret: "cs-OAUTH-secret-4".into(),
                token_ttl_secs: 60,
            },
            auth_yaml: format!(
                "  auth:\n    oauth2ClientCredentials:\n      tokenUrl: {sim_url}/oauth/token\n      clientIdRef: {{ name: creds, key: id }}\n      clientSecretRef: {{ name: creds, key: secret }}\n"
            ),
            secret: vec![("id", "courier-client"), ("secret", "cs-OAUTH-secret-4")],
            secrets: vec!["cs-OAUTH-secret-4".into()],
        },
    ]
}

/// Tokens the simulator issues look like `sim-` and 32 hex digits.
fn issued_tokens(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("sim-") {
        let candidate: String = rest[i + 4..].chars().take_while(char::is_ascii_hexdigit).collect();
        if candidate.len() == 32 {
            found.push(format!("sim-{candidate}"));
        }
        rest = &rest[i + 4..];
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_any_auth_method_appears_in_a_trace_log() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let set = FixtureSet::standard(RECORDS).expect("fixtures");
    let file = set.file("users.jsonl").expect("jsonl").clone();
    for method in methods("PLACEHOLDER") {
        let sim = Simulator::start("127.0.0.1:0", SimConfig { auth: method.sim.clone(), ..SimConfig::default() })
            .await
            .expect("simulator");
        let method = methods(&sim.url()).into_iter().find(|m| m.name == method.name).expect("method");
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let data_path = dir.join("users.jsonl");
        std::fs::write(&data_path, &file.bytes).expect("data");
        let data = format!("file://{}", data_path.display());
        let destination = write(dir, "d.yaml", &destination_yaml(&sim.url(), 500, 8, &method.auth_yaml));
        let datum = write(dir, "x.yaml", &datum_yaml(Format::JsonLines));
        let string_data: String = method.secret.iter().map(|(k, v)| format!("  {k}: {v:?}\n")).collect();
        let secret = write(
            dir,
            "s.yaml",
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{ name: creds, namespace: {NAMESPACE} }}\nstringData:\n{string_data}"
            ),
        );
        let dead = format!("file://{}", dir.join("dead").display());
        let output = tokio::process::Command::new(binary())
            .args(["run", "--destination", &destination, "--datum", &datum, "--source", &data])
            .args(["--namespace", NAMESPACE, "--dead-letter", &dead, "--secret", &secret, "--json-summary"])
            .args(["--progress", "never"])
            .env("RUST_LOG", "trace")
            .kill_on_drop(true)
            .output()
            .await
            .expect("courier-worker starts");
        let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert_eq!(output.status.code(), Some(0), "{}: the run failed:\n{}", method.name, tail(&printed));
        let summary = summary(&output);
        let valid = (file.records.len()) as u64;
        assert_eq!(
            count(&summary, "recordsSent"),
            valid,
            "{}: every record delivered with its credentials",
            method.name
        );
        // The log really is at trace level (how many lines it has depends on timing).
        let traced = printed.lines().filter(|l| l.contains("TRACE") || l.contains("\"level\":\"TRACE\"")).count();
        assert!(traced > 0, "{}: a trace log has trace lines:\n{}", method.name, tail(&printed));
        for secret in &method.secrets {
            let leaks: Vec<&str> = printed.lines().filter(|l| l.contains(secret.as_str())).collect();
            assert!(
                leaks.is_empty(),
                "{}: secret {secret:?} printed in {} lines, e.g. {:?}",
                method.name,
                leaks.len(),
                leaks[0]
            );
        }
        let tokens = issued_tokens(&printed);
        assert!(tokens.is_empty(), "{}: OAuth2 tokens printed: {tokens:?}", method.name);
        eprintln!("{}: {traced} trace lines, {valid} records sent, no secret printed", method.name);
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
