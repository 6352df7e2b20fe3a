# What the API server refuses when a custom resource is applied with `kubectl apply
# --server-side`: fields its CRD's structural schema does not declare (server-side apply types
# the object first; per kubernetes-sigs/structured-merge-diff typed/validate.go, "field not
# declared in schema"), missing `required` fields, values outside an `enum`, wrong types
# (per kubernetes/apiextensions-apiserver pkg/apiserver/schema validation: "Required value",
# "Unsupported value", "Invalid value"). `metadata`, `apiVersion`, `kind` and `status` are
# the server's own.

module CrdSchema
  module_function

  # The openAPIV3Schema of `kind` in `version` from the CRDs among `objs`, or nil.
  def schema_for(objs, kind, api_version)
    version = api_version.to_s.split("/").last
    crd = objs.find { |o| o["kind"] == "CustomResourceDefinition" && o.dig("spec", "names", "kind") == kind }
    return nil unless crd

    v = Array(crd.dig("spec", "versions")).find { |x| x["name"] == version }
    v&.dig("schema", "openAPIV3Schema")
  end

  TYPES = {
    "object" => Hash, "array" => Array, "string" => String, "boolean" => [TrueClass, FalseClass],
    "integer" => Integer, "number" => Numeric
  }.freeze

  # The errors of `value` against `schema` at `path`: [[:unknown | :invalid, message]].
  def errors(value, schema, path)
    return [] if schema.nil? || schema["x-kubernetes-preserve-unknown-fields"] || schema["x-kubernetes-int-or-string"]

    want = TYPES[schema["type"]]
    if want && !Array(want).any? { |t| value.is_a?(t) }
      return [[:invalid, "#{path}: Invalid value: #{value.inspect}: #{path} in body must be of type #{schema['type']}"]]
    end
    if schema["enum"] && !schema["enum"].include?(value)
      return [[:invalid, "#{path}: Unsupported value: #{value.inspect}: supported values: #{schema['enum'].map(&:inspect).join(', ')}"]]
    end

    out = []
    case value
    when Hash
      props = schema["properties"]
      Array(schema["required"]).each do |r|
        out << [:invalid, "#{path}.#{r}: Required value"] unless value.key?(r)
      end
      value.each do |k, v|
        if props&.key?(k)
          out.concat(errors(v, props[k], "#{path}.#{k}"))
        elsif schema["additionalProperties"].is_a?(Hash)
          out.concat(errors(v, schema["additionalProperties"], "#{path}.#{k}"))
        elsif props || schema["type"] == "object"
          out << [:unknown, ".#{path}.#{k}: field not declared in schema"]
        end
      end
    when Array
      value.each_with_index { |v, i| out.concat(errors(v, schema["items"], "#{path}[#{i}]")) }
    end
    out
  end

  # nil, or the message `kubectl apply --server-side` prints for `doc`.
  def refusal(doc, objs)
    schema = schema_for(objs, doc["kind"], doc["apiVersion"])
    return nil unless schema

    body = doc.reject { |k, _| %w[apiVersion kind metadata status].include?(k) }
    found = body.flat_map { |k, v| errors(v, schema.dig("properties", k) || {}, k) }
    found += body.keys.reject { |k| schema["properties"]&.key?(k) }.map { |k| [:unknown, ".#{k}: field not declared in schema"] } if schema["properties"]
    return nil if found.empty?

    name = doc.dig("metadata", "name")
    group = doc["apiVersion"].to_s.split("/").first
    unknown = found.select { |t, _| t == :unknown }
    unless unknown.empty?
      return "Error from server (BadRequest): failed to create typed patch object " \
             "(#{doc.dig('metadata', 'namespace')}/#{name}; #{doc['apiVersion']}, Kind=#{doc['kind']}): #{unknown.first[1]}"
    end
    "The #{doc['kind']} \"#{name}\" is invalid: \n* #{found.map { |_, m| m }.join("\n* ")}".sub(
      "The #{doc['kind']}", "Error from server (Invalid): #{doc['kind']}.#{group}"
    )
  end
end
