"""An S3-compatible server on loopback for the remote-output benchmarks (moto's server mode)."""

from __future__ import annotations

import logging
import socket

import boto3
from moto.server import ThreadedMotoServer

ACCESS_KEY, SECRET_KEY, REGION = "k", "s", "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_s3_server(bucket: str):
    """A started server holding an empty `bucket`; returns (server, endpoint URL, boto3 client).
    The caller stops the server (`server.stop()`)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name=REGION)
    client.create_bucket(Bucket=bucket)
    return server, endpoint, client
