# The stand-in management cluster's Cluster API with the Kairos providers: from a
# KairosControlPlane and MachineDeployments it derives Machines, KairosConfigs, bootstrap data
# Secrets, the workload kubeconfig Secret, the control plane's status and the workload
# cluster's Nodes, as the real controllers do, on a schedule.
#
# The model is kairos-io/kairos-capi at commit 0abbf74 (KCC = internal/controllers/bootstrap/
# kairosconfig_controller.go, KCPC = internal/controllers/controlplane/kairoscontrolplane_controller.go,
# TPL = internal/bootstrap/templates/k0s_kairos_cloud_config_capv.yaml.tmpl) and Cluster API's
# Machine controller (kubernetes-sigs/cluster-api internal/controllers/machine/machine_controller_phases.go).
#
# STANDIN_CAPI_STEP_SECONDS  one step of the schedule (default 0.2). 1 step: KairosConfigs and
#                            their data Secrets (Machines Provisioning); 2: infrastructure
#                            provisioned (Provisioned); 3: the KCP fetches the kubeconfig (so it is
#                            initialized) and machines that run a kubelet register Nodes (nodeRef:
#                            Running); 4: the Nodes are Ready
# STANDIN_KAIROS_PROVIDER    which provider's data (default: the installed controller image's):
#                            kairos-capi: every controller of a multi-replica control
#                            plane gets the same `k0s: {enabled: true}`, no join token, no
#                            kubelet. successor: kairos-io/cluster-api-provider-kairos c300236,
#                            one init controller and joins with --token-file=/etc/k0s/controller-token
# STANDIN_KAIROS_VIP         successor only: the KCP has an HA VIP, so HA controllers also get
#                            --enable-worker (and register Nodes)
# STANDIN_CAPI_NEVER_INITIALIZE  the kubeconfig is never fetched: the KCP never initialises
# STANDIN_CAPI_BROKEN        a provider bug to find (successor data): two-inits |
#                            join-without-token | single-with-replicas | worker-without-token |
#                            init-flip (machine 0's and 1's data swap from the second look that saw them)
# STANDIN_INIT_ANNOTATION    a provider that also annotates its init Machine with this key
# On CAPK (a KubevirtMachineTemplate) the schedule is gated instead (see "Cluster API Provider
# KubeVirt" below): STANDIN_VMI_BOOT_SECONDS (default 0.3) and the knobs of lib/kubevirt.rb.

require "yaml"
require "base64"
require "digest"
require_relative "standin"
require_relative "kubevirt"

module KairosProvider
  module_function

  CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name".freeze
  CONTROL_PLANE_LABEL = "cluster.x-k8s.io/control-plane".freeze

  def step
    (ENV["STANDIN_CAPI_STEP_SECONDS"] || "0.2").to_f
  end

  # Which provider renders the data: STANDIN_KAIROS_PROVIDER, else the installed controller's
  # image (the successor's release sets ghcr.io/kairos-io/cluster-api-provider-kairos; per
  # kairos-io/cluster-api-provider-kairos config/default/kustomization.yaml images).
  def successor?(objs)
    chosen = ENV["STANDIN_KAIROS_PROVIDER"].to_s
    return chosen == "successor" unless chosen.empty?

    d = objs.find { |o| o["kind"] == "Deployment" && o.dig("metadata", "name") == "kairos-capi-controller-manager" }
    Array(d&.dig("spec", "template", "spec", "containers")).any? { |c| c["image"].to_s.include?("cluster-api-provider-kairos") }
  end

  def broken?(variant)
    ENV["STANDIN_CAPI_BROKEN"].to_s == variant
  end

  def find(objs, kind, ns, name)
    objs.find { |o| o["kind"] == kind && o.dig("metadata", "namespace") == ns && o.dig("metadata", "name") == name }
  end

  # The Secret name KCC picks: `<kairosconfig>-<6 of [a-z0-9]>` (KCC 427-438, 1179-1190);
  # fixed per object here so every look sees the same name.
  def secret_name(config_name, created_at)
    "#{config_name}-#{Digest::SHA256.hexdigest("#{config_name}#{created_at}")[0, 6]}"
  end

  # --- Bootstrap data, as the templates render it ---------------------------------------

  # Source: kairos-io/kairos-capi internal/bootstrap/templates/k0s_kairos_cloud_config_capv.yaml.tmpl 56-69:
  # `--single` only for a single node; no join token and no --enable-worker for any controller.
  def kairos_capi_controller(single)
    "#cloud-config\nhostname: {{ machine }}\nusers:\n- name: kairos\n  passwd: kairos\nk0s:\n  enabled: true\n" +
      (single ? "  args:\n    - --single\n" : "")
  end

  # The successor's init and join controllers.
  # Source: kairos-io/cluster-api-provider-kairos internal/bootstrap/templates/k0s_kairos_cloud_config_capv.yaml.tmpl 72-96, 165-176
  def successor_controller(role, enable_worker, write_token = true)
    args = role == :join ? ["--token-file=/etc/k0s/controller-token"] : ["--config /etc/k0s/k0s.yaml"]
    args << "--enable-worker" if enable_worker
    text = "#cloud-config\nhostname: {{ machine }}\nk0s:\n  enabled: true\n  args:\n" + args.map { |a| "    - #{a}\n" }.join
    files = []
    files << "  - path: /etc/k0s/k0s.yaml\n    content: |\n      apiVersion: k0s.k0sproject.io/v1beta1\n" if role == :init
    files << "  - path: /etc/k0s/controller-token\n    permissions: \"0600\"\n    content: |\n      H4sIAAAAAAAC/controller\n" if role == :join && write_token
    files.empty? ? text : text + "write_files:\n" + files.join
  end

  # Source: kairos-io/kairos-capi internal/bootstrap/templates/k0s_kairos_cloud_config_capv.yaml.tmpl 71-78, 104-109:
  # one string argument, the token written with write_files (0644) when there is one.
  def k0s_worker(token)
    text = "#cloud-config\nhostname: {{ machine }}\nk0s-worker:\n  enabled: true\n  args:\n    - \"--token-file /etc/k0s/token\"\n"
    text += "write_files:\n  - path: /etc/k0s/token\n    permissions: \"0644\"\n    content: |\n      #{token}\n" if token
    text
  end

  # Source: kairos-io/kairos-capi internal/bootstrap/templates/k3s_kairos_cloud_config_capv.yaml.tmpl 62-76, 92-97
  def k3s(control_plane, server, token)
    return "#cloud-config\nhostname: {{ machine }}\nk3s:\n  enabled: true\n" if control_plane

    "#cloud-config\nhostname: {{ machine }}\nk3s-agent:\n  enabled: true\n  args:\n    - \"--server #{server}\"\n" \
      "    - \"--token-file /etc/rancher/k3s/token\"\nwrite_files:\n  - path: /etc/rancher/k3s/token\n    content: |\n      #{token}\n"
  end

  # The worker token KCC reads: workerTokenSecretRef (key `token`), workerToken, tokenSecretRef,
  # token (KCC 735-793). A missing Secret is an error, not a wait (KCC 749-750).
  def worker_token(spec, ns, objs)
    ref = spec["workerTokenSecretRef"] || spec["tokenSecretRef"]
    if ref
      secret = find(objs, "Secret", ref["namespace"] || ns, ref["name"])
      return [nil, "failed to get worker token secret #{ref['name']}: secrets \"#{ref['name']}\" not found"] unless secret

      value = secret.dig("data", ref["key"] || "token") || secret.dig("stringData", ref["key"] || "token")
      value = Base64.decode64(value) if value && secret.dig("data", ref["key"] || "token")
      return [value.to_s.strip, nil]
    end
    [spec["workerToken"] || spec["token"], nil]
  end

  # --- The workload clusters ----------------------------------------------------------

  def ready_providers?(objs)
    Capi.deployment_available?(objs, "kairos-capi-controller-manager") &&
      Capi.deployment_available?(objs, "capi-controller-manager")
  end

  # Every workload cluster the stand-in providers are building: its machines and facts.
  def clusters(objs, listing = nil)
    return [] unless ready_providers?(objs)

    objs.select { |o| o["kind"] == "KairosControlPlane" }.map { |kcp| cluster(objs, kcp, listing) }
  end

  def cluster(objs, kcp, listing)
    ns = kcp.dig("metadata", "namespace")
    kcp_name = kcp.dig("metadata", "name")
    # KCPC 102-131: the Cluster whose controlPlaneRef names this KCP.
    cluster = objs.find do |o|
      o["kind"] == "Cluster" && o.dig("metadata", "namespace") == ns && o.dig("spec", "controlPlaneRef", "name") == kcp_name
    end
    cluster_name = cluster ? cluster.dig("metadata", "name") : kcp_name
    replicas = (kcp.dig("spec", "replicas") || 1).to_i
    distribution = kcp.dig("spec", "distribution") || "k0s"
    t = Time.now.to_f - Capi.created(kcp)
    host = cluster&.dig("spec", "controlPlaneEndpoint", "host") || "#{cluster_name}.workload.invalid"
    capk = capk?(kcp)
    # On CAPK the kubeconfig's server is the LB Service's ingress (KCPC 1487-1530).
    lb = capk ? Virt.ingress(ns, "#{cluster_name}-#{LB_SUFFIX}", Capi.created(kcp)) : nil
    host = lb ? lb[0] : "#{cluster_name}.workload.invalid" if capk
    flip_file = File.join(Standin.state_dir, "init-flip-#{ns}-#{kcp_name}")
    # init-flip: counts the looks that saw the data (a look starts by listing the
    # KairosConfigs); from the second such look on, machine 0's and 1's data are swapped.
    looks = File.exist?(flip_file) ? File.read(flip_file).to_i : 0
    if broken?("init-flip") && listing == "KairosConfig" && t >= step
      looks += 1
      File.write(flip_file, looks.to_s)
    end
    flipped = broken?("init-flip") && looks >= 2
    machines = []
    successor = successor?(objs)
    replicas.times do |i|
      name = "#{kcp_name}-#{i}" # KCPC 499, 689-707: `<kcp>-<index>`, from 0
      data = controller_data(distribution, replicas, flipped ? [1, 0, *2..replicas][i] : i, successor, capk)
      # A k3s server runs its embedded agent (a kubelet) unless --disable-agent (k3s-io/k3s
      # pkg/cli/cmds/server.go, DisableAgent; the provider's k3s templates never pass it).
      kubelet = data.include?("--single") || data.include?("--enable-worker") ||
                (distribution == "k3s" && !data.include?("--disable-agent"))
      machines << { name: name, control_plane: true, data: data, kubelet: kubelet, created: Capi.created(kcp),
                    spec: { "role" => "control-plane", "distribution" => distribution, "singleNode" => replicas == 1,
                            "kubernetesVersion" => kcp.dig("spec", "version") } }
    end
    objs.select { |o| o["kind"] == "MachineDeployment" && o.dig("metadata", "namespace") == ns && o.dig("spec", "clusterName") == cluster_name }.each do |md|
      ref = md.dig("spec", "template", "spec", "bootstrap", "configRef", "name")
      template = find(objs, "KairosConfigTemplate", ns, ref)
      spec = (template&.dig("spec", "template", "spec") || {}).merge("distribution" => distribution)
      token, error = worker_token(spec, ns, objs)
      (md.dig("spec", "replicas") || 1).to_i.times do |j|
        first = machines.none? { |m| !m[:control_plane] }
        own = first && broken?("worker-without-token") ? nil : token
        data = if distribution == "k3s"
                 k3s(false, "https://#{host}:6443", own)
               else
                 k0s_worker(own)
               end
        machines << { name: "#{md.dig('metadata', 'name')}-#{j}", control_plane: false, data: data, kubelet: !own.nil?,
                      error: error, created: Capi.created(md), spec: spec.merge("role" => "worker"),
                      template_ref: md.dig("spec", "template", "spec", "infrastructureRef") }
      end
    end
    w = { ns: ns, cluster: cluster_name, kcp: kcp, replicas: replicas, t: t, machines: machines, host: host,
          initialized: ENV["STANDIN_CAPI_NEVER_INITIALIZE"].to_s.empty? && t >= 3 * step, capk: capk }
    capk_schedule(w, objs, lb) if capk
    w
  end

  def controller_data(distribution, replicas, index, successor, capk = false)
    return k3s(true, nil, nil) if distribution == "k3s"
    return kairos_capi_controller(replicas == 1) unless successor
    return kairos_capi_controller(true) if replicas == 1

    # The CAPK template renders no --enable-worker for any controller
    # (internal/bootstrap/templates/k0s_kairos_cloud_config_capk.yaml.tmpl 58-95).
    vip = !capk && !ENV["STANDIN_KAIROS_VIP"].to_s.empty?
    if index.zero? || (index == 1 && broken?("two-inits"))
      text = successor_controller(:init, vip)
      text = text.sub("  args:\n", "  args:\n    - --single\n") if broken?("single-with-replicas") && index.zero?
      text
    else
      successor_controller(:join, vip, !(index == 1 && broken?("join-without-token")))
    end
  end

  def meta(name, ns, cluster, extra_labels = {})
    { "name" => name, "namespace" => ns, "labels" => { CLUSTER_LABEL => cluster }.merge(extra_labels) }
  end

  # Cluster API's phases: Provisioning once the bootstrap data exists, Provisioned with a
  # providerID, Running only with a nodeRef (machine_controller_phases.go reconcilePhase).
  def phase(w, m)
    return "Running" if node_ref?(w, m)
    return (at?(m[:running_at]) ? "Provisioned" : (data?(w, m) ? "Provisioning" : "Pending")) if w[:capk]
    return "Provisioned" if w[:t] >= 2 * step && data?(w, m)
    return "Provisioning" if data?(w, m)

    "Pending"
  end

  def data?(w, m)
    return m[:error].nil? && at?(m[:data_at]) if w[:capk]

    w[:t] >= step && m[:error].nil?
  end

  # A machine has a Node once the workload API answers and it runs a kubelet.
  def node_ref?(w, m)
    return w[:initialized] && m[:kubelet] && at?(m[:node_at]) if w[:capk]

    w[:initialized] && m[:kubelet] && data?(w, m) && w[:t] >= 3 * step
  end

  def at?(time)
    !time.nil? && Time.now.to_f >= time
  end

  def derived(objs, listing)
    clusters(objs, listing).flat_map do |w|
      out = []
      w[:machines].each do |m|
        cp_labels = m[:control_plane] ? { CONTROL_PLANE_LABEL => "" } : {}
        secret = secret_name(m[:name], m[:created])
        annotations = {}
        init_key = ENV["STANDIN_INIT_ANNOTATION"].to_s
        annotations[init_key] = "true" if !init_key.empty? && m[:name] == "#{w[:kcp].dig('metadata', 'name')}-0"
        machine_spec = { "clusterName" => w[:cluster],
                         "bootstrap" => { "configRef" => { "apiGroup" => "bootstrap.cluster.x-k8s.io", "kind" => "KairosConfig", "name" => m[:name] } } }
        # The Machine controller copies dataSecretName once the data exists (reconcileBootstrap).
        machine_spec["bootstrap"]["dataSecretName"] = secret if data?(w, m)
        machine_status = { "phase" => phase(w, m) }
        machine_status["nodeRef"] = { "name" => m[:name] } if node_ref?(w, m)
        out << { "apiVersion" => "cluster.x-k8s.io/v1beta2", "kind" => "Machine",
                 "metadata" => meta(m[:name], w[:ns], w[:cluster], cp_labels).merge("annotations" => annotations),
                 "spec" => machine_spec, "status" => machine_status }
        out << { "apiVersion" => "bootstrap.cluster.x-k8s.io/v1beta2", "kind" => "KairosConfig",
                 "metadata" => meta(m[:name], w[:ns], w[:cluster], cp_labels),
                 "spec" => m[:spec], "status" => config_status(w, m, secret) }
        next unless data?(w, m)

        # KCC 444-465: type cluster.x-k8s.io/secret, only the key `value`, the cluster label.
        out << { "apiVersion" => "v1", "kind" => "Secret", "type" => "cluster.x-k8s.io/secret",
                 "metadata" => meta(secret, w[:ns], w[:cluster]).merge(
                   "ownerReferences" => [{ "apiVersion" => "bootstrap.cluster.x-k8s.io/v1beta2", "kind" => "KairosConfig",
                                           "name" => m[:name], "controller" => true }]
                 ),
                 "data" => { "value" => Base64.strict_encode64(m[:data].gsub("{{ machine }}", m[:name])) } }
      end
      out << kubeconfig_secret(w) if w[:initialized]
      out.concat(capk_derived(w, objs)) if w[:capk]
      out
    end
  end

  # KCC 140-176, 488-533: ready and initialization.dataSecretCreated, conditions Ready,
  # BootstrapReady, DataSecretAvailable; an error marks them False, with no retry.
  def config_status(w, m, secret)
    types = %w[Ready BootstrapReady DataSecretAvailable]
    if m[:error] && w[:t] >= step
      return { "ready" => false, "failureReason" => "BootstrapDataSecretGenerationFailed", "failureMessage" => m[:error],
               "conditions" => types.map { |c| { "type" => c, "status" => "False", "reason" => "BootstrapDataSecretGenerationFailed", "message" => m[:error] } } }
    end
    return { "conditions" => [] } unless data?(w, m)

    { "ready" => true, "dataSecretName" => secret, "initialization" => { "dataSecretCreated" => true },
      "conditions" => types.map { |c| { "type" => c, "status" => "True" } } }
  end

  # KCPC 816-957: `<cluster>-kubeconfig`, type cluster.x-k8s.io/secret, the key `value`.
  def kubeconfig_secret(w)
    kubeconfig = YAML.dump({
      "apiVersion" => "v1", "kind" => "Config",
      "clusters" => [{ "name" => w[:cluster], "cluster" => { "server" => "https://#{w[:host]}:6443" } }],
      "users" => [{ "name" => "#{w[:cluster]}-admin", "user" => { "token" => "standin" } }],
      "contexts" => [{ "name" => w[:cluster], "context" => { "cluster" => w[:cluster], "user" => "#{w[:cluster]}-admin" } }],
      "current-context" => w[:cluster]
    })
    { "apiVersion" => "v1", "kind" => "Secret", "type" => "cluster.x-k8s.io/secret",
      "metadata" => meta("#{w[:cluster]}-kubeconfig", w[:ns], w[:cluster]),
      "data" => { "value" => Base64.strict_encode64(kubeconfig) } }
  end

  # KCPC 720-813 and 309-321: readyReplicas counts Machines with a nodeRef, unavailable those
  # not Running; initialized once the kubeconfig is fetched; Ready/Available conditions.
  def with_status(kcp, objs)
    w = clusters(objs).find { |x| x[:kcp].dig("metadata", "name") == kcp.dig("metadata", "name") && x[:ns] == kcp.dig("metadata", "namespace") }
    return kcp unless w

    cps = w[:machines].select { |m| m[:control_plane] }
    ready = cps.count { |m| node_ref?(w, m) }
    unavailable = cps.count { |m| phase(w, m) != "Running" }
    conditions = if !w[:initialized]
                   %w[Ready Available].map { |c| { "type" => c, "status" => "False", "reason" => "WaitingForMachines" } }
                 elsif ready.zero?
                   [{ "type" => "Ready", "status" => "False", "reason" => "WaitingForMachinesReady" },
                    { "type" => "Available", "status" => "True" }]
                 else
                   %w[Ready Available].map { |c| { "type" => c, "status" => "True" } }
                 end
    status = { "replicas" => cps.size, "readyReplicas" => ready, "updatedReplicas" => cps.size,
               "unavailableReplicas" => unavailable, "initialized" => w[:initialized], "conditions" => conditions }
    status["initialization"] = { "controlPlaneInitialized" => true } if w[:initialized]
    kcp.merge("status" => status)
  end

  # The workload cluster whose API server `host` is, once it answers.
  # On CAPK the address is the LB Service's ingress IP, which reaches the control plane only
  # where kube-proxy DNATs it: on every node of the lab, as kube-proxy programs a LoadBalancer
  # ingress IP (ipMode VIP or none) like a ClusterIP on each node (kubernetes pkg/proxy/
  # serviceport.go newBaseServiceInfo, pkg/proxy/iptables/proxier.go and nftables/proxier.go
  # syncProxyRules "Capture load-balancer ingress"); an address no node has reaches nothing.
  def at(host)
    clusters(Capi.objects).find do |w|
      w[:host] == host && w[:initialized] && (!w[:capk] || Virt.lab_nodes.any? { |n| n[:ip] == host })
    end
  end

  def nodes(w)
    ready = w[:t] >= 4 * step
    w[:machines].select { |m| node_ref?(w, m) }.map do |m|
      ready = at?(m[:node_at] + step) if w[:capk]
      { "apiVersion" => "v1", "kind" => "Node", "metadata" => { "name" => m[:name] },
        "status" => { "conditions" => [{ "type" => "Ready", "status" => ready ? "True" : "False" }] } }
    end
  end

  # --- Cluster API Provider KubeVirt (CAPK) ---------------------------------------------
  #
  # When the KCP's machineTemplate.infrastructureRef is a KubevirtMachineTemplate
  # (KCPC c300236 1240-1246) the fixed schedule gives way to gates:
  # - the KCP makes Service `<cluster>-control-plane-lb` (LoadBalancer, no selector, port
  #   "k8s-api" 6443, KCPC 1325-1358) and Endpoints of its control-plane VMIs' first interface
  #   IPs (KCPC 1360-1415, infra_lookup.go 206-239);
  # - a control-plane KairosConfig renders its data only once that Service has
  #   status.loadBalancer.ingress[0].ip (KCC 1126-1140, 1296-1310, 1320-1342); until then the
  #   controller only logs "Waiting for control plane LoadBalancer endpoint before generating
  #   cloud-config" and requeues after 10 s (KCC 478-483): no condition, no data;
  # - CAPK (capk-controller-manager Available) makes a VirtualMachine named as the
  #   KubevirtMachine (= the Machine) once the data exists (CAPK controllers/
  #   kubevirtmachine_controller.go 191-199, 265-273), its dataVolumeTemplates renamed
  #   `<machine>-<template>` (pkg/kubevirt/utils.go 39-68); KubeVirt's arm64 webhook refuses a
  #   template it does not support (lib/kubevirt.rb arm64_refusal) and CAPK marks VMProvisioned
  #   False VMCreateFailed "Failed vm creation: %v" (kubevirtmachine_controller.go 266-269);
  # - the VMI waits for its DataVolumes, then a node with devices.kubevirt.io/kvm, then boots
  #   (STANDIN_VMI_BOOT_SECONDS); running, it gives the KubevirtMachine providerID
  #   `kubevirt://<name>` and ready (pkg/kubevirt/machine.go 210-238, 385-393): Provisioned;
  # - the workload API answers a step after a control-plane VMI runs; a machine that runs a
  #   kubelet registers its Node a step after its VMI runs (Running), Ready a step later. The
  #   CAPK k0s template gives HA controllers no --enable-worker (k0s_kairos_cloud_config_capk.
  #   yaml.tmpl 58-95): they run, and no Node ever registers.

  LB_SUFFIX = "control-plane-lb".freeze # KCPC 70

  def capk?(kcp)
    %w[KubevirtMachineTemplate KubeVirtMachineTemplate].include?(kcp.dig("spec", "machineTemplate", "infrastructureRef", "kind"))
  end

  def boot_seconds
    (ENV["STANDIN_VMI_BOOT_SECONDS"] || "0.3").to_f
  end

  def capk_schedule(w, objs, lb)
    kcp = w[:kcp]
    capk_at = Virt.available_at(objs, nil, "capk-controller-manager")
    kv_at = Virt.kubevirt_deployed_at(objs)
    nodes = Virt.kvm_nodes(objs)
    w[:machines].each_with_index do |m, i|
      m[:capk] = true
      m[:kubelet] = true if m[:control_plane] && kcp.dig("spec", "distribution") == "k3s" # a k3s server runs a kubelet
      ref = m[:control_plane] ? kcp.dig("spec", "machineTemplate", "infrastructureRef") : m[:template_ref]
      tmpl = ref && objs.find { |o| o["kind"] == "KubevirtMachineTemplate" && o.dig("metadata", "name") == ref["name"] && o.dig("metadata", "namespace") == (ref["namespace"] || w[:ns]) }
      vm_tmpl = tmpl&.dig("spec", "template", "spec", "virtualMachineTemplate") || {}
      renamed = Array(vm_tmpl.dig("spec", "dataVolumeTemplates")).map do |d|
        d.merge("metadata" => (d["metadata"] || {}).merge("name" => "#{m[:name]}-#{d.dig('metadata', 'name')}"))
      end
      names = Array(vm_tmpl.dig("spec", "dataVolumeTemplates")).map { |d| d.dig("metadata", "name") }
      m[:dv_templates] = renamed
      m[:volumes] = Array(vm_tmpl.dig("spec", "template", "spec", "volumes")).filter_map do |v|
        n = v.dig("dataVolume", "name")
        n && names.include?(n) ? "#{m[:name]}-#{n}" : n
      end
      # CAPK rewrites the volumes' references to the renamed templates (utils.go 39-68).
      vm_tmpl = Marshal.load(Marshal.dump(vm_tmpl))
      Array(vm_tmpl.dig("spec", "template", "spec", "volumes")).each do |v|
        n = v.dig("dataVolume", "name")
        v["dataVolume"]["name"] = "#{m[:name]}-#{n}" if n && names.include?(n)
      end
      m[:vm_template] = vm_tmpl
      m[:data_at] = if m[:error] then nil
                    elsif m[:control_plane] then lb ? [m[:created] + step, lb[1]].max : nil
                    else m[:created] + step
                    end
      next unless at?(m[:data_at]) && capk_at

      m[:vm_error] = if kv_at.nil?
                       "no matches for kind \"VirtualMachine\" in version \"kubevirt.io/v1\""
                     elsif (refusal = Virt.arm64_refusal(vm_tmpl))
                       "admission webhook \"virtualmachine-validator.kubevirt.io\" denied the request: #{refusal}"
                     end
      next if m[:vm_error]

      m[:vm_at] = [m[:data_at], capk_at, kv_at].max
      m[:ns] = w[:ns]
      dvs = m[:volumes].map { |n| dv_object(objs, w[:ns], n, m) }
      consumed = nodes.empty? ? nil : m[:vm_at]
      dones = dvs.map { |d| d && Virt.dv_done_at(d, objs, consumed) }
      m[:dv_done_at] = dones.all? ? ([m[:vm_at]] + dones).max : nil
      next if m[:dv_done_at].nil? || nodes.empty?

      m[:node] = nodes[i % nodes.size]
      m[:ip] = "10.244.#{Virt.lab_nodes.index { |n| n[:name] == m[:node][:name] }.to_i}.#{10 + i}"
      m[:running_at] = m[:dv_done_at] + boot_seconds
      m[:node_at] = m[:running_at] + step
    end
    w[:initialized] = ENV["STANDIN_CAPI_NEVER_INITIALIZE"].to_s.empty? &&
                      w[:machines].any? { |m| m[:control_plane] && m[:running_at] && at?(m[:running_at] + step) }
  end

  # A DataVolume a VM names: one of its own templates (KubeVirt creates them with the VM), or
  # a stored one (nil when there is none).
  def dv_object(objs, ns, name, m)
    own = m[:dv_templates].find { |d| d.dig("metadata", "name") == name }
    if own
      return { "apiVersion" => "cdi.kubevirt.io/v1beta1", "kind" => "DataVolume",
               "metadata" => own["metadata"].merge("namespace" => ns, "annotations" => (own.dig("metadata", "annotations") || {}).merge("standin/created-at" => m[:vm_at].to_s),
                                                    "ownerReferences" => [{ "apiVersion" => "kubevirt.io/v1", "kind" => "VirtualMachine", "name" => m[:name], "controller" => true }]),
               "spec" => own["spec"] }
    end
    objs.find { |o| o["kind"] == "DataVolume" && o.dig("metadata", "namespace") == ns && o.dig("metadata", "name") == name }
  end

  # Every CAPK VM with its namespace, creation and the DataVolumes it names (lib/kubevirt.rb
  # binds WaitForFirstConsumer volumes for them).
  def vms(objs)
    clusters(objs).select { |w| w[:capk] }.flat_map do |w|
      w[:machines].select { |m| m[:vm_at] }.map { |m| { ns: w[:ns], name: m[:name], vm_at: m[:vm_at], volumes: m[:volumes] } }
    end
  end

  # The VMI's phase, conditions and the VM's printableStatus now (KV T 1053-1076, 1992-2034;
  # pkg/virt-controller/watch/vmi/lifecycle.go 338-352: with a WaitForFirstConsumer volume the
  # VMI stays Pending with Provisioning=True and the temporary pod's PodScheduled=False).
  def vmi_state(w, m, objs)
    now = Time.now.to_f
    unschedulable = { "type" => "PodScheduled", "status" => "False", "reason" => "Unschedulable", "message" => Virt.unschedulable_message }
    if m[:dv_done_at].nil? || now < m[:dv_done_at]
      consumed = Virt.kvm_nodes(objs).empty? ? nil : m[:vm_at]
      phases = m[:volumes].map { |n| (d = dv_object(objs, w[:ns], n, m)) ? Virt.dv_status(d, objs, consumed)["phase"] : nil }
      if phases.include?("WaitForFirstConsumer")
        conds = [{ "type" => "Provisioning", "status" => "True" }]
        conds << unschedulable if consumed.nil?
        return ["Pending", conds, "WaitingForVolumeBinding"]
      end
      return ["Pending", [], "Provisioning"]
    end
    return ["Scheduling", [unschedulable], "ErrorUnschedulable"] if m[:running_at].nil?
    return ["Scheduling", [], "Starting"] if now < m[:dv_done_at] + boot_seconds / 3
    return ["Scheduled", [{ "type" => "PodScheduled", "status" => "True" }], "Starting"] if now < m[:running_at]

    ["Running", [{ "type" => "PodScheduled", "status" => "True" }, { "type" => "Ready", "status" => "True" }], "Running"]
  end

  def owner(kind, name, api)
    [{ "apiVersion" => api, "kind" => kind, "name" => name, "controller" => true }]
  end

  # A stable ClusterIP for a derived Service.
  def cluster_ip(ns, name)
    h = Digest::SHA256.digest("#{ns}/#{name}").bytes
    "10.96.#{h[0]}.#{[h[1], 1].max}"
  end

  def capk_derived(w, objs)
    out = []
    lb_name = "#{w[:cluster]}-#{LB_SUFFIX}"
    out << Virt.with_service_status({ "apiVersion" => "v1", "kind" => "Service",
                                      "metadata" => meta(lb_name, w[:ns], w[:cluster]).merge("annotations" => { "standin/created-at" => Capi.created(w[:kcp]).to_s }, "ownerReferences" => owner("KairosControlPlane", w[:kcp].dig("metadata", "name"), "controlplane.cluster.x-k8s.io/v1beta2")),
                                      "spec" => { "type" => "LoadBalancer", "clusterIP" => cluster_ip(w[:ns], lb_name),
                                                  "ports" => [{ "name" => "k8s-api", "protocol" => "TCP", "port" => 6443, "targetPort" => 6443 }] } })
    ips = w[:machines].select { |m| m[:control_plane] && at?(m[:running_at]) }.map { |m| m[:ip] }
    out << { "apiVersion" => "v1", "kind" => "Endpoints", "metadata" => meta(lb_name, w[:ns], w[:cluster]),
             "subsets" => ips.empty? ? [] : [{ "addresses" => ips.map { |ip| { "ip" => ip } },
                                               "ports" => [{ "name" => "k8s-api", "port" => 6443, "protocol" => "TCP" }] }] }
    # CAPK's own `<cluster>-lb` (pkg/loadbalancer/loadbalancer.go 47, 84-107): ClusterIP, selecting
    # the control-plane VMs' pods.
    if Capi.deployment_available?(objs, "capk-controller-manager") && objs.any? { |o| o["kind"] == "KubevirtCluster" && o.dig("metadata", "namespace") == w[:ns] }
      out << { "apiVersion" => "v1", "kind" => "Service", "metadata" => meta("#{w[:cluster]}-lb", w[:ns], w[:cluster]),
               "spec" => { "type" => "ClusterIP", "clusterIP" => cluster_ip(w[:ns], "#{w[:cluster]}-lb"),
                           "selector" => { "cluster.x-k8s.io/role" => "control-plane", CLUSTER_LABEL => w[:cluster] },
                           "ports" => [{ "port" => 6443, "targetPort" => 6443, "protocol" => "TCP" }] }, "status" => { "loadBalancer" => {} } }
    end
    cons = Virt.consumers(objs)
    w[:machines].each do |m|
      role = m[:control_plane] ? "control-plane" : "worker"
      kvm_status = { "ready" => false }
      conds = []
      if m[:vm_error]
        conds << { "type" => "VMProvisioned", "status" => "False", "reason" => "VMCreateFailed", "severity" => "Error",
                   "message" => "Failed vm creation: #{m[:vm_error]}" }
      elsif !data?(w, m)
        conds << { "type" => "VMProvisioned", "status" => "False", "reason" => "WaitingForBootstrapData", "severity" => "Info" }
      end
      kvm_spec = {}
      if m[:vm_at]
        phase, vmi_conds, printable = vmi_state(w, m, objs)
        running = phase == "Running"
        vm_labels = { "kubevirt.io/vm" => m[:name], "name" => m[:name], "cluster.x-k8s.io/role" => role, CLUSTER_LABEL => w[:cluster] }
        ann = { "standin/created-at" => m[:vm_at].to_s }
        out << { "apiVersion" => "kubevirt.io/v1", "kind" => "VirtualMachine",
                 "metadata" => meta(m[:name], w[:ns], w[:cluster], vm_labels).merge("annotations" => ann),
                 "spec" => m[:vm_template]["spec"].merge("dataVolumeTemplates" => m[:dv_templates]),
                 "status" => { "printableStatus" => printable, "ready" => running, "created" => true,
                               "conditions" => vmi_conds } }
        vmi_status = { "phase" => phase, "conditions" => vmi_conds }
        vmi_status["nodeName"] = m[:node][:name] if %w[Scheduled Running].include?(phase)
        vmi_status["interfaces"] = [{ "name" => "default", "ipAddress" => m[:ip], "ipAddresses" => [m[:ip]], "infoSource" => "domain" }] if running
        out << { "apiVersion" => "kubevirt.io/v1", "kind" => "VirtualMachineInstance",
                 "metadata" => meta(m[:name], w[:ns], w[:cluster], vm_labels).merge("annotations" => ann,
                                                                                    "ownerReferences" => owner("VirtualMachine", m[:name], "kubevirt.io/v1")),
                 "spec" => m[:vm_template].dig("spec", "template", "spec") || {}, "status" => vmi_status }
        m[:volumes].each do |n|
          d = dv_object(objs, w[:ns], n, m)
          out << Virt.with_dv_status(d, objs, cons) if d && m[:dv_templates].any? { |t| t.dig("metadata", "name") == n }
        end
        if running
          kvm_spec["providerID"] = "kubevirt://#{m[:name]}"
          kvm_status = { "ready" => true, "addresses" => [{ "type" => "InternalIP", "address" => m[:ip] },
                                                          { "type" => "Hostname", "address" => m[:name] }] }
          conds << { "type" => "VMProvisioned", "status" => "True" }
          conds << { "type" => "Ready", "status" => "True" }
        else
          reason, message = vm_not_ready(w, m, objs, printable, vmi_conds, cons)
          conds << { "type" => "VMProvisioned", "status" => "False", "reason" => reason, "severity" => "Info", "message" => message }
        end
      end
      kvm_status["conditions"] = conds
      out << { "apiVersion" => "infrastructure.cluster.x-k8s.io/v1alpha1", "kind" => "KubevirtMachine",
               "metadata" => meta(m[:name], w[:ns], w[:cluster], m[:control_plane] ? { CONTROL_PLANE_LABEL => "" } : {}),
               "spec" => kvm_spec.merge("virtualMachineTemplate" => m[:vm_template]), "status" => kvm_status }
      next unless data?(w, m)

      # CAPK copies the data to `<dataSecretName>-userdata`, key userdata (kubevirtmachine_controller.go 555-600).
      out << { "apiVersion" => "v1", "kind" => "Secret", "type" => "cluster.x-k8s.io/secret",
               "metadata" => meta("#{secret_name(m[:name], m[:created])}-userdata", w[:ns], w[:cluster]),
               "data" => { "userdata" => Base64.strict_encode64(m[:data].gsub("{{ machine }}", m[:name])) } }
    end
    out
  end

  # CAPK pkg/kubevirt/machine.go 261-321: "VM is not ready: <printableStatus>", Unschedulable
  # with the pod's message, or the first DataVolume not Succeeded.
  def vm_not_ready(w, m, objs, printable, vmi_conds, cons)
    sched = vmi_conds.find { |c| c["type"] == "PodScheduled" && c["status"] == "False" && c["reason"] == "Unschedulable" }
    return ["Unschedulable", sched["message"]] if sched

    m[:volumes].each do |n|
      d = dv_object(objs, w[:ns], n, m)
      next unless d

      st = Virt.with_dv_status(d, objs, cons)["status"]
      next if st["phase"] == "Succeeded"

      msg = "DataVolume #{n} is not ready; Phase: #{st['phase']}"
      return ["DVPending", msg] if st["phase"] == "Pending"

      running = Array(st["conditions"]).find { |c| c["type"] == "Running" }
      msg = "DataVolume #{n} import is not running: #{running['message']}" if running && running["status"] == "False" && running["message"]
      return ["DVNotReady", msg]
    end
    ["VMNotReady", "VM is not ready: #{printable}"]
  end

  # The Cluster of a CAPK workload: CAPK sets KubevirtCluster.spec.controlPlaneEndpoint to its
  # `<cluster>-lb` ClusterIP and CAPI copies it to the Cluster (CAPK controllers/
  # kubevirtcluster_controller.go 164-232, loadbalancer.go 135-139); the Kairos KCP never writes
  # it (KCPC 1260-1263). Provisioned once the infrastructure is ready.
  def with_cluster_status(cluster, objs)
    ns = cluster.dig("metadata", "namespace")
    name = cluster.dig("metadata", "name")
    kc = objs.find { |o| o["kind"] == "KubevirtCluster" && o.dig("metadata", "namespace") == ns && o.dig("metadata", "name") == cluster.dig("spec", "infrastructureRef", "name") }
    return cluster unless kc && Capi.deployment_available?(objs, "capk-controller-manager") && ready_providers?(objs)

    copy = Marshal.load(Marshal.dump(cluster))
    copy["spec"]["controlPlaneEndpoint"] ||= { "host" => cluster_ip(ns, "#{name}-lb"), "port" => 6443 }
    copy["status"] = { "phase" => "Provisioned", "infrastructureReady" => true,
                       "initialization" => { "infrastructureProvisioned" => true } }
    copy
  end

  def with_kubevirt_cluster_status(kc, objs)
    return kc unless Capi.deployment_available?(objs, "capk-controller-manager")

    kc.merge("status" => { "ready" => true, "conditions" => [{ "type" => "LoadBalancerAvailable", "status" => "True" },
                                                             { "type" => "Ready", "status" => "True" }] })
  end
end
