# Shared state and helpers of the stand-in tools (vagrant, tart, k0sctl, kubectl).
#
# The stand-ins replace tools that only run on macOS (or need real VMs) in k0slab's tests.
# They take the real tools' arguments, print the real output formats, keep their state in
# $K0SLAB_STANDIN_STATE, record every call in calls.jsonl, and fail or slow down when told to
# by STANDIN_* variables (see tests/standins/README.md).
#
# They start with `ruby --disable-gems` (their `#!` line): RubyGems alone made up half of each
# call's start (0.27 s against 0.11 s with the same standard libraries here), and a lab's `up`
# starts some forty stand-ins. What needs a gem (REXML, in lib/network.rb) loads RubyGems
# where it is used, and so does YAML (Psych, a third of a call's start) in the stand-ins that
# read YAML: k0sctl, kubectl and the Cluster API models.

require "json"
require "fileutils"
require "ipaddr"

module Standin
  module_function

  def state_dir
    dir = ENV["K0SLAB_STANDIN_STATE"]
    if dir.nil? || dir.empty?
      warn "stand-in #{File.basename($PROGRAM_NAME)}: K0SLAB_STANDIN_STATE is not set " \
           "(stand-in tools only run inside k0slab's tests)"
      exit 99
    end
    FileUtils.mkdir_p(File.join(dir, "vms"))
    dir
  end

  # Appends one JSON line to calls.jsonl (start and end of every call).
  def log(tool, event, extra = {})
    entry = { tool: tool, event: event, args: ARGV, pid: Process.pid, time: Time.now.to_f,
              cwd: Dir.pwd, vagrant_cwd: ENV["VAGRANT_CWD"] }.merge(extra)
    File.open(File.join(state_dir, "calls.jsonl"), "a") do |f|
      f.flock(File::LOCK_EX)
      f.puts(JSON.generate(entry))
    end
  end

  # Records the call now and its exit status when the process ends.
  def record_call(tool)
    log(tool, "start")
    at_exit do
      status = $!.is_a?(SystemExit) ? $!.status : ($!.nil? ? 0 : 1)
      log(tool, "end", status: status)
    end
  end

  def listed?(var, name)
    value = ENV[var].to_s
    value == "*" || value.split(",").map(&:strip).include?(name)
  end

  def delay(var)
    seconds = ENV[var].to_f
    sleep(seconds) if seconds.positive?
  end

  def read_json(path, default)
    File.exist?(path) ? JSON.parse(File.read(path)) : default
  end

  def write_json(path, value)
    tmp = "#{path}.#{Process.pid}.tmp"
    File.write(tmp, JSON.pretty_generate(value))
    File.rename(tmp, path)
  end

  def vm_path(name)
    File.join(state_dir, "vms", "#{name}.json")
  end

  def vm(name)
    read_json(vm_path(name), nil)
  end

  def vms
    Dir[File.join(state_dir, "vms", "*.json")].sort.map { |p| JSON.parse(File.read(p)) }
  end

  def save_vm(vm)
    write_json(vm_path(vm["name"]), vm)
  end

  def delete_vm(name)
    FileUtils.rm_f(vm_path(name))
  end

  # --- the k0s clusters -------------------------------------------------------------------
  #
  # One file per cluster, clusters/<name>.json, keyed by the k0sctl config's metadata.name
  # (required, default "k0s-cluster": k0sproject/k0sctl pkg/apis/k0sctl.k0sproject.io/v1beta1/
  # cluster.go line 19; k0sctl names the kubeconfig's cluster and context after it,
  # phase/get_kubeconfig.go line 64). Real k0sctl keeps no local state, the cluster lives on its
  # hosts; the stand-ins keep one record per name so two labs on one host stay apart. Every
  # lookup asks for the cluster the request is about (by name, by a VM it runs on, by its API
  # address), never for "the only cluster".

  DEFAULT_CLUSTER_NAME = "k0s-cluster".freeze

  def clusters_dir
    File.join(state_dir, "clusters").tap { |d| FileUtils.mkdir_p(d) }
  end

  def cluster_path(name)
    name = name.to_s.empty? ? DEFAULT_CLUSTER_NAME : name.to_s
    fail!("stand-in: cluster name #{name.inspect} is not a file name") if name.include?("/") || name.start_with?(".")
    File.join(clusters_dir, "#{name}.json")
  end

  def cluster(name)
    read_json(cluster_path(name), nil)
  end

  def save_cluster(cluster)
    write_json(cluster_path(cluster["name"]), cluster)
  end

  def delete_cluster(name)
    FileUtils.rm_f(cluster_path(name))
  end

  def clusters
    Dir[File.join(clusters_dir, "*.json")].sort.map { |p| JSON.parse(File.read(p)) }
  end

  # The VM a cluster host runs on: the one k0sctl reached at its address when it applied
  # (host["vm"], the Tart name); records without it match the VM by machine name.
  def host_vm(host)
    return vm(host["vm"]) if host["vm"]

    vms.find { |v| v["machine"] == host["hostname"] }
  end

  def runs_on?(host, vm)
    host["vm"] ? host["vm"] == vm["name"] : host["hostname"] == vm["machine"]
  end

  # The cluster that has a host on VM `vm` (a lab's VMs belong to its cluster only), and that host.
  def cluster_of(vm)
    return [nil, nil] if vm.nil?

    clusters.each do |c|
      host = Array(c["hosts"]).find { |h| runs_on?(h, vm) }
      return [c, host] if host
    end
    [nil, nil]
  end

  # --- etcd as the stand-ins see it -------------------------------------------------------

  # The etcd members (every controller of a non-single cluster) and whether a majority runs:
  # etcd answers reads and writes only with quorum (see: etcd-io/etcd
  # server/etcdserver/api/etcdhttp/health.go lines 99-101, 209-216: no leader, no health).
  def etcd_members(cluster)
    cluster["hosts"].select { |h| %w[controller controller+worker].include?(h["role"]) }
  end

  def member_running?(host)
    host_vm(host)&.dig("state") == "running"
  end

  def quorum?(cluster)
    members = etcd_members(cluster)
    return cluster["hosts"].any? { |h| h["role"] == "single" && member_running?(h) } if members.empty?

    members.count { |h| member_running?(h) } * 2 > members.size
  end

  # --- keepalived, as k0s runs it for control-plane load balancing --------------------------
  #
  # k0s runs keepalived on every controller of a CPLB cluster once k0s runs there: from
  # k0sctl's apply on, and at every boot (k0sctl installs k0scontroller as an enabled service).
  # Every instance starts as BACKUP with the same priority (k0sproject/k0s
  # pkg/component/controller/cplb/cplb_templates.go lines 12-21); the first whose master-down
  # timer runs out becomes MASTER and adds the VIP to the interface of its default route
  # (lines 17, 37-41), as a permanent secondary address (docs/cplb.md lines 403-404): one
  # running controller holds it. A stopped controller loses it (an address added with
  # netlink does not survive a restart) and a running one takes over. The stand-in's master
  # is the running controller whose VM sorts first.

  # Gives the cluster's VIP to a running controller when none holds it; `booting` is the VM
  # (a Hash the caller saves) of a controller that is starting, which takes part as running.
  def keepalived_settle(cluster, booting = nil)
    vip = cluster && cluster["vip"].to_s
    return if vip.nil? || vip.empty?

    power_lock do
      controllers = cluster["hosts"].reject { |h| h["role"] == "worker" }.filter_map do |h|
        booting && runs_on?(h, booting) ? booting : host_vm(h)
      end
      running = controllers.select { |v| v["state"] == "running" }
      next if running.any? { |v| Array(v["extra_addresses"]).include?(vip) }

      master = running.min_by { |v| v["name"] }
      next if master.nil?

      master["extra_addresses"] = Array(master["extra_addresses"]) + [vip]
      save_vm(master) unless booting && master["name"] == booting["name"]
    end
  end

  # Serialises a VM's power change (running, stopped) with keepalived's choice of master:
  # with `vagrant up`/`halt` of several machines at once, a change written outside it could be
  # overwritten by a settle that read the VM before it (one controller stopped, yet saved as
  # running with the VIP). Reentrant within a process: flock(2) on a second open of the same
  # file would wait for the first.
  def power_lock
    return yield if @power_locked

    File.open(File.join(state_dir, "keepalived.lock"), File::CREAT | File::RDWR) do |lock|
      lock.flock(File::LOCK_EX)
      @power_locked = true
      yield
    ensure
      @power_locked = false
    end
  end

  # Machines of a k0slab Vagrantfile, as the stand-ins need them: name, Tart name, image, the
  # guest-setup arguments, the provider's ip_resolver and extra_run_args, ssh.host, which
  # provisioners run on every `vagrant up` (run: "always"), and whether the machine is the load
  # balancer (the `k0slab-haproxy` provisioner, with its script).
  def parse_vagrantfile(path)
    text = File.read(path)
    setup = text[/^GUEST_SETUP = <<'K0SLAB_GUEST_SETUP'\n(.*?)^K0SLAB_GUEST_SETUP$/m, 1].to_s
    lb_setup = text[/^LOAD_BALANCER_SETUP = <<'K0SLAB_LOAD_BALANCER_SETUP'\n(.*?)^K0SLAB_LOAD_BALANCER_SETUP$/m, 1]
    text.split(/^\s*config\.vm\.define /).drop(1).map do |block|
      name = block[/\A"([^"]+)"/, 1]
      args = block[/args: \[([^\]]*)\]/, 1].to_s.scan(/"([^"]*)"/).flatten
      run_args = block[/tart\.extra_run_args = \[([^\]]*)\]/, 1].to_s.scan(/"([^"]*)"/).flatten
      { "machine" => name, "tart_name" => block[/tart\.name = "([^"]+)"/, 1],
        "image" => block[/tart\.image = "([^"]+)"/, 1], "args" => args,
        "ip_resolver" => block[/tart\.ip_resolver = "([^"]+)"/, 1] || "dhcp",
        "cpus" => block[/tart\.cpus = (\d+)/, 1]&.to_i, "memory_mb" => block[/tart\.memory = (\d+)/, 1]&.to_i,
        "run_args" => run_args, "ssh_host" => block[/\.ssh\.host = "([^"]+)"/, 1],
        "setup_always" => block.match?(/name: "k0slab-guest-setup", run: "always"/),
        "guest_setup" => setup,
        "load_balancer" => block.include?('name: "k0slab-haproxy"'),
        "load_balancer_always" => block.include?('name: "k0slab-haproxy", run: "always"'),
        "load_balancer_setup" => block.include?('name: "k0slab-haproxy"') ? lb_setup : nil }
    end
  end

  # The host's macOS, for the stand-in sw_vers and lib/network.rb alike: STANDIN_MACOS_VERSION,
  # else STANDIN_MACOS_MAJOR.0 (the older knob, which only gave the major version), else 15.5.
  def macos_version
    v = ENV["STANDIN_MACOS_VERSION"].to_s
    return v unless v.empty?

    major = ENV["STANDIN_MACOS_MAJOR"].to_s
    major.empty? ? "15.5" : "#{major}.0"
  end

  def macos_major
    macos_version.split(".").first.to_i
  end

  # Whether release `version` ("1.32.1", "v1.29.9+k0s.0") is `floor` or newer, compared by
  # its numbers (RubyGems' Gem::Version is not loaded: the stand-ins start without RubyGems).
  def version_at_least?(version, floor)
    numbers = ->(v) { v.to_s[/\d+(\.\d+)*/].to_s.split(".").map(&:to_i) }
    have, need = numbers.call(version), numbers.call(floor)
    width = [have.size, need.size].max
    (have + [0] * (width - have.size) <=> need + [0] * (width - need.size)) >= 0
  end

  def fail!(message, status = 1)
    warn message
    exit status
  end
end
