#!/usr/bin/python3
"""Time one CRI call against hpcri: client.py BUILD SOCKET pull|remove IMAGE
Prints the wall-clock seconds of the call."""
import os
import sys
import time

sys.path.insert(0, os.path.join(sys.argv[1], "py"))
import grpc  # noqa: E402
import api_pb2  # noqa: E402


def main():
    _, _, sock, op, image = sys.argv
    ch = grpc.insecure_channel("unix:" + sock)
    name = {"pull": "PullImage", "remove": "RemoveImage"}[op]
    req = getattr(api_pb2, name + "Request")(image=api_pb2.ImageSpec(image=image))
    fn = ch.unary_unary("/runtime.v1.ImageService/" + name,
                        request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=getattr(api_pb2, name + "Response").FromString)
    t0 = time.monotonic()
    fn(req, timeout=600)
    print("%.3f" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
