#!/usr/bin/env python3
"""Byte-level interoperability between Tessera's prost messages and the official Python client.

Driven by tests/descriptors.rs, which builds the same messages in Rust:

  wire_roundtrip.py check-request HEX
      HEX is Tessera's encoding of the sample CheckPermissionRequest. Exits 0 when the official
      `authzed` message class, built independently below, serialises to exactly those bytes and
      parses them back to an equal message; otherwise prints both sides and exits 1.

  wire_roundtrip.py bulk-check-response
      Prints (hex) the official client's encoding of the sample CheckBulkPermissionsResponse, for
      Tessera to decode, check field by field, and re-encode to the same bytes.

Encodings are deterministic on both sides (fields in number order, map keys sorted), so equal
messages give equal bytes.
"""

from __future__ import annotations

import sys

from authzed.api.v1 import core_pb2, debug_pb2, permission_service_pb2 as ps
from google.protobuf import any_pb2, duration_pb2, struct_pb2, text_format, timestamp_pb2
from google.rpc import status_pb2


def sample_check_request() -> ps.CheckPermissionRequest:
    """The request tests/descriptors.rs encodes with prost; keep the two in step."""
    context = struct_pb2.Struct()
    context.update(
        {
            "ip": "10.0.0.1",
            "attempts": 3,
            "tags": ["a", "b"],
            "nested": {"ok": True, "none": None},
        }
    )
    return ps.CheckPermissionRequest(
        consistency=ps.Consistency(at_least_as_fresh=core_pb2.ZedToken(token="GhUKEzE3MDAwMDAwMDA=")),
        resource=core_pb2.ObjectReference(object_type="docs/document", object_id="readme"),
        permission="view",
        subject=core_pb2.SubjectReference(
            object=core_pb2.ObjectReference(object_type="docs/group", object_id="eng"),
            optional_relation="member",
        ),
        context=context,
        with_tracing=True,
    )


def sample_bulk_check_response() -> ps.CheckBulkPermissionsResponse:
    """The response tests/descriptors.rs decodes and checks; keep the two in step."""
    resource = core_pb2.ObjectReference(object_type="document", object_id="plan")
    subject = core_pb2.SubjectReference(object=core_pb2.ObjectReference(object_type="user", object_id="ann"))
    leaf = debug_pb2.CheckDebugTrace(
        resource=resource,
        permission="viewer",
        permission_type=debug_pb2.CheckDebugTrace.PERMISSION_TYPE_RELATION,
        subject=subject,
        result=debug_pb2.CheckDebugTrace.PERMISSIONSHIP_CONDITIONAL_PERMISSION,
        caveat_evaluation_info=debug_pb2.CaveatEvalInfo(
            expression="ip == allowed",
            result=debug_pb2.CaveatEvalInfo.RESULT_MISSING_SOME_CONTEXT,
            partial_caveat_info=core_pb2.PartialCaveatInfo(missing_required_context=["ip"]),
            caveat_name="on_network",
        ),
        was_cached_result=True,
        source="tessera",
    )
    root = debug_pb2.CheckDebugTrace(
        resource=resource,
        permission="view",
        permission_type=debug_pb2.CheckDebugTrace.PERMISSION_TYPE_PERMISSION,
        subject=subject,
        result=debug_pb2.CheckDebugTrace.PERMISSIONSHIP_CONDITIONAL_PERMISSION,
        duration=duration_pb2.Duration(seconds=0, nanos=1500),
        sub_problems=debug_pb2.CheckDebugTrace.SubProblems(traces=[leaf]),
        optional_expires_at=timestamp_pb2.Timestamp(seconds=1767225600),
        trace_operation_id="op-1",
    )
    answered = ps.CheckBulkPermissionsPair(
        request=ps.CheckBulkPermissionsRequestItem(resource=resource, permission="view", subject=subject),
        item=ps.CheckBulkPermissionsResponseItem(
            permissionship=ps.CheckPermissionResponse.PERMISSIONSHIP_CONDITIONAL_PERMISSION,
            partial_caveat_info=core_pb2.PartialCaveatInfo(missing_required_context=["ip"]),
            debug_trace=debug_pb2.DebugInformation(check=root, schema_used="definition user {}"),
        ),
    )
    failed = ps.CheckBulkPermissionsPair(
        request=ps.CheckBulkPermissionsRequestItem(
            resource=core_pb2.ObjectReference(object_type="nope", object_id="x"),
            permission="view",
            subject=subject,
        ),
        error=status_pb2.Status(
            code=9,
            message="object definition `nope` not found",
            details=[any_pb2.Any(type_url="type.googleapis.com/google.rpc.ErrorInfo", value=b"\x0a\x01x")],
        ),
    )
    return ps.CheckBulkPermissionsResponse(
        checked_at=core_pb2.ZedToken(token="GgYKBDEyMzQ="),
        pairs=[answered, failed],
    )


def encode(message) -> bytes:
    return message.SerializeToString(deterministic=True)


def check_request(hex_bytes: str) -> int:
    theirs = bytes.fromhex(hex_bytes)
    expected = sample_check_request()
    ours = encode(expected)
    parsed = ps.CheckPermissionRequest.FromString(theirs)
    if theirs == ours and parsed == expected:
        print(f"CheckPermissionRequest: {len(theirs)} bytes, identical in Rust and Python")
        return 0
    print("CheckPermissionRequest bytes differ between Tessera (prost) and the authzed client")
    print(f"  tessera: {theirs.hex()}")
    print(f"  authzed: {ours.hex()}")
    print("  tessera's bytes as the authzed client reads them:")
    print(text_format.MessageToString(parsed, indent=4))
    return 1


def main(argv: list) -> int:
    if len(argv) == 3 and argv[1] == "check-request":
        return check_request(argv[2])
    if len(argv) == 2 and argv[1] == "bulk-check-response":
        print(encode(sample_bulk_check_response()).hex())
        return 0
    print("usage: wire_roundtrip.py check-request HEX | bulk-check-response", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
