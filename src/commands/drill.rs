//! `k0slab drill`: proves the HA control plane by breaking it ([`crate::workflow::drill`]), and
//! prints a verdict per scenario.

use crate::error::{Error, Result};
use crate::output::OutputFormat;
use crate::workflow::context::Context;
pub use crate::workflow::drill::DrillOptions;
use crate::workflow::drill::Row;

pub fn run(ctx: &Context<'_>, o: &DrillOptions) -> Result<()> {
    let rows = crate::workflow::drill::run(ctx, o)?;
    match o.format {
        OutputFormat::Json => ctx
            .out
            .result(&serde_json::to_string_pretty(&rows).expect("rows serialise")),
        OutputFormat::Table => ctx.out.result(&table(&rows)),
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.scenario.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Step(format!(
            "the drill contradicts the expectation in {}: {}",
            crate::output::count(failed.len(), "scenario"),
            failed.join("; ")
        )))
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |s| format!("{s:.1}s"))
}

/// The verdict table.
pub fn table(rows: &[Row]) -> String {
    crate::output::table(
        &[
            "scenario",
            "expected",
            "observed",
            "api downtime",
            "node ready",
            "etcd whole",
            "verdict",
        ],
        rows.iter()
            .map(|r| {
                vec![
                    r.scenario.clone(),
                    format!(
                        "{} ({})",
                        if r.expected.available {
                            "available"
                        } else {
                            "unavailable"
                        },
                        r.expected.reason
                    ),
                    r.observed.clone(),
                    format!("{:.1}s", r.api_downtime_s),
                    secs(r.node_ready_again_s),
                    secs(r.etcd_whole_again_s),
                    if r.passed { "pass" } else { "FAIL" }.to_string(),
                ]
            })
            .collect(),
        &[3, 4, 5],
    )
}
