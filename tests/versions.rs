//! The oldest Tart, Softnet and vagrant-tart k0slab works with, and the macOS each network
//! needs (src/versions.rs, `Tool::minimum_version`): `doctor` fails the row and names the
//! command that installs a newer one; `up` refuses the same before anything boots. A release
//! exactly at its floor passes. The test command runs these inside a network namespace.

mod common;

use common::standins::{both, stderr, Sandbox};
use serde_json::Value;

fn has_row(sb: &Sandbox, extra: &[(&str, &str)], check: &str) -> bool {
    let o = sb.k0slab(&["doctor", "-o", "json"], extra);
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    rows.as_array().unwrap().iter().any(|r| r["check"] == check)
}

/// The row failed, naming `message` and `hint`, and doctor exited 1.
fn assert_fails(sb: &Sandbox, extra: &[(&str, &str)], check: &str, message: &str, hint: &str) {
    let (code, row) = sb.doctor_row(extra, check);
    assert_eq!(code, Some(1), "{row}");
    assert_eq!(row["status"], "fail", "{row}");
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.contains(message), "{message:?} in {detail}");
    assert!(detail.contains(hint), "{hint:?} in {detail}");
}

fn assert_passes(sb: &Sandbox, extra: &[(&str, &str)], check: &str) {
    let (code, row) = sb.doctor_row(extra, check);
    assert_eq!(row["status"], "ok", "{row}");
    assert_eq!(code, Some(0), "{row}");
}

/// `up` refused with exit 1 naming `message` and `hint`, and booted nothing: no `vagrant up`,
/// no VM, no lab files.
fn assert_up_refused(sb: &Sandbox, extra: &[(&str, &str)], message: &str, hint: &str) {
    sb.clear_calls();
    let o = sb.k0slab(&["up", "--wait", "5s"], extra);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(err.contains(message), "{message:?} in {err}");
    assert!(err.contains(hint), "{hint:?} in {err}");
    assert!(!err.contains("not found"), "too old is not missing: {err}");
    assert!(
        sb.calls_of("vagrant", "up").is_empty(),
        "nothing booted: {:?}",
        sb.calls()
    );
    assert!(sb.vms().is_empty(), "no VM: {:?}", sb.vms());
    assert!(!sb.lab().join("lab.json").exists(), "no lab was written");
}

#[test]
fn a_tart_older_than_2_10_0_is_refused_with_brew_upgrade() {
    let sb = Sandbox::new();
    let old = [("STANDIN_TART_VERSION", "2.9.1")];
    let message = "tart is too old: version 2.9.1 is older than the 2.10.0 k0slab needs";
    let hint = "brew upgrade cirruslabs/cli/tart";
    assert_fails(&sb, &old, "tart", message, hint);
    assert_up_refused(&sb, &old, message, hint);
    // 2.7.1 has --net-softnet-allow but not the --no-clipboard vagrant-tart 0.0.6 passes.
    assert_fails(
        &sb,
        &[("STANDIN_TART_VERSION", "2.7.1")],
        "tart",
        "version 2.7.1 is older than the 2.10.0",
        hint,
    );
    assert_passes(&sb, &[("STANDIN_TART_VERSION", "2.10.0")], "tart");
    // A build from source prints SNAPSHOT.
    assert_passes(&sb, &[("STANDIN_TART_VERSION", "SNAPSHOT")], "tart");
}

#[test]
fn a_vagrant_tart_older_than_0_0_6_is_refused_with_plugin_update() {
    let sb = Sandbox::new();
    let old = [("STANDIN_VAGRANT_TART_VERSION", "0.0.5")];
    let message = "vagrant-tart is too old: version 0.0.5 is older than the 0.0.6 k0slab needs";
    let hint = "vagrant plugin update vagrant-tart";
    assert_fails(&sb, &old, "vagrant-tart", message, hint);
    assert_up_refused(&sb, &old, message, hint);
    assert_passes(
        &sb,
        &[("STANDIN_VAGRANT_TART_VERSION", "0.0.6")],
        "vagrant-tart",
    );
}

#[test]
fn a_softnet_older_than_0_11_0_is_refused_on_the_softnet_network_only() {
    let sb = Sandbox::new();
    sb.install_softnet(Some("0.10.1"));
    let message = "softnet is too old: version 0.10.1 is older than the 0.11.0 k0slab needs";
    let hint = "brew upgrade cirruslabs/cli/softnet";
    assert_fails(&sb, &[], "softnet", message, hint);
    assert_up_refused(&sb, &[], message, hint);
    // Bridged, Softnet plays no part: no row, and up boots.
    let bridged = [("K0SLAB_NETWORK", "bridged:en0")];
    assert!(!has_row(&sb, &bridged, "softnet"));
    let o = sb.k0slab(&["up", "--wait", "5s"], &bridged);
    assert!(o.status.success(), "{}", both(&o));
    assert!(!stderr(&o).contains("softnet"), "{}", both(&o));

    let sb = Sandbox::new();
    sb.install_softnet(Some("0.11.0"));
    assert_passes(&sb, &[], "softnet");
    // A formula revision keeps the release.
    sb.install_softnet(Some("0.11.0_1"));
    assert_passes(&sb, &[], "softnet");
}

#[test]
fn a_softnet_outside_homebrew_is_a_warning_not_a_refusal() {
    let sb = Sandbox::new();
    sb.install_softnet(None);
    let (code, row) = sb.doctor_row(&[], "softnet");
    assert_eq!(code, Some(0), "{row}");
    assert_eq!(row["status"], "warn", "{row}");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("k0slab needs 0.11.0 or newer"),
        "{row}"
    );
}

#[test]
fn a_macos_older_than_13_is_refused_for_every_network() {
    let sb = Sandbox::new();
    let message = "macOS 12.7 is older than the 13.0 (Ventura) Tart needs for any network";
    for network in ["softnet", "nat", "bridged:en0"] {
        let old = [
            ("STANDIN_MACOS_VERSION", "12.7"),
            ("K0SLAB_NETWORK", network),
        ];
        assert_fails(&sb, &old, "macOS", message, "upgrade macOS");
        assert_up_refused(&sb, &old, message, "upgrade macOS");
    }
    let ventura = [("STANDIN_MACOS_VERSION", "13.0")];
    // The default Softnet (0.19.0) needs macOS 15: see the next test.
    assert_passes(&sb, &[ventura[0], ("K0SLAB_NETWORK", "nat")], "macOS");
    sb.install_softnet(Some("0.16.0"));
    assert_passes(&sb, &ventura, "macOS");
}

#[test]
fn softnet_0_17_0_and_newer_need_macos_15() {
    let sb = Sandbox::new();
    let sonoma = [("STANDIN_MACOS_VERSION", "14.6.1")];
    let message = "softnet 0.19.0 needs macOS 15.0 (Sequoia) or newer, and this Mac runs 14.6.1";
    let hint = "K0SLAB_NETWORK=bridged:<interface>";
    assert_fails(&sb, &sonoma, "softnet", message, hint);
    assert_up_refused(&sb, &sonoma, message, hint);
    assert_passes(&sb, &[("STANDIN_MACOS_VERSION", "15.0")], "softnet");
    // Bridged needs only Tart's macOS.
    assert_passes(
        &sb,
        &[
            ("STANDIN_MACOS_VERSION", "14.6.1"),
            ("K0SLAB_NETWORK", "bridged:en0"),
        ],
        "macOS",
    );
    // Softnet 0.11.0 to 0.16.0 declare no macOS of their own.
    sb.install_softnet(Some("0.16.0"));
    assert_passes(&sb, &sonoma, "softnet");
    // Too old on a Mac that Homebrew's Softnet no longer supports: where else to get one.
    sb.install_softnet(Some("0.10.1"));
    assert_fails(
        &sb,
        &sonoma,
        "softnet",
        "the Softnet Homebrew installs now needs macOS 15.0 and this Mac runs 14.6.1",
        "https://github.com/cirruslabs/softnet/releases",
    );
}

#[test]
fn up_with_every_tool_at_its_floor_boots() {
    let sb = Sandbox::new();
    sb.install_softnet(Some("0.11.0"));
    let floors = [
        ("STANDIN_TART_VERSION", "2.10.0"),
        ("STANDIN_VAGRANT_TART_VERSION", "0.0.6"),
        ("STANDIN_MACOS_VERSION", "13.0"),
        ("STANDIN_VAGRANT_VERSION", "2.3.0"),
    ];
    let o = sb.k0slab(&["doctor"], &floors);
    assert!(o.status.success(), "{}", both(&o));
    let o = sb.k0slab(&["up", "--wait", "5s"], &floors);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(sb.booted().len(), 2, "{:?}", sb.calls());
}
