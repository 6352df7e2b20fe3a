//! The guest setup and the mover in a real Linux guest, not a stand-in: a Debian tree with
//! systemd-networkd and netplan (built by tests/guest/build.sh, which tests/run.sh runs before
//! the tests) booted with `systemd-nspawn -b` on a veth named like a VM's NIC (`enp0s1`), and
//! dnsmasq as the DHCP server in a network namespace of this test's own. dnsmasq plays bootpd:
//! authoritative (it NAKs an address it did not assign), finding the guest by its client
//! identifier `1,<MAC>`, and told the planned address the way k0slab tells bootpd: an entry
//! for the guest, then SIGHUP.
//!
//! The guest first takes a dynamic lease with the image's own netplan (DUID identifier), then
//! runs the rendered guest setup (`NAME ADDRESS PREFIX dhcp`) as Vagrant does; k0slab's move
//! command, as `up` sends it, must bring it to exactly its planned address within seconds, and
//! so must a power-off and boot.
//!
//! Needs root, `ip`, `dnsmasq` and `systemd-nspawn` (tests/run.sh installs them). Everything
//! it creates (namespaces, veth, overlay mount, processes) is its own and removed at the end.

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use k0slab::network::guest::{addresses_in, move_command, ADDRESS_QUERY};
use k0slab::tools::process::shell_quote;

/// Where tests/guest/build.sh leaves the guest tree.
const CACHE: &str = "target/guest-cache";
/// The guest's NIC, named as on a Tart VM, and its MAC (locally administered).
const GUEST_IF: &str = "enp0s1";
const GUEST_MAC: &str = "0e:6b:30:73:6c:01";
/// The DHCP server's side: the lab subnet's gateway, dynamic leases below the planned .10.
const SERVER_IF: &str = "k0slab-srv";
const SERVER_ADDRESS: &str = "192.168.64.1/24";
const DYNAMIC: (u8, u8) = (2, 9);
/// How long the guest may take from boot to its first lease, and from the move command to its
/// planned address (a minute-accurate timer took 10 to 60 s; the move itself takes under 2 s).
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const MOVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the one planned address must then stay the only one.
const SETTLE: Duration = Duration::from_secs(3);
/// What the guest runs commands with (a login's PATH, not this test's).
const GUEST_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The guest tree, or a failure that says how to build it.
fn guest_tree() -> PathBuf {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join(CACHE);
    let rootfs = cache.join("rootfs");
    assert!(
        cache.join("stamp").is_file() && rootfs.join("usr/lib/systemd/systemd").is_file(),
        "no guest tree in {}: run `bash tests/run.sh` (the test command), or \
         `bash tests/guest/build.sh` as root with the network, before `cargo test`",
        cache.display()
    );
    rootfs
}

/// One guest and its DHCP server, torn down on drop.
/// One guest at a time: the tests of this file run in one process (the namespaces are named
/// after it), and each times its guest against a few seconds on a 2-core machine.
static ONE_GUEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Lab {
    dir: tempfile::TempDir,
    guest_ns: String,
    server_ns: String,
    mounted: bool,
    dnsmasq: Option<Child>,
    nspawn: Option<Child>,
    /// The guest's PID 1, as this machine sees it.
    init: Option<u32>,
    /// Held until the lab is gone (fields drop after `Drop::drop` has cleaned up).
    _one: std::sync::MutexGuard<'static, ()>,
}

impl Lab {
    fn new() -> Lab {
        for tool in ["ip", "dnsmasq", "systemd-nspawn", "nsenter", "mount"] {
            common::require_tool(tool);
        }
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the real-guest test needs root (namespaces, veth, mounts): run `bash tests/run.sh` as root"
        );
        let one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
        let id = std::process::id();
        let dir = tempfile::Builder::new()
            .prefix("k0slab-guest-")
            .tempdir()
            .unwrap();
        let mut lab = Lab {
            dir,
            guest_ns: format!("k0slab-guest-{id}"),
            server_ns: format!("k0slab-dhcp-{id}"),
            mounted: false,
            dnsmasq: None,
            nspawn: None,
            init: None,
            _one: one,
        };
        lab.overlay(&guest_tree());
        lab.network();
        lab.dhcp_server();
        lab
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The guest's root: the cached tree under an overlay, so that the cache stays as built.
    fn overlay(&mut self, lower: &Path) {
        for d in ["upper", "work", "root"] {
            fs::create_dir(self.path(d)).unwrap();
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            self.path("upper").display(),
            self.path("work").display()
        );
        run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(self.path("root")));
        self.mounted = true;
    }

    /// Two namespaces joined by one veth: the guest's NIC in one, the server's in the other.
    fn network(&self) {
        run(Command::new("ip").args(["netns", "add", &self.guest_ns]));
        run(Command::new("ip").args(["netns", "add", &self.server_ns]));
        run(Command::new("ip").args([
            "link",
            "add",
            GUEST_IF,
            "address",
            GUEST_MAC,
            "netns",
            &self.guest_ns,
            "type",
            "veth",
            "peer",
            "name",
            SERVER_IF,
            "netns",
            &self.server_ns,
        ]));
        let s = &self.server_ns;
        run(Command::new("ip").args(["-n", s, "addr", "add", SERVER_ADDRESS, "dev", SERVER_IF]));
        run(Command::new("ip").args(["-n", s, "link", "set", SERVER_IF, "up"]));
        run(Command::new("ip").args(["-n", s, "link", "set", "lo", "up"]));
    }

    fn dhcp_server(&mut self) {
        fs::write(self.path("dhcp-hosts"), "").unwrap();
        let range = format!(
            "--dhcp-range=192.168.64.{},192.168.64.{},255.255.255.0,1h",
            DYNAMIC.0, DYNAMIC.1
        );
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.server_ns,
                "dnsmasq",
                "--keep-in-foreground",
            ])
            .args(["--port=0", "--no-resolv", "--no-hosts", "--bind-interfaces"])
            .arg(format!("--interface={SERVER_IF}"))
            .arg("--dhcp-authoritative")
            .arg(range)
            .args([
                "--dhcp-option=3,192.168.64.1",
                "--dhcp-option=6,192.168.64.1",
            ])
            .arg(format!(
                "--dhcp-hostsfile={}",
                self.path("dhcp-hosts").display()
            ))
            .arg(format!(
                "--dhcp-leasefile={}",
                self.path("dhcp-leases").display()
            ))
            .arg("--log-dhcp")
            .arg(format!(
                "--log-facility={}",
                self.path("dnsmasq.log").display()
            ))
            .stdin(Stdio::null())
            .spawn()
            .expect("dnsmasq starts");
        self.dnsmasq = Some(child);
        self.wait_for_log("dnsmasq", 1, "started");
    }

    /// Waits until the DHCP server's log has `count` lines containing `what`.
    fn wait_for_log(&self, log: &str, count: usize, what: &str) {
        let path = self.path(&format!("{log}.log"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = fs::read_to_string(&path).unwrap_or_default();
            if text.lines().filter(|l| l.contains(what)).count() >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{log} did not log {what:?} {count} times:\n{text}"
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// Tells the DHCP server the guest's planned address, as k0slab tells bootpd: an entry for
    /// the guest's client identifier 1,<MAC>, then SIGHUP.
    fn assign(&self, address: Ipv4Addr) {
        let log = fs::read_to_string(self.path("dnsmasq.log")).unwrap();
        let reads = log.lines().filter(|l| l.contains("read ")).count();
        fs::write(
            self.path("dhcp-hosts"),
            format!("id:01:{GUEST_MAC},{address}\n"),
        )
        .unwrap();
        signal(self.dnsmasq.as_ref().unwrap().id(), libc::SIGHUP);
        self.wait_for_log("dnsmasq", reads + 1, "read ");
    }

    /// Boots the guest in its namespace; returns once its PID 1 runs.
    fn boot(&mut self) {
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("console.log"))
            .unwrap();
        // Started inside the guest's namespace (nsenter, not `ip netns exec`, which mounts a
        // /sys without this machine's cgroups, and nspawn then fails: "Failed to determine
        // whether the unified cgroups hierarchy is used"), so that the /sys nspawn mounts shows
        // the guest's own NIC. No systemd on this machine's PID 1: no registration with
        // machined, no scope unit. CAP_NET_ADMIN: nspawn grants it only with a private network
        // of its own making, and systemd-networkd needs it.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.guest_ns))
            .args(["--", "systemd-nspawn", "--quiet"])
            .arg("--directory")
            .arg(self.path("root"))
            .args(["--boot", "--register=no", "--keep-unit", "--console=pipe"])
            .args(["--capability=CAP_NET_ADMIN", "--machine=k0slab-guest"])
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("systemd-nspawn starts");
        let nspawn = child.id();
        self.nspawn = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        self.init = loop {
            if let Some(pid) = container_init(nspawn) {
                break Some(pid);
            }
            if let Some(status) = self.nspawn.as_mut().unwrap().try_wait().unwrap() {
                panic!("systemd-nspawn exited ({status}):\n{}", self.console());
            }
            assert!(
                Instant::now() < deadline,
                "the guest did not start:\n{}",
                self.console()
            );
            sleep(Duration::from_millis(50));
        };
        // systemd answers once it is up far enough to take commands.
        let deadline = Instant::now() + BOOT_TIMEOUT;
        while !self
            .guest_try("systemctl is-active systemd-networkd")
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "systemd-networkd did not start in the guest:\n{}",
                self.journal()
            );
            sleep(Duration::from_millis(200));
        }
    }

    /// Powers the guest off (as `vagrant halt` does) and waits until it is gone.
    fn power_off(&mut self) {
        // The connection may go before systemctl returns: its status does not matter.
        self.guest_try("systemctl poweroff");
        let child = self.nspawn.as_mut().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the guest did not power off");
            sleep(Duration::from_millis(100));
        };
        self.nspawn = None;
        self.init = None;
        assert!(
            status.success(),
            "systemd-nspawn exited with {status}:\n{}",
            self.console()
        );
    }

    /// Runs a shell command in the guest, as root.
    fn guest_try(&self, script: &str) -> Output {
        let init = self.init.expect("the guest runs").to_string();
        Command::new("nsenter")
            .args(["--target", &init, "--all", "--"])
            .args(["env", "-i", GUEST_PATH, "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runs")
    }

    fn guest(&self, script: &str) -> String {
        let out = self.guest_try(script);
        assert!(
            out.status.success(),
            "in the guest: {script}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a rendered provisioner script as Vagrant's shell provisioner does: as root, bash.
    fn provision(&self, script: &str, args: &[String]) -> Output {
        let init = self.init.expect("the guest runs").to_string();
        common::output_with_input(
            Command::new("nsenter")
                .args(["--target", &init, "--all", "--"])
                .args(["env", "-i", GUEST_PATH, "bash", "-s", "--"])
                .args(args),
            script.as_bytes(),
        )
    }

    /// Runs the rendered guest setup, which must succeed.
    fn setup(&self, script: &str, args: &[String]) {
        let out = self.provision(script, args);
        assert!(
            out.status.success(),
            "the guest setup failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The guest's machine ID, and the DUID systemd-networkd uses (it shows it for every link
    /// it manages, `networkctl status`: "DHCP6 Client DUID").
    fn machine_id(&self) -> String {
        self.guest("cat /etc/machine-id").trim().to_string()
    }

    fn duid(&self) -> String {
        let status = self.guest(&format!("networkctl status --no-pager -n 0 {GUEST_IF}"));
        status
            .lines()
            .find_map(|l| l.trim().strip_prefix("DHCP6 Client DUID: "))
            .unwrap_or_else(|| panic!("no DUID in networkctl status:\n{status}"))
            .to_string()
    }

    /// The IPv4 global addresses of the interface with the default route, as `up` asks.
    fn addresses(&self) -> Vec<Ipv4Addr> {
        addresses_in(&String::from_utf8_lossy(
            &self.guest_try(ADDRESS_QUERY).stdout,
        ))
    }

    /// Waits until the guest's addresses satisfy `ok`; returns them and how long that took.
    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&[Ipv4Addr]) -> bool,
    ) -> (Vec<Ipv4Addr>, Duration) {
        let start = Instant::now();
        loop {
            let now = self.addresses();
            if ok(&now) {
                return (now, start.elapsed());
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: not within {timeout:?}; the guest has {now:?}\n\
                 --- dnsmasq ---\n{}\n--- guest journal ---\n{}",
                fs::read_to_string(self.path("dnsmasq.log")).unwrap_or_default(),
                self.journal()
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// Exactly `planned`, within `timeout`, and still so a moment later.
    fn assert_only(&self, what: &str, planned: Ipv4Addr, timeout: Duration) -> Duration {
        let (_, took) = self.wait_for(what, timeout, |a| a == [planned]);
        sleep(SETTLE);
        assert_eq!(
            self.addresses(),
            vec![planned],
            "{what}: the planned address did not stay the only one"
        );
        took
    }

    fn console(&self) -> String {
        fs::read_to_string(self.path("console.log")).unwrap_or_default()
    }

    fn journal(&self) -> String {
        if self.init.is_none() {
            return self.console();
        }
        let out = self.guest_try(
            "journalctl -b --no-pager -o short-monotonic -u systemd-networkd -u 'run-*' | tail -n 60",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.nspawn.take() {
            // SIGTERM asks the guest to halt; a second one ends it at once.
            for _ in 0..2 {
                signal(child.id(), libc::SIGTERM);
                let deadline = Instant::now() + Duration::from_secs(10);
                while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    sleep(Duration::from_millis(100));
                }
            }
            if child.try_wait().ok().flatten().is_none() {
                if let Some(init) = self.init {
                    signal(init, libc::SIGKILL);
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.guest_ns, &self.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        if self.mounted {
            let _ = Command::new("umount").arg(self.path("root")).output();
        }
    }
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory effects; the pid is a child of this test (or its guest's init).
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// The guest's PID 1: the child of systemd-nspawn in another PID namespace.
fn container_init(nspawn: u32) -> Option<u32> {
    let ours = fs::read_link("/proc/self/ns/pid").ok()?;
    let children = fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|p| {
            fs::read_link(format!("/proc/{p}/ns/pid")).is_ok_and(|ns| ns != ours)
                && fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|exe| exe.ends_with("systemd"))
        })
}

/// The script of heredoc `NAME = <<'END'` in a rendered Vagrantfile.
fn heredoc(vagrantfile: &str, name: &str, end: &str) -> String {
    let start = format!("{name} = <<'{end}'\n");
    let body = &vagrantfile[vagrantfile.find(&start).expect("the heredoc") + start.len()..];
    body[..body.find(&format!("\n{end}\n")).expect("heredoc end") + 1].to_string()
}

/// The guest setup script and its arguments, cut from a rendered Vagrantfile.
fn rendered_setup(vagrantfile: &str) -> (String, Vec<String>) {
    let script = heredoc(vagrantfile, "GUEST_SETUP", "K0SLAB_GUEST_SETUP");
    let args_line = vagrantfile
        .lines()
        .find(|l| l.trim_start().starts_with("args: ["))
        .expect("provisioner args");
    let args = args_line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    (script, args)
}

#[test]
fn the_guest_moves_to_its_planned_address_and_keeps_it_across_a_reboot() {
    let (topology, files) = common::render(&[("control_plane_count", "1"), ("worker_count", "0")]);
    let (script, args) = rendered_setup(common::file(&files, "Vagrantfile"));
    let node = &topology.nodes[0];
    let planned = node.address;
    assert_eq!(
        args,
        [
            node.name.clone(),
            planned.to_string(),
            "24".to_string(),
            "dhcp".to_string()
        ]
    );
    let mover = move_command(node, topology.subnet.prefix_len(), true);

    // The machine ID every clone of the image starts with (tests/guest/build.sh commits one,
    // as the image's build does).
    let image_id = fs::read_to_string(guest_tree().join("etc/machine-id")).unwrap();
    let image_id = image_id.trim();

    let mut lab = Lab::new();
    let started = Instant::now();
    lab.boot();
    // The image's own network: a dynamic lease, not yet the planned address.
    let dynamic = |a: &[Ipv4Addr]| {
        a.len() == 1 && (DYNAMIC.0..=DYNAMIC.1).contains(&a[0].octets()[3]) && a[0] != planned
    };
    let (first, _) = lab.wait_for("the first lease", BOOT_TIMEOUT, dynamic);
    eprintln!("guest booted with {first:?} in {:.1?}", started.elapsed());
    assert_eq!(
        lab.machine_id(),
        image_id,
        "a clone boots with the image's ID"
    );
    let image_duid = lab.duid();

    lab.setup(&script, &args);
    assert_eq!(lab.guest("hostname").trim(), node.name);
    // Its own machine ID, also for D-Bus (which systemd-machine-id-setup would copy back).
    let own_id = lab.machine_id();
    assert_ne!(
        own_id, image_id,
        "the guest setup gives the VM its own machine ID"
    );
    assert!(
        own_id.len() == 32
            && own_id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "a machine ID: {own_id:?}"
    );
    assert_eq!(lab.guest("cat /var/lib/dbus/machine-id").trim(), own_id);
    assert_eq!(lab.guest("cat /var/lib/k0slab/machine-id").trim(), own_id);
    assert!(
        lab.guest("ls /usr/local/sbin/k0slab-address")
            .contains("k0slab-address"),
        "the guest setup installs the mover"
    );
    // The setup alone does not move the guest: k0slab has assigned nothing yet.
    assert_eq!(lab.addresses(), first, "the guest setup kept the lease");

    // k0slab's step: assign the planned address at the DHCP server, then the move command.
    lab.assign(planned);
    let moved = Instant::now();
    lab.guest(&format!(
        "runuser -u admin -- sh -c {}",
        shell_quote(&mover)
    ));
    let took =
        moved
            .elapsed()
            .max(lab.assert_only("after k0slab's move command", planned, MOVE_TIMEOUT));
    eprintln!("`{mover}`: the planned address {planned} alone after {took:.1?}");
    let log = fs::read_to_string(lab.path("dnsmasq.log")).unwrap();
    for line in log
        .lines()
        .filter(|l| l.contains("DHCP") && l.contains(GUEST_MAC))
    {
        eprintln!("  {line}");
    }
    assert!(
        log.contains(&format!("DHCPACK({SERVER_IF}) {planned} {GUEST_MAC}")),
        "dnsmasq leased the planned address:\n{log}"
    );
    // The DHCP client that moved it runs with the VM's own ID: its DUID is no longer the
    // image's (systemd-networkd derives DUID-EN from the machine ID).
    let own_duid = lab.duid();
    eprintln!("DUID {image_duid} (the image's ID) -> {own_duid}");
    assert_ne!(
        own_duid, image_duid,
        "networkd took the new machine ID by the move"
    );

    // A power-off and boot (`vagrant halt`, `vagrant up`): the same address, and it stays
    // once the setup runs again as it does on every `vagrant up`.
    lab.power_off();
    let restarted = Instant::now();
    lab.boot();
    let took = lab.assert_only("after a reboot", planned, BOOT_TIMEOUT);
    eprintln!(
        "after a reboot: the planned address {planned} alone {:.1?} after boot ({took:.1?} polling)",
        restarted.elapsed()
    );
    assert_eq!(lab.machine_id(), own_id, "the ID is kept across a reboot");
    assert_eq!(lab.duid(), own_duid);
    lab.setup(&script, &args);
    lab.assert_only("after the setup ran again", planned, MOVE_TIMEOUT);
    assert_eq!(
        lab.machine_id(),
        own_id,
        "once: the setup keeps the VM's ID"
    );
}

/// What the test's package repository serves in place of Ubuntu's: a `haproxy` package whose
/// program accepts `-c` and otherwise runs until stopped, with a unit, built with the guest's
/// own dpkg-deb, and a flat repository apt reads from a file: URI.
const FAKE_HAPROXY_REPO: &str = r#"set -eu
pkg=/srv/k0slab-pkg
mkdir -p $pkg/DEBIAN $pkg/usr/sbin $pkg/lib/systemd/system $pkg/etc/haproxy /srv/k0slab-repo
cat >$pkg/DEBIAN/control <<'CONTROL'
Package: haproxy
Version: 9.9-test
Architecture: all
Maintainer: k0slab tests <tests@k0slab.invalid>
Description: test stand-in for HAProxy
CONTROL
cat >$pkg/usr/sbin/haproxy <<'HAPROXY'
#!/bin/sh
case " $* " in *" -c "*) exit 0 ;; esac
exec sleep infinity
HAPROXY
chmod 755 $pkg/usr/sbin/haproxy
cat >$pkg/lib/systemd/system/haproxy.service <<'UNIT'
[Service]
ExecStart=/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg
[Install]
WantedBy=multi-user.target
UNIT
dpkg-deb --build --root-owner-group $pkg /srv/k0slab-repo/haproxy_9.9-test_all.deb >/dev/null
cd /srv/k0slab-repo
deb=haproxy_9.9-test_all.deb
{
  sed -n '/^$/q;p' $pkg/DEBIAN/control
  echo "Filename: ./$deb"
  echo "Size: $(stat -c %s $deb)"
  echo "SHA256: $(sha256sum $deb | cut -d' ' -f1)"
  echo
} >Packages
{
  echo "Date: $(LC_ALL=C date -u -R)"
  echo "SHA256:"
  echo " $(sha256sum Packages | cut -d' ' -f1) $(stat -c %s Packages) Packages"
} >Release
mv /etc/apt/sources.list /etc/apt/sources.list.image
rm -f /etc/apt/sources.list.d/*
echo 'deb [trusted=yes] file:/srv/k0slab-repo ./' >/etc/apt/sources.list.d/k0slab-test.list
"#;

/// apt's locks as the image's first-boot apt-daily holds them: apt-daily.service's `apt-get
/// update` the lists lock, then apt-daily-upgrade's unattended-upgrade the dpkg frontend lock
/// and the dpkg lock. Both take apt's fcntl write locks (Debian/apt apt-pkg/contrib/fileutl.cc
/// GetLock, lines 273-279 at 2.7.14), as python's lockf does.
const APT_DAILY: &str = r#"
import fcntl, sys, time
def hold(paths):
    fs = [open(p, "a") for p in paths]
    for f in fs:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fs
lists = hold(["/var/lib/apt/lists/lock"])
print("lists", flush=True)
time.sleep(3)
dpkg = hold(["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"])
for f in lists:
    f.close()
print("dpkg", flush=True)
time.sleep(9)
print("released", flush=True)
"#;

/// The load balancer's setup script as the rendered Vagrantfile of an HA lab holds it.
fn load_balancer_setup() -> String {
    let (_, files) = common::render(&[("control_plane_count", "3"), ("worker_count", "0")]);
    heredoc(
        common::file(&files, "Vagrantfile"),
        "LOAD_BALANCER_SETUP",
        "K0SLAB_LOAD_BALANCER_SETUP",
    )
}

#[test]
fn the_load_balancer_setup_waits_for_apt_daily_on_a_fresh_image() {
    let script = load_balancer_setup();
    assert!(script.contains("/tmp/k0slab-haproxy.cfg"), "{script}");

    let mut lab = Lab::new();
    lab.boot();
    lab.guest(FAKE_HAPROXY_REPO);
    // What Vagrant's file provisioner uploads first.
    lab.guest("printf 'global\\n' >/tmp/k0slab-haproxy.cfg");

    let init = lab.init.unwrap().to_string();
    let mut daily = Command::new("nsenter")
        .args(["--target", &init, "--all", "--"])
        .args(["env", "-i", GUEST_PATH, "python3", "-c", APT_DAILY])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the lock holder starts");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(daily.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "lists");
    let started = Instant::now();
    let out = lab.provision(&script, &[]);
    let took = started.elapsed();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let _ = daily.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("the load balancer's setup took {took:.1?}:\n{stderr}");
    assert!(
        out.status.success(),
        "the load balancer's setup failed ({}):\n{}{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(rest, ["dpkg", "released"], "the holder held both in turn");
    // `apt-get update` found the lists lock taken and was run again; the install waited for
    // dpkg's locks (DPkg::Lock::Timeout) instead of failing on them.
    assert!(
        stderr.contains("Could not get lock /var/lib/apt/lists/lock. It is held by process"),
        "{stderr}"
    );
    assert!(stderr.contains("k0slab: apt is busy"), "{stderr}");
    assert!(
        !stderr.contains("/var/lib/dpkg/lock"),
        "no dpkg lock error: {stderr}"
    );
    assert!(
        took >= Duration::from_secs(11),
        "done only after the holder let go: {took:?}"
    );
    assert!(lab
        .guest("dpkg-query -W -f '${Status}' haproxy")
        .contains("install ok installed"));
    assert_eq!(lab.guest("systemctl is-active haproxy").trim(), "active");
    assert_eq!(
        lab.guest("cat /etc/haproxy/haproxy.cfg"),
        "global\n",
        "the lab's haproxy.cfg is installed"
    );
}

/// apt with one source only, a repository on the guest's loopback where nothing listens (port
/// 9, discard: the connection is refused at once), no lists fetched before and no package
/// cache: as offline as a load balancer gets, and apt's traffic never leaves the guest's
/// loopback. The suite is the guest's own; haproxy must not be installed already.
const OFFLINE_APT: &str = r#"set -eu
. /etc/os-release
rm -f /etc/apt/sources.list.d/*
echo "deb [trusted=yes] http://127.0.0.1:9/debian $VERSION_CODENAME main" >/etc/apt/sources.list
apt-get clean
rm -rf /var/lib/apt/lists/*
! command -v haproxy
! dpkg-query -W haproxy 2>/dev/null
[ -z "$(apt-config dump | grep -i proxy)" ]
"#;

/// How long the offline setup may take before the guest is ended: it takes 7 s (apt's own
/// retries); spinning in the lock-retry loop would take 10 minutes.
const OFFLINE_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn the_load_balancer_setup_says_it_needs_the_internet_when_offline() {
    let script = load_balancer_setup();
    let needs_internet = "k0slab: the load balancer needs the internet once, to install HAProxy \
                          with apt-get (apt-get install haproxy failed); connect this Mac, or use \
                          K0SLAB_ENDPOINT=cplb, which needs no load balancer";
    assert!(script.contains(needs_internet), "{script}");

    let mut lab = Lab::new();
    lab.boot();
    // Provisioned as Vagrant provisions it: over SSH to its leased address. (Before its lease,
    // only loopback has an IPv4 address and apt cannot even resolve 127.0.0.1: "Address family
    // for hostname not supported".)
    lab.wait_for("the first lease", BOOT_TIMEOUT, |a| !a.is_empty());
    lab.guest(OFFLINE_APT);
    // What Vagrant's file provisioner uploads first.
    lab.guest("printf 'global\\n' >/tmp/k0slab-haproxy.cfg");

    // Should the setup hang, the guest is ended (its PID 1 killed, so every process in it,
    // the script too) and the test fails on the time below with what the script printed.
    let init = lab.init.unwrap();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let hung = matches!(
            finished.recv_timeout(OFFLINE_LIMIT),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        if hung {
            signal(init, libc::SIGKILL);
        }
        hung
    });
    let started = Instant::now();
    let out = lab.provision(&script, &[]);
    let took = started.elapsed();
    let _ = done.send(());
    let hung = watchdog.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "the offline load balancer's setup took {took:.1?} ({}):\n{stdout}{stderr}",
        out.status
    );
    assert!(
        !hung && took < Duration::from_secs(20),
        "the setup did not give up at once offline ({took:.1?}, ended: {hung}):\n{stdout}{stderr}"
    );
    assert!(
        !stderr.contains("k0slab: apt is busy"),
        "no lock retries: {stderr}"
    );
    assert!(
        !out.status.success(),
        "the setup succeeded offline:\n{stdout}{stderr}"
    );
    // apt's own words. `apt-get update` could not reach the only source: apt 2.6 (bookworm)
    // warns ("W: Failed to fetch ...") and exits 0, so the setup printed it with update's
    // output, on stdout. It retries a failed fetch 3 times (Acquire::Retries), after 1, 2 and
    // 4 s: the 7 s this takes.
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("Failed to fetch http://127.0.0.1:9/debian/dists/")
            && all.contains("Could not connect to 127.0.0.1:9")
            && all.contains("Connection refused"),
        "apt-get update's failure:\n{all}"
    );
    // The install then found no haproxy to install: its error, then k0slab's line, last.
    let located = stderr
        .find("E: Unable to locate package haproxy")
        .unwrap_or_else(|| panic!("apt-get install's error: {stderr}"));
    let said = stderr
        .find(needs_internet)
        .unwrap_or_else(|| panic!("k0slab's line: {stderr}"));
    assert!(located < said, "apt's error, then k0slab's line: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().last(),
        Some(needs_internet),
        "{stderr}"
    );
    // It stopped there: nothing installed, no configuration written.
    lab.guest("! command -v haproxy && ! dpkg-query -W haproxy 2>/dev/null");
    lab.guest("[ ! -e /etc/haproxy/haproxy.cfg ]");
}
