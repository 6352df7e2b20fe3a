# The internet as the stand-ins see it: what its servers answer, whether it is there at all, how
# fast it is, and a ledger of every transfer from it. Shared by bin/curl (the Mac's curl),
# bin/k0sctl (its own download into the XDG cache, and what the nodes fetch) and the tests.
#
# STANDIN_OFFLINE                   set (non-empty): there is no internet; every name fails to
#                                   resolve, and each tool fails the way the real one does
# STANDIN_INTERNET_BYTES_PER_SECOND every transfer runs at most this fast (default unlimited),
#                                   written in pieces of at most 64 KiB, so a watcher sees a file
#                                   grow
#
# The ledger: $K0SLAB_STANDIN_STATE/internet.jsonl, one JSON line per transfer:
#   {"tool":"curl"|"k0sctl"|"node","host":<the node's hostname, or null>,"url":URL,
#    "bytes":N,"time":T}
# bytes are the body bytes that came over the link in that transfer (a resumed download counts
# what it fetched, not the whole file; header-only requests are not transfers); time is when it
# ended (Unix seconds). Tests and the benchmark sum it.
#
# The servers:
# - https://docs.k0sproject.io/stable.txt: STANDIN_K0S_STABLE and a newline (lib/k0s_releases.rb);
# - https://github.com/k0sproject/k0s/releases/download/<tag>/<asset> (tag with + or %2B):
#   generated releases (lib/k0s_releases.rb);
# - anything else: the files under tests/standins/releases/<host>/<path>;
# others are a 404. github.com answers a release download with a 302 to its object store
# (release-assets.githubusercontent.com), which serves the file with byte ranges: 206 for a
# range that starts inside the file, 416 for one that starts at or past its end (RFC 9110
# 14.1.2, 15.5.17: a range is satisfiable when its first position is below the length).

require "json"
require_relative "standin"
require_relative "k0s_releases"

module Internet
  module_function

  PIECE = 64 * 1024
  RELEASES_DIR = File.expand_path("../releases", __dir__)

  def offline?
    !ENV["STANDIN_OFFLINE"].to_s.empty?
  end

  # Bytes per second, nil for unlimited.
  def rate
    v = ENV["STANDIN_INTERNET_BYTES_PER_SECOND"].to_s
    return nil if v.empty?

    r = Float(v)
    r.positive? ? r : nil
  rescue ArgumentError
    Standin.fail!("stand-in: STANDIN_INTERNET_BYTES_PER_SECOND is not a number: #{v.inspect}", 99)
  end

  def record(tool, host, url, bytes)
    entry = { tool: tool, host: host, url: url, bytes: bytes, time: Time.now.to_f }
    File.open(File.join(Standin.state_dir, "internet.jsonl"), "a") do |f|
      f.flock(File::LOCK_EX)
      f.puts(JSON.generate(entry))
    end
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # Paces a transfer to `rate`: call `sent(n)` after each piece; it sleeps until the link would
  # have carried what was sent. `deadline` (a monotonic time) caps the sleep.
  class Pacer
    attr_reader :bytes

    def initialize(rate, deadline: nil)
      @rate = rate
      @deadline = deadline
      @start = Internet.monotonic
      @bytes = 0
    end

    def sent(n)
      @bytes += n
      return unless @rate

      wake = @start + (@bytes.to_f / @rate)
      wake = [wake, @deadline].min if @deadline
      ahead = wake - Internet.monotonic
      sleep(ahead) if ahead.positive?
    end

    # How many of the next `n` bytes arrive before the deadline (all of them without one).
    def fit(n)
      return n unless @deadline

      return 0 if Internet.monotonic >= @deadline
      return n unless @rate

      [[((@deadline - @start) * @rate).floor - @bytes, 0].max, n].min
    end

    # Sleeps until the deadline (a transfer that ran out of time ends there).
    def wait_deadline
      ahead = @deadline - Internet.monotonic
      sleep(ahead) if ahead.positive?
    end
  end

  # Waits as long as `bytes` take over the link (a node's pull, which leaves no file here).
  def carry(bytes)
    r = rate
    sleep(bytes.to_f / r) if r && bytes.positive?
  end

  # --- the servers --------------------------------------------------------------------------

  Response = Struct.new(:status, :reason, :headers, :asset, :location, keyword_init: true)

  def http_date(t = Time.now)
    t.utc.strftime("%a, %d %b %Y %H:%M:%S GMT")
  end

  def unescape(s)
    s.gsub(/%([0-9A-Fa-f]{2})/) { Regexp.last_match(1).hex.chr }
  end

  def split(url)
    m = url.match(%r{\A(https?)://([^/?#:]+)(?::\d+)?([^?#]*)}) or return nil
    [m[1], m[2].downcase, m[3].empty? ? "/" : m[3]]
  end

  def host_of(url)
    split(url)&.[](1)
  end

  # The file behind `url` (a KRelease asset or a static file), or nil.
  def asset(url)
    _, host, path = split(url)
    return nil if host.nil?

    if host == "docs.k0sproject.io" && path == "/stable.txt"
      body = "#{K0sReleases.stable}\n"
      return K0sReleases::Asset.new("stable.txt", [[body.bytesize, :bytes, body]])
    end
    if host == "github.com" && (m = path.match(%r{\A/k0sproject/k0s/releases/download/([^/]+)/([^/]+)\z}))
      return K0sReleases.asset(unescape(m[1]), unescape(m[2]))
    end

    file = File.expand_path(File.join(RELEASES_DIR, host, unescape(path)))
    return nil unless file.start_with?("#{RELEASES_DIR}/") && File.file?(file)

    body = File.binread(file)
    K0sReleases::Asset.new(File.basename(file), [[body.bytesize, :bytes, body]])
  end

  def github_release?(url)
    _, host, path = split(url)
    host == "github.com" && path.match?(%r{\A/[^/]+/[^/]+/releases/download/})
  end

  # The answers to one request for `url` (`range_from`: the first byte asked for with a Range
  # header, nil for none), redirects included when `follow`. The last answer's `asset` is the
  # body, nil for none; its headers are GitHub's (for release downloads) in curl's HTTP/2 form.
  def request(url, range_from: nil, follow: true)
    asset = asset(url)
    now = http_date
    if asset.nil?
      body = "Not Found"
      return [Response.new(status: 404, headers: [["content-type", "text/plain; charset=utf-8"], ["date", now],
                                                  ["content-length", body.bytesize.to_s]],
                           asset: K0sReleases::Asset.new("404", [[body.bytesize, :bytes, body]]))]
    end
    chain = []
    if github_release?(url)
      id = Digest::SHA256.hexdigest(url)
      location = "https://release-assets.githubusercontent.com/github-production-release-asset/#{id[0, 9].to_i(16) % 999_999_999}/" \
                 "#{id[9, 8]}-#{id[17, 4]}-#{id[21, 4]}-#{id[25, 4]}-#{id[29, 12]}?sp=r&sr=b&spr=https" \
                 "&rscd=attachment%3B+filename%3D#{asset.name.gsub('+', '%2B')}&rsct=application%2Foctet-stream"
      chain << Response.new(status: 302, location: location,
                            headers: [["server", "GitHub.com"], ["date", now], ["content-type", "text/html; charset=utf-8"],
                                      ["location", location], ["cache-control", "no-cache"], ["content-length", "0"]])
      return chain unless follow
    end
    size = asset.size
    headers = [["content-type", "application/octet-stream"], ["last-modified", "Tue, 02 Sep 2025 10:00:00 GMT"],
               ["etag", "\"0x#{Digest::SHA256.hexdigest(asset.name)[0, 15].upcase}\""]]
    headers << ["content-disposition", "attachment; filename=#{asset.name}"] if github_release?(url)
    headers += [["accept-ranges", "bytes"], ["date", now]]
    if range_from && range_from >= size
      chain << Response.new(status: 416, headers: headers + [["content-range", "bytes */#{size}"], ["content-length", "0"]])
    elsif range_from&.positive?
      chain << Response.new(status: 206, asset: asset,
                            headers: headers + [["content-range", "bytes #{range_from}-#{size - 1}/#{size}"],
                                                ["content-length", (size - range_from).to_s]])
    else
      chain << Response.new(status: 200, asset: asset, headers: headers + [["content-length", size.to_s]])
    end
    chain
  end
end
