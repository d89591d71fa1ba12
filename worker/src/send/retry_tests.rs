use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, StatusCode};

use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).expect("value"));
    }
    h
}

#[test]
fn retry_on_entries_parse_codes_classes_and_transport_errors() {
    let parsed: Vec<RetryOn> =
        ["429", "5xx", "4XX", "connect", "timeout"].iter().map(|s| s.parse().expect("valid")).collect();
    assert_eq!(
        parsed,
        [RetryOn::Status(429), RetryOn::Class(5), RetryOn::Class(4), RetryOn::Connect, RetryOn::Timeout]
    );
    for bad in ["99", "600", "9xx", "x5x", "sometimes", ""] {
        assert!(bad.parse::<RetryOn>().is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn default_policy_classifies_statuses_like_the_design_says() {
    let policy = RetryConfig::default();
    let none = HeaderMap::new();
    let table = [
        (200, Verdict::Success),
        (204, Verdict::Success),
        (408, Verdict::Retry { not_before: None }),
        (429, Verdict::Retry { not_before: None }),
        (500, Verdict::Retry { not_before: None }),
        (503, Verdict::Retry { not_before: None }),
        (400, Verdict::Reject),
        (401, Verdict::CredentialsRefused),
        (403, Verdict::Reject),
        (404, Verdict::Reject),
        (301, Verdict::Reject),
    ];
    for (code, expected) in table {
        let status = StatusCode::from_u16(code).expect("status");
        assert_eq!(policy.classify_response(status, &none), expected, "status {code}");
    }
    assert_eq!(policy.classify_error(TransportError::Connect), Verdict::Retry { not_before: None });
    assert_eq!(policy.classify_error(TransportError::Timeout), Verdict::Retry { not_before: None });
}

#[test]
fn auth_failure_statuses_are_a_verdict_on_the_credentials_whatever_retry_on_says() {
    let none = HeaderMap::new();
    let with_403 = RetryConfig { auth_statuses: vec![401, 403], ..RetryConfig::default() };
    let listed = RetryConfig { retry_on: vec![RetryOn::Class(4)], ..RetryConfig::default() };
    let off = RetryConfig { auth_statuses: Vec::new(), ..RetryConfig::default() };
    // (policy, status, verdict)
    let table: [(&RetryConfig, u16, Verdict); 7] = [
        (&with_403, 401, Verdict::CredentialsRefused),
        (&with_403, 403, Verdict::CredentialsRefused),
        (&with_403, 404, Verdict::Reject),
        (&listed, 401, Verdict::CredentialsRefused),
        (&listed, 403, Verdict::Retry { not_before: None }),
        (&off, 401, Verdict::Reject),
        (&off, 403, Verdict::Reject),
    ];
    for (policy, code, expected) in table {
        let status = StatusCode::from_u16(code).expect("status");
        assert_eq!(policy.classify_response(status, &none), expected, "status {code} under {:?}", policy.auth_statuses);
    }
}

#[test]
fn a_custom_retry_on_list_replaces_the_default() {
    let policy = RetryConfig { retry_on: vec![RetryOn::Status(409)], ..RetryConfig::default() };
    let none = HeaderMap::new();
    assert_eq!(policy.classify_response(StatusCode::CONFLICT, &none), Verdict::Retry { not_before: None });
    assert_eq!(policy.classify_response(StatusCode::BAD_GATEWAY, &none), Verdict::Reject);
    assert_eq!(policy.classify_error(TransportError::Timeout), Verdict::Reject);
}

#[test]
fn a_429_with_retry_after_names_the_instant() {
    let policy = RetryConfig::default();
    let Verdict::Retry { not_before: Some(at) } =
        policy.classify_response(StatusCode::TOO_MANY_REQUESTS, &headers(&[("retry-after", "3")]))
    else {
        panic!("expected a retry with an instant")
    };
    let ahead = at.duration_since(SystemTime::now()).expect("in the future");
    assert!(ahead > Duration::from_secs(2) && ahead <= Duration::from_secs(3));
}

#[test]
fn retry_after_reads_seconds_dates_and_ratelimit_headers() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
    type Case<'a> = (Vec<(&'static str, &'a str)>, Option<u64>);
    let cases: Vec<Case<'_>> = vec![
        (vec![("retry-after", "5")], Some(5)),
        (vec![("retry-after", &date)], Some(7)),
        (vec![("ratelimit-reset", "4")], Some(4)),
        (vec![("ratelimit", "\"default\";r=0;t=9")], Some(9)),
        (vec![("retry-after", "soon")], None),
        (vec![], None),
    ];
    for (h, expected) in cases {
        let got = retry_after(&headers(&h), now).map(|t| t.duration_since(now).expect("after").as_secs());
        assert_eq!(got, expected, "{h:?}");
    }
}

#[test]
fn backoff_grows_by_the_multiplier_up_to_the_ceiling() {
    let policy = RetryConfig {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(1000),
        multiplier_percent: 300,
        jitter: Jitter::None,
        ..RetryConfig::default()
    };
    let delays: Vec<u128> = (1..=5).map(|n| policy.backoff(n).as_millis()).collect();
    assert_eq!(delays, [100, 300, 900, 1000, 1000]);
}

#[test]
fn full_jitter_stays_between_zero_and_the_exponential_delay() {
    let policy = RetryConfig { initial: Duration::from_millis(100), ..RetryConfig::default() };
    let draws: Vec<Duration> = (0..200).map(|_| policy.backoff(3)).collect();
    assert!(draws.iter().all(|d| *d <= Duration::from_millis(400)));
    assert!(draws.iter().any(|d| *d < Duration::from_millis(200)), "draws are spread");
}

#[test]
fn each_transport_class_is_retried_by_its_own_retry_on_entry() {
    let retry = Verdict::Retry { not_before: None };
    let only = |entries: Vec<RetryOn>| RetryConfig { retry_on: entries, ..RetryConfig::default() };
    // (retryOn, [connect, write, read, timeout, protocol])
    let table: [(Vec<RetryOn>, [Verdict; 5]); 4] = [
        (vec![RetryOn::Connect, RetryOn::Timeout], [retry; 5]),
        (vec![RetryOn::Connect], [retry, retry, retry, Verdict::Reject, retry]),
        (vec![RetryOn::Timeout], [Verdict::Reject, Verdict::Reject, Verdict::Reject, retry, Verdict::Reject]),
        (vec![RetryOn::Class(5)], [Verdict::Reject; 5]),
    ];
    for (entries, expected) in table {
        let policy = only(entries.clone());
        for (class, want) in TransportError::ALL.into_iter().zip(expected) {
            assert_eq!(policy.classify_error(class), want, "{} with retryOn {entries:?}", class.as_str());
        }
    }
}
