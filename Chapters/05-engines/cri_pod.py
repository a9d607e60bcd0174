#!/usr/bin/env python3
"""A kubelet's calls for one pod, over containerd's CRI (gRPC service runtime.v1).

The few protobuf messages needed are written by hand below, with the field numbers of
the CRI API's definition (k8s.io/cri-api, pkg/apis/runtime/v1/api.proto); grpcio carries
them as bytes (generic unary calls). What the calls cause is observed from the host
(/proc/PID/ns, /proc/PID/cgroup, cgroup files, the container logs) and printed as one
JSON report on standard output; the Swift test (Chapter05CRITests) judges it.

With --trace FILE, each call is also written to FILE as it returns, one line of
tab-separated fields: the method, what it was about (a pod or container name), what it
answered, and the size of the runtime's call log (--call-log) at that moment: chapter 05's
lesson prints each call with the runtime commands it caused (the log's lines in between).

    cri_pod.py --socket S --handler isorun --pause IMAGE --image IMAGE \
               --cgroup-parent /isolation/NAME/pods --log-dir DIR --daemon-pid PID \
               [--trace FILE --call-log FILE]
"""
import argparse
import json
import os
import sys
import time

import grpc


# --- protobuf, by hand: a message is a list of (field number, value) -----------------

def varint(n):
    if n < 0:
        n += 1 << 64  # int64: two's complement in ten bytes
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode(fields):
    """fields: [(number, value)]; int and bool are varints, str/bytes and nested lists
    (messages) are length-delimited; None is left out (proto3's default)."""
    out = bytearray()
    for number, value in fields:
        if value is None:
            continue
        if isinstance(value, bool) or isinstance(value, int):
            out += varint(number << 3 | 0) + varint(int(value))
        else:
            if isinstance(value, str):
                data = value.encode()
            elif isinstance(value, (bytes, bytearray)):
                data = bytes(value)
            else:
                data = encode(value)
            out += varint(number << 3 | 2) + varint(len(data)) + data
    return bytes(out)


def string_map(number, mapping):
    """map<string, string>: one entry message (key = 1, value = 2) per pair."""
    return [(number, [(1, k), (2, v)]) for k, v in mapping.items()]


def decode(data):
    """{field number: [raw values]}: ints for varints, bytes for length-delimited."""
    fields, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(data, i)
        elif wire == 2:
            length, i = read_varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wire)
        fields.setdefault(number, []).append(value)
    return fields


def read_varint(data, i):
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


def text(fields, number):
    return bytes(fields.get(number, [b""])[0]).decode()


def message(fields, number):
    return decode(bytes(fields.get(number, [b""])[0]))


def strings_map(fields, number):
    out = {}
    for entry in fields.get(number, []):
        pair = decode(bytes(entry))
        out[text(pair, 1)] = text(pair, 2)
    return out


# --- the CRI calls --------------------------------------------------------------------

class CRI:
    def __init__(self, socket, log, trace=None, call_log=None):
        self.channel = grpc.insecure_channel("unix://" + socket)
        self.log = log
        self.trace = trace
        self.call_log = call_log
        self.names = {}  # pod and container IDs → their names, for the trace

    def call(self, service, method, fields, timeout=120, about=None):
        self.log.append(method)
        rpc = self.channel.unary_unary("/runtime.v1.%s/%s" % (service, method),
                                       request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
        # The first field of most requests is the pod's or the container's ID.
        if about is None:
            about = fields[0][1] if fields and isinstance(fields[0][1], str) else ""
            about = self.names.get(about, about[:12])
        try:
            response = decode(rpc(encode(fields), timeout=timeout))
        except grpc.RpcError as error:
            self.write_trace(method, about, "error: %s" % error.details())
            raise
        except KeyboardInterrupt:  # Ctrl-C: the pod is removed all the same (main's finally)
            self.write_trace(method, about, "interrupted")
            raise
        self.write_trace(method, about, answer(method, response))
        return response

    def write_trace(self, method, about, answered):
        if not self.trace:
            return
        size = os.path.getsize(self.call_log) if self.call_log and os.path.exists(self.call_log) else 0
        with open(self.trace, "a") as f:
            f.write("%s\t%s\t%s\t%d\n" % (method, about, answered.replace("\t", " ").replace("\n", " ").strip(), size))

    def runtime(self, method, fields, timeout=120, about=None):
        return self.call("RuntimeService", method, fields, timeout, about)

    def images(self, method, fields):
        return self.call("ImageService", method, fields)


def answer(method, response):
    """What a call answered, in a few words (for the trace)."""
    if method == "Version":
        return "%s %s" % (text(response, 2), text(response, 3))
    if method in ("RunPodSandbox", "CreateContainer"):
        return "ID " + text(response, 1)[:12]
    if method == "PodSandboxStatus":
        return "IP " + text(message(message(response, 1), 5), 1)
    if method == "ContainerStatus":
        return ("created", "running", "exited", "unknown")[min(message(response, 1).get(3, [3])[0], 3)]
    if method == "ImageStatus":
        return "present" if text(message(response, 1), 1) else "absent"
    if method == "ExecSync":
        return "exit %d: %s" % (response.get(3, [0])[0], bytes(response.get(1, [b""])[0]).decode().strip())
    if method in ("ListContainers", "ListPodSandbox"):
        return "%d left" % len(response.get(1, []))
    return "ok"


POD, CONTAINER = 0, 1  # NamespaceMode


def namespaces(pid):
    out = {}
    for kind in ("net", "ipc", "uts", "mnt", "pid"):
        try:
            out[kind] = os.readlink("/proc/%d/ns/%s" % (pid, kind))
        except OSError as error:
            out[kind] = "error: %s" % error
    return out


def memory_limit_file(pid):
    """The memory limit file of the cgroup PID is in (v1 memory hierarchy, or v2)."""
    with open("/proc/%d/cgroup" % pid) as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for _, controllers, path in lines:
        if "memory" in controllers.split(","):
            return "/sys/fs/cgroup/memory%s/memory.limit_in_bytes" % path
    for hierarchy, controllers, path in lines:
        if hierarchy == "0" and controllers == "":
            return "/sys/fs/cgroup%s/memory.max" % path
    raise RuntimeError("no memory cgroup for PID %d" % pid)


def links(pid):
    """The interfaces of PID's network namespace (/proc/PID/net/dev)."""
    with open("/proc/%d/net/dev" % pid) as f:
        return sorted(line.split(":")[0].strip() for line in f.readlines()[2:])


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as error:
        return "error: %s" % error


def container_pid(cri, container_id):
    status = cri.runtime("ContainerStatus", [(1, container_id), (2, True)])
    info = json.loads(strings_map(status, 2).get("info", "{}"))
    state = message(status, 1).get(3, [0])[0]
    return info.get("pid", 0), state


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--pause", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--cgroup-parent", required=True)
    parser.add_argument("--log-dir", required=True)
    parser.add_argument("--memory", type=int, default=96 * 1024 * 1024)
    parser.add_argument("--daemon-pid", type=int, required=True)
    parser.add_argument("--trace")
    parser.add_argument("--call-log")
    options = parser.parse_args()

    calls = []
    report = {"calls": calls}
    cri = CRI(options.socket, calls, options.trace, options.call_log)
    sandbox = None
    containers = []
    try:
        version = cri.runtime("Version", [(1, "v1")])
        report["version"] = {"runtime": text(version, 2), "runtimeVersion": text(version, 3),
                             "apiVersion": text(version, 4)}
        # A kubelet asks whether the image is there before it pulls (here it was imported).
        status = cri.images("ImageStatus", [(1, [(1, options.image)])])
        report["imagePresent"] = bool(text(message(status, 1), 1))

        metadata = [(1, "web"), (2, "uid-%d" % os.getpid()), (3, "isolation"), (4, 0)]
        sandbox_config = [
            (1, metadata),
            (2, "web-pod"),
            (3, options.log_dir),
            *string_map(6, {"app": "web"}),
            (8, [(1, options.cgroup_parent),
                 # network and IPC shared by the pod (POD); each container its own PID namespace.
                 (2, [(1, [(1, POD), (2, CONTAINER), (3, POD)])])]),
        ]
        sandbox = text(cri.runtime("RunPodSandbox", [(1, sandbox_config), (2, options.handler)], timeout=180,
                                       about="web-pod, handler " + options.handler), 1)
        report["sandbox"] = sandbox
        cri.names[sandbox] = "web-pod"
        status = cri.runtime("PodSandboxStatus", [(1, sandbox), (2, True)])
        pod = message(status, 1)
        info = json.loads(strings_map(status, 2).get("info", "{}"))
        report["podIP"] = text(message(pod, 5), 1)
        report["podState"] = pod.get(3, [0])[0]
        report["podHandler"] = text(pod, 9)
        report["sandboxPid"] = info.get("pid", 0)
        spec_namespaces = (info.get("runtimeSpec", {}).get("linux", {}) or {}).get("namespaces", [])
        report["netnsPath"] = next((n.get("path", "") for n in spec_namespaces if n.get("type") == "network"), "")

        def create(name, command):
            config = [
                (1, [(1, name), (2, 0)]),
                (2, [(1, options.image)]),
                *[(3, word) for word in command],
                (11, name + ".log"),
                (15, [(2, [(3, [(1, POD), (2, CONTAINER), (3, POD)])])]),
            ]
            container = text(cri.runtime("CreateContainer", [(1, sandbox), (2, config), (3, sandbox_config)], about=name), 1)
            containers.append(container)
            cri.names[container] = name
            cri.runtime("StartContainer", [(1, container)])
            return container

        server = create("server", ["sh", "-c", "mkdir -p /tmp/www && echo hello from the pod > /tmp/www/index.html"
                                   " && exec busybox httpd -f -p 127.0.0.1:8080 -h /tmp/www"])
        client = create("client", ["sh", "-c", "for i in $(seq 50); do busybox wget -q -O - http://127.0.0.1:8080/ && break;"
                                   " sleep 0.2; done; exec sleep 600"])
        report["containers"] = {"server": server, "client": client}

        pids = {}
        for name, container in (("server", server), ("client", client)):
            pid, state = container_pid(cri, container)
            pids[name] = pid
            report[name + "State"] = state
        report["pids"] = pids
        report["namespaces"] = {name: namespaces(pid) for name, pid in pids.items()}
        report["namespaces"]["sandbox"] = namespaces(report["sandboxPid"])
        report["namespaces"]["host"] = namespaces(os.getpid())
        # Where the pod's network is plugged in: containerd's namespace (the test's
        # stand-in host) has the bridge and the veth; this machine's own has neither.
        report["links"] = {"daemon": links(options.daemon_pid), "host": links(os.getpid()),
                           "pod": links(pids["server"])}

        # The client's fetch, as its log shows it (CRI's format: time stream tag line).
        fetched = ""
        for _ in range(100):
            try:
                with open(os.path.join(options.log_dir, "client.log")) as f:
                    fetched = "".join(line.split(" ", 3)[3] for line in f if line.count(" ") >= 3)
            except OSError:
                pass
            if "hello" in fetched:
                break
            time.sleep(0.1)
        report["clientFetched"] = fetched

        executed = cri.runtime("ExecSync", [(1, server), (2, "sh"), (2, "-c"), (2, "echo $(hostname) $(cat /proc/1/comm)"), (3, 30)])
        report["exec"] = {"stdout": bytes(executed.get(1, [b""])[0]).decode(),
                          "stderr": bytes(executed.get(2, [b""])[0]).decode(),
                          "exitCode": executed.get(3, [0])[0]}

        limit_file = memory_limit_file(pids["server"])
        report["memoryFile"] = limit_file
        report["memoryBefore"] = read(limit_file)
        cri.runtime("UpdateContainerResources", [(1, server), (2, [(4, options.memory)])])
        report["memoryAfter"] = read(limit_file)
        report["cgroups"] = {name: open("/proc/%d/cgroup" % pid).read() for name, pid in pids.items()}

        for container in (client, server):
            cri.runtime("StopContainer", [(1, container), (2, 2)])
        for container in (client, server):
            cri.runtime("RemoveContainer", [(1, container)])
        containers.clear()
        cri.runtime("StopPodSandbox", [(1, sandbox)])
        cri.runtime("RemovePodSandbox", [(1, sandbox)])
        sandbox = None
        listed = cri.runtime("ListContainers", [])
        report["containersLeft"] = len(listed.get(1, []))
        listed = cri.runtime("ListPodSandbox", [])
        report["sandboxesLeft"] = len(listed.get(1, []))
        report["ok"] = True
    except grpc.RpcError as error:
        report["error"] = "%s: %s (%s)" % (calls[-1] if calls else "?", error.details(), error.code())
    except Exception as error:  # reported, then the pod is removed all the same
        report["error"] = "%s: %r" % (calls[-1] if calls else "?", error)
    finally:
        for container in containers:
            try:
                cri.runtime("RemoveContainer", [(1, container)])
            except grpc.RpcError:
                pass
        if sandbox:
            for method in ("StopPodSandbox", "RemovePodSandbox"):
                try:
                    cri.runtime(method, [(1, sandbox)])
                except grpc.RpcError:
                    pass
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0 if report.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
