# The stand-in kubectl's cert-manager: Issuers and Certificates get a status, an issued
# Certificate's Secret appears, and the cainjector puts the CA into the webhook configurations
# that ask for it. Also the one-shot Jobs providers ship next to their webhooks: they complete.
#
# An Issuer is Ready once the cert-manager controller Deployment is Available (a selfSigned
# issuer needs nothing else; per cert-manager/cert-manager pkg/issuer/selfsigned/setup.go 28-32).
#
# A Certificate becomes Ready STANDIN_CERT_SECONDS after the latest of: its creation, its
# Issuer's creation and the cert-manager Deployment becoming Available. Before that it is
# Ready=False "DoesNotExist: Issuing certificate as Secret does not exist"
# (Source: cert-manager/cert-manager internal/controller/certificates/policies/checks.go 46),
# after it Ready=True "Ready: Certificate is up to date and has not expired"
# (Source: cert-manager/cert-manager pkg/controller/certificates/readiness/readiness_controller.go 426-433).
# A Ready Certificate's Secret (spec.secretName) exists with ca.crt, tls.crt and tls.key and
# names its Certificate in the annotation cert-manager.io/certificate-name
# (from cert-manager/cert-manager pkg/apis/certmanager/v1/types.go 96).
#
# The cainjector reads the annotation cert-manager.io/inject-ca-from: <namespace>/<certificate>
# on Validating/MutatingWebhookConfigurations, takes ca.crt from that Certificate's Secret and
# sets clientConfig.caBundle of every webhook of the configuration
# (Source: cert-manager/cert-manager pkg/controller/cainjector/sources.go 79-161, injectables.go 94-111).
# Here it does so once the cainjector Deployment is Available and the Certificate is Ready.
#
# A Job (batch/v1), such as kairos-capi's post-install CA Job, completes at once
# (see kairos-io/kairos-capi config/webhook/post-install-job.yaml 5-77).
#
# STANDIN_CERT_SECONDS      how long a Certificate takes to be issued (default 0.2)
# STANDIN_CERT_NEVER_READY  these Certificates (names, comma list, or *) are never issued
# STANDIN_CAINJECTOR_OFF    the cainjector injects nothing into these webhook configurations
#                           (names, comma list, or * for all)

require "base64"
require_relative "standin"

module CertManager
  module_function

  NAMESPACE = "cert-manager"
  CONTROLLER = "cert-manager"
  CAINJECTOR = "cert-manager-cainjector"
  INJECT_CA_FROM = "cert-manager.io/inject-ca-from"
  CERTIFICATE_NAME = "cert-manager.io/certificate-name"
  CA = Base64.strict_encode64("-----BEGIN CERTIFICATE-----\nstand-in CA\n-----END CERTIFICATE-----\n")
  WEBHOOK_KINDS = %w[ValidatingWebhookConfiguration MutatingWebhookConfiguration].freeze

  def issue_seconds
    (ENV["STANDIN_CERT_SECONDS"] || "0.2").to_f
  end

  # When cert-manager's Deployment `name` became Available, or nil while it is not.
  def available_since(objs, name)
    d = objs.find do |o|
      o["kind"] == "Deployment" && o.dig("metadata", "namespace") == NAMESPACE && o.dig("metadata", "name") == name
    end
    return nil unless d && Capi.available?(d)

    Capi.created(d) + ENV["STANDIN_DEPLOY_SECONDS"].to_f
  end

  def issuer_of(cert, objs)
    ref = cert.dig("spec", "issuerRef") || {}
    kind = ref["kind"] || "Issuer"
    objs.find do |o|
      o["kind"] == kind && o.dig("metadata", "name") == ref["name"] &&
        (kind == "ClusterIssuer" || o.dig("metadata", "namespace") == cert.dig("metadata", "namespace"))
    end
  end

  def ready?(cert, objs)
    return false if Standin.listed?("STANDIN_CERT_NEVER_READY", cert.dig("metadata", "name"))

    issuer = issuer_of(cert, objs)
    controller = available_since(objs, CONTROLLER)
    return false unless issuer && controller

    Time.now.to_f >= [Capi.created(cert), Capi.created(issuer), controller].max + issue_seconds
  end

  def certificate(objs, namespaced_name)
    ns, name = namespaced_name.to_s.split("/", 2)
    objs.find { |o| o["kind"] == "Certificate" && o.dig("metadata", "namespace") == ns && o.dig("metadata", "name") == name }
  end

  def condition(type, ok, reason, message)
    { "type" => type, "status" => ok ? "True" : "False", "reason" => reason, "message" => message }
  end

  def with_certificate_status(cert, objs)
    ready = if ready?(cert, objs)
              condition("Ready", true, "Ready", "Certificate is up to date and has not expired")
            else
              condition("Ready", false, "DoesNotExist", "Issuing certificate as Secret does not exist")
            end
    cert.merge("status" => { "conditions" => [ready] })
  end

  def with_issuer_status(issuer, objs)
    ok = !available_since(objs, CONTROLLER).nil?
    issuer.merge("status" => { "conditions" => [condition("Ready", ok, ok ? "IsReady" : "Pending", "")] })
  end

  # A webhook configuration as the API server returns it after the cainjector ran.
  def with_ca_bundle(hook, objs)
    from = hook.dig("metadata", "annotations", INJECT_CA_FROM)
    return hook if from.nil? || Standin.listed?("STANDIN_CAINJECTOR_OFF", hook.dig("metadata", "name")) ||
                   available_since(objs, CAINJECTOR).nil?

    cert = certificate(objs, from)
    return hook unless cert && ready?(cert, objs)

    copy = Marshal.load(Marshal.dump(hook))
    Array(copy["webhooks"]).each { |w| (w["clientConfig"] ||= {})["caBundle"] = CA }
    copy
  end

  def with_job_status(job)
    job.merge("status" => { "succeeded" => 1, "conditions" => [{ "type" => "Complete", "status" => "True" }] })
  end

  # The live status of an object cert-manager (or the Job controller) looks after; any other
  # object as it is.
  def with_status(o, objs)
    case o["kind"]
    when "Certificate" then with_certificate_status(o, objs)
    when "Issuer", "ClusterIssuer" then with_issuer_status(o, objs)
    when *WEBHOOK_KINDS then with_ca_bundle(o, objs)
    when "Job" then with_job_status(o)
    else o
    end
  end

  # The Secrets of the issued Certificates.
  def secrets(objs)
    objs.select { |o| o["kind"] == "Certificate" && ready?(o, objs) }.map do |cert|
      { "apiVersion" => "v1", "kind" => "Secret", "type" => "kubernetes.io/tls",
        "metadata" => { "name" => cert.dig("spec", "secretName"), "namespace" => cert.dig("metadata", "namespace"),
                        "annotations" => { CERTIFICATE_NAME => cert.dig("metadata", "name") } },
        "data" => { "ca.crt" => CA, "tls.crt" => CA, "tls.key" => Base64.strict_encode64("stand-in key") } }
    end
  end
end
