# A node's containerd as k0s runs it, reached with `sudo /usr/local/bin/k0s ctr ...` over the
# stand-in ssh (bin/ssh): `images import -` from stdin, `images ls`, `images label`.
#
# k0s ctr talks to /run/k0s/containerd.sock in namespace k8s.io unless told otherwise.
# Source: k0sproject/k0s dff90ce cmd/ctr/ctr.go lines 19-56
#
# Node state, one file per VM: $K0SLAB_STANDIN_STATE/containerd/<VM name>.json (the Tart name,
# the "name" of vms/<VM name>.json, e.g. k0slab-worker-1), absent until the first successful
# import. One object keyed by the image's normalized name, as `ctr images ls` shows it:
#
#   {
#     "docker.io/library/myapp:dev": {
#       "digest": "sha256:<hex>",                 # the image's target (manifest) digest
#       "media_type": "application/vnd.oci.image.manifest.v1+json",
#       "size": 1059328,                          # bytes of the import stream that brought it
#       "checksum": "<hex>",                      # sha256 of that stream (bare hex)
#       "labels": { "k": "v" },                   # set by `ctr images label`, cleared by a re-import
#       "updated_at": 1750000000.5
#     }
#   }
#
# From Rust: serde_json::from_str(&fs::read_to_string(state.join("containerd/<vm>.json"))?)
# then v["docker.io/library/myapp:dev"]["checksum"]. Each import is also an `ssh` call in
# calls.jsonl.

require "digest"
require "openssl"
require "json"
require "fileutils"
require_relative "standin"
require_relative "image_archive"

module Containerd
  module_function

  SOCKET = "/run/k0s/containerd.sock"
  OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
  DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
  READ_CHUNK = 1024 * 1024

  class Error < StandardError; end

  # Source: containerd/containerd v2.3.4 client/client.go line 168: `failed to dial %q: %w`,
  # here with gRPC's error for a socket that does not exist. k0s runs containerd only beside a
  # kubelet (workers, controller+worker, single), so a plain controller has no socket.
  def dial_error
    "failed to dial \"#{SOCKET}\": connection error: desc = \"transport: Error while dialing: " \
      "dial unix #{SOCKET}: connect: no such file or directory\""
  end

  # --- the import stream --------------------------------------------------------------------
  # Source: containerd/containerd v2.3.4 core/images/archive/importer.go lines 65-131: tar
  # entries one by one; symlinks recorded (joined to their directory), directories and other
  # types skipped, oci-layout and manifest.json decoded as JSON (at most 20 MiB, lines 236-246),
  # every other regular file (index.json among them) ingested as a blob under its cleaned name.
  # The stand-in keeps only the JSON files and the names and sizes of the rest; it hashes the
  # whole stream as it passes and never holds a body in memory.
  class TarScanner
    JSON_FILES = %w[manifest.json index.json oci-layout].freeze
    JSON_LIMIT = 20 * 1024 * 1024
    ZERO = ("\0" * 512).b.freeze

    attr_reader :bytes, :files, :regular, :symlinks, :entries, :body_start, :body_size

    def initialize
      # OpenSSL's SHA-256 (the same digest, ~8x faster than the digest gem here): the stand-in
      # must not be slower than the 100 MiB/s link it models.
      @sha = OpenSSL::Digest.new("SHA256")
      @bytes = 0
      @state = :header
      @hbuf = +"".b
      @remaining = 0
      @pad = 0
      @collect = nil # String being collected for the current body, or nil
      @files = {}
      @regular = {}
      @symlinks = {}
      @entries = 0
      @pax = {}
      @longname = nil
      @body_start = nil # offset and size of the first body over 64 KiB (see Containerd.import)
      @body_size = nil
    end

    def checksum
      @sha.hexdigest
    end

    def feed(chunk)
      @sha.update(chunk)
      start = @bytes
      @bytes += chunk.bytesize
      pos = 0
      while pos < chunk.bytesize
        case @state
        when :end, :bad
          return
        when :header
          need = 512 - @hbuf.bytesize
          piece = chunk.byteslice(pos, need)
          @hbuf << piece
          pos += piece.bytesize
          next if @hbuf.bytesize < 512

          header(@hbuf, start + pos)
          @hbuf = +"".b
        when :body
          n = [@remaining, chunk.bytesize - pos].min
          @collect << chunk.byteslice(pos, n) if @collect
          @remaining -= n
          pos += n
          finish_body if @remaining.zero?
        when :pad
          n = [@pad, chunk.bytesize - pos].min
          @pad -= n
          pos += n
          @state = :header if @pad.zero?
        end
      end
    end

    # At the end of stdin. Raises Error for a stream that is not a tar or ends inside an entry
    # (Go's archive/tar: ErrHeader, io.ErrUnexpectedEOF; a clean end between entries is io.EOF).
    def finish!
      raise Error, (@entries.zero? ? "unrecognized image format" : "archive/tar: invalid tar header") if @state == :bad
      raise Error, "unexpected EOF" if %i[body pad].include?(@state) || (@state == :header && !@hbuf.empty?)
    end

    private

    def octal(field)
      if field.getbyte(0).to_i & 0x80 != 0 # base-256 (GNU) for sizes over 8 GiB
        field.bytes.drop(1).reduce(field.getbyte(0) & 0x7f) { |a, b| (a << 8) | b }
      else
        Integer(field.delete("\0 ").then { |s| s.empty? ? "0" : s }, 8)
      end
    end

    def clean(name)
      parts = []
      name.split("/").each do |p|
        next if p.empty? || p == "."

        p == ".." ? parts.pop : parts << p
      end
      parts.join("/")
    end

    def header(h, offset)
      if h == ZERO # end of archive (Go's reader stops at the first zero block's pair)
        @state = :end
        return
      end
      sum = h.bytes.each_with_index.sum { |b, i| (148...156).cover?(i) ? 32 : b }
      stored = (octal(h.byteslice(148, 8)) rescue -1)
      if sum != stored
        @state = :bad
        return
      end
      name = h.byteslice(0, 100).split("\0", 2).first.to_s
      if h.byteslice(257, 5) == "ustar"
        prefix = h.byteslice(345, 155).split("\0", 2).first.to_s
        name = "#{prefix}/#{name}" unless prefix.empty?
      end
      name = @longname if @longname
      name = @pax["path"] if @pax["path"]
      size = begin
        @pax["size"] ? Integer(@pax["size"]) : octal(h.byteslice(124, 12))
      rescue ArgumentError
        @state = :bad
        return
      end
      type = h.byteslice(156, 1)
      linkname = @pax["linkpath"] || h.byteslice(157, 100).split("\0", 2).first.to_s
      @longname = nil
      @pax = {} unless %w[x L].include?(type)
      @collect = nil
      @kind = nil
      case type
      when "x", "L"
        @kind = type
        @collect = +"".b
      when "g" then nil
      else
        @entries += 1
        cleaned = clean(name)
        if type == "2"
          @symlinks[cleaned] = clean(File.join(File.dirname(name), linkname))
        elsif ["0", "\0", "7"].include?(type)
          @regular[cleaned] = size
          if JSON_FILES.include?(cleaned) && size <= JSON_LIMIT
            @kind = :json
            @json_name = cleaned
            @collect = +"".b
          end
          if @body_start.nil? && size > 64 * 1024
            @body_start = offset
            @body_size = size
          end
        end
      end
      @remaining = size
      @pad = (512 - (size % 512)) % 512
      if size.zero?
        finish_body
      else
        @state = :body
      end
    end

    def finish_body
      case @kind
      when :json then @files[@json_name] = @collect
      when "L" then @longname = @collect.split("\0", 2).first
      when "x"
        # PAX records: "LEN key=value\n"
        rest = @collect
        until rest.empty?
          len = rest[/\A\d+/].to_i
          break if len.zero?

          record = rest.byteslice(0, len)
          rest = rest.byteslice(len..) || +""
          key, value = record.sub(/\A\d+ /, "").chomp("\n").split("=", 2)
          @pax[key] = value
        end
      end
      @collect = nil
      @state = @pad.zero? ? :header : :pad
    end
  end

  # Reads the whole import stream from `io` (chunks of 1 MiB, at most `rate` bytes per second
  # on average when given). With `fail_half`, stops after about half the stream and raises
  # "failed to import: unexpected EOF": half of a regular file's size; on a pipe (no length) the
  # middle of the first body over 64 KiB, which is about half of a one-image archive; without
  # such a body, at its end. Returns the images the stream names (see `images_of`).
  def import(io, rate: nil, fail_half: false)
    scanner = TarScanner.new
    buffer = String.new(capacity: READ_CHUNK, encoding: Encoding::BINARY)
    started = Time.now
    st = io.stat
    stop_at = st.file? ? st.size / 2 : nil if fail_half
    loop do
      if fail_half && stop_at.nil? && scanner.body_start
        stop_at = scanner.body_start + (scanner.body_size / 2)
      end
      want = READ_CHUNK
      want = [want, stop_at - scanner.bytes].min if fail_half && stop_at
      raise Error, "failed to import: unexpected EOF" if fail_half && stop_at && want <= 0

      chunk = io.read(want, buffer) # one buffer, reused: nothing of the stream is kept
      if chunk.nil?
        raise Error, "failed to import: unexpected EOF" if fail_half

        break
      end
      scanner.feed(chunk)
      if rate&.positive?
        ahead = (scanner.bytes.to_f / rate) - (Time.now - started)
        sleep(ahead) if ahead.positive?
      end
    end
    scanner.finish!
    { "images" => images_of(scanner), "size" => scanner.bytes, "checksum" => scanner.checksum }
  end

  # Reads stdin to its end and throws it away (the dial error comes after the whole stream).
  def drain(io)
    nil while io.read(READ_CHUNK)
  end

  def parse_json(scanner, name, what)
    JSON.parse(scanner.files.fetch(name))
  rescue JSON::ParserError => e
    raise Error, "untar #{what} #{name.inspect}: #{e.message.lines.first.strip}"
  end

  # Source: containerd/containerd v2.3.4 core/images/archive/importer.go lines 132-231: an
  # oci-layout (version 1.0.0) makes the tar an OCI layout read through index.json; else
  # manifest.json's entries become Docker schema 2 manifests, one index entry per RepoTag,
  # named by normalizeReference (reference.go lines 74-93, ParseDockerRef, see
  # lib/image_archive.rb); neither: "unrecognized image format". The image store keeps the
  # index entries that carry io.containerd.image.name.
  # The stand-in does not write manifests: a Docker-format image's digest is sha256 of its
  # manifest.json entry (Config and Layers), deterministic but not containerd's.
  def images_of(scanner)
    resolve = ->(n) { scanner.regular.key?(n) || scanner.regular.key?(scanner.symlinks[n].to_s) }
    if scanner.files.key?("oci-layout")
      version = parse_json(scanner, "oci-layout", "oci layout")["imageLayoutVersion"].to_s
      raise Error, "unsupported OCI version #{version}" unless version == "1.0.0"
      raise Error, "missing index.json in OCI layout 1.0.0" unless scanner.files.key?("index.json")

      index = parse_json(scanner, "index.json", "index")
      Array(index["manifests"]).filter_map do |m|
        name = m.dig("annotations", "io.containerd.image.name")
        digest = m["digest"].to_s
        raise Error, "content digest #{digest}: not found" unless resolve.call("blobs/#{digest.sub(':', '/')}")
        next if name.nil? || name.empty?

        { "name" => name, "digest" => digest, "media_type" => m["mediaType"] || OCI_MANIFEST }
      end
    elsif scanner.files.key?("manifest.json")
      items = parse_json(scanner, "manifest.json", "manifest")
      raise Error, "unrecognized image format" unless items.is_a?(Array)

      items.flat_map do |item|
        config = item["Config"].to_s
        raise Error, "image config #{config.inspect} not found" unless resolve.call(config)

        Array(item["Layers"]).each do |l|
          raise Error, "failed to resolve layers: layer #{l.inspect} not found" unless resolve.call(l)
        end
        digest = "sha256:#{Digest::SHA256.hexdigest(JSON.generate([config, item['Layers']]))}"
        Array(item["RepoTags"]).map do |tag|
          { "name" => ImageArchive.normalize(tag), "digest" => digest, "media_type" => DOCKER_MANIFEST }
        end
      end
    else
      raise Error, "unrecognized image format"
    end
  end

  # --- the node's image store ---------------------------------------------------------------

  def path(vm_name)
    dir = File.join(Standin.state_dir, "containerd")
    FileUtils.mkdir_p(dir)
    File.join(dir, "#{vm_name}.json")
  end

  def load(vm_name)
    Standin.read_json(path(vm_name), {})
  end

  # Read-modify-write under a lock: several imports may reach one node at once.
  def update(vm_name)
    File.open("#{path(vm_name)}.lock", File::CREAT | File::RDWR) do |lock|
      lock.flock(File::LOCK_EX)
      store = load(vm_name)
      result = yield store
      Standin.write_json(path(vm_name), store)
      result
    end
  end

  # An import creates each named image, or replaces it whole when the name exists: the
  # transfer service's image store calls Create, then on AlreadyExists Update without field
  # paths (Source: containerd/containerd v2.3.4 core/transfer/image/imagestore.go lines 326-343),
  # and Update without field paths writes the new image as given, labels included (Source:
  # containerd/containerd v2.3.4 core/metadata/images.go lines 180-264, line 246). `ctr images
  # import` gives no labels (extraRefLabels, imagestore.go lines 222-233), so a re-import DROPS
  # the labels set by `ctr images label`; the stand-in does the same.
  def record_import(vm_name, result)
    now = Time.now.to_f
    update(vm_name) do |store|
      result["images"].each do |img|
        store[img["name"]] = {
          "digest" => img["digest"], "media_type" => img["media_type"], "size" => result["size"],
          "checksum" => result["checksum"], "labels" => {}, "updated_at" => now
        }
      end
    end
  end

  # Source: containerd/containerd v2.3.4 cmd/ctr/commands/images/images.go lines 145-203
  # (label): each KEY=VALUE is a field path labels.KEY; ctr prints the image's labels
  # afterwards, joined by "," (in Go's map order; the stand-in sorts them).
  # Source: containerd/containerd v2.3.4 core/metadata/images.go lines 198-201, 226-233: an
  # unknown image is `image "NAME": not found`; a labels.KEY path copies the given value.
  # Source: containerd/containerd v2.3.4 core/metadata/boltutil/helpers.go lines 96-99: an empty
  # value is not stored, so KEY= removes the label.
  def label(vm_name, name, pairs)
    update(vm_name) do |store|
      img = store[name] or raise Error, "image #{name.inspect}: not found"
      pairs.each do |pair|
        k, v = pair.split("=", 2)
        v.to_s.empty? ? img["labels"].delete(k) : img["labels"][k] = v
      end
      img["labels"].sort.map { |k, v| "#{k}=#{v}" }.join(",")
    end
  end

  # Source: containerd/containerd v2.3.4 pkg/progress/humaans.go line 31: "%02.1f %s" over
  # 1024-based units, so a size is two words ("1.0 GiB"), e.g. via go-units CustomSize.
  def human(size)
    units = %w[B KiB MiB GiB TiB PiB EiB ZiB YiB]
    s = size.to_f
    i = 0
    while s >= 1024 && i < units.size - 1
      s /= 1024
      i += 1
    end
    format("%02.1f %s", s, units[i])
  end

  # Source: containerd/containerd v2.3.4 cmd/ctr/commands/images/images.go lines 85-139 (list):
  # a tabwriter (minwidth 1, padding 1, spaces) over REF TYPE DIGEST SIZE PLATFORMS LABELS,
  # every cell tab-terminated (so every column is padded, trailing blanks included); labels
  # sorted k=v joined by ",", or "-". Images come in name order (bolt keys are sorted).
  # The platform column is linux/arm64: Tart VMs on Apple silicon.
  def list_lines(vm_name)
    rows = [%w[REF TYPE DIGEST SIZE PLATFORMS LABELS]]
    load(vm_name).sort.each do |name, img|
      labels = img["labels"].empty? ? "-" : img["labels"].sort.map { |k, v| "#{k}=#{v}" }.join(",")
      rows << [name, img["media_type"], img["digest"], human(img["size"]), "linux/arm64", labels]
    end
    widths = rows.transpose.map { |col| col.map(&:size).max + 1 }
    rows.map { |r| r.each_with_index.map { |c, i| c.ljust(widths[i]) }.join }
  end
end
