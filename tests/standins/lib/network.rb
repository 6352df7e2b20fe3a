# The host's network as the stand-ins see it: macOS bootpd (leases and static bindings),
# Softnet, Tart's shared (NAT) network and bridged networks. Every rule cites the real source
# it follows; the stand-ins (vagrant, tart, k0sctl, kubectl) ask this module who holds an
# address and whether a packet gets through. Nothing here touches a real network.

require "json"
require "time"
require "ipaddr"

module Net
  module_function

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

  def plist_path
    ENV.fetch("K0SLAB_BOOTPD_PLIST")
  end

  # The subnets bootpd allocates from: /etc/bootpd.plist `Subnets`, each with net_address,
  # net_mask, net_range [start, end] and allocate (false unless set) (apple-oss-distributions/
  # bootp bootp-494.60.3 bootpd.tproj/bootpd.c lines 152-158 and 1019, bootplib/subnets.c
  # lines 880-980). Read with the rest of the configuration at the first packet and after a
  # SIGHUP; the stand-in reads it at each exchange (the tests change it only between runs).
  def served_subnets
    return [] unless File.exist?(plist_path)

    served_subnets_read.map do |s|
      { "net" => IPAddr.new(s["net"]), "first" => IPAddr.new(s["first"]), "last" => IPAddr.new(s["last"]) }
    end
  end

  # The plist's allocating subnets as strings, parsed once per version of the file: REXML is a
  # bundled gem and the stand-ins start without RubyGems (see lib/standin.rb), and loading both
  # took two thirds of a `vagrant ssh`. The parse is kept in the state directory, keyed by the
  # file's modification time and size.
  def served_subnets_read
    stat = File.stat(plist_path)
    key = "#{stat.mtime.to_r}:#{stat.size}"
    cache_path = File.join(Standin.state_dir, "bootpd-plist-subnets.json")
    cached = Standin.read_json(cache_path, nil)
    return cached["subnets"] if cached && cached["key"] == key

    require "rubygems"
    require "rexml/document"
    doc = REXML::Document.new(File.read(plist_path))
    top = doc.root.elements["dict"]
    subnets = (plist_value(top)["Subnets"] || []).filter_map do |s|
      next unless s["allocate"] == true

      net = IPAddr.new("#{s['net_address']}/#{s['net_mask']}")
      { "net" => "#{net}/#{net.prefix}", "first" => s["net_range"][0], "last" => s["net_range"][1] }
    end
    Standin.write_json(cache_path, { "key" => key, "subnets" => subnets })
    subnets
  end

  def plist_value(el)
    case el.name
    when "dict"
      el.elements.to_a.each_slice(2).to_h { |k, v| [k.text, plist_value(v)] }
    when "array" then el.elements.map { |e| plist_value(e) }
    when "true" then true
    when "false" then false
    when "integer" then el.text.to_i
    else el.text
    end
  end

  # An address bootpd keeps an entry for: inside the net_range of a subnet that allocates
  # (bootplib/subnets.c lines 218-232, 1228-1245).
  def in_range?(address)
    ip = IPAddr.new(address)
    served_subnets.any? { |s| s["net"].include?(ip) && s["first"] <= ip && ip <= s["last"] }
  end

  # The served subnet's prefix length and broadcast address, for the guest's `ip addr` lines.
  def served_net
    served_subnets.first&.fetch("net") || IPAddr.new("192.168.64.0/24")
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

  # bootpd's memory: what it read last. It reads both files at its first packet (a faked first
  # SIGHUP) and again only after SIGHUP, at its next packet, and bootptab only when its mtime
  # differs in whole seconds (bootpd.c lines 227, 1121-1126, 2349-2366; bootpdfile.c lines
  # 126-132; dhcpd.c lines 187-209). The memory goes with the process (bin/bootpd deletes it
  # when it exits).
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

  # Written by bin/bootpd while it runs (its pid), removed when it exits.
  def running_path
    File.join(Standin.state_dir, "bootpd-running")
  end

  def lock_path
    File.join(Standin.state_dir, "bootpd.lock")
  end

  def last_packet_path
    File.join(Standin.state_dir, "bootpd-last-packet")
  end

  # launchd starts bootpd on demand when a DHCP packet arrives and it is not running
  # (bootpd.tproj/bootps.plist: inetd-compatible, Sockets bootps). Its pids are recorded in
  # bootpd-pids so that the tests' sandbox can end them.
  def ensure_running
    # launchd starts one bootpd for the socket, however many packets arrive at once.
    File.open(File.join(Standin.state_dir, "launchd.lock"), File::CREAT | File::RDWR) do |lock|
      lock.flock(File::LOCK_EX)
      return if File.exist?(running_path) && alive?(File.read(running_path).to_i)

      FileUtils.rm_f([memory_path, hup_flag]) # a new process remembers nothing
      # Detached from the stand-in that asked: no inherited stdout or stderr (the caller's
      # reader would wait for the daemon to close them), a process group of its own.
      pid = Process.spawn(File.expand_path("../bin/bootpd", __dir__),
                          in: File::NULL, out: File::NULL, err: File::NULL, pgroup: true)
      Process.detach(pid)
      File.open(File.join(Standin.state_dir, "bootpd-pids"), "a") { |f| f.puts(pid) }
      deadline = Time.now + 10
      sleep(0.02) until (File.exist?(running_path) && File.read(running_path).to_i == pid) || Time.now > deadline
    end
  end

  def alive?(pid)
    pid.positive? && Process.kill(0, pid) && true
  rescue Errno::ESRCH, Errno::EPERM
    false
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

  # bootpd writes dhcpd_leases from its memory, newest first: dhcpd_leases- then a rename
  # (bootplib/NICache.c lines 393-426). Whatever the file said that bootpd had not read is gone.
  def save_leases(m)
    Standin.write_json(memory_path, m)
    tmp = "#{leases_path}-"
    File.write(tmp, format_leases(m["leases"]))
    File.rename(tmp, leases_path)
  end

  # The guest's DHCP client gives its lease back (systemd-networkd's SendRelease=, on by
  # default, when the client stops): bootpd sets the entry's expiry to now and keeps the
  # entry (bootpd.tproj/dhcpd.c lines 1242-1252), then writes the file (1281-1284).
  def release(vm)
    with_bootpd do
      m = memory
      identifier = "1,#{bootpd_bytes(vm['mac'])}"
      entry = m["leases"].find { |e| e["identifier"] == identifier }
      if entry
        entry["lease"] = format("0x%x", Time.now.to_i)
        save_leases(m)
      end
    end
  end

  def with_bootpd
    ensure_running
    # bootpd is one process and handles one packet at a time.
    File.open(lock_path, File::CREAT | File::RDWR) do |lock|
      lock.flock(File::LOCK_EX)
      File.write(last_packet_path, Time.now.to_f.to_s)
      yield
    end
  end

  # One DHCP exchange of `vm` with bootpd. `requested` is the address an INIT-REBOOT asks for
  # (nil: DISCOVER). Returns the address and whether the lease is infinite. The client
  # identifier is type 1 + the MAC (the cirruslabs image's netplan uses dhcp-identifier: mac).
  def exchange(vm, requested = nil)
    with_bootpd { exchange_locked(vm, requested) }
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
    # An entry whose address is outside the range of every allocating subnet is deleted and
    # the file written at once (dhcpd.c lines 758-768, S_remove_host at 225-235).
    if entry && !in_range?(entry["ip_address"])
      m["leases"].delete(entry)
      save_leases(m)
      entry = nil
    end
    # An INIT-REBOOT for another address than the client's entry gets a NAK, and the client
    # starts over with DISCOVER (dhcpd.c lines 1063-1066).
    if entry.nil?
      taken = m["leases"].map { |e| e["ip_address"] } + m["bootptab"].map { |b| b["ip"] }
      # From the start of the range, the first address nobody holds (S_ipinuse, dhcpd.c 356-390).
      free = served_subnets.lazy.flat_map { |sn| (sn["first"].to_i..sn["last"].to_i).lazy.map { |i| IPAddr.new(i, Socket::AF_INET).to_s } }
                           .find { |a| !taken.include?(a) }
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
    # The stand-in's own record of what it handed out (shown by tests when they fail).
    File.open(File.join(Standin.state_dir, "bootpd.log"), "a") { |f| f.puts("#{Time.now.to_f} #{vm['name']} #{entry['ip_address']}") }
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

  # Tart's `dhcp` resolver: the leases file as it is on disk; an entry without `lease=` is
  # skipped, expired entries dropped, of several per MAC the longest lease kept, hw_address=
  # 1,<mac> compared byte by byte (cirruslabs/tart Sources/tart/MACAddressResolver/Leases.swift
  # lines 39-51, Lease.swift lines 10-41). A client served from a bootptab line has no entry
  # there, so Tart finds nothing for it.
  def tart_ip_dhcp(mac)
    return nil unless File.exist?(leases_path)

    now = Time.now.to_i
    parse_leases(File.read(leases_path))
      .select { |e| e["hw_address"].to_s.start_with?("1,") && same_mac?(e["hw_address"][2..], mac) }
      .select { |e| e["lease"] && Integer(e["lease"]) > now }
      .max_by { |e| Integer(e["lease"]) }&.fetch("ip_address")
  end
end
