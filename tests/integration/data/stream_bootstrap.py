"""A custom runtime that streams its response as AWS's Node runtime does: a chunked POST to
/response with Lambda-Runtime-Function-Response-Mode: streaming and error trailers.

The event says what to stream:
  chunks       strings to send, one HTTP chunk each
  signal_port  after the first chunk, connect to 127.0.0.1:<port> and wait for one byte before the rest
  repeat       {"size": n, "count": k}: k chunks of n bytes (after `chunks`), progress reported on
               the signal connection as "<bytes>\n" after each
  hang         after the chunks, sleep (for the timeout to strike mid-stream)
  crash        after the chunks, exit(3)
  error        {"type": ..., "body": {...}}: end with the error trailers
  prelude      an object: the function-URL metadata prelude (JSON, then 8 NUL bytes) goes first
  content_type the response's Content-Type
  mode         the Lambda-Runtime-Function-Response-Mode to send (default "streaming"); a refusal
               of the response is posted to /error as it came
"""

import base64
import http.client
import json
import os
import socket
import time

HOST, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")


def next_event():
    conn = http.client.HTTPConnection(HOST, int(PORT))
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    event = json.loads(body)
    if isinstance(event.get("body"), str) and "requestContext" in event:  # a function URL's event
        event = json.loads(event["body"])
    return resp.getheader("Lambda-Runtime-Aws-Request-Id"), event


def chunk(sock, data):
    if data:
        sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")


def stream(request_id, event):
    sock = socket.create_connection((HOST, int(PORT)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    content_type = event.get("content_type", "application/octet-stream")
    if "prelude" in event:
        content_type = "application/vnd.awslambda.http-integration-response"
    sock.sendall(
        f"POST /2018-06-01/runtime/invocation/{request_id}/response HTTP/1.1\r\n"
        f"Host: {HOST}:{PORT}\r\nLambda-Runtime-Function-Response-Mode: {event.get('mode', 'streaming')}\r\n"
        f"Transfer-Encoding: chunked\r\nContent-Type: {content_type}\r\n"
        "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n".encode())
    if "prelude" in event:
        chunk(sock, json.dumps(event["prelude"]).encode() + b"\0" * 8)
    signal = None
    for index, text in enumerate(event.get("chunks", [])):
        chunk(sock, text.encode())
        if index == 0 and event.get("signal_port"):
            signal = socket.create_connection(("127.0.0.1", event["signal_port"]))
            signal.recv(1)
    repeat = event.get("repeat")
    if repeat:
        if signal is None and event.get("signal_port"):
            signal = socket.create_connection(("127.0.0.1", event["signal_port"]))
        sent = 0
        block = b"x" * repeat["size"]
        for _ in range(repeat["count"]):
            chunk(sock, block)
            sent += len(block)
            if signal is not None:
                signal.sendall(b"%d\n" % sent)
    if event.get("hang"):
        time.sleep(3600)
    if event.get("crash"):
        os._exit(3)
    trailers = b""
    if event.get("error"):
        body = base64.b64encode(json.dumps(event["error"]["body"]).encode())
        trailers = (b"Lambda-Runtime-Function-Error-Type: " + event["error"]["type"].encode() + b"\r\n"
                    b"Lambda-Runtime-Function-Error-Body: " + body + b"\r\n")
    sock.sendall(b"0\r\n" + trailers + b"\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    if signal is not None:
        signal.sendall(b"done\n")
    sock.close()
    if not answer.startswith(b"HTTP/1.1 2"):
        conn = http.client.HTTPConnection(HOST, int(PORT))
        conn.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/error",
                     body=answer.partition(b"\r\n\r\n")[2] or b"{}")
        conn.getresponse().read()
        conn.close()
    print("streamed", request_id, answer.split(b"\r\n", 1)[0].decode(), flush=True)


while True:
    rid, ev = next_event()
    stream(rid, ev)
