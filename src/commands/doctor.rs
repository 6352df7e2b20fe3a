//! `k0slab doctor`: the host's checks ([`crate::workflow::doctor`]) as a table or JSON, and with
//! `--network` what the network probe ([`crate::workflow::probe`]) measured.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::inputs::Flags;
use crate::output::{self, OutputFormat};
use crate::workflow::context::Context;
use crate::workflow::doctor::{host_rows, Row, Status, PROBE_NEEDS};
use crate::workflow::resolve::plan_lab;

pub fn run(ctx: &Context<'_>, flags: &Flags, format: OutputFormat, probe: bool) -> Result<()> {
    let planned = plan_lab(ctx, flags)?;
    let rows = host_rows(ctx, &planned);
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| r.check.as_str())
        .collect();
    let report = if probe {
        if let Some(missing) = failed.iter().find(|c| PROBE_NEEDS.contains(c)) {
            print_rows(ctx, format, &rows, None);
            return Err(Error::Step(format!(
                "the network probe needs {missing}, which failed above"
            )));
        }
        ctx.out.progress(
            "probing this host's network with two throwaway VMs (a few minutes; they are \
             deleted at the end)",
        );
        Some(crate::workflow::probe::run(ctx, &planned)?)
    } else {
        None
    };
    print_rows(ctx, format, &rows, report.as_ref());
    if let Some(report) = &report {
        let missing = report.missing_for_default();
        if !missing.is_empty() {
            return Err(Error::Step(format!(
                "this host's network does not give the lab what its default design needs: {}. \
                 Paste the JSON of `k0slab doctor --network -o json` into a bug report",
                missing.join("; ")
            )));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Step(format!(
            "this host is not ready for the lab: {}",
            failed.join(", ")
        )))
    }
}

#[derive(Serialize)]
struct WithProbe<'a> {
    host: &'a [Row],
    network: &'a crate::network::probe::Report,
}

fn print_rows(
    ctx: &Context<'_>,
    format: OutputFormat,
    rows: &[Row],
    report: Option<&crate::network::probe::Report>,
) {
    match format {
        OutputFormat::Json => ctx.out.result(
            &match report {
                None => serde_json::to_string_pretty(&rows),
                Some(network) => serde_json::to_string_pretty(&WithProbe {
                    host: rows,
                    network,
                }),
            }
            .expect("rows serialise"),
        ),
        OutputFormat::Table => ctx.out.result(&output::table(
            &["check", "status", "detail"],
            rows.iter()
                .map(|r| {
                    vec![
                        r.check.clone(),
                        match r.status {
                            Status::Ok => "ok",
                            Status::Warn => "warn",
                            Status::Fail => "FAIL",
                        }
                        .to_string(),
                        r.detail.clone(),
                    ]
                })
                .collect(),
            &[],
        )),
    }
    if let (OutputFormat::Table, Some(report)) = (format, report) {
        ctx.out.result("");
        ctx.out.result(&report.table());
        let surprising = report
            .measurements
            .iter()
            .filter(|m| m.surprising())
            .count();
        if surprising > 0 {
            ctx.out.warn(&format!(
                "{surprising} observation(s) differ from what the tools' sources say \
                 (UNEXPECTED above): please paste `k0slab doctor --network -o json` into an issue"
            ));
        }
    }
}
