# The stand-in kubectl's management cluster: objects applied with `kubectl apply` kept on
# disk, Deployments that become Available on a schedule, and a simulation of Cluster API
# with the Kairos providers that moves a workload cluster through its states on a schedule.
#
# STANDIN_DEPLOY_SECONDS              Deployments become Available this long after creation
# STANDIN_DEPLOYMENT_NEVER_AVAILABLE  these Deployments (comma list) never become Available
# STANDIN_CAPI_STEP_SECONDS           one step of the workload cluster's schedule (default 0.2):
#                                     1 step: KairosConfigs ready + data Secrets; 2: Machines
#                                     Running; 3: control plane initialized + kubeconfig
#                                     Secret; 4: workload Nodes Ready
# STANDIN_CAPI_NEVER_INITIALIZE       the control plane never initialises
# STANDIN_CAPI_BROKEN                 two-inits | join-without-token | single-with-replicas |
#                                     worker-without-token: broken bootstrap data; init-flip:
#                                     the init annotation moves to another machine after the
#                                     Machines were listed once
# STANDIN_INIT_ANNOTATION             the init-machine annotation the "controller" writes

require "base64"
require_relative "standin"

module Capi
  module_function

  CLUSTER_SCOPED = %w[Namespace CustomResourceDefinition ClusterRole ClusterRoleBinding
                      ValidatingWebhookConfiguration MutatingWebhookConfiguration].freeze
  BUILT_IN = (CLUSTER_SCOPED + %w[Deployment Service Secret ConfigMap ServiceAccount Role
                                  RoleBinding Issuer Certificate]).freeze
  # kubectl's resource names and short names, as the API server's discovery lists them.
  # Source: kubernetes/kubernetes pkg/registry/core/configmap/storage/storage.go (ShortNames "cm").
  RESOURCES = {
    "deployments" => "Deployment", "deployment" => "Deployment", "deploy" => "Deployment",
    "crd" => "CustomResourceDefinition", "crds" => "CustomResourceDefinition",
    "customresourcedefinitions" => "CustomResourceDefinition",
    "secret" => "Secret", "secrets" => "Secret", "namespaces" => "Namespace", "namespace" => "Namespace",
    "configmap" => "ConfigMap", "configmaps" => "ConfigMap", "cm" => "ConfigMap",
    "validatingwebhookconfigurations" => "ValidatingWebhookConfiguration",
    "validatingwebhookconfiguration" => "ValidatingWebhookConfiguration",
    "mutatingwebhookconfigurations" => "MutatingWebhookConfiguration",
    "mutatingwebhookconfiguration" => "MutatingWebhookConfiguration",
    "kairosconfigs" => "KairosConfig", "kairosconfig" => "KairosConfig",
    "kairoscontrolplanes" => "KairosControlPlane", "kairoscontrolplane" => "KairosControlPlane",
    "machines" => "Machine", "machine" => "Machine",
    "clusters" => "Cluster", "cluster" => "Cluster",
    "machinedeployments" => "MachineDeployment"
  }.freeze

  def store_path
    File.join(Standin.state_dir, "objects.json")
  end

  def objects
    Standin.read_json(store_path, [])
  end

  def save(objs)
    Standin.write_json(store_path, objs)
  end

  def key(o)
    [o["kind"], o.dig("metadata", "namespace").to_s, o.dig("metadata", "name")]
  end

  def created(o)
    o.dig("metadata", "annotations", "standin/created-at").to_f
  end

  def documents(text)
    YAML.load_stream(text).compact.select { |d| d.is_a?(Hash) && d["kind"] }
  end

  def kind_known?(kind, objs)
    BUILT_IN.include?(kind) ||
      objs.any? { |o| o["kind"] == "CustomResourceDefinition" && o.dig("spec", "names", "kind") == kind }
  end

  def apply(file)
    docs = documents(File.read(file))
    objs = objects
    docs.each do |d|
      kind = d["kind"]
      unless kind_known?(kind, objs + docs.select { |x| x["kind"] == "CustomResourceDefinition" })
        Standin.fail!("error: resource mapping not found for name: \"#{d.dig('metadata', 'name')}\": no matches for kind \"#{kind}\" in version \"#{d['apiVersion']}\"\nensure CRDs are installed first")
      end
      d["metadata"]["namespace"] ||= "default" unless CLUSTER_SCOPED.include?(kind)
      ns = d.dig("metadata", "namespace")
      if ns && !%w[default kube-system].include?(ns) &&
         (objs + docs).none? { |o| o["kind"] == "Namespace" && o.dig("metadata", "name") == ns }
        Standin.fail!("Error from server (NotFound): namespaces \"#{ns}\" not found")
      end
      existing = objs.find { |o| key(o) == key(d) }
      d["metadata"]["annotations"] ||= {}
      d["metadata"]["annotations"]["standin/created-at"] = existing ? created(existing).to_s : Time.now.to_f.to_s
      objs.reject! { |o| key(o) == key(d) }
      objs << d
      puts "#{kind.downcase}/#{d.dig('metadata', 'name')} serverside-applied"
    end
    save(objs)
  end

  def delete_file(file)
    docs = documents(File.read(file))
    objs = objects
    docs.each do |d|
      d["metadata"]["namespace"] ||= "default" unless CLUSTER_SCOPED.include?(d["kind"])
      gone = objs.select { |o| key(o) == key(d) }
      objs -= gone
      if d["kind"] == "Namespace"
        objs.reject! { |o| o.dig("metadata", "namespace") == d.dig("metadata", "name") }
      end
      puts "#{d['kind'].downcase} \"#{d.dig('metadata', 'name')}\" deleted" unless gone.empty?
    end
    save(objs)
  end

  def delete_named(kind, name)
    objs = objects
    before = objs.size
    objs.reject! { |o| o["kind"] == kind && o.dig("metadata", "name") == name }
    save(objs)
    puts "#{kind.downcase} \"#{name}\" deleted" if objs.size < before
  end

  # --- Deployments ---------------------------------------------------------------------

  def available?(deployment)
    name = deployment.dig("metadata", "name")
    return false if Standin.listed?("STANDIN_DEPLOYMENT_NEVER_AVAILABLE", name)

    Time.now.to_f - created(deployment) >= ENV["STANDIN_DEPLOY_SECONDS"].to_f
  end

  def with_deployment_status(d)
    ok = available?(d)
    d.merge("status" => {
      "replicas" => 1, "readyReplicas" => ok ? 1 : 0, "availableReplicas" => ok ? 1 : 0,
      "conditions" => [{ "type" => "Available", "status" => ok ? "True" : "False",
                         "reason" => ok ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
                         "message" => ok ? "Deployment has minimum availability." : "Deployment does not have minimum availability." }]
    })
  end

  def deployment_available?(objs, name)
    d = objs.find { |o| o["kind"] == "Deployment" && o.dig("metadata", "name") == name }
    d && available?(d)
  end

  # --- Cluster API with the Kairos providers --------------------------------------------

  def step
    (ENV["STANDIN_CAPI_STEP_SECONDS"] || "0.2").to_f
  end

  def broken?(variant)
    ENV["STANDIN_CAPI_BROKEN"].to_s == variant
  end

  def init_config(single)
    "#cloud-config\nusers:\n- name: kairos\n  passwd: kairos\nk0s:\n  enabled: true\n" +
      (single ? "  args:\n    - --single\n" : "")
  end

  def join_config(write_token)
    text = "#cloud-config\nk0s:\n  enabled: true\n  args:\n    - --token-file /etc/k0s/controller-token\n"
    text += "write_files:\n  - path: /etc/k0s/controller-token\n    permissions: \"0600\"\n    content: |\n      H4sIAAAAAAAC/controller\n" if write_token
    text
  end

  def worker_config(with_token)
    return "#cloud-config\nk0s-worker:\n  enabled: true\n" unless with_token

    "#cloud-config\nk0s-worker:\n  enabled: true\n  args:\n    - --token-file=/etc/k0s/token\n" \
      "write_files:\n  - path: /etc/k0s/token\n    content: |\n      H4sIAAAAAAAC/worker\n"
  end

  def meta(name, ns, cluster, extra_labels = {})
    { "name" => name, "namespace" => ns,
      "labels" => { "cluster.x-k8s.io/cluster-name" => cluster }.merge(extra_labels) }
  end

  # Every workload cluster the stand-in providers are building: its objects and facts.
  def workload_clusters(objs, listing = nil)
    return [] unless deployment_available?(objs, "kairos-capi-controller-manager") &&
                     deployment_available?(objs, "capi-controller-manager")

    objs.select { |o| o["kind"] == "KairosControlPlane" }.map do |kcp|
      ns = kcp.dig("metadata", "namespace")
      kcp_name = kcp.dig("metadata", "name")
      cluster = objs.find do |o|
        o["kind"] == "Cluster" && o.dig("metadata", "namespace") == ns &&
          o.dig("spec", "controlPlaneRef", "name") == kcp_name
      end
      cluster_name = cluster ? cluster.dig("metadata", "name") : kcp_name
      replicas = (kcp.dig("spec", "replicas") || 1).to_i
      mds = objs.select do |o|
        o["kind"] == "MachineDeployment" && o.dig("metadata", "namespace") == ns &&
          o.dig("spec", "clusterName") == cluster_name
      end
      t = Time.now.to_f - created(kcp)
      never = !ENV["STANDIN_CAPI_NEVER_INITIALIZE"].to_s.empty?
      initialized = !never && t >= 3 * step
      annotation = ENV.fetch("STANDIN_INIT_ANNOTATION", "controlplane.cluster.x-k8s.io/kairos-init-machine")
      # init-flip: once the Machines were listed with their bootstrap data ready, the
      # annotation moves to another machine.
      flip_file = File.join(Standin.state_dir, "init-flip-#{ns}-#{kcp_name}")
      init_index = 0
      if broken?("init-flip") && t >= step
        if File.exist?(flip_file)
          init_index = 1
        elsif listing == "Machine"
          FileUtils.touch(flip_file)
        end
      end

      machines = []
      replicas.times do |i|
        name = "#{kcp_name}-#{i}"
        config = if i.zero?
                   init_config(replicas == 1 || broken?("single-with-replicas"))
                 elsif i == 1 && broken?("two-inits")
                   init_config(false)
                 else
                   join_config(!(i == 1 && broken?("join-without-token")))
                 end
        machines << { name: name, control_plane: true, config: config,
                      kubelet: config.include?("--single"),
                      annotations: i == init_index ? { annotation => "true" } : {} }
      end
      mds.each do |md|
        (md.dig("spec", "replicas") || 1).to_i.times do |j|
          name = "#{md.dig('metadata', 'name')}-#{j}"
          first = machines.none? { |m| !m[:control_plane] }
          machines << { name: name, control_plane: false, kubelet: true, annotations: {},
                        config: worker_config(!(first && broken?("worker-without-token"))) }
        end
      end
      host = cluster&.dig("spec", "controlPlaneEndpoint", "host") || "#{cluster_name}.workload.invalid"
      { ns: ns, cluster: cluster_name, kcp: kcp, replicas: replicas, t: t, initialized: initialized,
        never: never, machines: machines, host: host }
    end
  end

  def derived(objs, listing)
    workload_clusters(objs, listing).flat_map do |w|
      out = []
      data_ready = w[:t] >= step
      w[:machines].each do |m|
        cp_labels = m[:control_plane] ? { "cluster.x-k8s.io/control-plane" => "" } : {}
        running = w[:t] >= 2 * step && !(w[:never] && m[:control_plane])
        out << { "apiVersion" => "cluster.x-k8s.io/v1beta2", "kind" => "Machine",
                 "metadata" => meta(m[:name], w[:ns], w[:cluster], cp_labels).merge("annotations" => m[:annotations]),
                 "spec" => { "clusterName" => w[:cluster], "bootstrap" => { "configRef" => { "kind" => "KairosConfig", "name" => m[:name] } } },
                 "status" => { "phase" => running ? "Running" : (data_ready ? "Provisioning" : "Pending") } }
        out << { "apiVersion" => "bootstrap.cluster.x-k8s.io/v1beta2", "kind" => "KairosConfig",
                 "metadata" => meta(m[:name], w[:ns], w[:cluster]),
                 "spec" => { "role" => m[:control_plane] ? "control-plane" : "worker", "distribution" => "k0s" },
                 "status" => data_ready ? { "ready" => true, "dataSecretName" => m[:name] } : { "ready" => false } }
        next unless data_ready

        out << { "apiVersion" => "v1", "kind" => "Secret", "type" => "cluster.x-k8s.io/secret",
                 "metadata" => meta(m[:name], w[:ns], w[:cluster]),
                 "data" => { "value" => Base64.strict_encode64(m[:config]), "format" => Base64.strict_encode64("cloud-config") } }
      end
      if w[:initialized]
        kubeconfig = YAML.dump({
          "apiVersion" => "v1", "kind" => "Config",
          "clusters" => [{ "name" => w[:cluster], "cluster" => { "server" => "https://#{w[:host]}:6443" } }],
          "users" => [{ "name" => "#{w[:cluster]}-admin", "user" => { "token" => "standin" } }],
          "contexts" => [{ "name" => w[:cluster], "context" => { "cluster" => w[:cluster], "user" => "#{w[:cluster]}-admin" } }],
          "current-context" => w[:cluster]
        })
        out << { "apiVersion" => "v1", "kind" => "Secret", "metadata" => meta("#{w[:cluster]}-kubeconfig", w[:ns], w[:cluster]),
                 "data" => { "value" => Base64.strict_encode64(kubeconfig) } }
      end
      out
    end
  end

  def with_kcp_status(kcp, objs)
    w = workload_clusters(objs).find { |x| x[:kcp].dig("metadata", "name") == kcp.dig("metadata", "name") }
    return kcp unless w

    r = w[:replicas]
    status = if w[:initialized]
               { "initialized" => true, "readyReplicas" => r, "updatedReplicas" => r, "unavailableReplicas" => 0,
                 "conditions" => [{ "type" => "Initialized", "status" => "True" }, { "type" => "Ready", "status" => "True" }] }
             else
               { "initialized" => false, "readyReplicas" => 0, "updatedReplicas" => r, "unavailableReplicas" => r,
                 "conditions" => [{ "type" => "Initialized", "status" => "False", "reason" => "WaitingForControlPlaneInit",
                                    "message" => "no control-plane machine has initialised k0s yet" }] }
             end
    kcp.merge("status" => status)
  end

  # Everything the management cluster would list: stored objects (with their live status)
  # and the objects the stand-in providers made.
  def view(listing = nil)
    objs = objects
    objs.map do |o|
      case o["kind"]
      when "Deployment" then with_deployment_status(o)
      when "KairosControlPlane" then with_kcp_status(o, objs)
      else o
      end
    end + derived(objs, listing)
  end

  # The workload cluster whose API server `host` is, once it answers.
  def workload_at(host)
    workload_clusters(objects).find { |w| w[:host] == host && w[:initialized] }
  end

  def workload_nodes(w)
    ready = w[:t] >= 4 * step
    w[:machines].select { |m| m[:kubelet] }.map do |m|
      { "apiVersion" => "v1", "kind" => "Node", "metadata" => { "name" => m[:name] },
        "status" => { "conditions" => [{ "type" => "Ready", "status" => ready ? "True" : "False" }] } }
    end
  end

  def kustomize(dir)
    k = YAML.safe_load(File.read(File.join(dir, "kustomization.yaml")))
    Array(k["resources"]).map { |r| File.read(File.join(dir, r)) }.join("\n---\n")
  end
end
