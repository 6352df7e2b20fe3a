# The host's network as the stand-ins see it: macOS bootpd (leases and static bindings),
# Softnet, Tart's shared (NAT) network and bridged networks. Every rule cites the real source
# it follows; the stand-ins (vagrant, tart, k0sctl, kubectl) ask this module who holds an
# address and whether a packet gets through. Nothing here touches a real network.

require "json"
require "time"

module Net
  module_function

  POOL = (2..254).freeze # vmnet's shared network 192.168.64.0/24, gateway .1
  SUBNET_PREFIX = "192.168.64."
  # Softnet runs bootpd with a 600 s lease (cirruslabs/softnet src/main.rs --bootpd-lease-time).
  DYNAMIC_LEASE_SECONDS = 600

  def leases_path
    ENV.fetch("K0SLAB_DHCP_LEASES")
  end

  def bootptab_path
    ENV.fetch("K0SLAB_BOOTPTAB")
  end

  def memory_path
    File.join(Standin.state_dir, "bootpd-memory.json")
  end

  # bootpd writes bytes without leading zeros (apple-oss-distributions/bootp
  # bootplib/host_identifier.c lines 83-86).
  def bootpd_bytes(mac)
    mac.split(":").map { |b| b.to_i(16).to_s(16) }.join(":")
  end

  def same_mac?(a, b)
    a && b && a.split(":").map { |x| x.to_i(16) } == b.split(":").map { |x| x.to_i(16) }
  end

  # --- bootpd's files, in their real formats -------------------------------------------------

  # dhcpd_leases: `{`, tab-indented key=value lines, `}` (bootplib/NICache.c lines 285-426).
  def parse_leases(text)
    text.scan(/^\{\n(.*?)^\}\n/m).map do |(body)|
      body.lines.to_h { |l| k, v = l.strip.split("=", 2); [k, v] }
    end
  end

  def format_leases(entries)
    entries.map { |e| "{\n" + e.map { |k, v| "\t#{k}=#{v}\n" }.join + "}\n" }.join
  end

  # bootptab: entries after the first line starting with `%`; lines starting with `#`, a blank
  # or nothing are skipped (bootpd.tproj/bootpdfile.c lines 134-175).
  def parse_bootptab(text)
    started = false
    text.lines.filter_map do |line|
      unless started
        started = line.start_with?("%")
        next
      end
      next if line.start_with?("#", " ") || line.strip.empty?

      host, _type, mac, ip = line.split
      { "host" => host, "mac" => mac, "ip" => ip } if ip
    end
  end

  # bootpd's memory: what it read last. It reads both files again only after SIGHUP, at its
  # next packet, and bootptab only when its mtime differs in whole seconds (bootpd.c lines
  # 1121-1126, 2349-2366; bootpdfile.c lines 126-132; dhcpd.c lines 187-209).
  def memory
    m = Standin.read_json(memory_path, nil)
    if m.nil?
      m = { "bootptab" => [], "bootptab_mtime" => nil, "leases" => [] } # first packet: fake SIGHUP
      m = reload(m, true)
    elsif File.exist?(hup_flag)
      File.delete(hup_flag)
      m = reload(m, false)
    end
    m
  end

  def hup_flag
    File.join(Standin.state_dir, "bootpd-sighup")
  end

  def reload(m, first)
    if File.exist?(bootptab_path)
      mtime = File.mtime(bootptab_path).to_i
      if first || mtime != m["bootptab_mtime"]
        m["bootptab"] = parse_bootptab(File.read(bootptab_path))
        m["bootptab_mtime"] = mtime
      end
    end
    m["leases"] = File.exist?(leases_path) ? parse_leases(File.read(leases_path)) : []
    Standin.write_json(memory_path, m)
    m
  end

  def save_leases(m)
    Standin.write_json(memory_path, m)
    tmp = "#{leases_path}-" # bootpd writes dhcpd_leases- then renames (NICache.c 393-426)
    File.write(tmp, format_leases(m["leases"]))
    File.rename(tmp, leases_path)
  end

  # One DHCP exchange of `vm` with bootpd. `requested` is the address an INIT-REBOOT asks for
  # (nil: DISCOVER). Returns the address and whether the lease is infinite. The client
  # identifier is type 1 + the MAC (the cirruslabs image's netplan uses dhcp-identifier: mac).
  def exchange(vm, requested = nil)
    # bootpd is one process and handles one packet at a time.
    File.open(File.join(Standin.state_dir, "bootpd.lock"), File::CREAT | File::RDWR) do |lock|
      lock.flock(File::LOCK_EX)
      exchange_locked(vm, requested)
    end
  end

  def exchange_locked(vm, _requested)
    m = memory
    mac = vm["mac"]
    identifier = "1,#{bootpd_bytes(mac)}"
    # A bootptab line for the client wins and is a permanent binding with an infinite lease,
    # and gets no entry in dhcpd_leases (dhcpd.c lines 724-736, 778-780, 998-1010).
    static = m["bootptab"].find { |b| same_mac?(b["mac"], mac) }
    return { "address" => static["ip"], "infinite" => true } if static

    now = Time.now.to_i
    entry = m["leases"].find { |e| e["identifier"] == identifier }
    # An INIT-REBOOT for another address than the client's entry gets a NAK, and the client
    # starts over with DISCOVER (dhcpd.c lines 1063-1066).
    if entry.nil?
      taken = m["leases"].map { |e| e["ip_address"] } + m["bootptab"].map { |b| b["ip"] }
      free = POOL.map { |h| "#{SUBNET_PREFIX}#{h}" }.find { |a| !taken.include?(a) } # S_ipinuse, dhcpd.c 356-390
      Standin.fail!("stand-in bootpd: no free address") if free.nil?
      entry = { "name" => vm["hostname"] || "ubuntu", "ip_address" => free,
                "hw_address" => identifier, "identifier" => identifier }
    end
    m["leases"].delete(entry)
    # The entry's address is offered whether the entry is active or expired (dhcpd.c 752-800);
    # the lease is finite and extended on every exchange.
    entry["lease"] = format("0x%x", now + DYNAMIC_LEASE_SECONDS)
    m["leases"].unshift(entry) # most recently used first
    save_leases(m)
    { "address" => entry["ip_address"], "infinite" => false }
  end

  # A bridged VM gets its lease from the LAN's own DHCP server, not bootpd: one address per
  # MAC, kept across restarts, never two clients on one address (RFC 2131 section 4.3.1).
  def lan_exchange(vm)
    File.open(File.join(Standin.state_dir, "lan-dhcp.lock"), File::CREAT | File::RDWR) do |lock|
      lock.flock(File::LOCK_EX)
      path = File.join(Standin.state_dir, "lan-leases.json")
      leases = Standin.read_json(path, {})
      leases[vm["mac"]] ||= (100..199).map { |h| "192.168.1.#{h}" }.find { |a| !leases.value?(a) } ||
                            Standin.fail!("stand-in LAN DHCP server: no free address")
      Standin.write_json(path, leases)
      leases[vm["mac"]]
    end
  end

  # --- the VM's interface ---------------------------------------------------------------------

  # The network a `tart run` with these arguments attaches to (cirruslabs/tart
  # Sources/tart/Commands/Run.swift lines 180-306).
  def network_of(run_args)
    run_args = Array(run_args)
    if (b = run_args.find { |a| a.start_with?("--net-bridged=") })
      { "kind" => "bridged", "interface" => b.split("=", 2).last }
    elsif run_args.any? { |a| a.start_with?("--net-softnet") }
      allow = run_args.find { |a| a.start_with?("--net-softnet-allow=") }.to_s.split("=", 2).last.to_s.split(",")
      # Softnet disables the bridge's isolation only for 0.0.0.0/0 (softnet src/main.rs
      # --allow help; lib/proxy/mod.rs lines 70-73).
      { "kind" => "softnet", "allow_all" => allow.include?("0.0.0.0/0") }
    else
      { "kind" => "nat" }
    end
  end

  # Boots the VM's network: the guest's DHCP client asks for its previous address, if any.
  def boot(vm)
    vm["extra_addresses"] = [] # `ip address add` does not survive a restart
    vm["vxlan"] = nil # nor does `ip link add`
    if vm["network"]["kind"] == "bridged"
      vm["lease"] = vm["static_address"] || lan_exchange(vm)
      vm["infinite"] = false
    else
      got = exchange(vm, vm["lease"])
      vm["lease"] = got["address"]
      vm["infinite"] = got["infinite"]
    end
  end

  def addresses(vm)
    [vm["lease"], *vm["extra_addresses"]].compact
  end

  # Softnet lets a VM use exactly one source address: its DHCP lease, while the lease is valid
  # (softnet lib/proxy/vm.rs lines 25-64, lib/dhcp_snooper.rs lines 29-101). An infinite lease
  # (0xffffffff) overflows `coarsetime::Instant + Duration` (dhcp_snooper.rs line 86): in the
  # shipped release build the lease is then already expired, and every packet is dropped.
  # On the shared network macOS filters ARP replies for extra addresses (canonical/multipass#1298).
  # Bridged: the stand-ins filter nothing.
  def valid_source?(vm, address)
    return false unless vm["state"] == "running" && addresses(vm).include?(address)

    case vm["network"]["kind"]
    when "softnet" then address == vm["lease"] && !vm["infinite"]
    when "nat" then address == vm["lease"]
    else true
    end
  end

  # Isolated: on macOS 13+ the shared network puts VM interfaces on bridge100 as PRIVATE
  # members, which cannot reach each other (cirruslabs/tart#718, #837, softnet#37); Softnet
  # lifts it only with --allow=0.0.0.0/0.
  # Standin.macos_major (STANDIN_MACOS_VERSION or STANDIN_MACOS_MAJOR, default 15) is the
  # host's macOS; before 13 bridge100 had no PRIVATE members (cirruslabs/tart#718).
  def private?(vm)
    return false if Standin.macos_major < 13

    n = vm["network"]
    n["kind"] == "nat" || (n["kind"] == "softnet" && !n["allow_all"])
  end

  def holder(address)
    Standin.vms.find { |v| v["state"] == "running" && addresses(v).include?(address) }
  end

  # The host (k0sctl's SSH, kubectl, Vagrant) reaching `address`.
  def host_reaches?(address)
    vm = holder(address)
    !vm.nil? && valid_source?(vm, address)
  end

  # A connection from `src` VM to `address`. Linux sends from the primary address of the
  # subnet, the DHCP lease, not from an address added beside it (etcd-io/etcd#9953).
  def vm_reaches?(src, address)
    dst = holder(address)
    return false if dst.nil? || src["state"] != "running"
    return true if dst["name"] == src["name"]
    return false unless valid_source?(src, src["lease"]) && valid_source?(dst, address)

    !(private?(src) && private?(dst))
  end

  # Tart's `dhcp` resolver: the leases file as it is on disk, expired entries dropped, the
  # newest per MAC kept, hw_address=1,<mac> compared byte by byte (cirruslabs/tart
  # Sources/tart/DHCPLeases/Leases.swift lines 22-51, Lease.swift lines 12-26). A client served
  # from a bootptab line has no entry there, so Tart finds nothing for it.
  def tart_ip_dhcp(mac)
    return nil unless File.exist?(leases_path)

    now = Time.now.to_i
    parse_leases(File.read(leases_path))
      .select { |e| e["hw_address"].to_s.start_with?("1,") && same_mac?(e["hw_address"][2..], mac) }
      .reject { |e| e["lease"] && Integer(e["lease"]) < now }
      .max_by { |e| e["lease"] ? Integer(e["lease"]) : Float::INFINITY }&.fetch("ip_address")
  end
end
