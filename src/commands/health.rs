//! `k0slab health`: every check of SPEC's list, as a table or JSON; exit 1 if any fails.

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::health::Check;
use crate::lab::record::LabRecord;
use crate::output::OutputFormat;
use crate::workflow::context::Context;
use crate::workflow::health::{check, table, verdict};

#[derive(Serialize)]
struct Report<'a> {
    lab: &'a str,
    healthy: bool,
    checks: &'a [Check],
}

/// Prints the outcome; an error when a check failed.
pub fn report(
    ctx: &Context<'_>,
    record: &LabRecord,
    checks: &[Check],
    format: OutputFormat,
) -> Result<()> {
    let healthy = checks.iter().all(|c| c.ok);
    match format {
        OutputFormat::Json => ctx.out.result(
            &serde_json::to_string_pretty(&Report {
                lab: record.name(),
                healthy,
                checks,
            })
            .expect("the report serialises"),
        ),
        OutputFormat::Table => ctx.out.result(&table(checks)),
    }
    verdict(record, checks)
}

pub fn run(ctx: &Context<'_>, wait: Duration, format: OutputFormat) -> Result<()> {
    let record = ctx.record()?;
    let checks = check(ctx, &record, wait)?;
    report(ctx, &record, &checks, format)
}
