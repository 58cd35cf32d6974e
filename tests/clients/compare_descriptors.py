#!/usr/bin/env python3
"""Mechanical wire-compatibility check of Tessera's protos against the official `authzed` package.

Usage: compare_descriptors.py TESSERA_DESCRIPTOR_SET

TESSERA_DESCRIPTOR_SET is the encoded google.protobuf.FileDescriptorSet Tessera compiles
(`tessera::api::proto::FILE_DESCRIPTOR_SET`). The reference is the descriptor of every
`authzed.api.v1.*_pb2` module installed in this interpreter (plus `google.rpc.status_pb2`).

Both sides are flattened into "facts" (one per message, field attribute, oneof, enum value,
service, method attribute, ...) for every file Tessera declares, and the two fact sets must be
equal: a fact only on the reference side means Tessera is missing something, a fact only on
Tessera's side means Tessera invented something, and a differing value is a mismatch. Every
difference is listed; the exit status is 1 if there is any.

Deliberately not compared: file options (java/go package names), the third-party validation and
OpenAPI/HTTP annotations and their imports, comments and source positions. None of those affect
the gRPC wire format or the JSON field names.
"""

from __future__ import annotations

import importlib
import sys
from typing import Dict, Iterable, Tuple

from google.protobuf import descriptor_pb2

# Reference modules, by the proto file each one was generated from.
REFERENCE_MODULES = {
    "authzed/api/v1/core.proto": "authzed.api.v1.core_pb2",
    "authzed/api/v1/debug.proto": "authzed.api.v1.debug_pb2",
    "authzed/api/v1/error_reason.proto": "authzed.api.v1.error_reason_pb2",
    "authzed/api/v1/permission_service.proto": "authzed.api.v1.permission_service_pb2",
    "authzed/api/v1/schema_service.proto": "authzed.api.v1.schema_service_pb2",
    "authzed/api/v1/watch_service.proto": "authzed.api.v1.watch_service_pb2",
    "authzed/api/v1/experimental_service.proto": "authzed.api.v1.experimental_service_pb2",
    "google/rpc/status.proto": "google.rpc.status_pb2",
    "google/rpc/error_details.proto": "google.rpc.error_details_pb2",
}

# Files Tessera must declare: the three services of the product and everything they use.
REQUIRED_FILES = [
    "authzed/api/v1/core.proto",
    "authzed/api/v1/debug.proto",
    "authzed/api/v1/permission_service.proto",
    "authzed/api/v1/schema_service.proto",
    "authzed/api/v1/watch_service.proto",
    "google/rpc/status.proto",
]

# Imports of the reference that only carry annotations Tessera intentionally leaves out.
ANNOTATION_IMPORTS = {
    "buf/validate/validate.proto",
    "validate/validate.proto",
    "google/api/annotations.proto",
    "protoc-gen-openapiv2/options/annotations.proto",
}

# Files Tessera takes from protoc's bundled well-known types rather than declaring itself.
WELL_KNOWN_PREFIX = "google/protobuf/"

Fact = Tuple[str, ...]
Facts = Dict[Fact, object]

TYPE_NAMES = {v: k for k, v in descriptor_pb2.FieldDescriptorProto.Type.items()}
LABEL_NAMES = {v: k for k, v in descriptor_pb2.FieldDescriptorProto.Label.items()}


def message_facts(msg: descriptor_pb2.DescriptorProto, scope: str, out: Facts) -> None:
    """Adds the facts of one message (and its nested types) declared in `scope`."""
    name = f"{scope}.{msg.name}"
    out[("message", name)] = "declared"
    out[("message", name, "map_entry")] = msg.options.map_entry
    for oneof in msg.oneof_decl:
        out[("message", name, "oneof", oneof.name)] = "declared"
    for field in msg.field:
        key = ("field", f"{name}.{field.name}")
        out[key] = "declared"
        out[key + ("number",)] = field.number
        out[key + ("type",)] = TYPE_NAMES[field.type]
        # Message and enum references are fully qualified (leading dot) on both sides.
        out[key + ("type_name",)] = field.type_name
        out[key + ("label",)] = LABEL_NAMES[field.label]
        out[key + ("proto3_optional",)] = field.proto3_optional
        out[key + ("oneof",)] = (
            msg.oneof_decl[field.oneof_index].name if field.HasField("oneof_index") else None
        )
        # protoc and the Python runtime both fill json_name; an absent one means the default.
        out[key + ("json_name",)] = field.json_name or default_json_name(field.name)
        out[key + ("default_value",)] = field.default_value
        out[key + ("deprecated",)] = field.options.deprecated
        out[key + ("packed",)] = (
            field.options.packed if field.options.HasField("packed") else None
        )
    for nested in msg.nested_type:
        message_facts(nested, name, out)
    for enum in msg.enum_type:
        enum_facts(enum, name, out)


def enum_facts(enum: descriptor_pb2.EnumDescriptorProto, scope: str, out: Facts) -> None:
    """Adds the facts of one enum declared in `scope`."""
    name = f"{scope}.{enum.name}"
    out[("enum", name)] = "declared"
    out[("enum", name, "allow_alias")] = enum.options.allow_alias
    for value in enum.value:
        out[("enum_value", f"{name}.{value.name}")] = value.number


def service_facts(svc: descriptor_pb2.ServiceDescriptorProto, scope: str, out: Facts) -> None:
    """Adds the facts of one service and its methods."""
    name = f"{scope}.{svc.name}"
    out[("service", name)] = "declared"
    for method in svc.method:
        key = ("method", f"{name}/{method.name}")
        out[key] = "declared"
        out[key + ("input_type",)] = method.input_type
        out[key + ("output_type",)] = method.output_type
        out[key + ("client_streaming",)] = method.client_streaming
        out[key + ("server_streaming",)] = method.server_streaming


def file_facts(fdp: descriptor_pb2.FileDescriptorProto) -> Facts:
    """Flattens one file into facts, all keyed under the file name."""
    out: Facts = {}
    scope = "." + fdp.package if fdp.package else ""
    out[("file", fdp.name, "package")] = fdp.package
    out[("file", fdp.name, "syntax")] = fdp.syntax or "proto2"
    for dep in fdp.dependency:
        if dep not in ANNOTATION_IMPORTS:
            out[("file", fdp.name, "import", dep)] = "imported"
    for msg in fdp.message_type:
        message_facts(msg, scope, out)
    for enum in fdp.enum_type:
        enum_facts(enum, scope, out)
    for svc in fdp.service:
        service_facts(svc, scope, out)
    # Record which file declares each top-level element, so moving a type between files (which
    # changes imports for other-language clients and reflection) is caught as well.
    for kind, items in (("message", fdp.message_type), ("enum", fdp.enum_type), ("service", fdp.service)):
        for item in items:
            out[(kind, f"{scope}.{item.name}", "file")] = fdp.name
    return out


def default_json_name(name: str) -> str:
    """The lowerCamelCase JSON name protoc derives from a field name."""
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def reference_file(name: str) -> descriptor_pb2.FileDescriptorProto:
    """The reference descriptor of proto file `name`, from the installed Python packages."""
    module = importlib.import_module(REFERENCE_MODULES[name])
    fdp = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fdp)
    return fdp


def load_tessera(path: str) -> Dict[str, descriptor_pb2.FileDescriptorProto]:
    """Tessera's own files (well-known types excluded), by file name."""
    with open(path, "rb") as handle:
        fds = descriptor_pb2.FileDescriptorSet.FromString(handle.read())
    return {f.name: f for f in fds.file if not f.name.startswith(WELL_KNOWN_PREFIX)}


def render(value: object) -> str:
    return "absent" if value is None else repr(value)


def describe(label: str, value: object) -> str:
    """`label = value`, or just the label for an element whose only fact is its existence."""
    return label if value == "declared" else f"{label} = {render(value)}"


def compare(tessera: Dict[str, descriptor_pb2.FileDescriptorProto]) -> Iterable[str]:
    """Yields one human-readable line per difference."""
    for name in REQUIRED_FILES:
        if name not in tessera:
            yield f"missing file: Tessera does not declare {name}"
    for name in sorted(tessera):
        if name not in REFERENCE_MODULES:
            yield f"extra file: {name} has no counterpart in the authzed package"
            continue
        ours = file_facts(tessera[name])
        theirs = file_facts(reference_file(name))
        for key in sorted(set(ours) | set(theirs), key=lambda k: tuple(map(str, k))):
            label = " ".join(key)
            # An element missing on one side is reported once, not once per attribute.
            entity = key[:2]
            if key != entity and ((entity in ours) != (entity in theirs)):
                continue
            if key not in ours:
                yield f"{name}: missing in Tessera: {describe(label, theirs[key])}"
            elif key not in theirs:
                yield f"{name}: not in reference: {describe(label, ours[key])}"
            elif ours[key] != theirs[key]:
                yield (
                    f"{name}: mismatch: {label}: Tessera has {render(ours[key])}, "
                    f"reference has {render(theirs[key])}"
                )


def main(argv: list) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    tessera = load_tessera(argv[1])
    differences = list(compare(tessera))
    import authzed  # noqa: imported only to report the version compared against

    version = getattr(authzed, "__version__", None) or _dist_version("authzed")
    if differences:
        print(f"descriptor comparison against authzed {version}: {len(differences)} difference(s)")
        for line in differences:
            print("  " + line)
        return 1
    count = sum(1 for _ in tessera)
    print(
        f"descriptor comparison against authzed {version}: {count} files identical on the wire "
        f"({', '.join(sorted(tessera))})"
    )
    return 0


def _dist_version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
