# The stand-in kubectl's management cluster: objects applied with `kubectl apply` kept on
# disk, Deployments that become Available on a schedule, and a simulation of Cluster API
# with the Kairos providers that moves a workload cluster through its states on a schedule.
#
# STANDIN_DEPLOY_SECONDS              Deployments become Available this long after creation
# STANDIN_DEPLOYMENT_NEVER_AVAILABLE  these Deployments (comma list) never become Available
# The workload clusters the Kairos providers build: lib/kairos_provider.rb (its knobs are
# listed there).
# KubeVirt, CDI, StorageClasses, OSArtifacts, DataVolumes, Service status: lib/kubevirt.rb (its
# knobs and state files are listed there).

require "yaml"
require "base64"
require_relative "standin"
require_relative "cert_manager"
require_relative "kairos_provider"
require_relative "crd_schema"

module Capi
  module_function

  # CDI is cluster-scoped (CDI manifests/templates/release/cdi-cr.yaml.in: no namespace).
  CLUSTER_SCOPED = %w[Namespace CustomResourceDefinition ClusterRole ClusterRoleBinding
                      ValidatingWebhookConfiguration MutatingWebhookConfiguration StorageClass CDI].freeze
  BUILT_IN = (%w[Namespace CustomResourceDefinition ClusterRole ClusterRoleBinding
                 ValidatingWebhookConfiguration MutatingWebhookConfiguration StorageClass] +
              %w[Deployment Service Secret ConfigMap ServiceAccount Role RoleBinding Issuer Certificate Job
                 PersistentVolumeClaim DaemonSet Endpoints]).freeze
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
    "clusterrolebindings" => "ClusterRoleBinding",
    # kairos install --infrastructure kubevirt (lib/kubevirt.rb). Short names as the API server's
    # discovery lists them: kubernetes pkg/registry/core/service/storage (svc), persistentvolumeclaim
    # (pvc), endpoint (ep), apps/daemonset (ds), storage/storageclass (sc); KubeVirt's CRDs
    # (KV pkg/virt-operator/resource/generate/components/crds.go: vm/vms, vmi/vmis, kv/kvs), CDI's
    # (cdi/cdis, dv/dvs), kairos-operator's OSArtifact (none), CAPK's (none).
    "service" => "Service", "svc" => "Service", "endpoints" => "Endpoints", "ep" => "Endpoints",
    "persistentvolumeclaims" => "PersistentVolumeClaim", "persistentvolumeclaim" => "PersistentVolumeClaim", "pvc" => "PersistentVolumeClaim",
    "daemonsets" => "DaemonSet", "daemonset" => "DaemonSet", "ds" => "DaemonSet",
    "storageclasses" => "StorageClass", "storageclass" => "StorageClass", "sc" => "StorageClass",
    "storageclasses.storage.k8s.io" => "StorageClass",
    "kubevirts.kubevirt.io" => "KubeVirt", "kubevirts" => "KubeVirt", "kubevirt" => "KubeVirt", "kv" => "KubeVirt", "kvs" => "KubeVirt",
    "virtualmachines.kubevirt.io" => "VirtualMachine", "virtualmachines" => "VirtualMachine", "virtualmachine" => "VirtualMachine",
    "vm" => "VirtualMachine", "vms" => "VirtualMachine",
    "virtualmachineinstances.kubevirt.io" => "VirtualMachineInstance", "virtualmachineinstances" => "VirtualMachineInstance",
    "virtualmachineinstance" => "VirtualMachineInstance", "vmi" => "VirtualMachineInstance", "vmis" => "VirtualMachineInstance",
    "cdis.cdi.kubevirt.io" => "CDI", "cdis" => "CDI", "cdi" => "CDI",
    "datavolumes.cdi.kubevirt.io" => "DataVolume", "datavolumes" => "DataVolume", "datavolume" => "DataVolume",
    "dv" => "DataVolume", "dvs" => "DataVolume",
    "osartifacts.build.kairos.io" => "OSArtifact", "osartifacts" => "OSArtifact", "osartifact" => "OSArtifact",
    "kubevirtmachines.infrastructure.cluster.x-k8s.io" => "KubevirtMachine", "kubevirtmachines" => "KubevirtMachine",
    "kubevirtmachine" => "KubevirtMachine",
    "kubevirtclusters.infrastructure.cluster.x-k8s.io" => "KubevirtCluster", "kubevirtclusters" => "KubevirtCluster",
    "kubevirtcluster" => "KubevirtCluster",
    "kubevirtmachinetemplates.infrastructure.cluster.x-k8s.io" => "KubevirtMachineTemplate",
    "kubevirtmachinetemplates" => "KubevirtMachineTemplate"
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
      (objs + Virt.derived_crds(objs)).any? { |o| o["kind"] == "CustomResourceDefinition" && o.dig("spec", "names", "kind") == kind }
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
      cascade(objs, d)
      puts "#{d['kind'].downcase} \"#{d.dig('metadata', 'name')}\" deleted" unless gone.empty?
    end
    save(objs)
  end

  # What goes with a deleted object: a Namespace's objects; a CRD's custom resources (the
  # apiextensions-apiserver deletes them before the CRD: kubernetes/apiextensions-apiserver
  # pkg/controller/finalizer/crd_finalizer.go). What an operator derived from its CR (KubeVirt,
  # CDI) is computed from the CR and goes with it (lib/kubevirt.rb).
  def cascade(objs, gone)
    case gone["kind"]
    when "Namespace" then objs.reject! { |o| o.dig("metadata", "namespace") == gone.dig("metadata", "name") }
    when "CustomResourceDefinition" then objs.reject! { |o| o["kind"] == gone.dig("spec", "names", "kind") }
    end
  end

  def delete_named(kind, name)
    objs = objects
    before = objs.size
    gone = objs.select { |o| o["kind"] == kind && o.dig("metadata", "name") == name }
    objs.reject! { |o| o["kind"] == kind && o.dig("metadata", "name") == name }
    gone.each { |g| cascade(objs, g) }
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
      cascade(objs, g)
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
    cons = %w[DataVolume].include?(listing) || listing.nil? ? Virt.consumers(objs) : {}
    stored = objs.map do |o|
      case o["kind"]
      when "Deployment" then with_deployment_status(o)
      when "KairosControlPlane" then KairosProvider.with_status(o, objs)
      when "Cluster" then KairosProvider.with_cluster_status(o, objs)
      when "KubevirtCluster" then KairosProvider.with_kubevirt_cluster_status(o, objs)
      when "KubeVirt", "CDI", "OSArtifact", "DataVolume", "Service" then Virt.with_status(o, objs, cons)
      else CertManager.with_status(o, objs)
      end
    end
    derived = KairosProvider.derived(objs, listing) + Virt.derived(objs).map { |o| o["kind"] == "Deployment" ? with_deployment_status(o) : o }
    stored + derived + CertManager.secrets(objs)
  end

  # The workload cluster whose API server `host` is, once it answers.
  def workload_at(host)
    KairosProvider.at(host)
  end

  def workload_nodes(w)
    KairosProvider.nodes(w)
  end
end
