"""Wire-compatibility checks of proto/api.proto against the upstream CRI v1 API.

The tables below are written independently of api.proto (from the upstream
k8s.io/cri-api runtime.v1 definitions the kubelet is compiled against), so a
typo in a field number, type or name in api.proto makes a test fail.  The
generated module comes from `make pyproto` in $HPCRI_BUILD/py.
"""
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, os.environ.get("HPCRI_BUILD", "build"))
sys.path.insert(0, os.path.join(BUILD, "py"))

from google.protobuf import descriptor as _d  # noqa: E402
import api_pb2  # noqa: E402

FD = _d.FieldDescriptor
STR, BOOL, BYTES = FD.TYPE_STRING, FD.TYPE_BOOL, FD.TYPE_BYTES
I32, I64, U32, U64, DBL = FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_UINT32, FD.TYPE_UINT64, FD.TYPE_DOUBLE
MSG, ENUM = FD.TYPE_MESSAGE, FD.TYPE_ENUM
REP = "repeated"
MAP = "map<string,string>"

# (message, field, number, type, message/enum type name or REP/MAP or None)
FIELDS = [
    ("VersionRequest", "version", 1, STR, None),
    ("VersionResponse", "version", 1, STR, None),
    ("VersionResponse", "runtime_name", 2, STR, None),
    ("VersionResponse", "runtime_version", 3, STR, None),
    ("VersionResponse", "runtime_api_version", 4, STR, None),
    ("RunPodSandboxRequest", "config", 1, MSG, "PodSandboxConfig"),
    ("RunPodSandboxRequest", "runtime_handler", 2, STR, None),
    ("RunPodSandboxResponse", "pod_sandbox_id", 1, STR, None),
    ("PodSandboxConfig", "metadata", 1, MSG, "PodSandboxMetadata"),
    ("PodSandboxConfig", "hostname", 2, STR, None),
    ("PodSandboxConfig", "log_directory", 3, STR, None),
    ("PodSandboxConfig", "dns_config", 4, MSG, "DNSConfig"),
    ("PodSandboxConfig", "port_mappings", 5, MSG, REP),
    ("PodSandboxConfig", "labels", 6, MSG, MAP),
    ("PodSandboxConfig", "annotations", 7, MSG, MAP),
    ("PodSandboxConfig", "linux", 8, MSG, "LinuxPodSandboxConfig"),
    ("PodSandboxConfig", "windows", 9, MSG, "WindowsPodSandboxConfig"),
    ("PodSandboxMetadata", "name", 1, STR, None),
    ("PodSandboxMetadata", "uid", 2, STR, None),
    ("PodSandboxMetadata", "namespace", 3, STR, None),
    ("PodSandboxMetadata", "attempt", 4, U32, None),
    ("LinuxPodSandboxConfig", "cgroup_parent", 1, STR, None),
    ("LinuxPodSandboxConfig", "security_context", 2, MSG, "LinuxSandboxSecurityContext"),
    ("LinuxPodSandboxConfig", "sysctls", 3, MSG, MAP),
    ("LinuxPodSandboxConfig", "overhead", 4, MSG, "LinuxContainerResources"),
    ("LinuxPodSandboxConfig", "resources", 5, MSG, "LinuxContainerResources"),
    ("LinuxSandboxSecurityContext", "namespace_options", 1, MSG, "NamespaceOption"),
    ("LinuxSandboxSecurityContext", "run_as_user", 3, MSG, "Int64Value"),
    ("LinuxSandboxSecurityContext", "run_as_group", 8, MSG, "Int64Value"),
    ("LinuxSandboxSecurityContext", "privileged", 6, BOOL, None),
    ("LinuxSandboxSecurityContext", "seccomp", 9, MSG, "SecurityProfile"),
    ("LinuxSandboxSecurityContext", "supplemental_groups_policy", 11, ENUM,
     "SupplementalGroupsPolicy"),
    ("NamespaceOption", "network", 1, ENUM, "NamespaceMode"),
    ("NamespaceOption", "pid", 2, ENUM, "NamespaceMode"),
    ("NamespaceOption", "ipc", 3, ENUM, "NamespaceMode"),
    ("NamespaceOption", "target_id", 4, STR, None),
    ("NamespaceOption", "userns_options", 5, MSG, "UserNamespace"),
    ("DNSConfig", "servers", 1, STR, REP),
    ("DNSConfig", "searches", 2, STR, REP),
    ("DNSConfig", "options", 3, STR, REP),
    ("PortMapping", "protocol", 1, ENUM, "Protocol"),
    ("PortMapping", "container_port", 2, I32, None),
    ("PortMapping", "host_port", 3, I32, None),
    ("PortMapping", "host_ip", 4, STR, None),
    ("PodSandboxStatus", "id", 1, STR, None),
    ("PodSandboxStatus", "state", 3, ENUM, "PodSandboxState"),
    ("PodSandboxStatus", "created_at", 4, I64, None),
    ("PodSandboxStatus", "network", 5, MSG, "PodSandboxNetworkStatus"),
    ("PodSandboxStatus", "runtime_handler", 9, STR, None),
    ("PodSandboxStatusResponse", "info", 2, MSG, MAP),
    ("PodSandboxStatusResponse", "containers_statuses", 3, MSG, REP),
    ("PodSandboxStatusResponse", "timestamp", 4, I64, None),
    ("PodSandboxNetworkStatus", "additional_ips", 2, MSG, REP),
    ("Namespace", "options", 2, MSG, "NamespaceOption"),
    ("PodSandboxFilter", "state", 2, MSG, "PodSandboxStateValue"),
    ("PodSandboxFilter", "label_selector", 3, MSG, MAP),
    ("ListPodSandboxResponse", "items", 1, MSG, REP),
    ("PodSandbox", "runtime_handler", 7, STR, None),
    ("CreateContainerRequest", "pod_sandbox_id", 1, STR, None),
    ("CreateContainerRequest", "config", 2, MSG, "ContainerConfig"),
    ("CreateContainerRequest", "sandbox_config", 3, MSG, "PodSandboxConfig"),
    ("ContainerConfig", "metadata", 1, MSG, "ContainerMetadata"),
    ("ContainerConfig", "image", 2, MSG, "ImageSpec"),
    ("ContainerConfig", "command", 3, STR, REP),
    ("ContainerConfig", "args", 4, STR, REP),
    ("ContainerConfig", "working_dir", 5, STR, None),
    ("ContainerConfig", "envs", 6, MSG, REP),
    ("ContainerConfig", "mounts", 7, MSG, REP),
    ("ContainerConfig", "devices", 8, MSG, REP),
    ("ContainerConfig", "labels", 9, MSG, MAP),
    ("ContainerConfig", "annotations", 10, MSG, MAP),
    ("ContainerConfig", "log_path", 11, STR, None),
    ("ContainerConfig", "stdin", 12, BOOL, None),
    ("ContainerConfig", "stdin_once", 13, BOOL, None),
    ("ContainerConfig", "tty", 14, BOOL, None),
    ("ContainerConfig", "linux", 15, MSG, "LinuxContainerConfig"),
    ("ContainerConfig", "CDI_devices", 17, MSG, REP),
    ("ContainerConfig", "stop_signal", 18, ENUM, "Signal"),
    ("ContainerMetadata", "name", 1, STR, None),
    ("ContainerMetadata", "attempt", 2, U32, None),
    ("KeyValue", "key", 1, STR, None),
    ("KeyValue", "value", 2, STR, None),
    ("Mount", "container_path", 1, STR, None),
    ("Mount", "host_path", 2, STR, None),
    ("Mount", "readonly", 3, BOOL, None),
    ("Mount", "selinux_relabel", 4, BOOL, None),
    ("Mount", "propagation", 5, ENUM, "MountPropagation"),
    ("Mount", "uidMappings", 6, MSG, REP),
    ("Mount", "gidMappings", 7, MSG, REP),
    ("Mount", "recursive_read_only", 8, BOOL, None),
    ("Mount", "image", 9, MSG, "ImageSpec"),
    ("Mount", "image_sub_path", 10, STR, None),
    ("IDMapping", "host_id", 1, U32, None),
    ("IDMapping", "container_id", 2, U32, None),
    ("IDMapping", "length", 3, U32, None),
    ("Device", "container_path", 1, STR, None),
    ("Device", "host_path", 2, STR, None),
    ("Device", "permissions", 3, STR, None),
    ("LinuxContainerConfig", "resources", 1, MSG, "LinuxContainerResources"),
    ("LinuxContainerConfig", "security_context", 2, MSG, "LinuxContainerSecurityContext"),
    ("LinuxContainerResources", "cpu_period", 1, I64, None),
    ("LinuxContainerResources", "cpu_quota", 2, I64, None),
    ("LinuxContainerResources", "cpu_shares", 3, I64, None),
    ("LinuxContainerResources", "memory_limit_in_bytes", 4, I64, None),
    ("LinuxContainerResources", "oom_score_adj", 5, I64, None),
    ("LinuxContainerResources", "cpuset_cpus", 6, STR, None),
    ("LinuxContainerResources", "cpuset_mems", 7, STR, None),
    ("LinuxContainerResources", "hugepage_limits", 8, MSG, REP),
    ("LinuxContainerResources", "unified", 9, MSG, MAP),
    ("LinuxContainerResources", "memory_swap_limit_in_bytes", 10, I64, None),
    ("LinuxContainerSecurityContext", "capabilities", 1, MSG, "Capability"),
    ("LinuxContainerSecurityContext", "privileged", 2, BOOL, None),
    ("LinuxContainerSecurityContext", "namespace_options", 3, MSG, "NamespaceOption"),
    ("LinuxContainerSecurityContext", "run_as_user", 5, MSG, "Int64Value"),
    ("LinuxContainerSecurityContext", "run_as_username", 6, STR, None),
    ("LinuxContainerSecurityContext", "readonly_rootfs", 7, BOOL, None),
    ("LinuxContainerSecurityContext", "supplemental_groups", 8, I64, REP),
    ("LinuxContainerSecurityContext", "no_new_privs", 11, BOOL, None),
    ("LinuxContainerSecurityContext", "run_as_group", 12, MSG, "Int64Value"),
    ("LinuxContainerSecurityContext", "masked_paths", 13, STR, REP),
    ("LinuxContainerSecurityContext", "readonly_paths", 14, STR, REP),
    ("LinuxContainerSecurityContext", "seccomp", 15, MSG, "SecurityProfile"),
    ("LinuxContainerSecurityContext", "apparmor", 16, MSG, "SecurityProfile"),
    ("SecurityProfile", "profile_type", 1, ENUM, "SecurityProfile.ProfileType"),
    ("SecurityProfile", "localhost_ref", 2, STR, None),
    ("Capability", "add_capabilities", 1, STR, REP),
    ("Capability", "drop_capabilities", 2, STR, REP),
    ("Capability", "add_ambient_capabilities", 3, STR, REP),
    ("ContainerStatus", "id", 1, STR, None),
    ("ContainerStatus", "metadata", 2, MSG, "ContainerMetadata"),
    ("ContainerStatus", "state", 3, ENUM, "ContainerState"),
    ("ContainerStatus", "created_at", 4, I64, None),
    ("ContainerStatus", "started_at", 5, I64, None),
    ("ContainerStatus", "finished_at", 6, I64, None),
    ("ContainerStatus", "exit_code", 7, I32, None),
    ("ContainerStatus", "image", 8, MSG, "ImageSpec"),
    ("ContainerStatus", "image_ref", 9, STR, None),
    ("ContainerStatus", "reason", 10, STR, None),
    ("ContainerStatus", "message", 11, STR, None),
    ("ContainerStatus", "labels", 12, MSG, MAP),
    ("ContainerStatus", "annotations", 13, MSG, MAP),
    ("ContainerStatus", "mounts", 14, MSG, REP),
    ("ContainerStatus", "log_path", 15, STR, None),
    ("ContainerStatus", "resources", 16, MSG, "ContainerResources"),
    ("ContainerStatus", "image_id", 17, STR, None),
    ("ContainerStatus", "user", 18, MSG, "ContainerUser"),
    ("ContainerStatus", "stop_signal", 19, ENUM, "Signal"),
    ("ContainerStatusResponse", "status", 1, MSG, "ContainerStatus"),
    ("ContainerStatusResponse", "info", 2, MSG, MAP),
    ("Container", "pod_sandbox_id", 2, STR, None),
    ("Container", "image_ref", 5, STR, None),
    ("Container", "state", 6, ENUM, "ContainerState"),
    ("Container", "created_at", 7, I64, None),
    ("Container", "image_id", 10, STR, None),
    ("ContainerFilter", "state", 2, MSG, "ContainerStateValue"),
    ("ContainerFilter", "pod_sandbox_id", 3, STR, None),
    ("ContainerFilter", "label_selector", 4, MSG, MAP),
    ("StopContainerRequest", "timeout", 2, I64, None),
    ("ExecSyncRequest", "container_id", 1, STR, None),
    ("ExecSyncRequest", "cmd", 2, STR, REP),
    ("ExecSyncRequest", "timeout", 3, I64, None),
    ("ExecSyncResponse", "stdout", 1, BYTES, None),
    ("ExecSyncResponse", "stderr", 2, BYTES, None),
    ("ExecSyncResponse", "exit_code", 3, I32, None),
    ("ExecRequest", "tty", 3, BOOL, None),
    ("ExecRequest", "stdin", 4, BOOL, None),
    ("ExecRequest", "stdout", 5, BOOL, None),
    ("ExecRequest", "stderr", 6, BOOL, None),
    ("AttachRequest", "stdin", 2, BOOL, None),
    ("AttachRequest", "tty", 3, BOOL, None),
    ("AttachRequest", "stdout", 4, BOOL, None),
    ("AttachRequest", "stderr", 5, BOOL, None),
    ("ExecResponse", "url", 1, STR, None),
    ("PortForwardRequest", "pod_sandbox_id", 1, STR, None),
    ("PortForwardRequest", "port", 2, I32, REP),
    ("UpdateContainerResourcesRequest", "linux", 2, MSG, "LinuxContainerResources"),
    ("UpdateContainerResourcesRequest", "annotations", 4, MSG, MAP),
    ("ImageSpec", "image", 1, STR, None),
    ("ImageSpec", "annotations", 2, MSG, MAP),
    ("ImageSpec", "user_specified_image", 18, STR, None),
    ("ImageSpec", "runtime_handler", 19, STR, None),
    ("ImageSpec", "image_ref", 20, STR, None),
    ("Image", "id", 1, STR, None),
    ("Image", "repo_tags", 2, STR, REP),
    ("Image", "repo_digests", 3, STR, REP),
    ("Image", "size", 4, U64, None),
    ("Image", "uid", 5, MSG, "Int64Value"),
    ("Image", "username", 6, STR, None),
    ("Image", "spec", 7, MSG, "ImageSpec"),
    ("Image", "pinned", 8, BOOL, None),
    ("ImageStatusResponse", "image", 1, MSG, "Image"),
    ("AuthConfig", "username", 1, STR, None),
    ("AuthConfig", "password", 2, STR, None),
    ("AuthConfig", "auth", 3, STR, None),
    ("AuthConfig", "server_address", 4, STR, None),
    ("AuthConfig", "identity_token", 5, STR, None),
    ("AuthConfig", "registry_token", 6, STR, None),
    ("PullImageRequest", "image", 1, MSG, "ImageSpec"),
    ("PullImageRequest", "auth", 2, MSG, "AuthConfig"),
    ("PullImageRequest", "sandbox_config", 3, MSG, "PodSandboxConfig"),
    ("PullImageResponse", "image_ref", 1, STR, None),
    ("RuntimeCondition", "type", 1, STR, None),
    ("RuntimeCondition", "status", 2, BOOL, None),
    ("RuntimeCondition", "reason", 3, STR, None),
    ("RuntimeCondition", "message", 4, STR, None),
    ("StatusResponse", "status", 1, MSG, "RuntimeStatus"),
    ("StatusResponse", "runtime_handlers", 3, MSG, REP),
    ("StatusResponse", "features", 4, MSG, "RuntimeFeatures"),
    ("RuntimeHandlerFeatures", "recursive_read_only_mounts", 1, BOOL, None),
    ("RuntimeHandlerFeatures", "user_namespaces", 2, BOOL, None),
    ("UpdateRuntimeConfigRequest", "runtime_config", 1, MSG, "RuntimeConfig"),
    ("NetworkConfig", "pod_cidr", 1, STR, None),
    ("ImageFsInfoResponse", "image_filesystems", 1, MSG, REP),
    ("ImageFsInfoResponse", "container_filesystems", 2, MSG, REP),
    ("FilesystemUsage", "timestamp", 1, I64, None),
    ("FilesystemUsage", "fs_id", 2, MSG, "FilesystemIdentifier"),
    ("FilesystemUsage", "used_bytes", 3, MSG, "UInt64Value"),
    ("FilesystemUsage", "inodes_used", 4, MSG, "UInt64Value"),
    ("FilesystemIdentifier", "mountpoint", 1, STR, None),
    ("UInt64Value", "value", 1, U64, None),
    ("Int64Value", "value", 1, I64, None),
    ("ContainerStats", "attributes", 1, MSG, "ContainerAttributes"),
    ("ContainerStats", "cpu", 2, MSG, "CpuUsage"),
    ("ContainerStats", "memory", 3, MSG, "MemoryUsage"),
    ("ContainerStats", "writable_layer", 4, MSG, "FilesystemUsage"),
    ("ContainerStats", "swap", 5, MSG, "SwapUsage"),
    ("ContainerStats", "io", 6, MSG, "IoUsage"),
    ("CpuUsage", "timestamp", 1, I64, None),
    ("CpuUsage", "usage_core_nano_seconds", 2, MSG, "UInt64Value"),
    ("CpuUsage", "usage_nano_cores", 3, MSG, "UInt64Value"),
    ("CpuUsage", "psi", 4, MSG, "PsiStats"),
    ("MemoryUsage", "working_set_bytes", 2, MSG, "UInt64Value"),
    ("MemoryUsage", "available_bytes", 3, MSG, "UInt64Value"),
    ("MemoryUsage", "usage_bytes", 4, MSG, "UInt64Value"),
    ("MemoryUsage", "rss_bytes", 5, MSG, "UInt64Value"),
    ("MemoryUsage", "page_faults", 6, MSG, "UInt64Value"),
    ("MemoryUsage", "major_page_faults", 7, MSG, "UInt64Value"),
    ("PsiStats", "Full", 1, MSG, "PsiData"),
    ("PsiStats", "Some", 2, MSG, "PsiData"),
    ("PsiData", "Total", 1, U64, None),
    ("PsiData", "Avg10", 2, DBL, None),
    ("PsiData", "Avg300", 4, DBL, None),
    ("ContainerStatsFilter", "pod_sandbox_id", 2, STR, None),
    ("ContainerStatsFilter", "label_selector", 3, MSG, MAP),
    ("PodSandboxStats", "attributes", 1, MSG, "PodSandboxAttributes"),
    ("PodSandboxStats", "linux", 2, MSG, "LinuxPodSandboxStats"),
    ("PodSandboxStats", "windows", 3, MSG, "WindowsPodSandboxStats"),
    ("LinuxPodSandboxStats", "network", 3, MSG, "NetworkUsage"),
    ("LinuxPodSandboxStats", "process", 4, MSG, "ProcessUsage"),
    ("LinuxPodSandboxStats", "containers", 5, MSG, REP),
    ("NetworkInterfaceUsage", "rx_bytes", 2, MSG, "UInt64Value"),
    ("NetworkInterfaceUsage", "tx_errors", 5, MSG, "UInt64Value"),
    ("WindowsContainerResources", "cpu_maximum", 3, I64, None),
    ("WindowsContainerResources", "rootfs_size_in_bytes", 5, I64, None),
    ("WindowsSandboxSecurityContext", "host_process", 3, BOOL, None),
    ("ContainerEventResponse", "container_id", 1, STR, None),
    ("ContainerEventResponse", "container_event_type", 2, ENUM, "ContainerEventType"),
    ("ContainerEventResponse", "created_at", 3, I64, None),
    ("ContainerEventResponse", "pod_sandbox_status", 4, MSG, "PodSandboxStatus"),
    ("ContainerEventResponse", "containers_statuses", 5, MSG, REP),
    ("CheckpointContainerRequest", "location", 2, STR, None),
    ("CheckpointContainerRequest", "timeout", 3, I64, None),
    ("Metric", "name", 1, STR, None),
    ("Metric", "timestamp", 2, I64, None),
    ("Metric", "metric_type", 3, ENUM, "MetricType"),
    ("Metric", "label_values", 4, STR, REP),
    ("Metric", "value", 5, MSG, "UInt64Value"),
    ("MetricDescriptor", "label_keys", 3, STR, REP),
    ("ListPodSandboxMetricsResponse", "pod_metrics", 1, MSG, REP),
    ("PodSandboxMetrics", "container_metrics", 3, MSG, REP),
    ("RuntimeConfigResponse", "linux", 1, MSG, "LinuxRuntimeConfiguration"),
    ("LinuxRuntimeConfiguration", "cgroup_driver", 1, ENUM, "CgroupDriver"),
    ("UpdatePodSandboxResourcesRequest", "resources", 3, MSG, "LinuxContainerResources"),
]

_RUNTIME_UNARY = [
    "Version", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus",
    "ListPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer",
    "ListContainers", "ContainerStatus", "UpdateContainerResources", "ReopenContainerLog",
    "ExecSync", "Exec", "Attach", "PortForward", "ContainerStats", "ListContainerStats",
    "PodSandboxStats", "ListPodSandboxStats", "UpdateRuntimeConfig", "Status",
    "CheckpointContainer", "ListMetricDescriptors", "ListPodSandboxMetrics", "RuntimeConfig",
    "UpdatePodSandboxResources",
]
# (service, method, input, output, server_streaming)
METHODS = [("RuntimeService", m, m + "Request", m + "Response", False) for m in _RUNTIME_UNARY]
METHODS += [
    ("RuntimeService", "GetContainerEvents", "GetEventsRequest", "ContainerEventResponse", True),
    ("RuntimeService", "StreamPodSandboxes", "StreamPodSandboxesRequest",
     "StreamPodSandboxesResponse", True),
    ("RuntimeService", "StreamContainers", "StreamContainersRequest",
     "StreamContainersResponse", True),
    ("RuntimeService", "StreamContainerStats", "StreamContainerStatsRequest",
     "StreamContainerStatsResponse", True),
    ("RuntimeService", "StreamPodSandboxStats", "StreamPodSandboxStatsRequest",
     "StreamPodSandboxStatsResponse", True),
    ("RuntimeService", "StreamPodSandboxMetrics", "StreamPodSandboxMetricsRequest",
     "StreamPodSandboxMetricsResponse", True),
]
METHODS += [("ImageService", m, m + "Request", m + "Response", False)
            for m in ("ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo")]
METHODS.append(("ImageService", "StreamImages", "StreamImagesRequest", "StreamImagesResponse",
                True))

# (enum, value name, number)
ENUM_VALUES = [
    ("Protocol", "TCP", 0), ("Protocol", "UDP", 1), ("Protocol", "SCTP", 2),
    ("MountPropagation", "PROPAGATION_PRIVATE", 0),
    ("MountPropagation", "PROPAGATION_HOST_TO_CONTAINER", 1),
    ("MountPropagation", "PROPAGATION_BIDIRECTIONAL", 2),
    ("NamespaceMode", "POD", 0), ("NamespaceMode", "CONTAINER", 1),
    ("NamespaceMode", "NODE", 2), ("NamespaceMode", "TARGET", 3),
    ("PodSandboxState", "SANDBOX_READY", 0), ("PodSandboxState", "SANDBOX_NOTREADY", 1),
    ("ContainerState", "CONTAINER_CREATED", 0), ("ContainerState", "CONTAINER_RUNNING", 1),
    ("ContainerState", "CONTAINER_EXITED", 2), ("ContainerState", "CONTAINER_UNKNOWN", 3),
    ("ContainerEventType", "CONTAINER_CREATED_EVENT", 0),
    ("ContainerEventType", "CONTAINER_STARTED_EVENT", 1),
    ("ContainerEventType", "CONTAINER_STOPPED_EVENT", 2),
    ("ContainerEventType", "CONTAINER_DELETED_EVENT", 3),
    ("SupplementalGroupsPolicy", "Merge", 0), ("SupplementalGroupsPolicy", "Strict", 1),
    ("MetricType", "COUNTER", 0), ("MetricType", "GAUGE", 1),
    ("CgroupDriver", "SYSTEMD", 0), ("CgroupDriver", "CGROUPFS", 1),
    ("Signal", "RUNTIME_DEFAULT", 0), ("Signal", "SIGHUP", 8), ("Signal", "SIGINT", 10),
    ("Signal", "SIGKILL", 13), ("Signal", "SIGTERM", 23), ("Signal", "SIGUSR1", 29),
    ("Signal", "SIGWINCH", 32), ("Signal", "SIGRTMIN", 35), ("Signal", "SIGRTMAX", 65),
]


def _msg(name):
    assert name in api_pb2.DESCRIPTOR.message_types_by_name, "missing message " + name
    return api_pb2.DESCRIPTOR.message_types_by_name[name]


def test_package_and_syntax():
    assert api_pb2.DESCRIPTOR.package == "runtime.v1"
    assert api_pb2.DESCRIPTOR.syntax == "proto3"
    assert set(api_pb2.DESCRIPTOR.services_by_name) == {"RuntimeService", "ImageService"}


@pytest.mark.parametrize("msg,field,number,ftype,extra", FIELDS,
                         ids=["%s.%s" % (f[0], f[1]) for f in FIELDS])
def test_field(msg, field, number, ftype, extra):
    d = _msg(msg)
    assert field in d.fields_by_name, "%s has no field %s" % (msg, field)
    f = d.fields_by_name[field]
    assert f.number == number
    assert f.type == ftype
    if extra == MAP:
        entry = f.message_type
        assert f.label == FD.LABEL_REPEATED and entry.GetOptions().map_entry
        assert entry.fields_by_name["key"].type == STR
        assert entry.fields_by_name["value"].type == STR
    elif extra == REP:
        assert f.label == FD.LABEL_REPEATED
        assert f.message_type is None or not f.message_type.GetOptions().map_entry
    else:
        assert f.label != FD.LABEL_REPEATED
        if extra is not None:
            t = f.message_type if ftype == MSG else f.enum_type
            assert t.full_name == "runtime.v1." + extra


def test_repeated_element_types():
    # Element types of repeated message fields the kubelet fills in.
    cases = {
        ("PodSandboxConfig", "port_mappings"): "PortMapping",
        ("ContainerConfig", "envs"): "KeyValue",
        ("ContainerConfig", "mounts"): "Mount",
        ("ContainerConfig", "devices"): "Device",
        ("ContainerConfig", "CDI_devices"): "CDIDevice",
        ("Mount", "uidMappings"): "IDMapping",
        ("ContainerStatus", "mounts"): "Mount",
        ("ListPodSandboxResponse", "items"): "PodSandbox",
        ("ListContainersResponse", "containers"): "Container",
        ("ListImagesResponse", "images"): "Image",
        ("PodSandboxStatusResponse", "containers_statuses"): "ContainerStatus",
        ("LinuxContainerResources", "hugepage_limits"): "HugepageLimit",
        ("ListContainerStatsResponse", "stats"): "ContainerStats",
        ("ListPodSandboxStatsResponse", "stats"): "PodSandboxStats",
        ("StatusResponse", "runtime_handlers"): "RuntimeHandler",
        ("RuntimeStatus", "conditions"): "RuntimeCondition",
    }
    for (msg, field), elem in cases.items():
        f = _msg(msg).fields_by_name[field]
        assert f.label == FD.LABEL_REPEATED, (msg, field)
        assert f.message_type.full_name == "runtime.v1." + elem, (msg, field)


@pytest.mark.parametrize("svc,method,inp,out,sstream", METHODS,
                         ids=["%s.%s" % (m[0], m[1]) for m in METHODS])
def test_method(svc, method, inp, out, sstream):
    s = api_pb2.DESCRIPTOR.services_by_name[svc]
    assert method in s.methods_by_name, "%s has no method %s" % (svc, method)
    m = s.methods_by_name[method]
    assert m.input_type.full_name == "runtime.v1." + inp
    assert m.output_type.full_name == "runtime.v1." + out
    assert m.server_streaming is sstream
    assert m.client_streaming is False


def test_method_sets_are_exact():
    want = {}
    for svc, method, *_ in METHODS:
        want.setdefault(svc, set()).add(method)
    for svc, methods in want.items():
        assert set(api_pb2.DESCRIPTOR.services_by_name[svc].methods_by_name) == methods


@pytest.mark.parametrize("enum,name,number", ENUM_VALUES,
                         ids=["%s.%s" % (e[0], e[1]) for e in ENUM_VALUES])
def test_enum_value(enum, name, number):
    e = api_pb2.DESCRIPTOR.enum_types_by_name[enum]
    assert e.values_by_name[name].number == number


def test_signal_enum_is_dense():
    e = api_pb2.DESCRIPTOR.enum_types_by_name["Signal"]
    assert sorted(v.number for v in e.values) == list(range(66))


def test_profile_type_nested_enum():
    e = _msg("SecurityProfile").enum_types_by_name["ProfileType"]
    assert [(v.name, v.number) for v in e.values] == [
        ("RuntimeDefault", 0), ("Unconfined", 1), ("Localhost", 2)]


def test_wire_bytes_version_response():
    v = api_pb2.VersionResponse(version="0.1.0", runtime_name="hpcri")
    assert v.SerializeToString() == b"\x0a\x050.1.0\x12\x05hpcri"


def test_wire_bytes_run_pod_sandbox_request():
    # config = 1 { metadata = 1 { name = 1, namespace = 3 }, labels = 6 {k: v} },
    # runtime_handler = 2.
    raw = (b"\x0a\x15" b"\x0a\x08" b"\x0a\x01p" b"\x1a\x03ns1"
           b"\x32\x09" b"\x0a\x03app" b"\x12\x02ok"
           b"\x12\x05slurm")
    r = api_pb2.RunPodSandboxRequest.FromString(raw)
    assert r.runtime_handler == "slurm"
    assert r.config.metadata.name == "p"
    assert r.config.metadata.namespace == "ns1"
    assert dict(r.config.labels) == {"app": "ok"}
    assert r.SerializeToString() == raw


def test_generic_grpc_callable():
    import grpc
    ch = grpc.insecure_channel("unix:///nonexistent/hpcri-proto-test.sock")
    try:
        fn = ch.unary_unary("/runtime.v1.RuntimeService/Version",
                            request_serializer=api_pb2.VersionRequest.SerializeToString,
                            response_deserializer=api_pb2.VersionResponse.FromString)
        assert callable(fn)
        st = ch.unary_stream("/runtime.v1.RuntimeService/GetContainerEvents",
                             request_serializer=api_pb2.GetEventsRequest.SerializeToString,
                             response_deserializer=api_pb2.ContainerEventResponse.FromString)
        assert callable(st)
    finally:
        ch.close()
