# The stand-in kubectl's management cluster: objects applied with `kubectl apply` kept on
# disk, Deployments that become Available on a schedule, and a simulation of Cluster API
# with the Kairos providers that moves a workload cluster through its states on a schedule.
#
# STANDIN_DEPLOY_SECONDS              Deployments become Available this long after creation
# STANDIN_DEPLOYMENT_NEVER_AVAILABLE  these Deployments (comma list) never become Available
# The workload clusters the Kairos providers build: lib/kairos_provider.rb (its knobs are
# listed there).

require "yaml"
require "base64"
require_relative "standin"
require_relative "cert_manager"
require_relative "kairos_provider"
require_relative "crd_schema"

module Capi
  module_function

  CLUSTER_SCOPED = %w[Namespace CustomResourceDefinition ClusterRole ClusterRoleBinding
                      ValidatingWebhookConfiguration MutatingWebhookConfiguration].freeze
  BUILT_IN = (CLUSTER_SCOPED + %w[Deployment Service Secret ConfigMap ServiceAccount Role
                                  RoleBinding Issuer Certificate Job]).freeze
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
    "machinedeployments" => "MachineDeployment",
    # For kairos install/uninstall (lib/cert_manager.rb): what they read and sweep by label.
    "certificates.cert-manager.io" => "Certificate", "certificates" => "Certificate", "certificate" => "Certificate",
    "issuers" => "Issuer", "jobs" => "Job", "services" => "Service", "serviceaccounts" => "ServiceAccount",
    "roles" => "Role", "rolebindings" => "RoleBinding", "clusterroles" => "ClusterRole",
    "clusterrolebindings" => "ClusterRoleBinding"
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
    errors = []
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
      # kubectl applies the other objects and reports every refused one at the end, exit 1.
      refused = CrdSchema.refusal(d, objs + docs.select { |x| x["kind"] == "CustomResourceDefinition" })
      if refused
        errors << refused
        next
      end
      existing = objs.find { |o| key(o) == key(d) }
      d["metadata"]["annotations"] ||= {}
      d["metadata"]["annotations"]["standin/created-at"] = existing ? created(existing).to_s : Time.now.to_f.to_s
      objs.reject! { |o| key(o) == key(d) }
      objs << d
      puts "#{kind.downcase}/#{d.dig('metadata', 'name')} serverside-applied"
    end
    save(objs)
    Standin.fail!(errors.join("\n")) unless errors.empty?
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
    objs.reject! { |o| o.dig("metadata", "namespace") == name } if kind == "Namespace"
    save(objs)
    puts "#{kind.downcase} \"#{name}\" deleted" if objs.size < before
  end

  # `kubectl delete KINDS -l SELECTOR`: the objects of these kinds the block selects (a
  # Namespace with everything in it).
  def delete_selected(kinds)
    objs = objects
    gone = objs.select { |o| kinds.include?(o["kind"]) && yield(o) }
    gone.each do |g|
      objs.delete(g)
      objs.reject! { |o| o.dig("metadata", "namespace") == g.dig("metadata", "name") } if g["kind"] == "Namespace"
      puts "#{g['kind'].downcase} \"#{g.dig('metadata', 'name')}\" deleted"
    end
    save(objs)
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

  # --- Cluster API with the Kairos providers (lib/kairos_provider.rb) ------------------

  # Everything the management cluster would list: stored objects (with their live status)
  # and the objects the stand-in providers made.
  def view(listing = nil)
    objs = objects
    objs.map do |o|
      case o["kind"]
      when "Deployment" then with_deployment_status(o)
      when "KairosControlPlane" then KairosProvider.with_status(o, objs)
      else CertManager.with_status(o, objs)
      end
    end + KairosProvider.derived(objs, listing) + CertManager.secrets(objs)
  end

  # The workload cluster whose API server `host` is, once it answers.
  def workload_at(host)
    KairosProvider.at(host)
  end

  def workload_nodes(w)
    KairosProvider.nodes(w)
  end
end
