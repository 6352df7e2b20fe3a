# A stand-in for the vagrant-tart plugin, which only runs on macOS, so that the real
# `vagrant validate` can check k0slab's Vagrantfiles on Linux.
#
# It registers a `tart` provider the way vagrant-tart does (no box needed, parallel) with a
# provider config that knows vagrant-tart's settings and checks their values. A setting the
# plugin does not have is reported by Vagrant itself ("The following settings shouldn't
# exist"). Machines are never created: every machine is "not created".
#
# Loaded through $VAGRANT_HOME/Vagrantfile (see tests/validators.rs).

module K0slabTartStandin
  SETTINGS = %i[image name cpus memory disk gui suspendable ip_resolver display vnc
                vnc_experimental registry username password volumes extra_run_args].freeze

  class Config < Vagrant.plugin("2", :config)
    attr_accessor(*SETTINGS)

    def initialize
      super
      SETTINGS.each { |s| instance_variable_set("@#{s}", UNSET_VALUE) }
    end

    def finalize!
      SETTINGS.each do |s|
        instance_variable_set("@#{s}", nil) if instance_variable_get("@#{s}") == UNSET_VALUE
      end
    end

    def validate(_machine)
      errors = _detected_errors
      errors << "tart.image is required" if @image.to_s.empty?
      errors << "tart.name is required" if @name.to_s.empty?
      %i[cpus memory disk].each do |s|
        v = instance_variable_get("@#{s}")
        errors << "tart.#{s} must be a whole number >= 1, not #{v.inspect}" unless v.nil? || (v.is_a?(Integer) && v >= 1)
      end
      %i[gui suspendable vnc vnc_experimental].each do |s|
        v = instance_variable_get("@#{s}")
        errors << "tart.#{s} must be true or false, not #{v.inspect}" unless [nil, true, false].include?(v)
      end
      unless [nil, "dhcp", "arp"].include?(@ip_resolver)
        errors << "tart.ip_resolver must be dhcp or arp, not #{@ip_resolver.inspect}"
      end
      # extra_run_args must be an Array (letiemble/vagrant-tart lib/vagrant-tart/config.rb).
      unless @extra_run_args.nil? || @extra_run_args.is_a?(Array)
        errors << "tart.extra_run_args must be an array, not #{@extra_run_args.inspect}"
      end
      { "Tart Provider" => errors }
    end
  end

  class Provider < Vagrant.plugin("2", :provider)
    def self.installed?
      true
    end

    def self.usable?(_raise_error = false)
      true
    end

    def initialize(machine)
      super
      @machine = machine
    end

    def state
      Vagrant::MachineState.new(:not_created, "not created", "The stand-in never creates machines.")
    end
  end

  class Plugin < Vagrant.plugin("2")
    name "tart (k0slab test stand-in)"
    config(:tart, :provider) { Config }
    provider(:tart, box_optional: true, parallel: true) { Provider }
  end
end
