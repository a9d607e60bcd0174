// config.json and state.json of the OCI runtime-spec: realistic files decode, encode and
// decode again to the same value, and every kind of mistake is an error naming the JSON path.
import Foundation
import SystemPackage
import Testing
@testable import Isolation

/// What `runc spec` writes (runc 1.2, on a cgroup v2 host): tabs, `terminal` true, hostname runc.
let runcSpecJSON = #"""
{
	"ociVersion": "1.2.0",
	"process": {
		"terminal": true,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			"sh"
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "runc",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": [
				"nosuid",
				"strictatime",
				"mode=755",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": [
				"nosuid",
				"noexec",
				"newinstance",
				"ptmxmode=0666",
				"mode=0620",
				"gid=5"
			]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"mode=1777",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": [
				"nosuid",
				"noexec",
				"nodev"
			]
		},
		{
			"destination": "/sys",
			"type": "sysfs",
			"source": "sysfs",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"relatime",
				"ro"
			]
		}
	],
	"linux": {
		"resources": {
			"devices": [
				{
					"allow": false,
					"access": "rwm"
				}
			]
		},
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "network"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			},
			{
				"type": "cgroup"
			}
		],
		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
}
"""#

/// A rootless podman-style config with the rest of the spec: hooks, ID mappings, every
/// cgroup controller, seccomp with argument rules, devices, and fields from other
/// platforms and later spec versions that must be ignored.
let podmanLikeJSON = #"""
{
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": false,
    "consoleSize": {"height": 40, "width": 120},
    "user": {"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [1000, 10]},
    "args": ["/usr/bin/nginx", "-g", "daemon off;"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "container=podman", "HOME=/home/www"],
    "cwd": "/srv/www",
    "capabilities": {
      "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"],
      "effective": ["CAP_NET_BIND_SERVICE"],
      "inheritable": [],
      "permitted": ["CAP_NET_BIND_SERVICE"],
      "ambient": ["CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [
      {"type": "RLIMIT_NOFILE", "hard": 524288, "soft": 524288},
      {"type": "RLIMIT_NPROC", "hard": 4194304, "soft": 4194304},
      {"type": "RLIMIT_CORE", "hard": 18446744073709551615, "soft": 0}
    ],
    "noNewPrivileges": true,
    "apparmorProfile": "containers-default-0.57.4",
    "oomScoreAdj": 100,
    "selinuxLabel": "system_u:system_r:container_t:s0:c1,c2",
    "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
    "scheduler": {"policy": "SCHED_BATCH", "nice": 5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
    "execCPUAffinity": {"initial": "0", "final": "0-3"},
    "user.comment": "ignored"
  },
  "root": {"path": "/home/me/.local/share/containers/storage/overlay/2f8d3c/merged"},
  "hostname": "web",
  "domainname": "example.test",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/etc/hosts", "type": "bind", "source": "/run/user/1000/containers/overlay-containers/2f8d3c/userdata/hosts", "options": ["bind", "rprivate"]},
    {"destination": "/srv/www", "type": "bind", "source": "/home/me/site", "options": ["rbind", "ridmap", "ro"],
     "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
     "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}
  ],
  "hooks": {
    "prestart": [{"path": "/usr/bin/nvidia-container-runtime-hook", "args": ["nvidia-container-runtime-hook", "prestart"]}],
    "createRuntime": [{"path": "/usr/libexec/podman/netns-setup", "args": ["netns-setup", "--pid"], "env": ["DEBUG=1"], "timeout": 10}],
    "createContainer": [{"path": "/usr/local/bin/prepare"}],
    "startContainer": [{"path": "/usr/local/bin/ready", "timeout": 2}],
    "poststart": [{"path": "/usr/bin/logger", "args": ["logger", "started"]}],
    "poststop": [{"path": "/usr/bin/podman", "args": ["podman", "container", "cleanup"], "timeout": 30}]
  },
  "annotations": {
    "io.container.manager": "libpod",
    "io.podman.annotations.autoremove": "TRUE",
    "org.opencontainers.image.stopSignal": "15"
  },
  "linux": {
    "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}, {"containerID": 1, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}, {"containerID": 1, "hostID": 100000, "size": 65536}],
    "timeOffsets": {"monotonic": {"secs": 86400, "nanosecs": 500}, "boottime": {"secs": -3600}},
    "sysctl": {"net.ipv4.ping_group_range": "0 0", "net.ipv4.ip_unprivileged_port_start": "0"},
    "resources": {
      "devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 136, "access": "rw"},
        {"allow": true, "type": "a"}
      ],
      "memory": {"limit": -1, "reservation": 268435456, "swap": -1, "kernel": -1, "kernelTCP": 67108864,
                 "swappiness": 60, "disableOOMKiller": false, "useHierarchy": true, "checkBeforeUpdate": true},
      "cpu": {"shares": 1024, "quota": -1, "burst": 5000, "period": 100000, "realtimeRuntime": 0,
              "realtimePeriod": 1000000, "cpus": "0-3", "mems": "0", "idle": 0},
      "pids": {"limit": 2048},
      "blockIO": {
        "weight": 500, "leafWeight": 300,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 200}, {"major": 8, "minor": 16, "weight": 100}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 104857600}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 52428800}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 1000}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 500}]
      },
      "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}, {"pageSize": "1GB", "limit": 0}],
      "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}, {"name": "lo", "priority": 1000}]},
      "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 1000}},
      "unified": {"memory.high": "1073741824", "io.weight": "default 100"}
    },
    "cgroupsPath": "user.slice:libpod:2f8d3c",
    "namespaces": [
      {"type": "pid"},
      {"type": "network", "path": "/run/user/1000/netns/netns-9d2b"},
      {"type": "ipc"},
      {"type": "uts"},
      {"type": "mount"},
      {"type": "user"},
      {"type": "cgroup"},
      {"type": "time"}
    ],
    "devices": [
      {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
      {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 432},
      {"path": "/dev/pipe", "type": "p"}
    ],
    "seccomp": {
      "defaultAction": "SCMP_ACT_ERRNO",
      "defaultErrnoRet": 38,
      "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
      "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
      "listenerPath": "/run/seccomp-agent.sock",
      "listenerMetadata": "profile=web",
      "syscalls": [
        {"names": ["accept", "accept4", "read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["ptrace"], "action": "SCMP_ACT_NOTIFY"},
        {"names": ["kexec_load"], "action": "SCMP_ACT_KILL_PROCESS"}
      ]
    },
    "rootfsPropagation": "rslave",
    "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/sys/firmware"],
    "readonlyPaths": ["/proc/bus", "/proc/sys", "/proc/sysrq-trigger"],
    "mountLabel": "system_u:object_r:container_file_t:s0:c1,c2",
    "intelRdt": {"closID": "guaranteed", "l3CacheSchema": "L3:0=7f0", "memBwSchema": "MB:0=20", "enableCMT": true, "enableMBM": false},
    "personality": {"domain": "LINUX32", "flags": []},
    "netDevices": {"eth1": {"name": "eth1"}},
    "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"}
  },
  "windows": {"layerFolders": ["C:\\layers\\1"]},
  "vm": {"hypervisor": {"path": "/usr/bin/qemu"}, "kernel": {"path": "/boot/vmlinuz"}}
}
"""#

func ociDecodeConfig(_ json: String) throws(IsolationError) -> OCIConfig {
    try OCIConfig.decode(json: Array(json.utf8))
}

/// The error decoding `json` gives; fails the test if it decodes.
func ociConfigError(_ json: String, sourceLocation: SourceLocation = #_sourceLocation) -> IsolationError? {
    do {
        _ = try ociDecodeConfig(json)
        Issue.record("decoded without an error:\n\(json)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// A small valid config with `process` and `linux` spliced in, for error cases.
func ociMinimalConfig(process: String = #"{"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}"#,
                   linux: String = #"{"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]}"#,
                   extra: String = "") -> String {
    """
    {
      "ociVersion": "1.2.0",
      "root": {"path": "rootfs"},
      "process": \(process),
      "linux": \(linux)\(extra)
    }
    """
}

@Suite("OCI config.json: realistic files")
struct OCIConfigDecodingTests {
    @Test func runcSpecDecodesAndMatchesTheDefaultSpec() throws {
        let config = try ociDecodeConfig(runcSpecJSON)
        #expect(config.ociVersion == "1.2.0")
        #expect(config.process?.args == ["sh"])
        #expect(config.process?.user == OCIConfig.User(uid: 0, gid: 0))
        #expect(config.process?.rlimits == [OCIConfig.Rlimit(type: .openFiles, hard: 1024, soft: 1024)])
        #expect(config.root == OCIConfig.Root(path: "rootfs", readonly: true))
        #expect(config.mounts?.map(\.destination) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"])
        #expect(config.mounts?[0].options == nil)
        #expect(config.linux?.namespaceKinds == [.pid, .network, .ipc, .uts, .mount, .cgroup])
        #expect(config.linux?.resources?.devices == [OCIConfig.DeviceRule(allow: false, access: "rwm")])

        var expected = OCIConfig.defaultSpec(terminal: true)
        expected.hostname = "runc"
        #expect(config == expected)
    }

    @Test func defaultSpecIsRuncsWithOurHostname() throws {
        let spec = OCIConfig.defaultSpec(args: ["/bin/echo", "hi"])
        #expect(spec.hostname == "container")
        #expect(spec.process?.terminal == false)
        #expect(spec.process?.args == ["/bin/echo", "hi"])
        #expect(spec.process?.noNewPrivileges == true)
        #expect(spec.process?.capabilities?.bounding == ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
        #expect(spec.process?.capabilities?.ambient == nil)
        #expect(spec.linux?.namespaces?.map(\.type) == [.pid, .network, .ipc, .uts, .mount, .cgroup])
        #expect(OCIConfig.defaultSpec(cgroupNamespace: false).linux?.namespaces?.count == 5)
        #expect(spec.linux?.maskedPaths?.contains("/proc/kcore") == true)
        #expect(spec.linux?.readonlyPaths?.contains("/proc/sys") == true)
        try spec.validate()
    }

    @Test func podmanLikeConfigDecodesEveryField() throws {
        let config = try ociDecodeConfig(podmanLikeJSON)
        let process = try #require(config.process)
        #expect(config.ociVersion == "1.0.2-dev")
        #expect(process.consoleSize == OCIConfig.ConsoleSize(height: 40, width: 120))
        #expect(process.user == OCIConfig.User(uid: 1000, gid: 1000, umask: 18, additionalGids: [1000, 10]))
        #expect(process.args == ["/usr/bin/nginx", "-g", "daemon off;"])
        #expect(process.cwd == "/srv/www")
        #expect(process.capabilities?.inheritable == [])
        #expect(process.capabilities?.ambient == ["CAP_NET_BIND_SERVICE"])
        #expect(process.rlimits?[2] == OCIConfig.Rlimit(type: .core, hard: UInt64.max, soft: 0))
        #expect(process.oomScoreAdj == 100)
        #expect(process.ioPriority == OCIConfig.IOPriority(ioClass: .bestEffort, priority: 4))
        #expect(process.scheduler == OCIConfig.Scheduler(policy: .batch, nice: 5, flags: [.resetOnFork]))
        #expect(config.root == OCIConfig.Root(path: "/home/me/.local/share/containers/storage/overlay/2f8d3c/merged"))
        #expect(config.domainname == "example.test")
        #expect(config.mounts?[4].uidMappings == [OCIConfig.IDMapping(containerID: 0, hostID: 1000, size: 1)])

        let hooks = try #require(config.hooks)
        #expect(hooks.prestart?.first?.args == ["nvidia-container-runtime-hook", "prestart"])
        #expect(hooks.createRuntime?.first == OCIConfig.Hook(path: "/usr/libexec/podman/netns-setup", args: ["netns-setup", "--pid"], env: ["DEBUG=1"], timeout: 10))
        #expect(hooks.createContainer?.first?.path == "/usr/local/bin/prepare")
        #expect(hooks.startContainer?.first?.timeout == 2)
        #expect(hooks.poststart?.count == 1)
        #expect(hooks.poststop?.first?.timeout == 30)
        #expect(config.annotations?["io.container.manager"] == "libpod")

        let linux = try #require(config.linux)
        #expect(linux.uidMappings?[1] == OCIConfig.IDMapping(containerID: 1, hostID: 100_000, size: 65536))
        #expect(linux.timeOffsets?["boottime"] == OCIConfig.TimeOffset(secs: -3600))
        #expect(linux.timeOffsets?["monotonic"] == OCIConfig.TimeOffset(secs: 86400, nanosecs: 500))
        #expect(linux.sysctl?["net.ipv4.ping_group_range"] == "0 0")
        #expect(linux.cgroupsPath == "user.slice:libpod:2f8d3c")
        #expect(linux.namespaceKinds == .all)
        #expect(linux.namespaces?[1].path == "/run/user/1000/netns/netns-9d2b")
        #expect(linux.devices?[0] == OCIConfig.Device(type: .character, path: "/dev/fuse", major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0))
        #expect(linux.devices?[2] == OCIConfig.Device(type: .fifo, path: "/dev/pipe"))
        #expect(linux.rootfsPropagation == .rslave)
        #expect(linux.mountLabel == "system_u:object_r:container_file_t:s0:c1,c2")
        #expect(linux.intelRdt == OCIConfig.IntelRdt(closID: "guaranteed", l3CacheSchema: "L3:0=7f0", memBwSchema: "MB:0=20", enableCMT: true, enableMBM: false))
        #expect(linux.personality == OCIConfig.Personality(domain: .linux32, flags: []))

        let resources = try #require(linux.resources)
        #expect(resources.devices?[2] == OCIConfig.DeviceRule(allow: true, type: .character, major: 136, access: "rw"))
        #expect(resources.devices?[3].type == .all)
        #expect(resources.memory == OCIConfig.Memory(limit: -1, reservation: 268_435_456, swap: -1, kernel: -1, kernelTCP: 67_108_864,
                                                     swappiness: 60, disableOOMKiller: false, useHierarchy: true, checkBeforeUpdate: true))
        #expect(resources.cpu == OCIConfig.CPU(shares: 1024, quota: -1, burst: 5000, period: 100_000, realtimeRuntime: 0,
                                               realtimePeriod: 1_000_000, cpus: "0-3", mems: "0", idle: 0))
        #expect(resources.pids == OCIConfig.Pids(limit: 2048))
        #expect(resources.blockIO?.weight == 500)
        #expect(resources.blockIO?.weightDevice?[0] == OCIConfig.WeightDevice(major: 8, minor: 0, weight: 600, leafWeight: 200))
        #expect(resources.blockIO?.throttleReadBpsDevice == [OCIConfig.ThrottleDevice(major: 8, minor: 0, rate: 104_857_600)])
        #expect(resources.blockIO?.throttleWriteIOPSDevice?.first?.rate == 500)
        #expect(resources.hugepageLimits == [OCIConfig.HugepageLimit(pageSize: "2MB", limit: 209_715_200), OCIConfig.HugepageLimit(pageSize: "1GB", limit: 0)])
        #expect(resources.network?.classID == 1_048_577)
        #expect(resources.network?.priorities?[1] == OCIConfig.InterfacePriority(name: "lo", priority: 1000))
        #expect(resources.rdma?["mlx4_0"] == OCIConfig.Rdma(hcaObjects: 1000))
        #expect(resources.unified?["io.weight"] == "default 100")

        let seccomp = try #require(linux.seccomp)
        #expect(seccomp.defaultAction == .errno)
        #expect(seccomp.defaultErrnoRet == 38)
        #expect(seccomp.architectures?.count == 3)
        #expect(seccomp.flags == ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
        #expect(seccomp.listenerPath == "/run/seccomp-agent.sock")
        #expect(seccomp.listenerMetadata == "profile=web")
        #expect(seccomp.syscalls?[2].args == [OCIConfig.SyscallArgument(index: 0, value: 2_114_060_288, valueTwo: 0, op: .maskedEqual)])
        #expect(seccomp.syscalls?[3] == OCIConfig.Syscall(names: ["mount"], action: .errno, errnoRet: 1))
        #expect(seccomp.syscalls?.map(\.action) == [.allow, .allow, .allow, .errno, .notify, .killProcess])
    }

    @Test(arguments: [("runc spec", runcSpecJSON), ("podman-like", podmanLikeJSON)])
    func roundTripsThroughEncoding(name: String, json: String) throws {
        let config = try ociDecodeConfig(json)
        let encoded = config.encodedJSON()
        let again = try OCIConfig.decode(json: encoded)
        #expect(again == config, "\(name) changed on a round trip")
        #expect(again.encodedJSON() == encoded, "\(name): encoding is not stable")
    }

    @Test func encodingLeavesNilOutAndSortsKeys() throws {
        let text = String(decoding: OCIConfig.defaultSpec().encodedJSON(), as: UTF8.self)
        #expect(!text.contains("null"))
        #expect(!text.contains("domainname"))
        #expect(!text.contains("hooks"))
        #expect(text.contains("\"/proc\""), "slashes are written as they are")
        #expect(text.hasSuffix("}\n"))
        let keys = ["\"hostname\"", "\"linux\"", "\"mounts\"", "\"ociVersion\"", "\"process\"", "\"root\""]
        let positions = keys.map { text.range(of: $0)!.lowerBound }
        #expect(positions == positions.sorted())
        // The Swift names that differ from the JSON ones are written with the JSON names.
        let io = OCIConfig.IOPriority(ioClass: .realtime, priority: 0)
        let process = OCIConfig.Process(args: ["sh"], ioPriority: io)
        let json = String(decoding: try JSONEncoder().encode(process), as: UTF8.self)
        #expect(json.contains("\"class\":\"IOPRIO_CLASS_RT\""))
        #expect(json.contains("\"user\":{"), "user is always written, as runc does")
    }

    @Test func unknownFieldsAreIgnored() throws {
        let json = ociMinimalConfig(
            process: #"{"args": ["sh"], "cwd": "/", "futureField": {"deep": [1, 2, 3]}, "user": {"uid": 0, "gid": 0, "sid": "S-1-5"}}"#,
            linux: #"{"namespaces": [{"type": "pid", "flags": 7}], "netDevices": {"eth0": {}}, "memoryPolicy": {"mode": "MPOL_BIND"}}"#,
            extra: #", "solaris": {"milestone": "x"}, "zos": {}, "x-vendor": null"#)
        let config = try ociDecodeConfig(json)
        #expect(config.process?.args == ["sh"])
        #expect(config.linux?.namespaces == [OCIConfig.Namespace(type: .pid)])
    }

    @Test func unlimitedValuesAreAccepted() throws {
        let config = try ociDecodeConfig(ociMinimalConfig(linux: #"""
            {"resources": {"memory": {"limit": -1, "swap": -1, "reservation": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}}}
            """#))
        #expect(config.linux?.resources?.memory?.limit == -1)
        #expect(config.linux?.resources?.memory?.swap == -1)
        #expect(config.linux?.resources?.cpu?.quota == -1)
        #expect(config.linux?.resources?.pids?.limit == -1)
        // runtime-spec 1.3 made pids.limit optional.
        #expect(try ociDecodeConfig(ociMinimalConfig(linux: #"{"resources": {"pids": {}}}"#)).linux?.resources?.pids == OCIConfig.Pids())
    }

    @Test func sensibleDefaultsAndLooseFields() throws {
        // No user object: root, as runc reads it.
        let config = try ociDecodeConfig(ociMinimalConfig(process: #"{"args": ["sh"], "cwd": "/"}"#))
        #expect(config.process?.user == OCIConfig.User(uid: 0, gid: 0))
        // null is the same as absent for optional fields.
        let nulls = try ociDecodeConfig(ociMinimalConfig(process: #"{"args": ["sh"], "cwd": "/", "env": null, "terminal": null}"#, extra: #", "hostname": null"#))
        #expect(nulls.process?.env == nil && nulls.hostname == nil)
        // intelRdt is read loosely: wrong types read as absent rather than failing the file.
        let rdt = try ociDecodeConfig(ociMinimalConfig(linux: #"{"intelRdt": {"closID": 7, "enableCMT": "yes", "l3CacheSchema": "L3:0=f"}}"#))
        #expect(rdt.linux?.intelRdt == OCIConfig.IntelRdt(l3CacheSchema: "L3:0=f"))
        #expect(try ociDecodeConfig(ociMinimalConfig(linux: #"{"intelRdt": "on"}"#)).linux?.intelRdt == OCIConfig.IntelRdt())
        // Numbers written with an exponent are fine when whole.
        #expect(try ociDecodeConfig(ociMinimalConfig(linux: #"{"resources": {"memory": {"limit": 1e9}}}"#)).linux?.resources?.memory?.limit == 1_000_000_000)
        // Every propagation runc accepts.
        for propagation in OCIConfig.RootfsPropagation.allCases {
            let decoded = try ociDecodeConfig(ociMinimalConfig(linux: "{\"rootfsPropagation\": \"\(propagation.rawValue)\"}"))
            #expect(decoded.linux?.rootfsPropagation == propagation)
        }
    }
}

@Suite("OCI config.json: errors name the JSON path")
struct OCIConfigErrorTests {
    @Test func wrongTypesNameThePathAndTheLine() throws {
        let json = """
        {
          "ociVersion": "1.2.0",
          "root": {"path": "rootfs"},
          "process": {"args": ["sh", 3], "cwd": "/"}
        }
        """
        let error = try #require(ociConfigError(json))
        #expect(error.message == "config.json: process.args[1]: expected a string, found a number (3)")
        #expect(error.hint == "line 4, column 30; runtime-spec config.md#configProcess")
    }

    @Test(arguments: [
        (#"{"args": ["sh"], "cwd": "/", "user": {"uid": "0", "gid": 0}}"#,
         #"config.json: process.user.uid: expected a whole number from 0 to 4294967295, found a string ("0")"#),
        (#"{"args": "sh", "cwd": "/"}"#, #"config.json: process.args: expected an array, found a string ("sh")"#),
        (#"{"args": ["sh"], "cwd": "/", "terminal": "yes"}"#, #"config.json: process.terminal: expected true or false, found a string ("yes")"#),
        (#"{"args": ["sh"], "cwd": null}"#, "config.json: process.cwd: expected a string, found null"),
        (#"{"args": ["sh"], "cwd": "/", "capabilities": ["CAP_KILL"]}"#, "config.json: process.capabilities: expected an object, found an array"),
        (#"["sh"]"#, "config.json: process: expected an object, found an array"),
    ])
    func wrongTypes(process: String, message: String) throws {
        #expect(ociConfigError(ociMinimalConfig(process: process))?.message == message)
    }

    /// JSONDecoder on Linux reports these as "not valid JSON" without a path; the
    /// diagnosis finds the field.
    @Test(arguments: [
        (#"{"args": ["sh"], "cwd": "/", "user": {"uid": -1, "gid": 0}}"#, "{}",
         "config.json: process.user.uid: expected a whole number from 0 to 4294967295, found -1"),
        (#"{"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 4294967296}}"#, "{}",
         "config.json: process.user.gid: expected a whole number from 0 to 4294967295, found 4294967296"),
        (#"{"args": ["sh"], "cwd": "/"}"#, #"{"resources": {"cpu": {"shares": 0.5}}}"#,
         "config.json: linux.resources.cpu.shares: expected a whole number from 0 to 18446744073709551615, found 0.5"),
        (#"{"args": ["sh"], "cwd": "/", "rlimits": [{"type": "RLIMIT_NOFILE", "hard": -1, "soft": 1}]}"#, "{}",
         "config.json: process.rlimits[0].hard: expected a whole number from 0 to 18446744073709551615, found -1"),
        (#"{"args": ["sh"], "cwd": "/"}"#, #"{"devices": [{"type": "c", "path": "/dev/x", "major": 1, "minor": 2, "fileMode": 1.5}]}"#,
         "config.json: linux.devices[0].fileMode: expected a whole number from 0 to 4294967295, found 1.5"),
    ])
    func numbersThatDoNotFit(process: String, linux: String, message: String) throws {
        let error = try #require(ociConfigError(ociMinimalConfig(process: process, linux: linux)))
        #expect(error.message == message)
        #expect(error.hint?.contains("line ") == true)
    }

    @Test(arguments: [
        (#"{"ociVersion": "1.2.0"}"#, "config.json: root is required"),
        (#"{"root": {"path": "rootfs"}}"#, "config.json: ociVersion is required"),
        (#"{"ociVersion": "1.2.0", "root": {"readonly": true}}"#, "config.json: root.path is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "process": {"args": ["sh"]}}"#, "config.json: process.cwd is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "process": {"cwd": "/"}}"#, "config.json: process.args is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "process": {"args": ["sh"], "cwd": "/", "user": {"gid": 0}}}"#,
         "config.json: process.user.uid is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0}}}"#,
         "config.json: process.user.gid is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "process": {"args": ["sh"], "cwd": "/", "rlimits": [{"type": "RLIMIT_CPU", "hard": 1}]}}"#,
         "config.json: process.rlimits[0].soft is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "mounts": [{"destination": "/proc"}, {"type": "tmpfs"}]}"#,
         "config.json: mounts[1].destination is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "hooks": {"poststop": [{"args": ["x"]}]}}"#,
         "config.json: hooks.poststop[0].path is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "linux": {"namespaces": [{"type": "pid"}, {"type": "uts"}, {"path": "/proc/1/ns/net"}]}}"#,
         "config.json: linux.namespaces[2].type is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "linux": {"uidMappings": [{"containerID": 0, "size": 1}]}}"#,
         "config.json: linux.uidMappings[0].hostID is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "linux": {"devices": [{"path": "/dev/fuse"}]}}"#,
         "config.json: linux.devices[0].type is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "linux": {"devices": [{"type": "c"}]}}"#,
         "config.json: linux.devices[0].path is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "linux": {"seccomp": {"syscalls": []}}}"#,
         "config.json: linux.seccomp.defaultAction is required"),
        (#"{"ociVersion": "1.2.0", "root": {"path": "r"}, "linux": {"resources": {"devices": [{"access": "rwm"}]}}}"#,
         "config.json: linux.resources.devices[0].allow is required"),
    ])
    func missingRequiredFields(json: String, message: String) throws {
        let error = try #require(ociConfigError(json))
        #expect(error.message == message)
        #expect(error.hint?.contains("in the object at line 1") == true)
    }

    @Test func badEnumerationValuesListTheAllowedOnes() throws {
        let error = try #require(ociConfigError(ociMinimalConfig(linux: #"{"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "net"}]}"#)))
        #expect(error.message == "config.json: linux.namespaces[2].type: 'net' is not a namespace type")
        #expect(error.hint?.hasPrefix("use one of: pid, network, mount, ipc, uts, user, cgroup, time (line ") == true)
        #expect(error.hint?.hasSuffix("runtime-spec config-linux.md#configLinuxNamespaces)") == true)

        let cases: [(String, String, String)] = [
            (#"{"rootfsPropagation": "recursive"}"#, "linux.rootfsPropagation: 'recursive' is not a mount propagation",
             "private, shared, slave, unbindable, rprivate, rshared, rslave, runbindable"),
            (#"{"devices": [{"type": "x", "path": "/dev/x"}]}"#, "linux.devices[0].type: 'x' is not a device type", "c, b, u, p"),
            (#"{"seccomp": {"defaultAction": "SCMP_ACT_DENY"}}"#, "linux.seccomp.defaultAction: 'SCMP_ACT_DENY' is not a seccomp action", "SCMP_ACT_KILL,"),
            (#"{"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]}}"#,
             "linux.seccomp.syscalls[0].args[0].op: 'EQ' is not a seccomp operator", "SCMP_CMP_MASKED_EQ"),
            (#"{"personality": {"domain": "LINUX64"}}"#, "linux.personality.domain: 'LINUX64' is not a personality domain", "LINUX, LINUX32"),
            (#"{"resources": {"devices": [{"allow": true, "type": "block"}]}}"#, "linux.resources.devices[0].type: 'block' is not a device rule type", "a, c, b"),
        ]
        for (linux, message, allowed) in cases {
            let error = try #require(ociConfigError(ociMinimalConfig(linux: linux)))
            #expect(error.message == "config.json: " + message)
            #expect(error.hint?.contains(allowed) == true, "\(error)")
        }
        let rlimit = try #require(ociConfigError(ociMinimalConfig(process: #"{"args": ["sh"], "cwd": "/", "rlimits": [{"type": "RLIMIT_FILES", "hard": 1, "soft": 1}]}"#)))
        #expect(rlimit.message == "config.json: process.rlimits[0].type: 'RLIMIT_FILES' is not a Linux rlimit type")
        #expect(rlimit.hint?.contains("RLIMIT_NOFILE") == true)
        let io = try #require(ociConfigError(ociMinimalConfig(process: #"{"args": ["sh"], "cwd": "/", "ioPriority": {"class": "BE", "priority": 1}}"#)))
        #expect(io.message == "config.json: process.ioPriority.class: 'BE' is not an I/O priority class")
        let policy = try #require(ociConfigError(ociMinimalConfig(process: #"{"args": ["sh"], "cwd": "/", "scheduler": {"policy": "SCHED_FAIR"}}"#)))
        #expect(policy.message == "config.json: process.scheduler.policy: 'SCHED_FAIR' is not a scheduling policy")
    }

    @Test(arguments: [
        (ociMinimalConfig(process: #"{"args": [], "cwd": "/"}"#), "config.json: process.args: needs at least one entry"),
        (ociMinimalConfig(process: #"{"args": ["sh"], "cwd": "srv"}"#), "config.json: process.cwd: 'srv' is not an absolute path"),
        (ociMinimalConfig(process: #"{"args": ["sh"], "cwd": "/", "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}, {"type": "RLIMIT_NOFILE", "hard": 2, "soft": 2}]}"#),
         "config.json: process.rlimits[1].type: RLIMIT_NOFILE is set twice"),
        (ociMinimalConfig(linux: #"{"namespaces": [{"type": "pid"}, {"type": "uts"}, {"type": "pid"}]}"#),
         "config.json: linux.namespaces[2].type: 'pid' is listed twice"),
        (ociMinimalConfig(linux: #"{"namespaces": [{"type": "network", "path": "run/netns/x"}]}"#),
         "config.json: linux.namespaces[0].path: 'run/netns/x' is not an absolute path"),
        (ociMinimalConfig(linux: #"{"devices": [{"type": "c", "path": "/dev/null", "major": 1}]}"#), "config.json: linux.devices[0].minor is required"),
        (ociMinimalConfig(linux: #"{"resources": {"devices": [{"allow": true, "access": "rwx"}]}}"#),
         "config.json: linux.resources.devices[0].access: 'rwx' is not a device access"),
        (ociMinimalConfig(linux: #"{"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}}"#),
         "config.json: linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW returns no errno"),
        (ociMinimalConfig(linux: #"{"maskedPaths": ["/proc/kcore", "proc/keys"]}"#), "config.json: linux.maskedPaths[1]: 'proc/keys' is not an absolute path"),
        (ociMinimalConfig(extra: #", "hooks": {"createRuntime": [{"path": "/bin/true", "timeout": 0}]}"#),
         "config.json: hooks.createRuntime[0].timeout: 0 is not a number of seconds"),
        (ociMinimalConfig(extra: #", "hooks": {"poststop": [{"path": "cleanup"}]}"#), "config.json: hooks.poststop[0].path: 'cleanup' is not an absolute path"),
        (ociMinimalConfig(extra: #", "mounts": [{"destination": "/srv", "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}]"#),
         "config.json: mounts[0].gidMappings is required"),
        (#"{"ociVersion": "1.2", "root": {"path": "r"}}"#, "config.json: ociVersion: '1.2' is not a SemVer version"),
    ])
    func rulesOfTheSpec(json: String, message: String) throws {
        let error = try #require(ociConfigError(json))
        #expect(error.message == message)
        #expect(error.hint?.contains("line ") == true, "\(error)")
    }

    @Test func keysThatAreNotIdentifiersAreQuoted() throws {
        let error = try #require(ociConfigError(ociMinimalConfig(extra: #", "annotations": {"io.example/owner": 7}"#)))
        #expect(error.message == #"config.json: annotations["io.example/owner"]: expected a string, found a number (7)"#)
        #expect(error.hint?.hasSuffix("runtime-spec config.md#configAnnotations") == true)
        let sysctl = try #require(ociConfigError(ociMinimalConfig(linux: #"{"sysctl": {"net.ipv4.ip_forward": 1}}"#)))
        #expect(sysctl.message == #"config.json: linux.sysctl["net.ipv4.ip_forward"]: expected a string, found a number (1)"#)
        #expect(JSONPath([.key("a"), .index(0), .key("b c"), .key("x\"y"), .key("_ok1")]).description == #"a[0]["b c"]["x\"y"]._ok1"#)
    }

    @Test(arguments: [
        ("{\n  \"ociVersion\": \"1.2.0\"\n  \"root\": {\"path\": \"r\"}\n}", "line 3, column 3", "where ',' or '}' was expected"),
        ("{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"r\"}", "line 1, column 46", "the file ends inside the object opened at line 1, column 1"),
        ("", "line 1, column 1", "the file is empty"),
        ("{\"ociVersion\": \"1.2.0\",\n  // a comment\n  \"root\": {}}", "line 2, column 3", "a comment"),
        ("{\"ociVersion\": '1.2.0'}", "line 1, column 16", "a single quote"),
        ("{\"a\": [1, 2 3]}", "line 1, column 13", "after element 1 of an array"),
        ("{\"a\": 0644}", "line 1, column 7", "a leading zero"),
        ("{\"a\": tru}", "line 1, column 7", "where a value was expected"),
        ("{\"a\": \"one\ntwo\"}", "line 1, column 11", "a raw line break inside a string"),
        ("{} {}", "line 1, column 4", "after the end of the JSON value"),
        ("{\"a\": \"\\q\"}", "line 1, column 8", "an unknown escape"),
    ])
    func malformedJSONGivesLineAndColumn(json: String, location: String, phrase: String) throws {
        let error = try #require(ociConfigError(json))
        #expect(error.message.hasPrefix("config.json is not valid JSON: \(location): "), "\(error.message)")
        #expect(error.message.contains(phrase), "\(error.message)")
        #expect(error.hint != nil)
    }

    @Test func validateChecksConfigsBuiltInCode() throws {
        var config = OCIConfig.defaultSpec()
        config.linux?.namespaces?.append(OCIConfig.Namespace(type: .pid))
        do {
            try config.validate()
            Issue.record("a duplicate namespace passed")
        } catch {
            #expect(error.message == "config.json: linux.namespaces[6].type: 'pid' is listed twice")
            #expect(error.hint == "each kind of namespace appears once; see namespaces[0] (runtime-spec config-linux.md#configLinuxNamespaces)")
        }
    }
}

@Suite("OCI config.json: loading a bundle")
struct OCIBundleTests {
    @Test func loadsAndNamesTheFileInErrors() throws {
        let bundle = try FileSystem.makeTemporaryDirectory(purpose: "oci-bundle")
        defer { try? FileSystem.removeTree(bundle) }
        let path = bundle.appending("config.json")

        do {
            _ = try OCIConfig.load(bundle: bundle)
            Issue.record("loaded a bundle without config.json")
        } catch {
            #expect(error.message == "\(path) does not exist")
            #expect(error.hint == "a bundle needs a config.json; `runc spec` (or chapter-04 spec) writes a default one")
        }
        try FileSystem.writeFile(path, OCIConfig.defaultSpec(args: ["/bin/true"]).encodedJSON())
        #expect(try OCIConfig.load(bundle: bundle) == OCIConfig.defaultSpec(args: ["/bin/true"]))

        try FileSystem.writeFile(path, ociMinimalConfig(process: #"{"args": [true], "cwd": "/"}"#))
        do {
            _ = try OCIConfig.load(bundle: bundle)
            Issue.record("a bad config loaded")
        } catch {
            #expect(error.message == "\(path): process.args[0]: expected a string, found a boolean (true)")
        }

        let missing = bundle.appending("nowhere")
        do {
            _ = try OCIConfig.load(bundle: missing)
            Issue.record("loaded a bundle that does not exist")
        } catch {
            #expect(error.message == "the bundle \(missing) does not exist")
        }
    }
}

@Suite("OCI state.json")
struct OCIStateTests {
    @Test func decodesRuncsStateAndRoundTrips() throws {
        // `runc state` output, with runc's extra fields.
        let json = #"""
        {
          "ociVersion": "1.2.0",
          "id": "web",
          "pid": 4422,
          "status": "running",
          "bundle": "/containers/web",
          "rootfs": "/containers/web/rootfs",
          "created": "2024-05-01T10:00:00.123456789Z",
          "owner": "",
          "annotations": {"io.container.manager": "libpod"}
        }
        """#
        let state = try OCIState.decode(json: Array(json.utf8))
        #expect(state == OCIState(ociVersion: "1.2.0", id: "web", status: .running, pid: 4422, bundle: "/containers/web",
                                  annotations: ["io.container.manager": "libpod"]))
        #expect(try OCIState.decode(json: state.encodedJSON()) == state)

        let stopped = OCIState(id: "web", status: .stopped, bundle: "/containers/web")
        let text = String(decoding: stopped.encodedJSON(), as: UTF8.self)
        #expect(!text.contains("pid") && !text.contains("annotations"))
        #expect(text.contains("\"status\" : \"stopped\""))
        #expect(try OCIState.decode(json: stopped.encodedJSON()) == stopped)
        let paused = try OCIState.decode(json: Array(#"{"ociVersion": "1.0.2", "id": "a", "status": "paused", "pid": 9, "bundle": "/b"}"#.utf8))
        #expect(paused.status == .paused)
    }

    @Test(arguments: [
        (#"{"ociVersion": "1.2.0", "id": "a", "status": "frozen", "pid": 1, "bundle": "/b"}"#, "state.json: status: 'frozen' is not a container status"),
        (#"{"ociVersion": "1.2.0", "id": "a", "status": "running", "bundle": "/b"}"#, "state.json: pid is required"),
        (#"{"ociVersion": "1.2.0", "id": "a", "status": "created", "pid": 1}"#, "state.json: bundle is required"),
        (#"{"ociVersion": "1.2.0", "status": "created", "pid": 1, "bundle": "/b"}"#, "state.json: id is required"),
        (#"{"ociVersion": "1.2.0", "id": "a", "status": "created", "pid": "1", "bundle": "/b"}"#,
         #"state.json: pid: expected a whole number from -2147483648 to 2147483647, found a string ("1")"#),
        (#"{"ociVersion": "1.2.0", "id": "a", "status": "stopped", "pid": 0, "bundle": "b"}"#, "state.json: bundle: 'b' is not an absolute path"),
    ])
    func errors(json: String, message: String) throws {
        do {
            _ = try OCIState.decode(json: Array(json.utf8))
            Issue.record("decoded: \(json)")
        } catch {
            #expect(error.message == message)
            #expect(error.hint?.contains("runtime-spec runtime.md#runtimeState") == true)
        }
    }

    @Test func statusListsTheSpecsStatesAndRuncsPaused() throws {
        do {
            _ = try OCIState.decode(json: Array(#"{"ociVersion": "1.2.0", "id": "a", "status": "", "bundle": "/b"}"#.utf8))
            Issue.record("an empty status decoded")
        } catch {
            #expect(error.hint?.hasPrefix("use one of: creating, created, running, stopped, paused") == true)
        }
    }
}

/// The error `OCIConfig.decode` gives for the default spec (`isorun spec`) with one change.
func ociDefaultSpecError(_ edit: (inout OCIConfig) -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> IsolationError? {
    var config = OCIConfig.defaultSpec(args: ["sh"])
    edit(&config)
    return ociConfigError(String(decoding: config.encodedJSON(), as: UTF8.self), sourceLocation: sourceLocation)
}

/// Inputs that used to crash the runtime (a Swift trap on a conversion, or a read without
/// end) are errors naming the field, found while the file is decoded.
@Suite("OCI config.json: numbers out of range and strings with NUL bytes")
struct OCIConfigBoundsTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var field: String
        var edit: @Sendable (inout OCIConfig) -> Void
        var testDescription: String { field }
    }

    static let outOfRange: [Case] = [
        Case(field: "process.ioPriority.priority") { $0.process?.ioPriority = .init(ioClass: .bestEffort, priority: 9_999_999_999) },
        Case(field: "process.ioPriority.priority") { $0.process?.ioPriority = .init(ioClass: .bestEffort, priority: -1) },
        Case(field: "linux.devices[0].major") { $0.linux?.devices = [.init(type: .character, path: "/dev/x", major: -1, minor: 0)] },
        Case(field: "linux.devices[0].major") { $0.linux?.devices = [.init(type: .character, path: "/dev/x", major: 4_294_967_296, minor: 0)] },
        Case(field: "linux.devices[0].minor") { $0.linux?.devices = [.init(type: .block, path: "/dev/x", major: 8, minor: 1 << 20)] },
        Case(field: "linux.devices[0].fileMode") { $0.linux?.devices = [.init(type: .character, path: "/dev/x", major: 1, minor: 3, fileMode: 0o10000)] },
        Case(field: "linux.resources.cpu.quota") { $0.linux?.resources?.cpu = .init(quota: Int64.max) },
        Case(field: "linux.resources.cpu.quota") { $0.linux?.resources?.cpu = .init(quota: -5) },
        Case(field: "linux.resources.cpu.period") { $0.linux?.resources?.cpu = .init(period: UInt64.max) },
        Case(field: "linux.resources.cpu.period") { $0.linux?.resources?.cpu = .init(period: 10) },
        Case(field: "linux.resources.cpu.shares") { $0.linux?.resources?.cpu = .init(shares: 1 << 40) },
        Case(field: "linux.resources.memory.limit") { $0.linux?.resources?.memory = .init(limit: -2) },
        Case(field: "linux.resources.memory.swappiness") { $0.linux?.resources?.memory = .init(swappiness: 101) },
        Case(field: "linux.resources.pids.limit") { $0.linux?.resources?.pids = .init(limit: -7) },
        Case(field: "linux.resources.devices[1].major") { $0.linux?.resources?.devices?.append(.init(allow: true, type: .character, major: -5, minor: 3, access: "rwm")) },
        Case(field: "linux.resources.devices[1].minor") { $0.linux?.resources?.devices?.append(.init(allow: true, type: .character, major: 1, minor: -2, access: "rwm")) },
        Case(field: "linux.resources.blockIO.weight") { $0.linux?.resources?.blockIO = .init(weight: 1001) },
        Case(field: "linux.resources.blockIO.throttleReadBpsDevice[0].major") { $0.linux?.resources?.blockIO = .init(throttleReadBpsDevice: [.init(major: -8, minor: 0, rate: 1)]) },
        Case(field: "process.consoleSize.height") { $0.process?.consoleSize = .init(height: 70_000, width: 80) },
        Case(field: "process.oomScoreAdj") { $0.process?.oomScoreAdj = 1001 },
        Case(field: "process.scheduler.nice") { $0.process?.scheduler = .init(policy: .other, nice: 20) },
        Case(field: "process.user.umask") { $0.process?.user.umask = 0o1000 },
        Case(field: "process.rlimits[0].soft") { $0.process?.rlimits = [.init(type: .openFiles, hard: 10, soft: 11)] },
        Case(field: "linux.uidMappings[0].size") {
            $0.linux?.namespaces?.append(.init(type: .user))
            $0.linux?.uidMappings = [.init(containerID: 0, hostID: 4_294_967_000, size: 1000)]
            $0.linux?.gidMappings = [.init(containerID: 0, hostID: 100_000, size: 1000)]
        },
        Case(field: "linux.timeOffsets.monotonic.nanosecs") {
            $0.linux?.namespaces?.append(.init(type: .time))
            $0.linux?.timeOffsets = ["monotonic": .init(secs: 1, nanosecs: 1_000_000_000)]
        },
        Case(field: "linux.seccomp.syscalls[0].errnoRet") {
            $0.linux?.seccomp = .init(defaultAction: .allow, syscalls: [.init(names: ["mkdir"], action: .errno, errnoRet: 70_000)])
        },
        Case(field: "linux.seccomp.syscalls[0].args[0].index") {
            $0.linux?.seccomp = .init(defaultAction: .allow, syscalls: [.init(names: ["mkdir"], action: .errno, args: [.init(index: 6, value: 0, op: .equal)])])
        },
    ]

    @Test(arguments: outOfRange)
    func numbersOutOfRangeNameTheField(_ change: Case) throws {
        let error = try #require(ociDefaultSpecError(change.edit))
        #expect(error.message.hasPrefix("config.json: \(change.field): "), "\(error)")
        #expect(error.hint?.contains("line ") == true, "\(error)")
    }

    @Test func theWildcardAndUnlimitedValuesStillDecode() throws {
        var config = OCIConfig.defaultSpec(args: ["sh"])
        config.linux?.resources?.devices?.append(.init(allow: true, type: .character, major: -1, minor: -1, access: "rwm"))
        config.linux?.resources?.cpu = .init(shares: 1024, quota: -1, period: 100_000)
        config.linux?.resources?.memory = .init(limit: -1, swap: -1, swappiness: UInt64.max)
        config.linux?.resources?.pids = .init(limit: -1)
        config.linux?.devices = [.init(type: .block, path: "/dev/x", major: 4095, minor: (1 << 20) - 1)]
        config.process?.ioPriority = .init(ioClass: .idle, priority: 7)
        #expect(try OCIConfig.decode(json: config.encodedJSON()) == config)
    }

    /// Docker writes zeros for what it leaves unset (every `docker run`): they must decode.
    @Test func dockersZerosStillDecode() throws {
        var config = OCIConfig.defaultSpec(args: ["sh"])
        config.linux?.resources?.cpu = .init(shares: 0, quota: 0, period: 0)
        config.linux?.resources?.blockIO = .init(weight: 0, leafWeight: 0)
        #expect(try OCIConfig.decode(json: config.encodedJSON()) == config)
    }

    static let withNUL: [Case] = [
        Case(field: "process.args[1]") { $0.process?.args = ["sh", "-c\u{0}rm"] },
        Case(field: "process.env[0]") { $0.process?.env = ["PATH=/bin\u{0}:/x"] },
        Case(field: "process.cwd") { $0.process?.cwd = "/tmp\u{0}/x" },
        Case(field: "hostname") { $0.hostname = "box\u{0}evil" },
        Case(field: "mounts[0].source") { $0.mounts?[0].source = "proc\u{0}x" },
        Case(field: "mounts[1].destination") { $0.mounts?[1].destination = "/dev\u{0}/x" },
        Case(field: "hooks.poststop[0].path") { $0.hooks = .init(poststop: [.init(path: "/bin/true\u{0}x")]) },
        Case(field: "root.path") { $0.root.path = "rootfs\u{0}../x" },
    ]

    @Test(arguments: withNUL)
    func nulBytesAreRefusedNamingTheField(_ change: Case) throws {
        let error = try #require(ociDefaultSpecError(change.edit))
        #expect(error.message == "config.json: \(change.field): contains a NUL byte", "\(error)")
    }

    @Test func mappingsAndOffsetsWithoutTheirNamespaceAreRefused() throws {
        let mappings = try #require(ociDefaultSpecError { $0.linux?.uidMappings = [.init(containerID: 0, hostID: 1000, size: 1)] })
        #expect(mappings.message.hasPrefix("config.json: linux.uidMappings: "), "\(mappings)")
        #expect(mappings.message.contains("no user namespace"), "\(mappings)")
        let offsets = try #require(ociDefaultSpecError { $0.linux?.timeOffsets = ["monotonic": .init(secs: 5)] })
        #expect(offsets.message.hasPrefix("config.json: linux.timeOffsets: "), "\(offsets)")
        #expect(offsets.message.contains("no time namespace"), "\(offsets)")
        let clock = try #require(ociDefaultSpecError {
            $0.linux?.namespaces?.append(.init(type: .time))
            $0.linux?.timeOffsets = ["realtime": .init(secs: 5)]
        })
        #expect(clock.message.hasPrefix("config.json: linux.timeOffsets.realtime: "), "\(clock)")
    }

    @Test func configJSONIsReadWithASizeLimit() throws {
        let bundle = try FileSystem.makeTemporaryDirectory(purpose: "oci-zero")
        defer { try? FileSystem.removeTree(bundle) }
        try FileSystem.symlink(target: "/dev/zero", at: bundle.appending("config.json"))
        let start = Date()
        do {
            _ = try OCIConfig.load(bundle: bundle)
            Issue.record("/dev/zero loaded as a config")
        } catch {
            #expect(error.message.contains("config.json"), "\(error)")
            #expect(error.message.contains("MiB"), "the error says the limit: \(error)")
        }
        #expect(Date().timeIntervalSince(start) < 10)
    }
}
