//! The oldest releases of vagrant-tart and Softnet k0slab works with, and the macOS each network
//! needs: read from the host by `doctor`, and by `up` before anything boots. (Tart's, Vagrant's
//! and k0sctl's floors are [`Tool::minimum_version`]; Tart's is 2.10.0.)
//!
//! Each floor is the first release with what k0slab relies on:
//! - vagrant-tart 0.0.6: the `extra_run_args` provider option, which carries the network's
//!   `tart run` arguments, and `ip_resolver` (letiemble/vagrant-tart commit c9fb7d3,
//!   `lib/vagrant-tart/config.rb`; `CHANGELOG.md` "[0.0.6]"; first tag v0.0.6).
//! - Softnet 0.11.0: `--allow=0.0.0.0/0` also turns vmnet's isolation off, so VMs reach each
//!   other (cirruslabs/softnet commit 147c051, `lib/proxy/mod.rs` line 36
//!   `Host::new(vm_net_type, !allow.contains(&Ipv4Net::zero()))`; first tag 0.11.0). Before,
//!   the allow rule let packets out but vmnet kept VMs apart.
//! - macOS 13 (Ventura) for every network: Tart is built for it (cirruslabs/tart `Package.swift`
//!   lines 6-8 `.macOS(.v13)`; its formula: `.goreleaser.yml` line 75
//!   `depends_on :macos => :ventura`). Bridged and NAT attachments need nothing newer.
//! - macOS 15 (Sequoia) for Softnet 0.17.0 and newer, the releases Homebrew installs now
//!   (cirruslabs/softnet `.goreleaser.yml` line 33 `depends_on :macos => :sequoia`, commit
//!   dfc04a4 "require macOS Sequoia (see #128)", first tag 0.17.0; CI tests Sequoia only since
//!   commit 9527843). Softnet 0.11.0 to 0.16.0 declare no macOS beyond Tart's.

use std::path::Path;
use std::sync::LazyLock;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::network::NetworkMode;
use crate::output::Output;
use crate::tools::process::Cmd;
use crate::tools::softnet;
use crate::tools::tart::Tart;
use crate::tools::vagrant::PLUGIN;
use crate::tools::{self, Tool};

/// `major.minor.patch`.
pub type Version = (u32, u32, u32);

/// The oldest vagrant-tart with `extra_run_args`.
pub const VAGRANT_TART: Version = (0, 0, 6);
/// How to replace an installed vagrant-tart (hashicorp/vagrant
/// `plugins/commands/plugin/command/update.rb`).
pub const VAGRANT_TART_UPDATE: &str = "vagrant plugin update vagrant-tart";
/// The oldest Softnet whose `--allow=0.0.0.0/0` lifts the isolation between VMs.
pub const SOFTNET: Version = (0, 11, 0);
/// The first Softnet that needs macOS 15.
pub const SOFTNET_NEEDS_SEQUOIA: Version = (0, 17, 0);
/// The oldest macOS Tart runs on.
pub const MACOS_FOR_TART: Version = (13, 0, 0);
/// The oldest macOS Softnet 0.17.0 and newer run on.
pub const MACOS_FOR_SOFTNET: Version = (15, 0, 0);
/// Nested virtualization (KubeVirt's workload VMs): Tart's `--nested` from 2.20.0 (commit
/// 9c879b3), which refuses it below macOS 15 and on chips before the M3
/// (cirruslabs/tart `Sources/tart/Commands/Run.swift` lines 316-322; `docs/faq.md` lines
/// 59-62: "only on M3 or M4 chips running macOS 15 (Sequoia) or later and only for Linux VMs").
pub const TART_FOR_NESTED: Version = (2, 20, 0);
pub const MACOS_FOR_NESTED: Version = (15, 0, 0);
pub const CHIP_FOR_NESTED: u32 = 3;

/// The Apple chip generation in `sysctl -n machdep.cpu.brand_string` ("Apple M3 Pro" → 3;
/// xnu `bsd/dev/arm64/sysctl.c` lines 228-296 copy the device tree's SoC name), or `None` when
/// the text names no Apple M chip.
pub fn apple_chip(brand: &str) -> Option<u32> {
    let rest = brand.trim().strip_prefix("Apple M")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Why this host cannot give VMs nested virtualization, if it cannot: the chip (from its
/// brand string), macOS and Tart, as Tart checks them. Apple exposes its own answer
/// (`VZGenericPlatformConfiguration.isNestedVirtualizationSupported`) to programs only, so the
/// chip is read from its name.
pub fn nested_problems(
    brand: Option<&str>,
    macos: Option<Version>,
    tart: Option<Version>,
) -> Vec<String> {
    let mut problems = Vec::new();
    match brand.map(|b| (b, apple_chip(b))) {
        Some((_, Some(n))) if n >= CHIP_FOR_NESTED => {}
        Some((b, Some(_))) => problems.push(format!(
            "this Mac's chip is an {}: nested virtualization needs an Apple M3 or later, so \
             an M1 or M2 Mac cannot run KubeVirt's workload VMs (KubeVirt on arm64 accepts only \
             the host-passthrough CPU model, which emulation cannot give: kubevirt \
             pkg/virt-api/webhooks/arm64.go)",
            b.trim()
        )),
        Some((b, None)) => problems.push(format!(
            "`sysctl -n machdep.cpu.brand_string` says {:?}: not an Apple M chip k0slab can \
             tell; nested virtualization needs an Apple M3 or later",
            b.trim()
        )),
        None => problems.push(
            "the chip is unknown (no `sysctl -n machdep.cpu.brand_string`): nested \
             virtualization needs an Apple M3 or later"
                .into(),
        ),
    }
    match macos {
        Some(m) if m >= MACOS_FOR_NESTED => {}
        Some(m) => problems.push(format!(
            "macOS {} is older than the 15 (Sequoia) nested virtualization needs",
            shown_macos(m)
        )),
        None => problems.push("nested virtualization needs macOS 15 (Sequoia) or later".into()),
    }
    match tart {
        Some(t) if t >= TART_FOR_NESTED => {}
        Some(t) => problems.push(format!(
            "Tart {}.{}.{} has no --nested (2.20.0 or newer: brew upgrade cirruslabs/cli/tart)",
            t.0, t.1, t.2
        )),
        None => problems.push("Tart 2.20.0 or newer is needed for --nested".into()),
    }
    problems
}

/// How to replace an installed Softnet: a new release is a new file, which needs the one-time
/// set-up again (see [`softnet`]).
pub const SOFTNET_UPGRADE: &str = "brew upgrade cirruslabs/cli/softnet, then once more: sudo \
     chown root \"$(which softnet)\" && sudo chmod u+s \"$(which softnet)\"";

/// `1.2.3`.
pub fn shown(v: Version) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

/// A macOS version as `sw_vers` prints it: `14.6`, `15.3.1`.
pub fn shown_macos(v: Version) -> String {
    if v.2 == 0 {
        format!("{}.{}", v.0, v.1)
    } else {
        shown(v)
    }
}

/// The version in vagrant-tart's line of `vagrant plugin list`, `vagrant-tart (0.0.6, global)`
/// (hashicorp/vagrant `plugins/commands/plugin/action/list_plugins.rb` line 46:
/// `"#{spec.name} (#{spec.version}#{meta})"`). `None` when the plugin is not listed; the inner
/// `None` when its line holds no version.
pub fn plugin_version(list: &str) -> Option<Option<Version>> {
    let line = list
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{PLUGIN} (")))?;
    Some(tools::parse_version(line))
}

/// vagrant-tart against its floor. A plugin that is not listed passes: its absence is
/// reported on its own, with how to install it.
pub fn check_plugin(list: &str) -> Result<()> {
    match plugin_version(list) {
        None => Ok(()),
        Some(None) => Err(Error::Step(format!(
            "`vagrant plugin list` shows {PLUGIN} without a version number to check against the \
             {} k0slab needs",
            shown(VAGRANT_TART)
        ))),
        Some(Some(have)) if have < VAGRANT_TART => Err(Error::Step(format!(
            "{PLUGIN} is too old: version {} is older than the {} k0slab needs (the \
             `extra_run_args` option that attaches the VMs to the lab's network); update it with: \
             {VAGRANT_TART_UPDATE}",
            shown(have),
            shown(VAGRANT_TART)
        ))),
        Some(Some(_)) => Ok(()),
    }
}

/// Softnet's version, from where it is installed. Softnet prints none: its `Args` parser has
/// no `version` attribute, so `softnet --version` is an unknown argument (cirruslabs/softnet
/// `src/main.rs` lines 25-26), and its `Cargo.toml` says 0.1.0 in every release. Homebrew
/// installs a formula into `<Cellar>/<name>/<version>` (Homebrew/brew
/// `Library/Homebrew/formula.rb`, `versioned_prefix`: `rack/v`) and links `bin/softnet` to
/// it, so the resolved path names the release (`…/Cellar/softnet/0.19.0/bin/softnet`, with
/// `_N` after a formula revision).
pub fn softnet_version(resolved: &Path) -> Option<Version> {
    static CELLAR: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"/Cellar/softnet/(\d+)\.(\d+)\.(\d+)(?:_\d+)?/").expect("valid regex")
    });
    let c = CELLAR.captures(resolved.to_str()?)?;
    Some((c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?))
}

/// Softnet at `path` against its floor and against this Mac (`macos`, when known). `Ok(Some)`
/// is a warning: the version cannot be told.
pub fn check_softnet(path: &Path, macos: Option<Version>) -> Result<Option<String>> {
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let old_macos = macos.filter(|m| *m < MACOS_FOR_SOFTNET);
    let Some(have) = softnet_version(&resolved) else {
        return Ok(Some(format!(
            "cannot tell which Softnet {} is (Softnet prints no version; Homebrew's path names \
             it): k0slab needs {} or newer",
            resolved.display(),
            shown(SOFTNET)
        )));
    };
    if have < SOFTNET {
        let how = match old_macos {
            None => format!("install a newer one with: {SOFTNET_UPGRADE}"),
            Some(m) => format!(
                "the Softnet Homebrew installs now needs macOS {} and this Mac runs {}: upgrade \
                 macOS, or install Softnet {} to 0.16.0 from \
                 https://github.com/cirruslabs/softnet/releases, or choose \
                 K0SLAB_NETWORK=bridged:<interface>",
                shown_macos(MACOS_FOR_SOFTNET),
                shown_macos(m),
                shown(SOFTNET)
            ),
        };
        return Err(Error::Step(format!(
            "softnet is too old: version {} is older than the {} k0slab needs (before it, \
             --allow=0.0.0.0/0 does not let VMs reach each other); {how}",
            shown(have),
            shown(SOFTNET)
        )));
    }
    if let Some(m) = old_macos.filter(|_| have >= SOFTNET_NEEDS_SEQUOIA) {
        return Err(Error::Step(format!(
            "softnet {} needs macOS {} (Sequoia) or newer, and this Mac runs {}: upgrade macOS, \
             or choose K0SLAB_NETWORK=bridged:<interface>",
            shown(have),
            shown_macos(MACOS_FOR_SOFTNET),
            shown_macos(m)
        )));
    }
    Ok(None)
}

/// `sw_vers -productVersion` as macOS prints it, `15.3.1` or `14.0` (Homebrew reads the
/// host's version the same way: Homebrew/brew `Library/Homebrew/brew.sh`,
/// `HOMEBREW_MACOS_VERSION="$(/usr/bin/sw_vers -productVersion)"`).
pub fn parse_macos(text: &str) -> Option<Version> {
    static MACOS: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"^(\d+)\.(\d+)(?:\.(\d+))?$").expect("valid regex"));
    let c = MACOS.captures(text.trim())?;
    Some((
        c[1].parse().ok()?,
        c[2].parse().ok()?,
        c.get(3).map_or(Some(0), |p| p.as_str().parse().ok())?,
    ))
}

/// This Mac's version; `None` when there is no `sw_vers` (not macOS).
pub fn macos(env: &Environment, out: &Output) -> Option<Result<Version>> {
    let sw_vers = tools::on_path(env, "sw_vers")?;
    let printed = Cmd::new(&sw_vers, "asking macOS for its version")
        .arg("-productVersion")
        .output(env, out);
    Some(printed.and_then(|text| {
        parse_macos(&text).ok_or_else(|| {
            Error::Step(format!(
                "`sw_vers -productVersion` printed {:?}: no macOS version to check",
                text.trim()
            ))
        })
    }))
}

/// This Mac against what every network needs (Tart's macOS). Softnet's own need is checked
/// with Softnet, in [`check_softnet`], since it depends on its release.
pub fn check_macos(macos: Version) -> Result<()> {
    if macos < MACOS_FOR_TART {
        return Err(Error::Step(format!(
            "macOS {} is older than the {} (Ventura) Tart needs for any network: upgrade macOS",
            shown_macos(macos),
            shown_macos(MACOS_FOR_TART)
        )));
    }
    Ok(())
}

/// What this host's macOS and Tart say of their versions, asked at once (each is a process
/// start, and `up` asks them while it waits for Vagrant's and k0sctl's answers too).
pub struct HostAnswers {
    /// `sw_vers -productVersion`; `None` when there is no `sw_vers` (not macOS).
    pub macos: Option<Result<Version>>,
    /// `tart --version`.
    pub tart: Result<String>,
}

impl HostAnswers {
    pub fn ask(env: &Environment, out: &Output, tart: &Path) -> HostAnswers {
        std::thread::scope(|s| {
            let macos = s.spawn(|| macos(env, out));
            let tart = Tart {
                path: tart,
                env,
                out,
            }
            .version();
            HostAnswers {
                macos: macos.join().expect("asking sw_vers does not panic"),
                tart,
            }
        })
    }
}

/// For `up`, before anything boots: macOS, Tart, vagrant-tart (from `plugins`, what
/// `vagrant plugin list` printed) and, on the Softnet network, Softnet. The first that falls
/// short is the error; a Softnet whose version cannot be told is a warning.
pub fn check(
    env: &Environment,
    out: &Output,
    host: HostAnswers,
    plugins: &str,
    network: &NetworkMode,
) -> Result<()> {
    let macos = host.macos.transpose()?;
    if let Some(m) = macos {
        check_macos(m)?;
    }
    tools::check_version(Tool::Tart, &host.tart?)?;
    check_plugin(plugins)?;
    if *network == NetworkMode::Softnet {
        if let Some(path) = softnet::find(env) {
            if let Some(warning) = check_softnet(&path, macos)? {
                out.warn(&warning);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vagrant_tart_from_the_plugin_list() {
        let list = "vagrant-tart (0.0.6, global)\n  - Version Constraint: > 0\n";
        assert_eq!(plugin_version(list), Some(Some((0, 0, 6))));
        assert_eq!(plugin_version("No plugins installed.\n"), None);
        assert_eq!(plugin_version("vagrant-tart (banana, global)"), Some(None));
        assert!(check_plugin(list).is_ok());
        assert!(check_plugin("vagrant-tart (1.0.0, global)").is_ok());
        assert!(check_plugin("vagrant-other (0.0.1, global)").is_ok());
        let err = check_plugin("vagrant-qemu (0.3.6, global)\nvagrant-tart (0.0.5, local)\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "vagrant-tart is too old: version 0.0.5 is older than the 0.0.6 k0slab needs (the \
             `extra_run_args` option that attaches the VMs to the lab's network); update it \
             with: vagrant plugin update vagrant-tart"
        );
    }

    #[test]
    fn softnet_from_homebrews_path() {
        let v = |p: &str| softnet_version(Path::new(p));
        assert_eq!(
            v("/opt/homebrew/Cellar/softnet/0.19.0/bin/softnet"),
            Some((0, 19, 0))
        );
        assert_eq!(
            v("/usr/local/Cellar/softnet/0.11.0_1/bin/softnet"),
            Some((0, 11, 0))
        );
        assert_eq!(v("/usr/local/bin/softnet"), None);
        assert_eq!(v("/opt/homebrew/Cellar/tart/2.32.1/bin/softnet"), None);
    }

    #[test]
    fn softnet_against_its_floor_and_the_mac() {
        let at = |v: &str| format!("/opt/homebrew/Cellar/softnet/{v}/bin/softnet");
        let check = |v: &str, m: Option<Version>| check_softnet(Path::new(&at(v)), m);
        assert_eq!(check("0.11.0", Some((15, 5, 0))).unwrap(), None);
        assert_eq!(check("0.11.0", Some((14, 6, 1))).unwrap(), None);
        assert_eq!(check("0.16.0", Some((13, 0, 0))).unwrap(), None);
        assert_eq!(check("0.17.0", Some((15, 0, 0))).unwrap(), None);
        assert_eq!(check("0.19.0", None).unwrap(), None);
        let err = check("0.10.1", Some((15, 5, 0))).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "softnet is too old: version 0.10.1 is older than the 0.11.0 k0slab needs"
            ),
            "{err}"
        );
        assert!(err.contains(SOFTNET_UPGRADE), "{err}");
        let err = check("0.10.1", Some((14, 6, 0))).unwrap_err().to_string();
        assert!(
            err.contains("needs macOS 15.0 and this Mac runs 14.6"),
            "{err}"
        );
        let err = check("0.19.0", Some((14, 6, 0))).unwrap_err().to_string();
        assert_eq!(
            err,
            "softnet 0.19.0 needs macOS 15.0 (Sequoia) or newer, and this Mac runs 14.6: upgrade \
             macOS, or choose K0SLAB_NETWORK=bridged:<interface>"
        );
        let warning = check_softnet(Path::new("/usr/local/bin/softnet"), None)
            .unwrap()
            .unwrap();
        assert!(
            warning.contains("k0slab needs 0.11.0 or newer"),
            "{warning}"
        );
    }

    #[test]
    fn macos_versions() {
        assert_eq!(parse_macos("15.3.1\n"), Some((15, 3, 1)));
        assert_eq!(parse_macos("14.0\n"), Some((14, 0, 0)));
        assert_eq!(parse_macos("26.0"), Some((26, 0, 0)));
        assert_eq!(parse_macos("ProductVersion: 15.3"), None);
        assert!(check_macos((13, 0, 0)).is_ok());
        assert_eq!(
            check_macos((12, 7, 6)).unwrap_err().to_string(),
            "macOS 12.7.6 is older than the 13.0 (Ventura) Tart needs for any network: upgrade \
             macOS"
        );
    }

    #[test]
    fn nested_virtualization_needs_an_m3_macos_15_and_tart_2_20() {
        assert_eq!(super::apple_chip("Apple M3 Pro\n"), Some(3));
        assert_eq!(super::apple_chip("Apple M10"), Some(10));
        assert_eq!(super::apple_chip("Apple processor"), None);
        assert!(
            super::nested_problems(Some("Apple M4 Max"), Some((15, 5, 0)), Some((2, 32, 1)))
                .is_empty()
        );
        let m1 = super::nested_problems(Some("Apple M1"), Some((15, 5, 0)), Some((2, 32, 1)));
        assert_eq!(m1.len(), 1);
        assert!(
            m1[0].contains("an M1 or M2 Mac cannot run KubeVirt's workload VMs"),
            "{m1:?}"
        );
        let old = super::nested_problems(Some("Apple M3"), Some((14, 6, 1)), Some((2, 19, 0)));
        assert_eq!(old.len(), 2, "{old:?}");
    }
}
