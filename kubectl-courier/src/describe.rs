//! `kubectl courier describe PACKAGE`.

use std::io::Write as _;
use std::process::ExitCode;

use courier_api::{DeliveryPackage, Destination};
use kube::Api;

use crate::cli::{DescribeArgs, Global, OutputFormat};
use crate::error::Error;
use crate::output;
use crate::table::Terminal;
use crate::view::describe::{describe, lines};
use crate::workers;

/// Runs `describe`.
pub async fn run(
    global: &Global,
    args: &DescribeArgs,
    format: Option<OutputFormat>,
    term: &Terminal,
) -> Result<ExitCode, Error> {
    let (client, namespace) = crate::client::connect(global).await?;
    let name = &args.package;
    let pkg = Api::<DeliveryPackage>::namespaced(client.clone(), &namespace)
        .get_opt(name)
        .await
        .map_err(Error::api(format!("get package {name}")))?
        .ok_or_else(|| Error::NotFound { kind: "DeliveryPackage", name: name.clone(), namespace: namespace.clone() })?;
    let dest_name = &pkg.spec.destination_ref.name;
    let dest = Api::<Destination>::namespaced(client.clone(), &namespace)
        .get_opt(dest_name)
        .await
        .map_err(Error::api(format!("get Destination {dest_name}")))?;
    let pods = workers::list(&client, Some(&namespace), Some(dest_name), true).await?;
    let description = describe(&pkg, dest.as_ref(), &pods, jiff::Timestamp::now());
    if let Some(f) = format {
        output::print(f, &description)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    for line in lines(&description, term.tty, term.colour) {
        writeln!(out, "{line}").map_err(Error::Output)?;
    }
    out.flush().map_err(Error::Output)?;
    Ok(ExitCode::SUCCESS)
}
