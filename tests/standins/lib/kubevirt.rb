# The stand-in management cluster's virtualization stack for `kairos install --infrastructure
# kubevirt`: StorageClasses (local-path), CDI, KubeVirt, the kairos-operator's OSArtifacts with
# their nginx, DataVolumes, and the VirtualMachines CAPK makes (lib/kairos_provider.rb asks for
# them). Everything here is derived on each look from objects.json and the clock, as the
# operators would have reconciled it by then; what a look changes is kept in two state files:
#
#   services.json  the status subresource of Services (`kubectl patch --subresource=status`):
#                  {"<ns>/<name>": {"status": {...}, "at": T, "created": <the Service's created-at>}}
#   nginx.json     the files the kairos-operator nginx serves (its PVC nginx-public), as the
#                  OSArtifact exporters PUT them: {"pvc": <the PVC's created-at>, "files":
#                  {"<name>.iso": T}}; a new PVC starts empty
#
# Sources (versions as k0slab installs them):
#   KV   kubevirt/kubevirt v1.8.2 (T = staging/src/kubevirt.io/api/core/v1/types.go)
#   CDI  kubevirt/containerized-data-importer v1.66.0 (A = staging/src/kubevirt.io/
#        containerized-data-importer-api/pkg/apis/core/v1beta1/types.go)
#   KO   kairos-io/kairos-operator v0.1.0-beta4 (bf1c717)
#   CAPK kubernetes-sigs/cluster-api-provider-kubevirt v0.1.10
#
# STANDIN_KUBEVIRT_SECONDS    the KubeVirt CR is Deployed this long after virt-operator is
#                             Available (default 0.3)
# STANDIN_CDI_SECONDS         the CDI CR is Deployed this long after cdi-operator is Available
#                             (default 0.3)
# STANDIN_OSARTIFACT_SECONDS  an OSArtifact builds this long once the operator is Available
#                             (default 0.3); then it exports for 0.1 s more
# STANDIN_OSARTIFACT_FAIL     these OSArtifacts (names, comma list, or *) end in Error
# STANDIN_CDI_IMPORT_SECONDS  a DataVolume's http import takes this long (default 0.3; a blank
#                             one a tenth of it); an importer that fails restarts that often
# STANDIN_VMI_BOOT_SECONDS    a VMI goes Scheduling -> Scheduled -> Running over this long once
#                             its DataVolumes succeeded (default 0.3)

require "json"
require "digest"
require_relative "standin"
require_relative "network"
require_relative "internet"

module Virt
  module_function

  # The CDI release k0slab installs: the newest tag (v1.66.0) of the releases built for
  # several architectures, arm64 among them, which CDI does since v1.62.0
  # (automation/prow_multi-arch_release.sh, BUILD_ARCH=s390x,aarch64,x86_64). Its fake lives in
  # releases/github.com/kubevirt/containerized-data-importer/releases/download/<this>/.
  CDI_VERSION = "v1.66.0".freeze
  KUBEVIRT_VERSION = "v1.8.2".freeze
  DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class".freeze
  IMMEDIATE = "cdi.kubevirt.io/storage.bind.immediate.requested".freeze
  KVM = "devices.kubevirt.io/kvm".freeze
  NGINX_SERVICE = "kairos-operator-nginx".freeze

  def seconds(var, default)
    (ENV[var] || default).to_f
  end

  def created(o)
    o.dig("metadata", "annotations", "standin/created-at").to_f
  end

  def find(objs, kind, ns, name)
    objs.find { |o| o["kind"] == kind && (ns.nil? || o.dig("metadata", "namespace") == ns) && o.dig("metadata", "name") == name }
  end

  # When Deployment ns/name became Available (lib/capi.rb's schedule), nil while it is not.
  def available_at(objs, ns, name)
    d = find(objs, "Deployment", ns, name)
    return nil unless d && Capi.available?(d)

    created(d) + ENV["STANDIN_DEPLOY_SECONDS"].to_f
  end

  def condition(type, ok, reason = nil, message = nil)
    c = { "type" => type, "status" => ok ? "True" : "False" }
    c["reason"] = reason if reason
    c["message"] = message if message
    c
  end

  def meta(name, ns = nil, labels = {})
    m = { "name" => name }
    m["namespace"] = ns if ns
    m["labels"] = labels unless labels.empty?
    m
  end

  def crd(name, kind, scope, version)
    group = name.split(".", 2).last
    { "apiVersion" => "apiextensions.k8s.io/v1", "kind" => "CustomResourceDefinition", "metadata" => meta(name),
      "spec" => { "group" => group, "scope" => scope,
                  "names" => { "kind" => kind, "plural" => name.split(".").first },
                  "versions" => [{ "name" => version, "served" => true, "storage" => true }] } }
  end

  def deployment(name, ns, at)
    { "apiVersion" => "apps/v1", "kind" => "Deployment",
      "metadata" => meta(name, ns).merge("annotations" => { "standin/created-at" => at.to_s }), "spec" => {} }
  end

  # --- KubeVirt ---------------------------------------------------------------------------

  def kubevirt(objs)
    objs.find { |o| o["kind"] == "KubeVirt" }
  end

  # When the KubeVirt CR reached Deployed (KV pkg/virt-operator/kubevirt.go 1107), nil before.
  def kubevirt_deployed_at(objs)
    kv = kubevirt(objs)
    op = kv && available_at(objs, kv.dig("metadata", "namespace"), "virt-operator")
    return nil unless op

    at = [created(kv), op].max + seconds("STANDIN_KUBEVIRT_SECONDS", "0.3")
    Time.now.to_f >= at ? at : nil
  end

  # useEmulation (T 3388-3390): the virt-launcher pod then requests no devices.kubevirt.io/kvm
  # (KV pkg/virt-controller/services/renderresources.go 474-476), so a VMI schedules anywhere.
  def emulation?(objs)
    kubevirt(objs)&.dig("spec", "configuration", "developerConfiguration", "useEmulation") == true
  end

  # Phase and conditions as virt-operator writes them: Deploying with Available=False,
  # Progressing=True, Degraded=False "DeploymentInProgress"; then Created "AllResourcesCreated"
  # and Available=True, Progressing=False, Degraded=False "AllComponentsReady"
  # (KV pkg/virt-operator/util/client.go 44-46, 51-79; phases T 2632-2641).
  def with_kubevirt_status(kv, objs)
    registry = "quay.io/kubevirt"
    status = { "targetKubeVirtVersion" => KUBEVIRT_VERSION, "targetKubeVirtRegistry" => registry }
    if kubevirt_deployed_at(objs)
      msg = "All components are ready."
      status.merge!("phase" => "Deployed", "observedKubeVirtVersion" => KUBEVIRT_VERSION,
                    "observedKubeVirtRegistry" => registry, "operatorVersion" => KUBEVIRT_VERSION,
                    "conditions" => [condition("Created", true, "AllResourcesCreated", "All resources were created."),
                                     condition("Available", true, "AllComponentsReady", msg),
                                     condition("Progressing", false, "AllComponentsReady", msg),
                                     condition("Degraded", false, "AllComponentsReady", msg)])
    elsif available_at(objs, kv.dig("metadata", "namespace"), "virt-operator")
      msg = "Deploying version #{KUBEVIRT_VERSION} with registry #{registry}"
      status.merge!("phase" => "Deploying",
                    "conditions" => [condition("Available", false, "DeploymentInProgress", msg),
                                     condition("Progressing", true, "DeploymentInProgress", msg),
                                     condition("Degraded", false, "DeploymentInProgress", msg)])
    else
      status = {}
    end
    kv.merge("status" => status)
  end

  # What virt-operator deploys once the CR is Deployed (its install strategy): the core CRDs,
  # virt-api, virt-controller and the virt-handler DaemonSet. They go with the CR.
  def kubevirt_derived(objs)
    at = kubevirt_deployed_at(objs)
    return [] unless at

    ns = kubevirt(objs).dig("metadata", "namespace")
    nodes = handler_nodes
    [crd("virtualmachines.kubevirt.io", "VirtualMachine", "Namespaced", "v1"),
     crd("virtualmachineinstances.kubevirt.io", "VirtualMachineInstance", "Namespaced", "v1"),
     deployment("virt-api", ns, at), deployment("virt-controller", ns, at),
     { "apiVersion" => "apps/v1", "kind" => "DaemonSet", "metadata" => meta("virt-handler", ns),
       "status" => { "desiredNumberScheduled" => nodes.size, "numberReady" => nodes.size,
                     "numberAvailable" => nodes.size } }]
  end

  # The lab's nodes that run a kubelet, with their VM and address.
  def lab_nodes
    Standin.clusters.flat_map do |c|
      c["hosts"].select { |h| h["role"] != "controller" }.filter_map do |h|
        vm = Net.holder(h["address"]) || Standin.host_vm(h)
        next unless vm

        { name: h["hostname"], vm: vm, ip: h["node_ip"] || vm["lease"],
          tainted: h["role"] == "controller+worker" && !h["no_taints"] }
      end
    end
  end

  # virt-handler runs on the schedulable nodes (its DaemonSet does not tolerate the
  # control-plane taint).
  def handler_nodes
    lab_nodes.reject { |n| n[:tainted] }
  end

  # A node's extended resources once virt-handler runs there: its device plugins kvm, tun and
  # vhost-net each register --max-devices (default 1000) devices (KV pkg/virt-handler/
  # device-manager/device_controller.go 106-118, generic_device.go 91-97, cmd/virt-handler/
  # virt-handler.go 106); without /dev/kvm the kvm plugin reports them Unhealthy
  # (generic_device.go 295-302: "device '/dev/kvm' is not present, the device plugin can't
  # expose it."), so the kubelet keeps the capacity and allocates none: allocatable "0".
  # Quantities as the API prints 1000: "1k". cpu and memory from the VM's Vagrantfile size.
  def node_resources(vm, hostname, objs = Capi.objects)
    capacity = {}
    capacity["cpu"] = vm["cpus"].to_s if vm && vm["cpus"]
    capacity["memory"] = "#{vm['memory_mb'].to_i * 1024}Ki" if vm && vm["memory_mb"]
    capacity["pods"] = "110"
    allocatable = capacity.dup
    if kubevirt_deployed_at(objs) && handler_nodes.any? { |n| n[:name] == hostname }
      %w[kvm tun vhost-net].each { |d| capacity["devices.kubevirt.io/#{d}"] = "1k" }
      allocatable.merge!(capacity.select { |k, _| k.start_with?("devices.") })
      allocatable[KVM] = "0" unless vm && vm["kvm"]
    end
    [capacity, allocatable]
  end

  # The nodes a virt-launcher pod fits on: those with kvm allocatable, any handler node under
  # emulation.
  def kvm_nodes(objs)
    return handler_nodes if emulation?(objs)

    handler_nodes.select { |n| n[:vm]["kvm"] }
  end

  # The scheduler's message for a pod that fits no node (kubernetes pkg/scheduler/
  # framework/types.go FitError: "0/%v nodes are available: %v."; noderesources/fit.go
  # "Insufficient %v").
  def unschedulable_message
    all = lab_nodes
    tainted = all.count { |n| n[:tainted] }
    parts = []
    parts << "#{all.size - tainted} Insufficient #{KVM}" if all.size > tainted
    parts << "#{tainted} node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }" if tainted.positive?
    "0/#{all.size} nodes are available: #{parts.join(', ')}."
  end

  # --- CDI --------------------------------------------------------------------------------

  def cdi(objs)
    objs.find { |o| o["kind"] == "CDI" }
  end

  def cdi_deployed_at(objs)
    cr = cdi(objs)
    op = cr && available_at(objs, "cdi", "cdi-operator")
    return nil unless op

    at = [created(cr), op].max + seconds("STANDIN_CDI_SECONDS", "0.3")
    Time.now.to_f >= at ? at : nil
  end

  # CDI's status is the controller-lifecycle-operator-sdk's (A 1004-1010; vendor/kubevirt.io/
  # controller-lifecycle-operator-sdk/api/types.go 12-38): phase Deploying, then Deployed; the
  # conditions Available, Progressing, Degraded (openshift custom-resource-status
  # conditions/v1/types.go 35-44) with the reasons of its events "DeployStarted: Started
  # Deployment" and "DeployCompleted: Deployment Completed" (CDI pkg/operator/controller/
  # controller_test.go 2256-2264).
  def with_cdi_status(cr, objs)
    status = if cdi_deployed_at(objs)
               m = "Deployment Completed"
               { "phase" => "Deployed", "observedVersion" => CDI_VERSION, "operatorVersion" => CDI_VERSION,
                 "targetVersion" => CDI_VERSION,
                 "conditions" => [condition("Available", true, "DeployCompleted", m),
                                  condition("Progressing", false, "DeployCompleted", m),
                                  condition("Degraded", false, "DeployCompleted", m)] }
             elsif available_at(objs, "cdi", "cdi-operator")
               m = "Started Deployment"
               { "phase" => "Deploying", "operatorVersion" => CDI_VERSION, "targetVersion" => CDI_VERSION,
                 "conditions" => [condition("Available", false, "DeployStarted", m),
                                  condition("Progressing", true, "DeployStarted", m),
                                  condition("Degraded", false, "DeployStarted", m)] }
             else
               {}
             end
    cr.merge("status" => status)
  end

  # What cdi-operator deploys into cdi (CDI pkg/operator/resources/namespaced: apiserver,
  # controller, uploadproxy) and the DataVolume CRD (A 361-431).
  def cdi_derived(objs)
    at = cdi_deployed_at(objs)
    return [] unless at

    [crd("datavolumes.cdi.kubevirt.io", "DataVolume", "Namespaced", "v1beta1"),
     deployment("cdi-apiserver", "cdi", at), deployment("cdi-deployment", "cdi", at),
     deployment("cdi-uploadproxy", "cdi", at),
     { "apiVersion" => "v1", "kind" => "Service", "metadata" => meta("cdi-uploadproxy", "cdi"),
       "spec" => { "type" => "ClusterIP", "ports" => [{ "port" => 443, "targetPort" => 8443, "protocol" => "TCP" }] } }]
  end

  def honor_wffc?(objs)
    Array(cdi(objs)&.dig("spec", "config", "featureGates")).include?("HonorWaitForFirstConsumer")
  end

  # --- StorageClasses ---------------------------------------------------------------------

  def storage_class(objs, dv)
    name = dv.dig("spec", "storage", "storageClassName") || dv.dig("spec", "pvc", "storageClassName")
    classes = objs.select { |o| o["kind"] == "StorageClass" }
    return classes.find { |c| c.dig("metadata", "name") == name } if name

    classes.find { |c| c.dig("metadata", "annotations", DEFAULT_CLASS) == "true" }
  end

  # --- kairos-operator: OSArtifacts and the nginx they export to ---------------------------

  def nginx_path
    File.join(Standin.state_dir, "nginx.json")
  end

  # The files nginx serves now: only while Deployment nginx is Available, Service
  # kairos-operator-nginx exists and its PVC nginx-public is the one they were written to.
  def nginx_files(objs)
    pvc = find(objs, "PersistentVolumeClaim", "default", "nginx-public")
    return {} unless pvc && available_at(objs, "default", "nginx") && find(objs, "Service", "default", NGINX_SERVICE)

    state = Standin.read_json(nginx_path, {})
    state["pvc"] == created(pvc) ? state["files"] || {} : {}
  end

  def nginx_serving?(objs)
    available_at(objs, "default", "nginx") && find(objs, "Service", "default", NGINX_SERVICE) &&
      find(objs, "PersistentVolumeClaim", "default", "nginx-public")
  end

  def record_nginx_file(objs, file, at)
    pvc = find(objs, "PersistentVolumeClaim", "default", "nginx-public")
    state = Standin.read_json(nginx_path, {})
    state = { "pvc" => created(pvc), "files" => {} } unless state["pvc"] == created(pvc)
    return if state["files"].key?(file)

    state["files"][file] = at
    Standin.write_json(nginx_path, state)
  end

  # The exporters PUT into http://kairos-operator-nginx/ (their Job's command names it).
  def exports_to_nginx?(art)
    JSON.generate(art.dig("spec", "exporters") || []).include?("http://#{NGINX_SERVICE}")
  end

  # KO api/v1alpha2/osartifact_types.go 238-251: phase Pending, Building, Exporting, Ready,
  # Error; message. The controller builds once it runs (Deployment operator-kairos-operator in
  # operator-system Available), then runs the exporter Jobs: Exporting until they complete,
  # which a Job uploading to nginx does only once nginx serves. A listed (failing) build ends in
  # Error; a failed build pod sets no message (KO internal/controller/osartifact_controller.go
  # 323-349; 428-446 for the export Jobs).
  def osartifact_phase(art, objs)
    op = available_at(objs, "operator-system", "operator-kairos-operator")
    return ["Pending", nil, nil] unless op

    start = [created(art), op].max
    built = start + seconds("STANDIN_OSARTIFACT_SECONDS", "0.3")
    now = Time.now.to_f
    return ["Building", nil, nil] if now < built

    name = art.dig("metadata", "name")
    if Standin.listed?("STANDIN_OSARTIFACT_FAIL", name)
      return ["Error", nil, nil]
    end

    exported = built + 0.1
    return ["Exporting", nil, nil] if now < exported
    return ["Ready", nil, exported] if Array(art.dig("spec", "exporters")).empty?
    return ["Exporting", nil, nil] unless exports_to_nginx?(art) && nginx_serving?(objs)

    ["Ready", nil, exported]
  end

  def with_osartifact_status(art, objs)
    phase, message, ready_at = osartifact_phase(art, objs)
    if phase == "Ready" && ready_at && exports_to_nginx?(art) && art.dig("spec", "artifacts", "iso")
      record_nginx_file(objs, "#{art.dig('metadata', 'name')}.iso", ready_at)
    end
    status = { "phase" => phase }
    status["message"] = message if message
    art.merge("status" => status)
  end

  # --- DataVolumes ------------------------------------------------------------------------

  # Whether the importer gets the file at `url`, and when it was there: nginx's files for the
  # operator's Service, the stand-in internet (lib/internet.rb) for anything else.
  def source_at(url, objs)
    m = url.to_s.match(%r{\Ahttps?://([^/:]+)(?::\d+)?/(.*)\z})
    return [nil, "HTTP request errored: Get \"#{url}\": unsupported protocol scheme"] unless m

    host, path = m[1], m[2]
    if host == NGINX_SERVICE || host.start_with?("#{NGINX_SERVICE}.default.svc")
      return [nil, "HTTP request errored: Get \"#{url}\": dial tcp: lookup #{host}: no such host"] unless find(objs, "Service", "default", NGINX_SERVICE)

      at = nginx_files(objs)[path]
      return [at, nil] if at

      return [nil, "expected status code 200, got 404. Status: 404 Not Found"]
    end
    return [nil, "HTTP request errored: Get \"#{url}\": dial tcp: lookup #{host}: no such host"] if Internet.offline?
    return [0.0, nil] if Internet.asset(url)

    [nil, "expected status code 200, got 404. Status: 404 Not Found"]
  end

  # A DataVolume's status (A 321-431, CDI pkg/controller/datavolume/*): nothing before the CDI
  # controller runs; WaitForFirstConsumer while its StorageClass binds late, the gate
  # HonorWaitForFirstConsumer is on and it does not ask for immediate binding
  # (pkg/controller/common/util.go 275-276, 1546-1557; controller-base.go 1005-1010, 1239-1265),
  # until a consumer's pod is scheduled (`consumed_at`); Pending without a StorageClass; then
  # ImportScheduled, ImportInProgress with progress "%.2f%%" (controller-base.go 1128) and
  # Succeeded ("Successfully imported into PVC %s", import-controller.go 47-63). An importer that
  # cannot fetch its URL exits with an error and is restarted: the DataVolume stays
  # ImportInProgress with restartCount and Running=False reason Error and the importer's
  # message (pkg/importer/http-datasource.go 408-412; conditions.go 68-123).
  def dv_status(dv, objs, consumed_at = nil)
    deployed = cdi_deployed_at(objs)
    return {} unless deployed

    name = dv.dig("metadata", "name")
    sc = storage_class(objs, dv)
    now = Time.now.to_f
    start = [created(dv), deployed].max
    if sc.nil?
      return { "phase" => "Pending", "progress" => "N/A", "claimName" => name,
               "conditions" => [condition("Bound", false, "Pending", "PVC #{name} Pending"),
                                condition("Ready", false), condition("Running", false)] }
    end
    if wffc?(dv, sc, objs)
      if consumed_at.nil?
        return { "phase" => "WaitForFirstConsumer", "progress" => "N/A", "claimName" => name,
                 "conditions" => [condition("Bound", false, "Pending", "PVC #{name} Pending"),
                                  condition("Ready", false), condition("Running", false)] }
      end
      start = [start, consumed_at].max
    end
    bound = condition("Bound", true, "Bound", "PVC #{name} Bound")
    import = seconds("STANDIN_CDI_IMPORT_SECONDS", "0.3")
    source = dv.dig("spec", "source") || {}
    scheduled = { "phase" => "ImportScheduled", "progress" => "N/A", "claimName" => name,
                  "conditions" => [bound, condition("Ready", false), condition("Running", false, "Pending")] }
    done = lambda do |at|
      if now >= at
        { "phase" => "Succeeded", "progress" => "100.0%", "claimName" => name,
          "conditions" => [bound, condition("Ready", true), condition("Running", false, "Completed")] }
      end
    end
    if source.key?("http")
      return scheduled if now < start + 0.05

      at, error = source_at(source.dig("http", "url"), objs)
      if at.nil? || at > now
        restarts = [((now - start) / [import, 0.05].max).floor, 0].max
        return { "phase" => "ImportInProgress", "progress" => "N/A", "claimName" => name, "restartCount" => restarts,
                 "conditions" => [bound, condition("Ready", false),
                                  condition("Running", false, "Error", error || "expected status code 200, got 404. Status: 404 Not Found")] }
      end
      began = [start + 0.05, at].max
      finished = done.call(began + import)
      return finished if finished

      progress = import.positive? ? (now - began) / import * 100 : 100
      return { "phase" => "ImportInProgress", "progress" => format("%.2f%%", progress.clamp(0, 99.99)), "claimName" => name,
               "conditions" => [bound, condition("Ready", false), condition("Running", true, "Pod is running")] }
    end
    if source.key?("upload")
      return { "phase" => "UploadReady", "progress" => "N/A", "claimName" => name,
               "conditions" => [bound, condition("Ready", false), condition("Running", true, "Pod is running")] }
    end
    # blank (and any other source): a short import.
    done.call(start + import / 10) || scheduled
  end

  def wffc?(dv, sc, objs)
    sc["volumeBindingMode"] == "WaitForFirstConsumer" && honor_wffc?(objs) &&
      !dv.dig("metadata", "annotations")&.key?(IMMEDIATE)
  end

  # When DataVolume `dv` is (or will be) Succeeded on dv_status's schedule, nil while that is
  # not known (no CDI, no StorageClass, an unbound or unserved volume, an upload).
  def dv_done_at(dv, objs, consumed_at)
    deployed = cdi_deployed_at(objs)
    sc = deployed && storage_class(objs, dv)
    return nil unless sc

    start = [created(dv), deployed].max
    if wffc?(dv, sc, objs)
      return nil if consumed_at.nil?

      start = [start, consumed_at].max
    end
    import = seconds("STANDIN_CDI_IMPORT_SECONDS", "0.3")
    source = dv.dig("spec", "source") || {}
    if source.key?("http")
      at, = source_at(source.dig("http", "url"), objs)
      return at && [start + 0.05, at].max + import
    end
    return nil if source.key?("upload")

    start + import / 10
  end

  # What KubeVirt's arm64 admission refuses in a VM's template, as its message (KV
  # pkg/virt-api/webhooks/arm64.go 60-130, applied to VMs through vms-admitter.go 221 and
  # vmi-create-admitter.go 153-170; causes joined with ", " by pkg/util/webhooks/webhooks.go
  # 54-80). An empty cpu.model is allowed (arm64.go 89-97: only a set model other than
  # host-passthrough is refused). Every node of the lab is arm64, so every VM is.
  def arm64_refusal(vm_template)
    spec = vm_template.dig("spec", "template", "spec") || {}
    domain = spec["domain"] || {}
    causes = []
    loader = domain.dig("firmware", "bootloader") || {}
    causes << "Arm64 does not support bios boot, please change to uefi boot" if loader.key?("bios")
    if loader.key?("efi") && loader["efi"].to_h["secureBoot"] != false
      causes << "UEFI secure boot is currently not supported on aarch64 Arch"
    end
    model = domain.dig("cpu", "model").to_s
    causes << "currently, host-passthrough is the only model supported on Arm64" unless model.empty? || model == "host-passthrough"
    Array(domain.dig("devices", "disks")).each do |d|
      bus = %w[disk cdrom lun].filter_map { |k| d.dig(k, "bus") }.first
      causes << "Arm64 not support this disk bus type, please use virtio or scsi" if bus && !%w[virtio scsi].include?(bus)
    end
    causes.empty? ? nil : causes.first(10).join(", ")
  end

  # The VMIs (and their creation) that consume each DataVolume: for a WaitForFirstConsumer
  # volume KubeVirt schedules a temporary pod (KV pkg/virt-controller/watch/vmi/
  # lifecycle.go 151-152), which binds it when it fits a node.
  def consumers(objs)
    out = {}
    KairosProvider.vms(objs).each do |vm|
      next unless vm[:vm_at] && !kvm_nodes(objs).empty?

      vm[:volumes].each { |dv| out["#{vm[:ns]}/#{dv}"] ||= vm[:vm_at] }
    end
    out
  end

  def with_dv_status(dv, objs, consumers = consumers(objs))
    key = "#{dv.dig('metadata', 'namespace')}/#{dv.dig('metadata', 'name')}"
    dv.merge("status" => dv_status(dv, objs, consumers[key]))
  end

  # --- Services: the status subresource -----------------------------------------------------

  def services_path
    File.join(Standin.state_dir, "services.json")
  end

  # A Service's status: the patched one while it is the Service that was patched (one made
  # again later, with another creation time, starts without it).
  def with_service_status(svc)
    state = Standin.read_json(services_path, {})["#{svc.dig('metadata', 'namespace')}/#{svc.dig('metadata', 'name')}"]
    state = nil if state && state["created"].to_f != created(svc)
    status = state ? state["status"] : (svc["status"] || (svc.dig("spec", "type") == "LoadBalancer" ? { "loadBalancer" => {} } : {}))
    svc.merge("status" => status)
  end

  # The first ingress IP of Service ns/name and when it was set, or nil.
  def ingress(ns, name, created_at)
    state = Standin.read_json(services_path, {})["#{ns}/#{name}"]
    state = nil if state && state["created"].to_f != created_at
    ip = state&.dig("status", "loadBalancer", "ingress", 0, "ip")
    ip ? [ip, state["at"]] : nil
  end

  def merge_patch(target, patch)
    return patch unless patch.is_a?(Hash) && target.is_a?(Hash)

    out = target.dup
    patch.each { |k, v| v.nil? ? out.delete(k) : out[k] = merge_patch(target[k], v) }
    out
  end

  # `kubectl patch service NAME -n NS [--subresource=status] --type=merge -p JSON`: with
  # --subresource=status only the status changes (the status strategy resets the rest:
  # kubernetes pkg/registry/core/service/strategy.go serviceStatusStrategy.PrepareForUpdate);
  # without it a status in the patch is dropped (PrepareForUpdate keeps the old status), the
  # rest merged into a stored Service. Derived Services keep their spec (their controller
  # owns it). Returns the message kubectl prints.
  def patch_service(objs, ns, name, patch, status_subresource)
    svc = Capi.view("Service").find { |o| o["kind"] == "Service" && o.dig("metadata", "namespace") == ns && o.dig("metadata", "name") == name }
    return nil unless svc

    if status_subresource
      state = Standin.read_json(services_path, {})
      old = svc["status"] || {}
      new = merge_patch(old, patch["status"] || {})
      return "service/#{name} patched (no change)" if new == old

      state["#{ns}/#{name}"] = { "status" => new, "at" => Time.now.to_f, "created" => created(svc) }
      Standin.write_json(services_path, state)
      return "service/#{name} patched"
    end
    rest = patch.reject { |k, _| k == "status" }
    stored = objs.find { |o| o["kind"] == "Service" && o.dig("metadata", "namespace") == ns && o.dig("metadata", "name") == name }
    return "service/#{name} patched (no change)" if stored.nil? || rest.empty? || merge_patch(stored, rest) == stored

    objs[objs.index(stored)] = merge_patch(stored, rest)
    Capi.save(objs)
    "service/#{name} patched"
  end

  # --- what the stand-in lists --------------------------------------------------------------

  def with_status(o, objs, cons)
    case o["kind"]
    when "KubeVirt" then with_kubevirt_status(o, objs)
    when "CDI" then with_cdi_status(o, objs)
    when "OSArtifact" then with_osartifact_status(o, objs)
    when "DataVolume" then with_dv_status(o, objs, cons)
    when "Service" then with_service_status(o)
    end
  end

  def derived(objs)
    kubevirt_derived(objs) + cdi_derived(objs)
  end

  # The CRDs only the operators create (kind_known? must see them).
  def derived_crds(objs)
    out = []
    if kubevirt_deployed_at(objs)
      out << crd("virtualmachines.kubevirt.io", "VirtualMachine", "Namespaced", "v1")
      out << crd("virtualmachineinstances.kubevirt.io", "VirtualMachineInstance", "Namespaced", "v1")
    end
    out << crd("datavolumes.cdi.kubevirt.io", "DataVolume", "Namespaced", "v1beta1") if cdi_deployed_at(objs)
    out
  end
end
