//! Which subnet macOS' bootpd really serves: the `Subnets` of `/etc/bootpd.plist`.
//!
//! vmnet's shared network is not always 192.168.64.0/24: when another program (Docker, UTM,
//! Multipass) holds `bridge100` first, it moves to 192.168.65.0/24 (cirruslabs/tart#172), and
//! macOS' Internet Sharing writes the subnet it serves into bootpd's configuration. bootpd
//! reads it from `/etc/bootpd.plist` on macOS (apple-oss-distributions/bootp bootp-494.60.3
//! `bootpd.tproj/bootpd.c` lines 152-158, `Subnets` read at line 1019). Each entry of
//! `Subnets` has `net_address`, `net_mask` and `net_range` (two addresses, start and end, both
//! inside the subnet) and `allocate`, false unless set (`bootplib/subnets.c` lines 880-960,
//! 980; the keys at `bootplib/subnets.h` lines 46-54).
//!
//! Why it matters: bootpd deletes a client's lease entry whose address is not inside the
//! range of a subnet that allocates, and rewrites the file (`bootpd.tproj/dhcpd.c` lines
//! 758-768, `bootplib/subnets.c` lines 218-232 and 1228-1245). A planned address outside the
//! served range would be dropped at the VM's first request, and every VM would time out.

use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

/// Where macOS' bootpd reads its configuration.
pub const DEFAULT_PATH: &str = "/etc/bootpd.plist";

/// One subnet bootpd allocates addresses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    pub net: Ipv4Net,
    /// The first and last address bootpd hands out (`net_range`).
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl Served {
    /// Whether bootpd keeps an entry for `address` (inside `net_range`, `subnets.c` 218-232).
    pub fn keeps(&self, address: Ipv4Addr) -> bool {
        self.net.contains(&address) && self.first <= address && address <= self.last
    }
}

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (addresses {} to {})",
            self.net, self.first, self.last
        )
    }
}

/// The subnets that allocate, in the order of the file; `None` when there is no readable
/// configuration (bootpd has not served a VM on this host yet).
pub fn read(path: &Path) -> Option<Vec<Served>> {
    let value = plist::Value::from_file(path).ok()?;
    Some(parse(&value))
}

/// The allocating subnets of a parsed configuration; entries bootpd would refuse are skipped.
pub fn parse(value: &plist::Value) -> Vec<Served> {
    let subnets = value
        .as_dictionary()
        .and_then(|d| d.get("Subnets"))
        .and_then(plist::Value::as_array);
    subnets
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let d = s.as_dictionary()?;
            let addr = |k: &str| d.get(k)?.as_string()?.parse::<Ipv4Addr>().ok();
            if !d.get("allocate").and_then(plist::Value::as_boolean)? {
                return None;
            }
            let mask = addr("net_mask")?;
            let prefix = u32::from(mask).leading_ones() as u8;
            if u32::from(mask) != u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0) {
                return None;
            }
            let net = Ipv4Net::new(addr("net_address")?, prefix).ok()?.trunc();
            let range = d.get("net_range")?.as_array()?;
            let [first, last] = range.as_slice() else {
                return None;
            };
            let (first, last) = (
                first.as_string()?.parse::<Ipv4Addr>().ok()?,
                last.as_string()?.parse::<Ipv4Addr>().ok()?,
            );
            (net.contains(&first) && net.contains(&last) && first <= last).then_some(Served {
                net,
                first,
                last,
            })
        })
        .collect()
}

/// The subnet a lab on bootpd's network follows when the user chose none: `preferred` (the
/// PRD's 192.168.64.0/24) when bootpd serves it, else the first subnet bootpd serves.
pub fn follow(served: &[Served], preferred: Ipv4Net) -> Option<Served> {
    served
        .iter()
        .find(|s| s.net == preferred)
        .or_else(|| served.first())
        .copied()
}

/// The served subnet `subnet` is, if bootpd serves it.
pub fn serving(served: &[Served], subnet: Ipv4Net) -> Option<Served> {
    served.iter().find(|s| s.net == subnet).copied()
}

/// A configuration as macOS' Internet Sharing writes it for vmnet (for tests and stand-ins):
/// one allocating subnet `net` with the range .2 to the last host.
pub fn example(net: Ipv4Net) -> String {
    let first = Ipv4Addr::from(u32::from(net.network()) + 2);
    let last = Ipv4Addr::from(u32::from(net.broadcast()) - 1);
    let gateway = Ipv4Addr::from(u32::from(net.network()) + 1);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Subnets</key>
	<array>
		<dict>
			<key>_creator</key>
			<string>com.apple.NetworkSharing</string>
			<key>allocate</key>
			<true/>
			<key>dhcp_router</key>
			<string>{gateway}</string>
			<key>lease_max</key>
			<integer>86400</integer>
			<key>lease_min</key>
			<integer>86400</integer>
			<key>name</key>
			<string>{net}</string>
			<key>net_address</key>
			<string>{network}</string>
			<key>net_mask</key>
			<string>{mask}</string>
			<key>net_range</key>
			<array>
				<string>{first}</string>
				<string>{last}</string>
			</array>
		</dict>
	</array>
	<key>bootp_enabled</key>
	<false/>
	<key>dhcp_enabled</key>
	<array>
		<string>bridge100</string>
	</array>
</dict>
</plist>
"#,
        network = net.network(),
        mask = net.netmask(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn the_shared_network_is_read_and_followed() {
        let text = example(net("192.168.65.0/24"));
        let served = parse(&plist::Value::from_reader_xml(text.as_bytes()).unwrap());
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].net, net("192.168.65.0/24"));
        assert_eq!(served[0].first.to_string(), "192.168.65.2");
        assert_eq!(served[0].last.to_string(), "192.168.65.254");
        assert!(served[0].keeps("192.168.65.10".parse().unwrap()));
        assert!(!served[0].keeps("192.168.64.10".parse().unwrap()));
        assert!(
            !served[0].keeps("192.168.65.1".parse().unwrap()),
            "below the range"
        );
        assert_eq!(
            follow(&served, net("192.168.64.0/24")).unwrap().net,
            net("192.168.65.0/24")
        );
        assert_eq!(serving(&served, net("192.168.64.0/24")), None);
    }

    #[test]
    fn subnets_that_do_not_allocate_or_are_malformed_are_skipped() {
        let text = example(net("192.168.64.0/24"));
        let no_alloc = text.replace("<true/>", "<false/>");
        assert!(parse(&plist::Value::from_reader_xml(no_alloc.as_bytes()).unwrap()).is_empty());
        let bad_mask = text.replace("255.255.255.0", "255.0.255.0");
        assert!(parse(&plist::Value::from_reader_xml(bad_mask.as_bytes()).unwrap()).is_empty());
        let outside = text.replace("192.168.64.254", "192.168.66.254");
        assert!(parse(&plist::Value::from_reader_xml(outside.as_bytes()).unwrap()).is_empty());
        assert_eq!(read(Path::new("/nonexistent/bootpd.plist")), None);
    }
}
