//! `berth serve` honours the `REGISTRY_*` variables that registry:2 users
//! and tools pass, reports the ones it does not understand, and lets
//! `BERTH_*` win where both say the same thing.

use super::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn registry_delete_enabled_takes_effect_but_berth_variable_wins() {
    // REGISTRY_* alone: deletion off, as registry:2 users ask for it.
    let registry = Registry::start_with_env(&[("REGISTRY_STORAGE_DELETE_ENABLED", "false")]).await;
    let image = registry.push_image("app", "v1").await;
    let path = format!("/v2/app/manifests/{}", image.digest);
    assert_error(
        registry.send(registry.delete(&path)).await,
        405,
        "UNSUPPORTED",
    )
    .await;

    let registry = Registry::start_with_env(&[
        ("REGISTRY_STORAGE_DELETE_ENABLED", "false"),
        ("BERTH_DELETE_ENABLED", "true"),
    ])
    .await;
    let image = registry.push_image("app", "v1").await;
    let path = format!("/v2/app/manifests/{}", image.digest);
    assert_eq!(registry.send(registry.delete(&path)).await.status(), 202);
    let log = registry.stderr();
    assert!(
        log.contains("BERTH_DELETE_ENABLED and REGISTRY_STORAGE_DELETE_ENABLED are both set"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_registry_variables_are_logged_by_name_never_by_value() {
    let registry = Registry::start_with_env(&[
        ("REGISTRY_FOO_BAR", "x"),
        ("REGISTRY_HTTP_SECRET", "do-not-log-me"),
    ])
    .await;
    let log = registry.stderr();
    for name in ["REGISTRY_FOO_BAR", "REGISTRY_HTTP_SECRET"] {
        let lines = log
            .lines()
            .filter(|l| l.contains(name) && l.contains("ignored"))
            .count();
        assert_eq!(lines, 1, "{name} once in:\n{log}");
    }
    assert!(!log.contains("do-not-log-me"), "{log}");
}
