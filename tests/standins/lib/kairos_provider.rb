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

require "yaml"
require "base64"
require "digest"
require_relative "standin"

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
      data = controller_data(distribution, replicas, flipped ? [1, 0, *2..replicas][i] : i, successor)
      kubelet = data.include?("--single") || data.include?("--enable-worker")
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
                      error: error, created: Capi.created(md), spec: spec.merge("role" => "worker") }
      end
    end
    { ns: ns, cluster: cluster_name, kcp: kcp, replicas: replicas, t: t, machines: machines, host: host,
      initialized: ENV["STANDIN_CAPI_NEVER_INITIALIZE"].to_s.empty? && t >= 3 * step }
  end

  def controller_data(distribution, replicas, index, successor)
    return k3s(true, nil, nil) if distribution == "k3s"
    return kairos_capi_controller(replicas == 1) unless successor
    return kairos_capi_controller(true) if replicas == 1

    vip = !ENV["STANDIN_KAIROS_VIP"].to_s.empty?
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
    return "Provisioned" if w[:t] >= 2 * step && data?(w, m)
    return "Provisioning" if data?(w, m)

    "Pending"
  end

  def data?(w, m)
    w[:t] >= step && m[:error].nil?
  end

  # A machine has a Node once the workload API answers and it runs a kubelet.
  def node_ref?(w, m)
    w[:initialized] && m[:kubelet] && data?(w, m) && w[:t] >= 3 * step
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
  def at(host)
    clusters(Capi.objects).find { |w| w[:host] == host && w[:initialized] }
  end

  def nodes(w)
    ready = w[:t] >= 4 * step
    w[:machines].select { |m| node_ref?(w, m) }.map do |m|
      { "apiVersion" => "v1", "kind" => "Node", "metadata" => { "name" => m[:name] },
        "status" => { "conditions" => [{ "type" => "Ready", "status" => ready ? "True" : "False" }] } }
    end
  end
end
