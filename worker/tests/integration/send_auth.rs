//! Authentication against the partner simulator: static credentials and OAuth2 tokens.

use std::sync::Arc;

use crate::send_support::*;
use courier_e2e::sim::{Auth as SimAuth, SimConfig, Simulator};
use courier_worker::limiter::Rate;
use courier_worker::send::{AuthConfig, OAuth2Config, SendConfig};

async fn sim_with(auth: SimAuth) -> Simulator {
    Simulator::start("127.0.0.1:0", SimConfig { auth, ..SimConfig::default() }).await.expect("simulator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_basic_and_header_credentials_are_accepted() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let cases = [
        (SimAuth::Bearer { token: "t0k3n".into() }, AuthConfig::Bearer { token: "t0k3n".into() }),
        (
            SimAuth::Basic { user: "u".into(), password: "p:w".into() },
            AuthConfig::Basic { username: "u".into(), password: "p:w".into() },
        ),
        (
            SimAuth::Header { name: "X-Api-Key".into(), value: "k".into() },
            AuthConfig::Header { name: "X-Api-Key".into(), value: "k".into() },
        ),
    ];
    for (sim_auth, auth) in cases {
        let sim = sim_with(sim_auth.clone()).await;
        let config = SendConfig { auth, retry: quick_retry(1), ..SendConfig::default() };
        let delivery = sender(&sim.url(), "static-auth", config, None, Arc::default());
        let run = deliver(&delivery, records("file:///data/auth.jsonl", 5)).await;
        assert_eq!(run.counters().sent, 5, "{sim_auth:?}");
        assert_eq!(sim.stats().rejected.unauthorized, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_static_credentials_dead_letter_with_401_without_retrying() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim = sim_with(SimAuth::Bearer { token: "right".into() }).await;
    let config = SendConfig {
        auth: AuthConfig::Bearer { token: "wrong".into() },
        retry: quick_retry(4),
        ..SendConfig::default()
    };
    let delivery = sender(&sim.url(), "wrong-auth", config, None, Arc::default());
    let run = deliver(&delivery, records("file:///data/auth.jsonl", 3)).await;
    assert_eq!(run.counters().dead_lettered, 3);
    assert!(run.dead_letters.iter().all(|dl| dl["status"] == 401 && dl["attempts"] == 1));
    assert_eq!(sim.stats().rejected.unauthorized, 3);
}

fn oauth(sim: &Simulator) -> AuthConfig {
    AuthConfig::OAuth2(OAuth2Config {
        token_url: format!("{}/oauth/token", sim.url()),
        client_id: "courier".into(),
        client_secret: "s3cret".into(),
        scopes: vec!["records:write".into()],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth2_token_is_refreshed_before_it_expires() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // Tokens live 2 s; the run lasts about 3 s at 10 requests per second.
    let sim =
        sim_with(SimAuth::Oauth2 { client_id: "courier".into(), client_secret: "s3cret".into(), token_ttl_secs: 2 })
            .await;
    let config = SendConfig { auth: oauth(&sim), retry: quick_retry(1), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "oauth", config, Some(Rate::new(10, 1)), Arc::default());

    let run = deliver(&delivery, records("file:///data/oauth.jsonl", 31)).await;

    assert_eq!(run.counters().sent, 31, "every request carried a valid token");
    assert_eq!(sim.stats().rejected.unauthorized, 0, "no request went out with an expired token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_fetches_a_fresh_token_once_then_dead_letters() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // Tokens come from one partner, requests go to another that knows none of them.
    let issuer =
        sim_with(SimAuth::Oauth2 { client_id: "courier".into(), client_secret: "s3cret".into(), token_ttl_secs: 60 })
            .await;
    let partner =
        sim_with(SimAuth::Oauth2 { client_id: "courier".into(), client_secret: "s3cret".into(), token_ttl_secs: 60 })
            .await;
    let config = SendConfig { auth: oauth(&issuer), retry: quick_retry(3), max_in_flight: 1, ..SendConfig::default() };
    let delivery = sender(&partner.url(), "oauth-401", config, None, Arc::default());

    let run = deliver(&delivery, records("file:///data/oauth.jsonl", 2)).await;

    assert_eq!(run.counters().dead_lettered, 2);
    assert_eq!(partner.stats().rejected.unauthorized, 4, "each record: one attempt, one retry with a new token");
    assert!(run.dead_letters.iter().all(|dl| dl["status"] == 401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_refusing_the_client_dead_letters_with_the_reason() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim =
        sim_with(SimAuth::Oauth2 { client_id: "courier".into(), client_secret: "other".into(), token_ttl_secs: 60 })
            .await;
    let config = SendConfig { auth: oauth(&sim), retry: quick_retry(2), ..SendConfig::default() };
    let delivery = sender(&sim.url(), "oauth-bad", config, None, Arc::default());
    let run = deliver(&delivery, records("file:///data/oauth.jsonl", 1)).await;
    assert_eq!(run.counters().dead_lettered, 1);
    let error = run.dead_letters[0]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("OAuth2") && error.contains("invalid_client"), "{error}");
    assert_eq!(sim.stats().accepted + sim.stats().rejected.unauthorized, 0, "the partner was never called");
}
