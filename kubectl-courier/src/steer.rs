//! `retry`, `suspend` and `resume`: merge patches of the spec, as `kubectl patch` would make
//! them (a GitOps tool that owns these fields sets them back on its next sync).

use std::process::ExitCode;

use courier_api::{DeliveryPackage, Destination};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::cli::{Global, RetryArgs, Target, TargetArgs};
use crate::error::Error;

/// A fresh `retryNonce`: the time to the millisecond, e.g. `kc-20261203t143055123z`.
pub fn new_nonce(now: jiff::Timestamp) -> String {
    format!("kc-{}", now.strftime("%Y%m%dt%H%M%S%3fz"))
}

/// Runs `retry PACKAGE [--scope FailedRecords|All]`.
pub async fn retry(global: &Global, args: &RetryArgs) -> Result<ExitCode, Error> {
    let (client, namespace) = crate::client::connect(global).await?;
    let api = Api::<DeliveryPackage>::namespaced(client, &namespace);
    let name = &args.package;
    let pkg = api
        .get_opt(name)
        .await
        .map_err(Error::api(format!("get package {name}")))?
        .ok_or_else(|| Error::NotFound { kind: "DeliveryPackage", name: name.clone(), namespace: namespace.clone() })?;
    let nonce = new_nonce(jiff::Timestamp::now());
    let patch = json!({ "spec": { "retryNonce": nonce, "retryScope": args.scope.as_api() } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::api(format!("patch package {name}")))?;
    let attempt = pkg.status.as_ref().map_or(0, |s| s.attempt);
    println!(
        "deliverypackage {namespace}/{name}: retry requested (attempt {} with scope {}, retryNonce {nonce})",
        attempt + 1,
        args.scope.as_api()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `suspend` (`on`) or `resume` (`!on`).
pub async fn suspend(global: &Global, args: &TargetArgs, on: bool) -> Result<ExitCode, Error> {
    let target = args.target().map_err(Error::Usage)?;
    let (client, namespace) = crate::client::connect(global).await?;
    let (kind, name) = match &target {
        Target::Package(n) => ("deliverypackage", n),
        Target::Destination(n) => ("destination", n),
    };
    patch_suspend(client, &namespace, &target, on).await?;
    println!("{kind} {namespace}/{name} {}", if on { "suspended" } else { "resumed" });
    Ok(ExitCode::SUCCESS)
}

async fn patch_suspend(client: Client, namespace: &str, target: &Target, on: bool) -> Result<(), Error> {
    let patch = json!({ "spec": { "suspend": on } });
    let params = PatchParams::default();
    let not_found = |kind: &'static str, name: &str| Error::NotFound {
        kind,
        name: name.to_owned(),
        namespace: namespace.to_owned(),
    };
    let missing = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
    match target {
        Target::Package(name) => {
            match Api::<DeliveryPackage>::namespaced(client, namespace)
                .patch(name, &params, &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if missing(&e) => Err(not_found("DeliveryPackage", name)),
                Err(e) => Err(Error::api(format!("patch package {name}"))(e)),
            }
        }
        Target::Destination(name) => {
            match Api::<Destination>::namespaced(client, namespace).patch(name, &params, &Patch::Merge(&patch)).await {
                Ok(_) => Ok(()),
                Err(e) if missing(&e) => Err(not_found("Destination", name)),
                Err(e) => Err(Error::api(format!("patch Destination {name}"))(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_short_distinct_per_millisecond_and_valid_for_the_api() {
        let t: jiff::Timestamp = "2026-12-03T14:30:55.123Z".parse().expect("time");
        let n = new_nonce(t);
        assert_eq!(n, "kc-20261203t143055123z");
        assert!(n.len() <= 63);
        assert_ne!(n, new_nonce(t + jiff::SignedDuration::from_millis(1)));
    }
}
