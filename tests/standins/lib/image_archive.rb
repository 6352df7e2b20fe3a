# The host's container engine as the stand-in `docker` and `podman` see it: which images it
# holds, their IDs, and the tar streams `docker save` and `podman save` write. Shared by
# bin/docker and bin/podman; lib/containerd.rb reads these streams back on the node side.
#
# Images come from an environment variable (STANDIN_DOCKER_IMAGES, STANDIN_PODMAN_IMAGES): a
# comma list of REF=BYTES, e.g. `myapp:dev=1048576,ghcr.io/me/op:1=4096`. Each image has one
# layer of exactly BYTES bytes. Everything is deterministic:
#   image ID      = sha256 of "REF:BYTES"        (also the config blob's name, as in Docker)
#   layer digest  = sha256 of "layer:REF:BYTES"
# The stand-in does NOT hash the layer it streams: a tar header carries the blob's name before
# its body, and hashing up to 1 GiB first would mean writing it twice. So neither the config's
# nor the layer's name is the real sha256 of its content; the OCI manifest blob's name is.

require "digest"
require "json"
require "rubygems/package"
require_relative "standin"

module ImageArchive
  module_function

  CHUNK = 1024 * 1024 # the layer is streamed in 1 MiB chunks, never built in memory

  OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
  OCI_INDEX = "application/vnd.oci.image.index.v1+json"
  OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
  OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

  # --- references ---------------------------------------------------------------------------
  # Source: containerd/containerd v2.3.4 vendor/github.com/distribution/reference/normalize.go lines 107-172
  # (ParseDockerRef, splitDockerDomain): the first of two or more components is a registry
  # when it is "localhost", holds "." or ":", or has upper case; index.docker.io is docker.io;
  # otherwise docker.io, and a one-component path gets "library/". ParseDockerRef adds
  # ":latest" when there is neither tag nor digest, and drops the tag when both are given.
  # Source: containerd/containerd v2.3.4 vendor/github.com/distribution/reference/normalize.go lines 179-198
  # (familiarizeName): docker.io and a "library/" without further "/" are dropped again.

  Ref = Struct.new(:domain, :path, :tag, :digest) do
    def normalized
      s = "#{domain}/#{path}"
      s += ":#{tag}" if tag
      s += "@#{digest}" if digest
      s
    end

    # reference.FamiliarString: docker.io/ and library/ dropped again.
    def familiar
      name = "#{domain}/#{path}"
      if domain == "docker.io"
        name = path
        name = name.delete_prefix("library/") if name.start_with?("library/") && name.count("/") == 1
      end
      name += ":#{tag}" if tag
      name += "@#{digest}" if digest
      name
    end

    def familiar_name
      familiar.sub(/@.*\z/, "").sub(/:[^:\/]*\z/, "")
    end
  end

  def parse_ref(ref, default_tag: true)
    name, digest = ref.split("@", 2)
    tag = nil
    slash = name.rindex("/") || -1
    colon = name.rindex(":")
    if colon && colon > slash
      tag = name[(colon + 1)..]
      name = name[0...colon]
    end
    first, rest = name.split("/", 2)
    if rest && (first.match?(/[.:]/) || first == "localhost" || first != first.downcase)
      domain, path = first, rest
    else
      domain, path = "docker.io", name
    end
    domain = "docker.io" if domain == "index.docker.io"
    path = "library/#{path}" if domain == "docker.io" && !path.include?("/")
    tag = nil if digest
    tag ||= "latest" if default_tag && digest.nil?
    Ref.new(domain, path, tag, digest)
  end

  def normalize(ref)
    parse_ref(ref).normalized
  end

  # --- the engine's images ------------------------------------------------------------------

  Image = Struct.new(:ref, :bytes) do
    def id_hex
      Digest::SHA256.hexdigest("#{ref}:#{bytes}")
    end

    def layer_hex
      Digest::SHA256.hexdigest("layer:#{ref}:#{bytes}")
    end

    def parsed
      ImageArchive.parse_ref(ref)
    end

    def config_json
      JSON.generate({ "architecture" => "arm64", "os" => "linux",
                      "config" => { "Labels" => { "k0slab.standin.ref" => ref } },
                      "rootfs" => { "type" => "layers", "diff_ids" => ["sha256:#{layer_hex}"] } })
    end
  end

  def images(var)
    ENV[var].to_s.split(",").map(&:strip).reject(&:empty?).map do |item|
      ref, _, bytes = item.rpartition("=")
      Integer(bytes, 10) rescue Standin.fail!("stand-in: #{var}: not REF=BYTES: #{item.inspect}", 99)
      Image.new(ref, Integer(bytes, 10))
    end
  end

  # The image REF names: by its name (normalized, so `myapp` finds `myapp:latest`) or its ID.
  def find(var, ref)
    images(var).find do |img|
      img.ref == ref || normalize(img.ref) == normalize(ref) ||
        ["sha256:#{img.id_hex}", img.id_hex].include?(ref)
    rescue StandardError
      false
    end
  end

  # --- tar streams --------------------------------------------------------------------------
  # An entry plan: [name, kind, size, payload]; kind :dir, :bytes (payload a String), :layer
  # (payload an Image, streamed), :symlink (payload the target). The plan gives the exact
  # stream length before anything is written (for STANDIN_*_FAIL_SAVE's "half").

  def layer_chunk(img)
    seed = "k0slab stand-in layer of #{img.ref}\n"
    (seed * ((CHUNK / seed.bytesize) + 1)).byteslice(0, CHUNK)
  end

  def stream_size(entries)
    entries.sum { |_, _, size, _| 512 + ((size + 511) / 512) * 512 } + 1024
  end

  # Docker >= 25 (moby API 1.44): an OCI layout plus the legacy manifest.json. Source:
  # moby/moby b985e23 daemon/internal/image/tarexport/save.go lines 247-390: the OCI manifest
  # blob names the image ID as config digest; index.json gets one manifest descriptor per ref
  # with annotations io.containerd.image.name = ref.String() and
  # org.opencontainers.image.ref.name = ref.Tag(); manifest.json lists Config/RepoTags/Layers
  # with blobs/sha256/ paths; `repositories` is the legacy tag map; oci-layout holds
  # {"imageLayoutVersion": "1.0.0"}. The files are written to a temporary directory and tarred
  # by walking it (writeTar, lines 395-410), so entries come in lexical order.
  def docker_entries(imgs)
    blobs = {}
    manifest, index, repos = [], [], {}
    imgs.each do |img|
      config = img.config_json
      blobs[img.id_hex] ||= [config.bytesize, :bytes, config]
      blobs[img.layer_hex] ||= [img.bytes, :layer, img]
      m = JSON.generate({ "schemaVersion" => 2, "mediaType" => OCI_MANIFEST,
                          "config" => { "mediaType" => OCI_CONFIG, "digest" => "sha256:#{img.id_hex}",
                                        "size" => config.bytesize },
                          "layers" => [{ "mediaType" => OCI_LAYER, "digest" => "sha256:#{img.layer_hex}",
                                         "size" => img.bytes }] })
      mh = Digest::SHA256.hexdigest(m)
      blobs[mh] ||= [m.bytesize, :bytes, m]
      r = img.parsed
      index << { "mediaType" => OCI_MANIFEST, "digest" => "sha256:#{mh}", "size" => m.bytesize,
                 "annotations" => { "io.containerd.image.name" => r.normalized,
                                    "org.opencontainers.image.ref.name" => r.tag } }
      manifest << { "Config" => "blobs/sha256/#{img.id_hex}", "RepoTags" => [r.familiar],
                    "Layers" => ["blobs/sha256/#{img.layer_hex}"] }
      (repos[r.familiar_name] ||= {})[r.tag] = img.layer_hex
    end
    entries = [["blobs/", :dir, 0, nil], ["blobs/sha256/", :dir, 0, nil]]
    blobs.sort.each { |hex, (size, kind, payload)| entries << ["blobs/sha256/#{hex}", kind, size, payload] }
    idx = JSON.generate({ "schemaVersion" => 2, "mediaType" => OCI_INDEX, "manifests" => index })
    mf = "#{JSON.generate(manifest)}\n"
    layout = '{"imageLayoutVersion": "1.0.0"}'
    rp = "#{JSON.generate(repos)}\n"
    entries + [["index.json", :bytes, idx.bytesize, idx], ["manifest.json", :bytes, mf.bytesize, mf],
               ["oci-layout", :bytes, layout.bytesize, layout], ["repositories", :bytes, rp.bytesize, rp]]
  end

  # Podman's default `podman save` format, docker-archive: no oci-layout, no index.json.
  # Source: containers/podman c6580b4 vendor/go.podman.io/image/v5/docker/internal/tarfile/
  # writer.go lines 92-118 (per layer a legacy directory: layer.tar symlink, VERSION, json),
  # 277-300 (manifest.json, then repositories, at Close), 309-329 (config "<hex>.json", layer
  # "<hex>.tar"). Blobs come in the order the copy sends them: layer, then config.
  # `extra_tags`: podman save IMAGE TAG... (no -m) saves IMAGE once with the other names as more
  # RepoTags (Source: containers/podman c6580b4 cmd/podman/images/save.go lines 135-139).
  def podman_entries(imgs, extra_tags = [])
    entries, manifest, repos, seen = [], [], {}, {}
    imgs.each do |img|
      r = img.parsed
      config = img.config_json
      unless seen[img.id_hex]
        seen[img.id_hex] = true
        legacy_id = Digest::SHA256.hexdigest("legacy:#{img.layer_hex}")
        legacy = JSON.generate({ "id" => legacy_id, "os" => "linux", "architecture" => "arm64" })
        entries << ["#{img.layer_hex}.tar", :layer, img.bytes, img]
        entries << ["#{img.id_hex}.json", :bytes, config.bytesize, config]
        entries << ["#{legacy_id}/layer.tar", :symlink, 0, "../#{img.layer_hex}.tar"]
        entries << ["#{legacy_id}/VERSION", :bytes, 3, "1.0"]
        entries << ["#{legacy_id}/json", :bytes, legacy.bytesize, legacy]
        (repos[r.familiar_name] ||= {})[r.tag] = legacy_id
      end
      tags = [r.familiar] + extra_tags.map { |t| parse_ref(t).familiar }
      extra_tags.each { |t| (repos[parse_ref(t).familiar_name] ||= {})[parse_ref(t).tag] = repos.dig(r.familiar_name, r.tag) }
      manifest << { "Config" => "#{img.id_hex}.json", "RepoTags" => tags, "Layers" => ["#{img.layer_hex}.tar"] }
    end
    mf = JSON.generate(manifest)
    rp = JSON.generate(repos)
    entries + [["manifest.json", :bytes, mf.bytesize, mf], ["repositories", :bytes, rp.bytesize, rp]]
  end

  class SaveFailed < StandardError; end

  # Counts what reaches `io` and stops at `limit` bytes (nil: no limit).
  class LimitedWriter
    def initialize(io, limit)
      @io = io
      @limit = limit
      @written = 0
    end

    def write(data)
      data = data.to_s
      if @limit && @written + data.bytesize >= @limit
        @io.write(data.byteslice(0, @limit - @written))
        @io.flush
        raise SaveFailed
      end
      @written += data.bytesize
      @io.write(data)
    end

    def flush
      @io.flush
    end
  end

  # Writes the plan as a ustar stream to `io`; the layer goes through add_file_simple's
  # bounded stream 1 MiB at a time. Raises SaveFailed when `fail_half` and half the stream
  # (its exact length from the plan) is out.
  def write_tar(io, entries, fail_half: false)
    # Every entry's mtime is the epoch, as Docker sets with Chtimes(time.Unix(0, 0)) (save.go
    # above): the same images give the same bytes, so tests can compare checksums.
    # TarWriter takes its mtime from SOURCE_DATE_EPOCH.
    ENV["SOURCE_DATE_EPOCH"] = "0"
    out = LimitedWriter.new(io, fail_half ? stream_size(entries) / 2 : nil)
    tar = Gem::Package::TarWriter.new(out)
    entries.each do |name, kind, size, payload|
      case kind
      when :dir then tar.mkdir(name.chomp("/"), 0o755)
      when :symlink then tar.add_symlink(name, payload, 0o777)
      when :bytes then tar.add_file_simple(name, 0o644, size) { |f| f.write(payload) }
      when :layer
        chunk = layer_chunk(payload)
        tar.add_file_simple(name, 0o644, size) do |f|
          left = size
          while left.positive?
            n = [left, CHUNK].min
            f.write(n == CHUNK ? chunk : chunk.byteslice(0, n))
            left -= n
          end
        end
      end
    end
    tar.close
    out.flush
  end

  # --- the command line shared by bin/docker and bin/podman ---------------------------------

  Flavor = Struct.new(:tool, :prefix, :version, :error_prefix, :status, :bare_id, :missing,
                      :terminal, :save_failed, keyword_init: true)

  def die(flavor, message)
    warn "#{flavor.error_prefix}#{message}"
    exit flavor.status
  end

  # Takes `--format X`, `--format=X`, `-f X` out of args (inspect's formats).
  def take_value(args, long, short = nil)
    value = nil
    args.each_with_index do |a, i|
      if a == long || (short && a == short)
        value = args[i + 1]
        args[i, 2] = []
        break
      elsif a.start_with?("#{long}=")
        value = a.split("=", 2).last
        args.delete_at(i)
        break
      end
    end
    value
  end

  def inspect(flavor, args)
    format = take_value(args, "--format", "-f")
    die(flavor, "stand-in #{flavor.tool}: unsupported inspect flag #{args.find { |a| a.start_with?('-') }}") if args.any? { |a| a.start_with?("-") }
    die(flavor, "stand-in #{flavor.tool}: unsupported --format #{format.inspect} (only {{.Id}})") unless [nil, "{{.Id}}", "{{.ID}}", "{{ .Id }}"].include?(format)
    die(flavor, "#{flavor.tool} image inspect requires at least 1 argument") if args.empty?
    var = "#{flavor.prefix}_IMAGES"
    found = args.map { |ref| [ref, find(var, ref)] }
    missing = found.find { |_, img| img.nil? }
    die(flavor, flavor.missing.call(missing[0])) if missing
    ids = found.map { |_, img| flavor.bare_id ? img.id_hex : "sha256:#{img.id_hex}" }
    if format
      puts ids
    else
      puts JSON.pretty_generate(found.each_with_index.map do |(_, img), i|
        { "Id" => ids[i], "RepoTags" => [img.parsed.familiar], "Architecture" => "arm64", "Os" => "linux", "Size" => img.bytes }
      end)
    end
  end

  def save(flavor, args)
    output = take_value(args, "--output", "-o")
    platform = take_value(args, "--platform") if flavor.tool == "docker"
    format = take_value(args, "--format") if flavor.tool == "podman"
    multi = !args.delete("-m").nil? | !args.delete("--multi-image-archive").nil?
    args.delete("-q")
    args.delete("--quiet")
    die(flavor, "stand-in #{flavor.tool}: unsupported save flag #{args.find { |a| a.start_with?('-') }}") if args.any? { |a| a.start_with?("-") }
    die(flavor, "stand-in #{flavor.tool}: unsupported --platform #{platform}") if platform && platform != "linux/arm64"
    die(flavor, "stand-in podman: unsupported --format #{format} (only docker-archive)") if format && format != "docker-archive"
    die(flavor, "\"#{flavor.tool} save\" requires at least 1 argument.") if args.empty?
    var = "#{flavor.prefix}_IMAGES"
    extra = []
    refs = args.uniq
    refs, extra = [refs.first], refs.drop(1) if flavor.tool == "podman" && !multi
    imgs = refs.map { |ref| find(var, ref) || die(flavor, flavor.missing.call(ref)) }
    die(flavor, flavor.terminal) if output.nil? && $stdout.tty?
    Standin.delay("#{flavor.prefix}_SAVE_SECONDS")
    entries = flavor.tool == "docker" ? docker_entries(imgs) : podman_entries(imgs, extra)
    fail_half = !ENV["#{flavor.prefix}_FAIL_SAVE"].to_s.empty?
    if output
      tmp = "#{output}.#{Process.pid}.tmp" # the CLI writes a temporary file, then renames it
      begin
        File.open(tmp, "wb") { |f| write_tar(f, entries, fail_half: fail_half) }
        File.rename(tmp, output)
      ensure
        FileUtils.rm_f(tmp)
      end
    else
      $stdout.binmode
      write_tar($stdout, entries, fail_half: fail_half)
    end
  rescue SaveFailed
    die(flavor, flavor.save_failed)
  rescue Errno::EPIPE
    die(flavor, "write /dev/stdout: broken pipe")
  end

  def main(flavor, argv)
    args = argv.dup
    case args.shift
    when "--version", "-v" then puts flavor.version
    when "image", "images"
      case args.shift
      when "inspect" then inspect(flavor, args)
      when "save" then save(flavor, args)
      else die(flavor, "stand-in #{flavor.tool}: unsupported command #{argv.join(' ')}")
      end
    when "inspect" then inspect(flavor, args)
    when "save" then save(flavor, args)
    else die(flavor, "stand-in #{flavor.tool}: unsupported command #{argv.join(' ')}")
    end
  end
end
