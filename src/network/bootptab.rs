//! macOS bootpd's `/etc/bootptab`: where the lab's planned addresses are *reserved*.
//!
//! bootpd never hands an address that bootptab names to another client from its dynamic pool
//! (apple-oss-distributions/bootp `bootpd.tproj/dhcpd.c` line 364). k0slab binds each planned
//! address to a placeholder MAC that no VM has ([`Mac::placeholder_for`]), never to the VM's
//! own MAC: a client that matches a bootptab line gets an infinite lease (`dhcpd.c` lines
//! 724-736, 778-780), on which Softnet overflows and then drops all of the VM's traffic. The
//! VM gets its address from its lease entry instead (see [`super::dhcp`]).
//!
//! The file format, from apple-oss-distributions/bootp (`bootpd.tproj/bootpdfile.c`
//! `bootp_readtab`, and the man page `bootptab.5`): everything up to a line that starts with
//! `%` is a header; after it each line is `hostname hwtype hwaddr ipaddr [bootfile]`, separated
//! by blanks; lines that start with `#` or a blank are skipped. bootpd reads the file again
//! whenever its modification time changes (compared in whole seconds).
//!
//! k0slab keeps one block per lab between two comment lines (which bootpd skips), and never
//! touches another line of the file.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where macOS' bootpd reads static bindings from.
pub const DEFAULT_PATH: &str = "/etc/bootptab";
/// bootptab's hardware type for Ethernet (the `hwtype` column).
const HWTYPE_ETHERNET: u8 = 1;
/// The separator line bootpd expects before the entries (any line starting with `%`).
const SEPARATOR: &str = "%%";

/// An Ethernet MAC address, written as six lower-case two-digit hex bytes with colons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac([u8; 6]);

impl FromStr for Mac {
    type Err = String;
    /// Accepts `aa:bb:cc:dd:ee:ff` and the leading-zero-less form macOS writes in
    /// `dhcpd_leases` (`a:b:c:d:e:f`), in either case.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a MAC address like 7e:1b:2c:3d:4e:5f");
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut bytes = [0u8; 6];
        for (b, p) in bytes.iter_mut().zip(parts) {
            if p.is_empty() || p.len() > 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(Mac(bytes))
    }
}

impl Mac {
    pub fn octets(self) -> [u8; 6] {
        self.0
    }

    /// A MAC no VM has, that reserves `address` in bootptab: locally administered (`02`),
    /// then `6b:30` ("k0"), then the address's last three bytes.
    pub fn placeholder_for(address: Ipv4Addr) -> Mac {
        let [_, b, c, d] = address.octets();
        Mac([0x02, 0x6b, 0x30, b, c, d])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl TryFrom<String> for Mac {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Mac> for String {
    fn from(m: Mac) -> String {
        m.to_string()
    }
}

/// One static binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// The host name bootpd hands out with the address (the Tart VM name).
    pub hostname: String,
    pub mac: Mac,
    pub address: Ipv4Addr,
}

impl Binding {
    fn line(&self) -> String {
        format!(
            "{}\t{HWTYPE_ETHERNET}\t{}\t{}",
            self.hostname, self.mac, self.address
        )
    }
}

fn begin_marker(lab: &str) -> String {
    format!("# k0slab lab {lab}: begin (written by k0slab; `k0slab destroy` removes it)")
}

fn end_marker(lab: &str) -> String {
    format!("# k0slab lab {lab}: end")
}

fn is_separator(line: &str) -> bool {
    line.starts_with('%')
}

/// Whether a line is an entry bootpd reads (after the separator, not a comment or blank-led).
fn is_entry(line: &str) -> bool {
    !(line.is_empty() || line.starts_with('#') || line.starts_with(' ') || line.starts_with('\t'))
}

/// The entries of a bootptab, in order: `(hostname, mac, address)` as far as they parse.
pub fn entries(text: &str) -> Vec<Binding> {
    let mut after_separator = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if !after_separator {
            after_separator = is_separator(line);
            continue;
        }
        if !is_entry(line) {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [hostname, _hwtype, mac, address, ..] = fields[..] {
            if let (Ok(mac), Ok(address)) = (mac.parse(), address.parse()) {
                found.push(Binding {
                    hostname: hostname.to_string(),
                    mac,
                    address,
                });
            }
        }
    }
    found
}

/// The lines of `lab`'s block, if the file has one.
pub fn lab_block(text: &str, lab: &str) -> Option<Vec<Binding>> {
    let (begin, end) = (begin_marker(lab), end_marker(lab));
    let mut lines = text.lines().skip_while(|l| *l != begin);
    lines.next()?;
    let block: Vec<&str> = lines.take_while(|l| *l != end).collect();
    Some(entries(&format!("{SEPARATOR}\n{}", block.join("\n"))))
}

/// `text` without `lab`'s block; every other line is kept as it was.
pub fn without_lab(text: &str, lab: &str) -> String {
    let (begin, end) = (begin_marker(lab), end_marker(lab));
    let mut kept = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line == begin {
            inside = true;
        } else if inside && line == end {
            inside = false;
        } else if !inside {
            kept.push(line);
        }
    }
    join_lines(&kept)
}

fn join_lines(lines: &[&str]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("{}\n", lines.join("\n"))
    }
}

/// A binding of another lab or of the user's own lines that clashes with one of `ours`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    pub ours: Binding,
    pub theirs: Binding,
}

impl fmt::Display for Clash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ours.address == self.theirs.address {
            write!(
                f,
                "{} is already reserved for {} ({}) in bootptab",
                self.ours.address, self.theirs.hostname, self.theirs.mac
            )
        } else {
            write!(
                f,
                "MAC {} of {} already has the address {} ({}) in bootptab",
                self.ours.mac, self.ours.hostname, self.theirs.address, self.theirs.hostname
            )
        }
    }
}

/// `text` with `lab`'s block set to `bindings` (replacing the old block where it stood, or
/// appended after the separator, which is added when the file has none). Bindings outside the
/// block that reserve one of our addresses or MACs are returned as clashes instead.
pub fn with_lab(text: &str, lab: &str, bindings: &[Binding]) -> Result<String, Vec<Clash>> {
    let others = entries(&without_lab(text, lab));
    let clashes: Vec<Clash> = bindings
        .iter()
        .flat_map(|ours| {
            others
                .iter()
                .filter(|t| t.address == ours.address || t.mac == ours.mac)
                .map(|theirs| Clash {
                    ours: ours.clone(),
                    theirs: theirs.clone(),
                })
        })
        .collect();
    if !clashes.is_empty() {
        return Err(clashes);
    }
    let mut block = vec![begin_marker(lab)];
    block.extend(bindings.iter().map(Binding::line));
    block.push(end_marker(lab));

    let (begin, end) = (begin_marker(lab), end_marker(lab));
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + block.len() + 1);
    let mut placed = false;
    let mut inside = false;
    for line in &lines {
        if *line == begin && !placed {
            inside = true;
            out.extend(block.iter().cloned());
            placed = true;
        } else if inside {
            inside = *line != end;
        } else {
            out.push((*line).to_string());
        }
    }
    if !placed {
        if !lines.iter().any(|l| is_separator(l)) {
            out.push(SEPARATOR.to_string());
        }
        out.extend(block);
    }
    let refs: Vec<&str> = out.iter().map(String::as_str).collect();
    Ok(join_lines(&refs))
}

/// The bindings of a lab, by Vagrant machine name, as recorded in `lab.json`.
pub type LabBindings = BTreeMap<String, Binding>;

#[cfg(test)]
mod tests {
    use super::*;

    fn b(host: &str, mac: &str, ip: &str) -> Binding {
        Binding {
            hostname: host.into(),
            mac: mac.parse().unwrap(),
            address: ip.parse().unwrap(),
        }
    }

    const USERS: &str = "# the user's own bootptab\n%%\nprinter 1 0:11:22:33:44:55 192.168.2.40\n";

    #[test]
    fn macs_parse_in_both_forms_and_print_with_leading_zeros() {
        let m: Mac = "e:1:A2:b:0:ff".parse().unwrap();
        assert_eq!(m.to_string(), "0e:01:a2:0b:00:ff");
        assert_eq!("0e:01:a2:0b:00:ff".parse::<Mac>().unwrap(), m);
        for bad in [
            "",
            "0e:01:a2:0b:00",
            "0e:01:a2:0b:00:ff:1",
            "0e:01:a2:0b:00:fff",
            "zz:01:a2:0b:00:ff",
            "0e-01-a2-0b-00-ff",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_block_is_added_after_the_separator_and_keeps_every_other_line() {
        let ours = [
            b("lab-control-plane-1", "7e:00:00:00:00:01", "192.168.64.10"),
            b("lab-worker-1", "7e:00:00:00:00:02", "192.168.64.20"),
        ];
        let text = with_lab(USERS, "lab", &ours).unwrap();
        assert!(text.starts_with(USERS), "{text}");
        assert_eq!(entries(&text).len(), 3);
        assert_eq!(lab_block(&text, "lab").unwrap(), ours);
        assert_eq!(without_lab(&text, "lab"), USERS);
    }

    #[test]
    fn a_file_without_a_separator_gets_one_and_an_empty_file_works() {
        let ours = [b(
            "lab-control-plane-1",
            "7e:00:00:00:00:01",
            "192.168.64.10",
        )];
        let text = with_lab("", "lab", &ours).unwrap();
        assert!(text.starts_with("%%\n# k0slab lab lab: begin"), "{text}");
        assert_eq!(entries(&text), ours);
        let text = with_lab("# only a header\n", "lab", &ours).unwrap();
        assert_eq!(entries(&text), ours);
        assert_eq!(without_lab(&text, "lab"), "# only a header\n%%\n");
    }

    #[test]
    fn a_block_is_replaced_in_place_and_other_labs_are_untouched() {
        let a = [b("a-control-plane-1", "7e:00:00:00:00:01", "192.168.64.10")];
        let other = [b("b-control-plane-1", "7e:00:00:00:00:09", "192.168.64.11")];
        let text = with_lab(USERS, "a", &a).unwrap();
        let text = with_lab(&text, "b", &other).unwrap();
        let moved = [b("a-control-plane-1", "7e:00:00:00:00:03", "192.168.64.10")];
        let text = with_lab(&text, "a", &moved).unwrap();
        assert_eq!(lab_block(&text, "a").unwrap(), moved);
        assert_eq!(lab_block(&text, "b").unwrap(), other);
        assert_eq!(entries(&text).len(), 3);
        assert_eq!(without_lab(&without_lab(&text, "a"), "b"), USERS);
    }

    #[test]
    fn clashes_with_other_lines_are_refused() {
        let text = with_lab(
            USERS,
            "b",
            &[b("b-worker-1", "7e:00:00:00:00:09", "192.168.64.20")],
        )
        .unwrap();
        let err = with_lab(
            &text,
            "a",
            &[b("a-worker-1", "7e:00:00:00:00:01", "192.168.64.20")],
        )
        .unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(
            err[0].to_string(),
            "192.168.64.20 is already reserved for b-worker-1 (7e:00:00:00:00:09) in bootptab"
        );
        let err = with_lab(
            &text,
            "a",
            &[b("a-worker-1", "7e:00:00:00:00:09", "192.168.64.21")],
        )
        .unwrap_err();
        assert!(
            err[0]
                .to_string()
                .contains("MAC 7e:00:00:00:00:09 of a-worker-1 already has"),
            "{}",
            err[0]
        );
    }

    #[test]
    fn comments_and_blank_led_lines_are_not_entries() {
        let text = "%%\n# c 1 7e:00:00:00:00:01 192.168.64.10\n x 1 7e:00:00:00:00:02 192.168.64.11\n\ny 1 7e:00:00:00:00:03 192.168.64.12\n";
        assert_eq!(
            entries(text),
            [b("y", "7e:00:00:00:00:03", "192.168.64.12")]
        );
        assert!(
            entries("y 1 7e:00:00:00:00:03 192.168.64.12\n").is_empty(),
            "before the separator"
        );
    }
}
