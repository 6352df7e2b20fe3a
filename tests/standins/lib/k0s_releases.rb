# The k0s releases the stand-in internet serves at
# https://github.com/k0sproject/k0s/releases/download/<tag>/<asset> (lib/internet.rb): generated
# on request, never committed. Shared by bin/curl (the Mac's downloads), bin/k0sctl (its own
# download into the XDG cache, and the nodes' image pulls) and the tests.
#
# Which releases: STANDIN_K0S_RELEASES (default v1.33.4+k0s.0,v1.34.1+k0s.0,v1.36.1+k0s.0); any
# other tag is a 404. Each release has, per arch (arm64, amd64):
# - the binary `k0s-<tag>-<arch>`, STANDIN_K0S_BINARY_BYTES (default 1 MiB): a first line naming
#   the version and arch, then filler;
# - the airgap bundle, STANDIN_K0S_BUNDLE_BYTES (default 3 MiB), named
#   `k0s-airgap-bundle-<tag>-<arch>` up to v1.35 and `k0s-airgap-bundle-<tag>-linux-<arch>.tar`
#   from v1.36.1 on (k0sproject/k0s .github/workflows/release.yml at v1.33.4+k0s.0 lines 147,
#   319; at v1.36.1+k0s.0 lines 182, 405; research19 §4);
# - `sha256sums.txt` over all of them, as `sha256sum -b` writes it: `<hex> *<name>` (release.yml
#   at v1.33.4+k0s.0 lines 440-442, at v1.36.1+k0s.0 line 555), itself not listed (it is
#   written to the parent directory).
#
# Every asset's bytes are the same on every request: 64 KiB blocks made from the SHA-256 of the
# asset's name, each with its block number in its first 8 bytes, so a resumed download joins up
# and a corrupt one is caught by its checksum. STANDIN_K0S_CORRUPT=<asset name> serves that asset
# with one byte changed (the middle one), every time; sha256sums.txt keeps the good digest.
#
# The bundle is an uncompressed tar (k0s imports only those: containerd's importer reads the
# stream with tar.NewReader and no decompression, research19 §3), an OCI image layout as
# `k0s airgap bundle-artifacts` writes: index.json first, naming every image of
# `k0s airgap list-images --all` (k0sproject/k0s Makefile at v1.34.1+k0s.0 lines 251-262) with
# io.containerd.image.name, then oci-layout, a small manifest blob per image, and a filler blob
# padding it to its size. lib/containerd.rb reads it back the way containerd's importer does.

require "digest"
require "json"
require_relative "standin"

module K0sReleases
  module_function

  DEFAULT_RELEASES = "v1.33.4+k0s.0,v1.34.1+k0s.0,v1.36.1+k0s.0".freeze
  DEFAULT_STABLE = "v1.34.1+k0s.0".freeze
  BLOCK = 64 * 1024
  ARCHES = %w[arm64 amd64].freeze
  OCI_INDEX = "application/vnd.oci.image.index.v1+json".freeze
  OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json".freeze

  def releases
    ENV.fetch("STANDIN_K0S_RELEASES", DEFAULT_RELEASES).split(",").map(&:strip).reject(&:empty?)
  end

  # What https://docs.k0sproject.io/stable.txt says (k0sproject/version v0.8.0 latest.go lines
  # 15-32 reads it; the body is trimmed, line 72).
  def stable
    v = ENV["STANDIN_K0S_STABLE"].to_s
    v.empty? ? DEFAULT_STABLE : v
  end

  def bytes_var(var, default)
    v = ENV[var].to_s
    return default if v.empty?

    Integer(v, 10)
  rescue ArgumentError
    Standin.fail!("stand-in: #{var} is not a number of bytes: #{v.inspect}", 99)
  end

  def binary_bytes
    bytes_var("STANDIN_K0S_BINARY_BYTES", 1024 * 1024)
  end

  def bundle_bytes
    bytes_var("STANDIN_K0S_BUNDLE_BYTES", 3 * 1024 * 1024)
  end

  # The tag with or without its leading v, as k0sproject/version's NewVersion takes it
  # (version.go lines 37-40); String() puts the v back (lines 192-215).
  def canonical(version)
    v = version.to_s.strip
    v.empty? ? v : "v#{v.delete_prefix('v')}"
  end

  def binary_name(tag, arch)
    "k0s-#{tag}-#{arch}"
  end

  def bundle_name(tag, arch)
    Standin.version_at_least?(tag, "1.36.1") ? "k0s-airgap-bundle-#{tag}-linux-#{arch}.tar" : "k0s-airgap-bundle-#{tag}-#{arch}"
  end

  # --- the images of a release --------------------------------------------------------------
  # From k0sproject/k0s pkg/constant/constant.go at each tag (v1.33.4+k0s.0 lines 80-101,
  # v1.34.1+k0s.0 lines 67-96, v1.36.1+k0s.0 lines 72-105); any other release gets v1.34.1's
  # with its own kube-proxy tag.
  IMAGE_TABLE = {
    "1.33" => { konnectivity: "v0.32.0", pushgateway: "1.4.0-k0s.0", metrics: "v0.7.2-0", pause: "3.10.1",
                coredns: "1.12.2", envoy: "v1.32.8", calico: "v3.29.4-0",
                kuberouter: "v2.5.0-iptables1.8.11-0", cni_node: "1.7.1-k0s.0" },
    "1.34" => { konnectivity: "v0.33.0", pushgateway: "1.4.0-k0s.0", metrics: "v0.7.2-0", pause: "3.10.1",
                coredns: "1.13.1", envoy: "v1.34.3", calico: "v3.29.6-0",
                kuberouter: "v2.6.1-iptables1.8.11-0", cni_node: "1.8.0-k0s.0" },
    "1.36" => { konnectivity: "v0.36.0-k0s.0", pushgateway: "1.4.0-k0s.1", metrics: "v0.8.1-0", pause: "3.10.2-0",
                coredns: "1.14.3-k0s.0", envoy: "v1.37.2", calico: "v3.32.0-0",
                kuberouter: "v2.10.0-iptables1.8.13-k0s.0", cni_node: "1.8.0-k0s.0" }
  }.freeze

  def image_tags(tag)
    minor = tag.to_s[/\A v?(\d+\.\d+)/x, 1]
    IMAGE_TABLE[minor] || IMAGE_TABLE["1.34"]
  end

  # The images the nodes of a cluster of `tag` run, with its network provider: the base images
  # and the provider's (k0sproject/k0s pkg/airgap/images.go at v1.36.1+k0s.0 lines 28-78,
  # `k0s airgap list-images` without --all). These are what a node pulls without a bundle.
  def system_images(tag, provider = "kuberouter")
    t = image_tags(tag)
    k8s = tag.to_s[/\d+\.\d+\.\d+/]
    base = ["quay.io/k0sproject/pause:#{t[:pause]}",
            "quay.io/k0sproject/apiserver-network-proxy-agent:#{t[:konnectivity]}",
            "quay.io/k0sproject/kube-proxy:v#{k8s}",
            "quay.io/k0sproject/coredns:#{t[:coredns]}",
            "quay.io/k0sproject/metrics-server:#{t[:metrics]}"]
    if provider == "calico"
      base + ["quay.io/k0sproject/calico-cni:#{t[:calico]}",
              "quay.io/k0sproject/calico-kube-controllers:#{t[:calico]}",
              "quay.io/k0sproject/calico-node:#{t[:calico]}"]
    else
      base + ["quay.io/k0sproject/cni-node:#{t[:cni_node]}", "quay.io/k0sproject/kube-router:#{t[:kuberouter]}"]
    end
  end

  # `k0s airgap list-images --all`: what the release's bundle holds (images.go lines 28-97).
  def bundle_images(tag)
    t = image_tags(tag)
    (system_images(tag, "kuberouter") + system_images(tag, "calico") +
      ["quay.io/k0sproject/pushgateway-ttl:#{t[:pushgateway]}",
       "quay.io/k0sproject/envoy-distroless:#{t[:envoy]}"]).uniq
  end

  # --- assets -------------------------------------------------------------------------------

  # An asset: its name, its size and its bytes as segments, read in pieces of at most 64 KiB.
  # A segment is [length, :bytes, String] or [length, :fill, seed].
  class Asset
    attr_reader :name, :size

    # `corrupt`: whether STANDIN_K0S_CORRUPT applies (not for the digests of sha256sums.txt).
    def initialize(name, segments, corrupt: true)
      @name = name
      @segments = segments
      @size = segments.sum(&:first)
      @corrupt_at = corrupt && ENV["STANDIN_K0S_CORRUPT"].to_s == name && @size.positive? ? @size / 2 : nil
      @blocks = {}
    end

    # Yields the bytes from `offset` to the end, in pieces of at most 64 KiB.
    def each_piece(offset = 0)
      start = 0
      @segments.each do |length, kind, data|
        seg_end = start + length
        pos = [offset, start].max
        while pos < seg_end
          n = [BLOCK - ((pos - start) % BLOCK), seg_end - pos].min
          piece = kind == :bytes ? data.byteslice(pos - start, n) : fill(data, pos - start, n)
          if @corrupt_at && @corrupt_at >= pos && @corrupt_at < pos + n
            piece = piece.dup
            i = @corrupt_at - pos
            piece.setbyte(i, piece.getbyte(i) ^ 0x01)
          end
          yield piece
          pos += n
        end
        start = seg_end
      end
    end

    def read_all
      out = +"".b
      each_piece { |p| out << p }
      out
    end

    private

    # Bytes `from`...`from + n` of the filler made from `seed` (n never crosses a block).
    def fill(seed, from, n)
      base = (@blocks[seed] ||= (Digest::SHA256.digest(seed) * (BLOCK / 32)).b)
      block = [from / BLOCK].pack("Q>") + base.byteslice(8, BLOCK - 8)
      block.byteslice(from % BLOCK, n)
    end
  end

  def binary(tag, arch, corrupt: true)
    name = binary_name(tag, arch)
    size = binary_bytes
    header = "k0s #{tag} linux/#{arch} (k0slab stand-in binary)\n".b.byteslice(0, size)
    Asset.new(name, [[header.bytesize, :bytes, header], [size - header.bytesize, :fill, name]], corrupt: corrupt)
  end

  def pad512(n)
    (512 - (n % 512)) % 512
  end

  # A ustar header for a regular file (POSIX.1-1988 layout; mtime 0, root-owned).
  def tar_header(name, size)
    fields = [name, "0000644", "0000000", "0000000", format("%011o", size), format("%011o", 0), " " * 8, "0", "",
              "ustar", "00", "root", "root", "0000000", "0000000", ""]
    h = fields.pack("a100a8a8a8a12a12a8a1a100a6a2a32a32a8a8a155").b
    h << ("\0" * (512 - h.bytesize))
    h[148, 8] = format("%06o\0 ", h.bytes.sum)
    h
  end

  def tar_file(name, body)
    tar_header(name, body.bytesize) + body + ("\0" * pad512(body.bytesize))
  end

  def bundle(tag, arch, corrupt: true)
    name = bundle_name(tag, arch)
    blobs = []
    manifests = bundle_images(tag).map do |ref|
      body = JSON.generate({ "schemaVersion" => 2, "mediaType" => OCI_MANIFEST,
                             "annotations" => { "k0slab.standin" => "#{ref} #{arch}" } })
      hex = Digest::SHA256.hexdigest(body)
      blobs << ["blobs/sha256/#{hex}", body]
      { "mediaType" => OCI_MANIFEST, "digest" => "sha256:#{hex}", "size" => body.bytesize,
        "annotations" => { "io.containerd.image.name" => ref,
                           "org.opencontainers.image.ref.name" => ref.split(":").last },
        "platform" => { "architecture" => arch, "os" => "linux" } }
    end
    index = JSON.generate({ "schemaVersion" => 2, "mediaType" => OCI_INDEX, "manifests" => manifests })
    head = tar_file("index.json", index) + tar_file("oci-layout", '{"imageLayoutVersion":"1.0.0"}') +
           blobs.map { |n, b| tar_file(n, b) }.join
    filler_name = "blobs/sha256/#{Digest::SHA256.hexdigest("filler #{name}")}"
    fixed = head.bytesize + 512 + 1024
    total = [bundle_bytes, fixed].max
    filler = ((total - fixed) / 512) * 512
    tail = "\0" * (1024 + (total - fixed - filler)) # end of archive, then zeros to the size
    Asset.new(name, [[head.bytesize, :bytes, head], [512, :bytes, tar_header(filler_name, filler)],
                     [filler, :fill, name], [tail.bytesize, :bytes, tail]], corrupt: corrupt)
  end

  # sha256sums.txt of release `tag`: the digests of the good bytes, sorted by name.
  def sha256sums(tag)
    require "openssl" # OpenSSL's SHA-256: several times the digest gem's speed on megabytes
    lines = ARCHES.flat_map { |a| [binary(tag, a, corrupt: false), bundle(tag, a, corrupt: false)] }.map do |a|
      sha = OpenSSL::Digest.new("SHA256")
      a.each_piece { |p| sha.update(p) }
      "#{sha.hexdigest} *#{a.name}\n"
    end
    sums = lines.sort_by { |l| l.split(" *", 2).last }.join
    Asset.new("sha256sums.txt", [[sums.bytesize, :bytes, sums]])
  end

  # The asset `name` of release `tag` (a tag as the URL gives it, %2B already decoded), or nil.
  def asset(tag, name)
    tag = canonical(tag)
    return nil unless releases.map { |r| canonical(r) }.include?(tag)

    if name == "sha256sums.txt"
      sha256sums(tag)
    else
      ARCHES.each do |a|
        return binary(tag, a) if name == binary_name(tag, a)
        return bundle(tag, a) if name == bundle_name(tag, a)
      end
      nil
    end
  end
end
