use super::*;

fn limits(per_ip: u32, per_widget: u32, per_tenant: u32) -> LimitsConfig {
    LimitsConfig {
        calls_per_minute_per_ip: per_ip,
        calls_per_minute_per_widget: per_widget,
        max_concurrent_calls_per_tenant: per_tenant,
        ..LimitsConfig::default()
    }
}

/// A widget without limits of its own.
const NODE: WidgetLimits = WidgetLimits {
    calls_per_minute: None,
    max_concurrent_calls: None,
};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn client_limit_applies_per_address_and_per_v6_slash_64() {
    let guards = Guards::new(&limits(2, 100, 10));
    let t0 = Instant::now();
    let v6a = ip("2001:db8:0:1::a");
    let v6b = ip("2001:db8:0:1:ffff::b");
    assert_eq!(guards.check_ip(v6a, t0), Ok(()));
    assert_eq!(guards.check_ip(v6b, t0), Ok(()));
    assert_eq!(
        guards.check_ip(v6a, t0),
        Err(Refusal::RateLimitedIp {
            retry_after: Duration::from_secs(30)
        })
    );
    assert_eq!(guards.check_ip(ip("192.0.2.1"), t0), Ok(()));
    assert_eq!(guards.check_ip(ip("2001:db8:0:2::a"), t0), Ok(()));
}

#[test]
fn widget_limit_counts_every_client() {
    let guards = Guards::new(&limits(10, 3, 10));
    let t0 = Instant::now();
    for n in 1..=3 {
        let client = ip(&format!("192.0.2.{n}"));
        assert_eq!(guards.check_new_call(client, "w1", &NODE, t0), Ok(()));
    }
    let refused = guards.check_new_call(ip("192.0.2.9"), "w1", &NODE, t0 + Duration::from_secs(5));
    assert_eq!(
        refused,
        Err(Refusal::RateLimitedWidget {
            retry_after: Duration::from_secs(15)
        })
    );
    assert_eq!(
        guards.check_new_call(ip("192.0.2.9"), "w2", &NODE, t0),
        Ok(())
    );
    // The window rolls over: one call per 20 s comes back.
    let t1 = t0 + Duration::from_secs(20);
    assert_eq!(
        guards.check_new_call(ip("192.0.2.8"), "w1", &NODE, t1),
        Ok(())
    );
}

#[test]
fn a_widget_with_its_own_limits_is_held_to_them_and_others_are_not() {
    let guards = Guards::new(&limits(100, 10, 10));
    let own = WidgetLimits {
        calls_per_minute: Some(2),
        max_concurrent_calls: Some(1),
    };
    let t0 = Instant::now();
    assert_eq!(
        guards.check_new_call(ip("192.0.2.1"), "tight", &own, t0),
        Ok(())
    );
    assert_eq!(
        guards.check_new_call(ip("192.0.2.2"), "tight", &own, t0),
        Ok(())
    );
    assert_eq!(
        guards.check_new_call(ip("192.0.2.3"), "tight", &own, t0),
        Err(Refusal::RateLimitedWidget {
            retry_after: Duration::from_secs(30)
        })
    );
    for n in 0..10 {
        let client = ip(&format!("192.0.2.{}", 10 + n));
        assert_eq!(guards.check_new_call(client, "loose", &NODE, t0), Ok(()));
    }

    let first = guards.try_acquire_call("acme", "tight", &own).unwrap();
    assert_eq!(
        guards.try_acquire_call("acme", "tight", &own).unwrap_err(),
        Refusal::WidgetBusy { limit: 1 }
    );
    assert_eq!(
        guards.calls_in_progress("acme"),
        1,
        "a refused call holds no tenant slot"
    );
    let other = guards.try_acquire_call("acme", "loose", &NODE).unwrap();
    drop(first);
    let again = guards.try_acquire_call("acme", "tight", &own).unwrap();
    drop((other, again));
    assert!(lock(&guards.inner.widgets).is_empty());
    assert_eq!(guards.calls_in_progress("acme"), 0);
}

#[test]
fn client_is_checked_before_widget() {
    let guards = Guards::new(&limits(1, 1, 10));
    let t0 = Instant::now();
    let client = ip("198.51.100.7");
    assert_eq!(guards.check_new_call(client, "w", &NODE, t0), Ok(()));
    let refused = guards.check_new_call(client, "w", &NODE, t0).unwrap_err();
    assert!(
        matches!(refused, Refusal::RateLimitedIp { .. }),
        "{refused:?}"
    );
}

#[test]
fn tenant_permits_are_released_on_drop() {
    let guards = Guards::new(&limits(10, 10, 2));
    let a = guards.try_acquire_call("acme", "w", &NODE).unwrap();
    let b = guards.try_acquire_call("acme", "w", &NODE).unwrap();
    assert_eq!(guards.calls_in_progress("acme"), 2);
    assert_eq!(
        guards.try_acquire_call("acme", "w", &NODE).unwrap_err(),
        Refusal::TooManyCalls { limit: 2 }
    );
    // Other tenants have their own slots.
    let other = guards.try_acquire_call("globex", "w", &NODE).unwrap();
    assert_eq!(other.tenant(), "globex");
    drop(a);
    assert_eq!(guards.calls_in_progress("acme"), 1);
    let c = guards.try_acquire_call("acme", "w", &NODE).unwrap();
    drop((b, c, other));
    assert_eq!(guards.calls_in_progress("acme"), 0);
    assert!(
        lock(&guards.inner.tenants).is_empty(),
        "no entry kept at zero"
    );
}

#[test]
fn a_numbers_cap_holds_its_calls_and_a_refusal_frees_the_tenants_slot() {
    let guards = Guards::new(&limits(10, 10, 5));
    let first = guards
        .try_acquire_call_to("acme", "w", &NODE, "sales", Some(1))
        .unwrap();
    assert_eq!(
        guards
            .try_acquire_call_to("acme", "w2", &NODE, "sales", Some(1))
            .unwrap_err(),
        Refusal::NumberBusy { limit: 1 }
    );
    assert_eq!(
        guards.calls_in_progress("acme"),
        1,
        "the refused call holds nothing"
    );
    // Another number, and a number without a cap, have their own slots.
    let other = guards.try_acquire_call_to("acme", "w", &NODE, "support", Some(1));
    let uncapped = guards.try_acquire_call_to("acme", "w", &NODE, "sales", None);
    assert!(other.is_ok() && uncapped.is_ok());
    drop(first);
    assert!(
        guards
            .try_acquire_call_to("acme", "w", &NODE, "sales", Some(1))
            .is_ok()
    );
}

#[test]
fn permits_move_to_other_threads_and_still_release() {
    let guards = Guards::new(&limits(10, 10, 1));
    let permit = guards.try_acquire_call("acme", "w", &NODE).unwrap();
    std::thread::spawn(move || drop(permit)).join().unwrap();
    assert!(guards.try_acquire_call("acme", "w", &NODE).is_ok());
}

#[test]
fn refusals_map_to_429_with_retry_after_rounded_up() {
    let cases = [
        (
            Refusal::RateLimitedIp {
                retry_after: Duration::from_millis(1500),
            },
            "2",
            "too many calls from this address, try again later",
        ),
        (
            Refusal::RateLimitedWidget {
                retry_after: Duration::from_secs(15),
            },
            "15",
            "too many calls through this widget, try again later",
        ),
        (
            Refusal::RateLimitedIp {
                retry_after: Duration::from_millis(1),
            },
            "1",
            "too many calls from this address, try again later",
        ),
        (
            Refusal::TooManyCalls { limit: 5 },
            "10",
            "too many calls in progress, try again later",
        ),
    ];
    for (refusal, retry, message) in cases {
        assert_eq!(refusal.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refusal.retry_after_header(), retry, "{refusal:?}");
        assert_eq!(refusal.body(), serde_json::json!({ "error": message }));
        let response = refusal.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], retry);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}

#[test]
fn refusals_name_their_metric_reason() {
    let rate = Refusal::RateLimitedWidget {
        retry_after: Duration::ZERO,
    };
    assert_eq!(rate.reason(), RefusedReason::RateLimited);
    let busy = Refusal::TooManyCalls { limit: 1 };
    assert_eq!(busy.reason(), RefusedReason::Concurrency);
}

#[test]
fn a_zero_wait_still_says_one_second() {
    let refusal = Refusal::RateLimitedIp {
        retry_after: Duration::ZERO,
    };
    assert_eq!(refusal.retry_after_secs(), 1);
}
